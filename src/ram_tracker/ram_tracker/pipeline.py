"""One video stream through RAM: image -> model step -> detections -> Algorithm 1 -> tracks.

No ROS: the node, offline evaluation and benchmarks all run this same class. Coordinates: the
model and tracker work in model-input pixels; results are mapped back to source-image pixels
here (and only here).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import torch

from ram_tracker.checkpoint import load_weights
from ram_tracker.decode import decode_detections
from ram_tracker.model import ModelConfig, build_model
from ram_tracker.tracker import Track, Tracker, TrackerConfig
from ram_tracker.walk import NodeGrid


@dataclass
class TrackOutput:
    """A track in source-image pixels, ready for a message or a results file."""
    track_id: int
    class_id: int
    class_name: str
    score: float
    box_cxcywh: np.ndarray
    velocity: np.ndarray
    state: str
    box_source: str
    frames_since_seen: int
    walker_confidence: float
    visibility: float
    age: int


@dataclass
class Belief:
    """The walker of one occluded track on the node grid, with the grid's source-pixel geometry."""
    track_id: int
    class_name: str
    probability: np.ndarray     # (grid_h, grid_w), sums to 1
    cell_width: float           # source pixels per node cell
    cell_height: float
    origin_x: float             # source pixel of the grid's top-left corner
    origin_y: float


@dataclass
class FrameResult:
    tracks: list[TrackOutput]
    beliefs: list[Belief]
    num_detections: int


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available; a clear error for a CUDA device that is not there."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f"device '{name}' requested but CUDA is not available "
                             "(use device:=cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device '{name}' requested but only {torch.cuda.device_count()} "
                             'CUDA device(s) exist')
    return device


class TrackingPipeline:

    def __init__(self, model, tracker_config: TrackerConfig, input_size: tuple[int, int],
                 device: torch.device, model_info: Optional[dict] = None):
        self.model = model.to(device).eval()
        self.device = device
        self.input_width, self.input_height = input_size
        self.tracker_config = tracker_config
        self.class_names = list(model.cfg.class_names)
        self.model_info = model_info or {}
        self.grid: NodeGrid = model.node_grid(self.input_height, self.input_width)
        self._tracker = Tracker(tracker_config, (self.input_width, self.input_height))
        self._state = None
        self._source_size: Optional[tuple[int, int]] = None

    @classmethod
    def from_params(cls, params: dict) -> 'TrackingPipeline':
        """Build from validated node parameters (ram_tracker.parameters)."""
        device = resolve_device(params['device'])
        if params['num_threads'] > 0:
            torch.set_num_threads(params['num_threads'])
        if params['model_path']:
            model, info = load_weights(resolve_model_path(params['model_path']), device)
        else:
            torch.manual_seed(0)
            model, info = build_model(ModelConfig()), {'untrained': True}
        tracker_config = TrackerConfig(
            det_threshold=params['detection_threshold'],
            new_track_threshold=params['new_track_threshold'],
            max_age=params['max_age'],
            walker_min_confidence=params['walker_min_confidence'],
            border_margin=params['border_margin'],
            rematch_radius=params['rematch_radius'],
            occlusion_model=params['occlusion_model'])
        pipeline = cls(model, tracker_config, (params['input_width'], params['input_height']),
                       device, info)
        pipeline.warm_up()
        return pipeline

    @property
    def device_name(self) -> str:
        if self.device.type == 'cuda':
            return f'{self.device} ({torch.cuda.get_device_name(self.device)})'
        return 'cpu'

    def describe(self) -> str:
        cfg = self.model.cfg
        source = 'untrained' if self.model_info.get('untrained') else self.model_info.get(
            'name', 'trained')
        return (f'{cfg.backbone} model ({source}), classes {self.class_names}, input '
                f'{self.input_width}x{self.input_height}, nodes {self.grid.width}x'
                f'{self.grid.height}, device {self.device_name}')

    def reset(self) -> None:
        """Forget the stream: memory, embeddings and tracks (ids restart at 1)."""
        self._state = None
        self._source_size = None
        self._tracker.reset()

    def warm_up(self) -> None:
        self.process(np.zeros((self.input_height, self.input_width, 3), np.uint8))
        self.reset()

    @torch.inference_mode()
    def process(self, rgb: np.ndarray) -> FrameResult:
        """One frame (H, W, 3) uint8 RGB of the stream."""
        source_h, source_w = rgb.shape[:2]
        if self._source_size != (source_w, source_h):
            self.reset()                      # a new camera or resolution: a new stream
            self._source_size = (source_w, source_h)
        image = cv2.resize(rgb, (self.input_width, self.input_height),
                           interpolation=cv2.INTER_AREA if source_w > self.input_width
                           else cv2.INTER_LINEAR)
        tensor = torch.from_numpy(image).to(self.device).permute(2, 0, 1).unsqueeze(0)
        tensor = tensor.float().div_(255.0)
        first_frame = self._state is None
        if first_frame:
            self._state = self.model.initial_state(1, self.input_height, self.input_width,
                                                   self.device)
        previous_embed = self._state[1]
        outputs, self._state = self.model.step(tensor, self._state, with_transition=False)
        detections = decode_detections(outputs, self.tracker_config.det_threshold)
        # The transition is only needed when an occluded track may walk: skip it otherwise.
        transition = None
        if not first_frame and self.tracker_config.occlusion_model == 'walker' and \
                self._tracker.tracks:
            transition = self.model.transition(previous_embed, outputs['embed'])
            transition = _to_cpu(transition)
        tracks = self._tracker.update(detections, transition, self.grid)
        sx, sy = source_w / self.input_width, source_h / self.input_height
        return FrameResult(tracks=[self._to_source(t, sx, sy) for t in tracks],
                           beliefs=[self._belief(t, sx, sy) for t in tracks
                                    if t.walker is not None and t.state == 'occluded'],
                           num_detections=len(detections))

    def _to_source(self, track: Track, sx: float, sy: float) -> TrackOutput:
        scale = np.array([sx, sy, sx, sy])
        return TrackOutput(
            track_id=track.track_id, class_id=track.class_id,
            class_name=self.class_names[track.class_id], score=track.score,
            box_cxcywh=track.box_cxcywh * scale, velocity=track.velocity * scale[:2],
            state=track.state, box_source=track.box_source,
            frames_since_seen=track.frames_since_seen,
            walker_confidence=track.walker_confidence, visibility=track.visibility,
            age=track.age)

    def _belief(self, track: Track, sx: float, sy: float) -> Belief:
        g = self.grid
        # Node (col, row) stands for the input pixel col * stride + offset + feature_stride / 2
        # (the centre of its stride-4 feature cell); its cell spans half a stride either side.
        corner = g.offset + g.feature_stride / 2 - g.stride / 2
        return Belief(track_id=track.track_id, class_name=self.class_names[track.class_id],
                      probability=track.walker.view(g.height, g.width).numpy().copy(),
                      cell_width=g.stride * sx, cell_height=g.stride * sy,
                      origin_x=corner * sx, origin_y=corner * sy)


def _to_cpu(transition):
    """The tracker keeps walkers on the CPU (a few per frame; tiny next to the model)."""
    if isinstance(transition, torch.Tensor):
        return transition.cpu()
    return replace(transition, values=transition.values.cpu(),
                   indices=transition.indices.cpu(), valid=transition.valid.cpu())


def resolve_model_path(path: str) -> Path:
    """Absolute, or relative to the current directory, or to the installed ram_tracker share."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    try:
        from ament_index_python.packages import get_package_share_directory
        shared = Path(get_package_share_directory('ram_tracker')) / path
        if shared.exists():
            return shared
    except (ImportError, LookupError):
        pass
    return candidate

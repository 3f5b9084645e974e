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

from ram_tracker import parameters
from ram_tracker.checkpoint import file_sha256, load_weights, trained_input_size
from ram_tracker.decode import decode_detections
from ram_tracker.inference.backends import StepBackend, select_backend
from ram_tracker.inference.torch_backend import TorchBackend
from ram_tracker.model import ModelConfig, build_model
from ram_tracker.tracker import Detections, Track, Tracker, TrackerConfig
from ram_tracker.walk import NodeGrid, Transition


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


class LazyTransition:
    """The walk's transition from the previous frame's nodes to this frame's, computed when first
    called and kept for the next caller. Only a track left unmatched by association walks, so a
    frame on which every track is seen never pays for it (5-8 ms at 80x24 nodes on 2 CPU
    cores, 40-70 ms at 160x48); trackers sharing one inference (evaluation) compute it once."""

    def __init__(self, model, q_prev: torch.Tensor, q_next: torch.Tensor):
        self._model, self._embeds, self._value = model, (q_prev, q_next), None

    def __call__(self) -> Transition:
        if self._value is None:
            with torch.inference_mode():
                self._value = _to_cpu(self._model.transition(*self._embeds))
            self._embeds = None
        return self._value


@dataclass
class Inference:
    """What the model says about one frame, in model-input pixels."""
    detections: Detections
    transition: Optional[LazyTransition]  # previous frame's nodes -> this frame's; None if not asked
    source_size: tuple[int, int]          # (width, height) of the source image
    new_stream: bool                      # memory was (re)started on this frame


class StreamingModel:
    """The model over one video stream: resize, normalise, step the recurrent state, decode.
    Several trackers may consume the same inference (evaluation compares occlusion models on
    one model pass).

    The step runs on a backend (ram_tracker.inference: torch, onnxruntime or tensorrt; default
    eager torch on `device`). The walk transition is computed here, from the backend's `embed`
    outputs, only when a track may walk (docs/INFERENCE.md)."""

    def __init__(self, model, input_size: tuple[int, int], device: torch.device,
                 det_threshold: float, model_info: Optional[dict] = None,
                 backend: Optional[StepBackend] = None):
        self.model = model
        self.input_width, self.input_height = input_size
        if backend is None:
            backend = TorchBackend(model, input_size, device)
        self.backend = backend
        self.device = backend.device              # where the backend wants its input image
        self.det_threshold = det_threshold
        self.class_names = list(model.cfg.class_names)
        self.model_info = model_info or {}
        self.grid: NodeGrid = model.node_grid(self.input_height, self.input_width)
        self._state = None
        self._source_size: Optional[tuple[int, int]] = None

    @property
    def device_name(self) -> str:
        return self.backend.device_name

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def reset(self) -> None:
        self._state = None
        self._source_size = None

    @property
    def embed(self) -> Optional[torch.Tensor]:
        """Node embeddings q_t (1, D, h, w) of the last frame `infer` saw, on the backend's
        device (evaluation measures walks with them); None before a stream's first frame."""
        return None if self._state is None else self._state[1]

    @torch.inference_mode()
    def infer(self, rgb: np.ndarray, need_transition: bool = True) -> Inference:
        """One frame (H, W, 3) uint8 RGB. need_transition: some track may walk (the transition is
        then computed if and when a tracker asks for it)."""
        source_h, source_w = rgb.shape[:2]
        new_stream = self._state is None or self._source_size != (source_w, source_h)
        if new_stream:                       # a new stream, camera or resolution
            self._state = self.backend.initial_state()
            self._source_size = (source_w, source_h)
        image = cv2.resize(rgb, (self.input_width, self.input_height),
                           interpolation=cv2.INTER_AREA if source_w > self.input_width
                           else cv2.INTER_LINEAR)
        tensor = torch.from_numpy(image).to(self.device).permute(2, 0, 1).unsqueeze(0)
        tensor = tensor.float().div_(255.0)
        previous_embed = self._state[1]
        outputs, self._state = self.backend.step(tensor, self._state)
        transition = None
        if need_transition and not new_stream:
            transition = LazyTransition(self.model, previous_embed, outputs['embed'])
        heads = {k: v.cpu() for k, v in outputs.items() if k != 'embed'}   # decode on the CPU
        return Inference(decode_detections(heads, self.det_threshold), transition,
                         (source_w, source_h), new_stream)

    def frame_result(self, tracks: list[Track], inference: Inference) -> FrameResult:
        """Tracker output mapped to source-image pixels, with the beliefs of occluded tracks."""
        source_w, source_h = inference.source_size
        sx, sy = source_w / self.input_width, source_h / self.input_height
        return FrameResult(tracks=[self._to_source(t, sx, sy) for t in tracks],
                           beliefs=[self._belief(t, sx, sy) for t in tracks
                                    if t.walker is not None and t.state == 'occluded'],
                           num_detections=len(inference.detections))

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



# The node parameters from_params reads (the others are the node's own: topics, QoS, logging,
# display). ram-track offers exactly these as options.
PIPELINE_PARAMETERS = (
    'model_path', 'allow_untrained', 'device', 'backend', 'precision', 'calibration_images',
    'num_threads', 'input_width',
    'input_height', 'detection_threshold', 'new_track_threshold', 'max_age',
    'walker_min_confidence', 'border_margin', 'rematch_radius', 'walker_keeps_offset',
    'walker_step_sigma', 'walker_hold_frames', 'walker_hold_sigma', 'walker_release_still_frames',
    'walker_release_distance', 'walker_step_velocity',
    'refine_hidden_boxes',
    'hidden_score_decay', 'occlusion_model')


class TrackingPipeline:
    """One video stream through RAM: the streaming model and one tracker."""

    def __init__(self, model, tracker_config: TrackerConfig, input_size: tuple[int, int],
                 device: torch.device, model_info: Optional[dict] = None,
                 backend: Optional[StepBackend] = None):
        self.stream = StreamingModel(model, input_size, device, tracker_config.det_threshold,
                                     model_info, backend)
        self.tracker = Tracker(tracker_config, input_size)

    @property
    def tracker_config(self) -> TrackerConfig:
        """Algorithm 1's settings this stream runs with (set_tracker_config changes them)."""
        return self.tracker.config

    def set_tracker_config(self, config: TrackerConfig) -> None:
        """New settings for Algorithm 1 on a running stream; model memory and tracks stay. The
        next frame is decoded with config.det_threshold and tracked with the rest (the model
        stream and the tracker each read their part)."""
        self.tracker.config = config
        self.stream.det_threshold = config.det_threshold

    @classmethod
    def from_params(cls, params: dict, log=None) -> 'TrackingPipeline':
        """Build from validated node parameters (ram_tracker.parameters): the weights
        model_path names (load_model; empty only with allow_untrained), at the input size
        given or, with 0 x 0, the one they were trained at (model_input_size). The backend
        follows the `backend` parameter (ram_tracker.inference.select_backend); an ONNX file
        missing for these weights and this resolution is exported now (a few seconds, cached)."""
        device = resolve_device(params['device'])
        if params['num_threads'] > 0:
            torch.set_num_threads(params['num_threads'])
        model, info, weights_path = load_model(params['model_path'], params['allow_untrained'])
        input_size = model_input_size(params['input_width'], params['input_height'], info)
        tracker_config = parameters.tracker_config(params)
        backend = select_backend(params['backend'], model, input_size, device,
                                 num_threads=params['num_threads'], weights_path=weights_path,
                                 precision=params['precision'],
                                 calibration_images=params['calibration_images'],
                                 log=log)
        pipeline = cls(model, tracker_config, input_size, device, info, backend)
        pipeline.warm_up()
        return pipeline

    @property
    def grid(self) -> NodeGrid:
        return self.stream.grid

    @property
    def device_name(self) -> str:
        return self.stream.device_name

    @property
    def backend_name(self) -> str:
        return self.stream.backend_name

    def describe(self) -> str:
        s = self.stream
        cfg = s.model.cfg
        return (f'{cfg.backbone} model ({describe_weights(s.model_info)}), '
                f'classes {s.class_names}, input {s.input_width}x{s.input_height}, '
                f'nodes {s.grid.width}x{s.grid.height}, device {s.device_name}, '
                f'backend {s.backend.describe()}')

    def reset(self) -> None:
        """Forget the stream: memory, embeddings and tracks (ids restart at 1)."""
        self.stream.reset()
        self.tracker.reset()

    def warm_up(self) -> None:
        self.process(np.zeros((self.stream.input_height, self.stream.input_width, 3), np.uint8))
        self.reset()

    def process(self, rgb: np.ndarray) -> FrameResult:
        """One frame (H, W, 3) uint8 RGB of the stream."""
        may_walk = self.tracker_config.occlusion_model == 'walker' and bool(self.tracker.tracks)
        inference = self.stream.infer(rgb, need_transition=may_walk)
        if inference.new_stream:
            self.tracker.reset()
        tracks = self.tracker.update(inference.detections, inference.transition, self.grid)
        return self.stream.frame_result(tracks, inference)


def _to_cpu(transition):
    """The tracker keeps walkers on the CPU (a few per frame; tiny next to the model)."""
    if isinstance(transition, torch.Tensor):
        return transition.cpu()
    return replace(transition, values=transition.values.cpu(),
                   indices=transition.indices.cpu(), valid=transition.valid.cpu())


# The untrained model records no training size; this was the node's default input.
UNTRAINED_INPUT_SIZE = (640, 192)
PACKAGE_URL = 'package://'
# Where ram_tracker installs the shipped weights (share/ram_tracker/models).
MODELS_DIR = 'models'
WEIGHTS_SUFFIX = '.safetensors'


def load_model(model_path: str, allow_untrained: bool = False):
    """(model on the CPU, info, weights file or None) for the node's model_path. An empty
    model_path builds the seeded untrained model only when allow_untrained says so: an empty
    value used to track with random weights after one INFO line, unnoticed."""
    if model_path:
        path = resolve_model_path(model_path)
        model, info = load_weights(path, 'cpu')
        info = {**info, 'weights_path': str(path), 'weights_sha256': file_sha256(path)}
        return model, info, path
    if not allow_untrained:
        raise ValueError('model_path is empty: set it to a weights file (e.g. the default '
                         'package://ram_tracker/models/world2_ram.safetensors), or set '
                         'allow_untrained:=true to track with an untrained model (plumbing '
                         'tests only)')
    torch.manual_seed(0)
    return build_model(ModelConfig()), {'untrained': True}, None


def model_input_size(width: int, height: int, info: dict) -> tuple[int, int]:
    """The input_width / input_height parameters, or with both 0 the size the weights were
    trained at: the model has learnt objects at that scale, and a user should not have to know
    it to get the model's best results."""
    if width and height:
        return width, height
    if width or height:
        raise ValueError(f'input_width {width}, input_height {height}: set both, or leave both 0 '
                         'for the size the model was trained at')
    if info.get('untrained'):
        return UNTRAINED_INPUT_SIZE
    size = trained_input_size(info)
    if size is None:
        raise ValueError(f"{info.get('weights_path', 'the weights file')} does not record the "
                         'input size it was trained at: set input_width and input_height')
    return size


def describe_weights(info: dict) -> str:
    """Which weights run, for the configure log: name, file and a short sha256 tell two models
    (or a model and an untrained one) apart."""
    if info.get('untrained'):
        return 'untrained, allow_untrained'
    parts = [info.get('name'), info.get('weights_path') and Path(info['weights_path']).name,
             info.get('weights_sha256') and f"sha256 {info['weights_sha256'][:12]}"]
    return ', '.join(p for p in parts if p) or 'trained'




def resolve_model_path(path: str) -> Path:
    """The weights file model_path names, tried in this order:
    - package://<package>/<file>: in that package's share directory (ROS's convention, as in
      URDFs), the default package://ram_tracker/models/world2_ram.safetensors;
    - absolute, or relative to the current directory;
    - relative to the ram_tracker share directory (models/world2_ram.safetensors);
    - a bare name, with or without .safetensors (world2_ram): a model ram_tracker installs.
    An absolute path is returned as given (load_weights names it if missing); otherwise
    FileNotFoundError lists where it looked."""
    if path.startswith(PACKAGE_URL):
        package, _, relative = path[len(PACKAGE_URL):].partition('/')
        candidates = [root / relative for root in _share_directories(package)]
    else:
        candidate = Path(path).expanduser()
        if candidate.is_absolute():
            return candidate
        candidates = [candidate] + [root / path for root in _share_directories('ram_tracker')]
        if len(candidate.parts) == 1:
            names = [path] if path.endswith(WEIGHTS_SUFFIX) else [path, path + WEIGHTS_SUFFIX]
            candidates += [root / MODELS_DIR / name for root in _share_directories('ram_tracker')
                           for name in names]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ', '.join(str(c) for c in candidates) or 'nothing: unknown package'
    raise FileNotFoundError(f'weights file not found: {path} (looked at {looked})')


def _share_directories(package: str) -> list[Path]:
    """The package's installed share directory and, for ram_tracker without an ament index
    (plain Python use of the source tree), the repository root, whose config/ and models/
    the share directory installs."""
    roots = []
    try:
        from ament_index_python.packages import get_package_share_directory
        roots.append(Path(get_package_share_directory(package)))
    except (ImportError, LookupError, ValueError):
        pass
    if package == 'ram_tracker':
        roots += [parent for parent in Path(__file__).resolve().parents
                  if (parent / MODELS_DIR).is_dir() and (parent / 'config').is_dir()][:1]
    return roots

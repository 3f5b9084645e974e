"""Peer trackers (SORT, ByteTrack, OC-SORT) on OUR detector's boxes, through PyPI `trackers`.

`trackers` 2.6.1 (Roboflow) ships SORTTracker, ByteTrackTracker and OCSORTTracker (also
BoT-SORT, CBIoU and McByte, not used here). They take `supervision.Detections` (x1, y1, x2, y2,
confidence) and return the same detections with a `tracker_id`. This adapter feeds them the
detections our model decoded (the same ones RAM's Algorithm 1 sees), so a comparison measures
association and occlusion handling on identical detections.

    PEER_TRACKERS = ('sort', 'bytetrack', 'ocsort')
    track = make_peer('bytetrack')                       # or make_peer(name, class_names=..., **params)
    frames = track(per_frame_detections, frame_rate=10.0)  # list (per frame) of list[TrackOutput]

Contract of the returned TrackOutputs:

* Coordinates are those of the input detections; the adapter does not scale. Pass detections in
  source-image pixels (`scale_detections` maps model-input pixels to source pixels, as
  StreamingModel.frame_result does for RAM's tracks).
* **Classes**: the three trackers associate boxes by IoU only, whatever their class. The adapter
  runs one tracker instance per class, so a track never changes class; ids are made unique
  over the classes (numbered from 1 in order of first output, like RAM's). `class_name` comes
  from `class_names` (default: the model's default classes, car and pedestrian).
* **Visible** (`state='visible'`, `box_source='detection'`): a detection the tracker returned with
  a tracker id on this frame; the box and score are the detection's. Like the libraries (and
  the original papers' code), a new track is reported only once the tracker confirms it
  (`minimum_consecutive_frames` matches; SORT also never reports a track on its birth frame),
  and OC-SORT re-confirms a track that comes back after a miss before reporting it again.
  Those frames are missing from the output; they are not back-filled.
* **Occluded** (`state='occluded'`, `box_source='kalman'`): a confirmed track that the tracker
  keeps alive without a detection (it is in the tracker's `tracks` with `time_since_update > 0`,
  what `BaseTracker.tracked_objects` documents as "Kalman-predicted boxes"). All three expose
  these predicted boxes, so they are reported for every frame until the tracker drops the
  track (`lost_track_buffer` 30-fps frames, scaled by the frame rate); `frames_since_seen`
  counts the misses, and the caller applies its output policy (e.g. KITTI: up to 3 frames
  old, as for RAM). A predicted box with non-positive width or height (a Kalman filter
  extrapolating corners apart) is not reported. The score is the track's last detection score;
  `walker_confidence` is 0 (there is no walker), `visibility` the last detection's.
  No 'lost' entries are emitted (RAM reports an ended track once as 'lost'; consumers skip them).
* `velocity` is the change of the box centre since the track's previous output, per frame;
  `age` counts frames since the track's first output.

Parameters: the libraries' defaults (lost_track_buffer 30, minimum IoU, minimum consecutive
frames, OC-SORT's delta_t and direction weight), except the confidence thresholds, which are
put on our detector's scale, the values of RAM's Algorithm 1 (`TrackerConfig`: detections
> 0.4 are associated, > 0.5 may start a track): SORT track_activation_threshold 0.5;
ByteTrack track_activation_threshold 0.5 and high_conf_det_threshold 0.5 (its second stage
takes the 0.4 - 0.5 detections); OC-SORT high_conf_det_threshold 0.4 (it has no separate start
threshold). Detections at or below 0.4 are dropped before any tracker sees them, as RAM does.
Override any of these with `make_peer(name, **params)`.
"""
from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ram_tracker.pipeline import TrackOutput
from ram_tracker.tracker import Detections, TrackerConfig

PEER_TRACKERS: tuple[str, ...] = ('sort', 'bytetrack', 'ocsort')

_RAM = TrackerConfig()
DETECTION_FLOOR = _RAM.det_threshold          # 0.4: detections the trackers see (> floor)
DEFAULT_PARAMS: dict[str, dict] = {
    'sort': {'track_activation_threshold': _RAM.new_track_threshold},
    'bytetrack': {'track_activation_threshold': _RAM.new_track_threshold,
                  'high_conf_det_threshold': _RAM.new_track_threshold},
    'ocsort': {'high_conf_det_threshold': _RAM.det_threshold},
}
DEFAULT_CLASS_NAMES = ('car', 'pedestrian')    # ram_tracker.model.ModelConfig's default

PeerTrack = Callable[[Sequence[Detections], float], list[list[TrackOutput]]]


def _tracker_class(name: str):
    try:
        import trackers
    except ImportError as exc:      # pragma: no cover - the environment has it
        raise ImportError('peer trackers need the PyPI package trackers (pinned in '
                          'requirements-nodeps.in; scripts/setup.sh installs it)') from exc
    return {'sort': trackers.SORTTracker, 'bytetrack': trackers.ByteTrackTracker,
            'ocsort': trackers.OCSORTTracker}[name]


def scale_detections(detections: Detections, sx: float, sy: float) -> Detections:
    """Detections in model-input pixels -> source-image pixels (x scaled by sx, y by sy)."""
    s = np.array([sx, sy], np.float64)
    return Detections(detections.centers * s, detections.sizes * s, detections.scores,
                      detections.classes, detections.tracking * s, detections.visibility)


def peers_for(model_path) -> dict[str, PeerTrack]:
    """Every peer tracker (PEER_TRACKERS) for the classes of the weights at `model_path`
    (None / '' = the untrained model's classes): the peer columns of an evaluation."""
    class_names = DEFAULT_CLASS_NAMES
    if model_path:
        from ram_tracker.checkpoint import load_weights
        class_names = tuple(load_weights(model_path)[0].cfg.class_names)
    return {name: make_peer(name, class_names=class_names) for name in PEER_TRACKERS}


def make_peer(name: str, class_names: Sequence[str] = DEFAULT_CLASS_NAMES,
              detection_floor: float = DETECTION_FLOOR, **params) -> PeerTrack:
    """A function tracking one whole sequence with the peer tracker `name` (see PEER_TRACKERS).

    `params` override the tracker's constructor arguments (DEFAULT_PARAMS, then the library's
    defaults); frame_rate comes with each call. Each call starts fresh trackers."""
    if name not in PEER_TRACKERS:
        raise ValueError(f"unknown peer tracker {name!r}; choose one of {', '.join(PEER_TRACKERS)}")
    cls = _tracker_class(name)
    kwargs = {**DEFAULT_PARAMS[name], **params}
    if 'frame_rate' in kwargs:
        raise ValueError('frame_rate is given per sequence, to the returned track function')
    accepted = set(inspect.signature(cls.__init__).parameters) - {'self'}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"{cls.__name__} has no parameter(s) {', '.join(unknown)}; "
                         f"it takes {', '.join(sorted(accepted - {'frame_rate'}))}")
    class_names = tuple(class_names)

    def track(per_frame_detections: Sequence[Detections], frame_rate: float) -> list[list[TrackOutput]]:
        if not (isinstance(frame_rate, (int, float)) and math.isfinite(frame_rate) and frame_rate > 0):
            raise ValueError(f'frame_rate must be a finite positive number of frames per second, '
                             f'got {frame_rate!r}')
        return _PeerRun(cls, kwargs, float(frame_rate), class_names,
                        detection_floor).run(per_frame_detections)

    track.__name__ = f'track_{name}'
    track.__doc__ = f'{cls.__name__} (trackers) over one sequence; see ram_training.evaluation.peers.'
    return track


class _PeerRun:
    """One sequence: a tracker instance per class, ids made unique over classes."""

    def __init__(self, cls, kwargs: dict, frame_rate: float, class_names: tuple[str, ...],
                 detection_floor: float):
        self.cls, self.kwargs, self.frame_rate = cls, kwargs, frame_rate
        self.class_names = class_names
        self.floor = detection_floor
        self.per_class: dict[int, object] = {}
        self.global_id: dict[tuple[int, int], int] = {}
        self.last: dict[int, dict] = {}        # global id -> last output facts
        self.next_id = 1
        self.t = 0

    def run(self, per_frame_detections) -> list[list[TrackOutput]]:
        out = []
        for t, dets in enumerate(per_frame_detections):
            if not isinstance(dets, Detections):
                raise TypeError(f'frame {t}: expected ram_tracker.tracker.Detections, '
                                f'got {type(dets).__name__}')
            out.append(self.step(t, dets))
        return out

    def step(self, t: int, dets: Detections) -> list[TrackOutput]:
        import supervision as sv
        self.t = t
        classes = np.asarray(dets.classes, np.int64)
        bad = classes[(classes < 0) | (classes >= len(self.class_names))]
        if bad.size:
            raise ValueError(f'frame {t}: detection class id {int(bad[0])} has no name '
                             f'(class_names has {len(self.class_names)}: {self.class_names})')
        centers = np.asarray(dets.centers, np.float64).reshape(-1, 2)
        sizes = np.asarray(dets.sizes, np.float64).reshape(-1, 2)
        if not (np.isfinite(centers).all() and np.isfinite(sizes).all()) or (sizes < 0).any():
            raise ValueError(f'frame {t}: detections need finite centres and non-negative sizes')
        keep = np.asarray(dets.scores) > self.floor
        for class_id in np.unique(classes[keep]):
            if int(class_id) not in self.per_class:
                self.per_class[int(class_id)] = self.cls(frame_rate=self.frame_rate, **self.kwargs)
        outputs: list[TrackOutput] = []
        for class_id, tracker in sorted(self.per_class.items()):
            rows = np.flatnonzero(keep & (classes == class_id))
            xyxy = np.concatenate([centers[rows] - sizes[rows] / 2,
                                   centers[rows] + sizes[rows] / 2], axis=1)
            if rows.size:
                sv_dets = sv.Detections(xyxy=xyxy.astype(np.float32),
                                        confidence=np.asarray(dets.scores)[rows].astype(np.float32),
                                        class_id=np.full(rows.size, class_id, int),
                                        data={'row': rows})
            else:
                sv_dets = sv.Detections.empty()
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', DeprecationWarning)
                result = tracker.update(sv_dets)
            seen = set()
            for i, local_id in enumerate(np.asarray(result.tracker_id, int)):
                if local_id < 0:
                    continue
                row = int(result.data['row'][i])
                gid = self._gid(class_id, int(local_id))
                seen.add(gid)
                box = np.asarray(result.xyxy[i], np.float64)
                outputs.append(self._output(gid, class_id, box, 'visible', 'detection', 0,
                                            score=float(dets.scores[row]),
                                            visibility=float(dets.visibility[row])))
            for tracklet in tracker.tracks:
                local_id = int(tracklet.tracker_id)
                if local_id < 0 or tracklet.time_since_update == 0:
                    continue   # unconfirmed, or matched (reported above when the tracker did)
                gid = self.global_id.get((int(class_id), local_id))
                if gid is None or gid in seen:
                    continue   # never reported visible: nothing to continue
                box = np.asarray(tracklet.get_state_bbox(), np.float64)
                if not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
                    continue
                outputs.append(self._output(gid, class_id, box, 'occluded', 'kalman',
                                            int(tracklet.time_since_update)))
        for output in outputs:
            self.last[output.track_id]['frame'] = t
        return outputs

    def _gid(self, class_id: int, local_id: int) -> int:
        key = (int(class_id), local_id)
        if key not in self.global_id:
            self.global_id[key] = self.next_id
            self.next_id += 1
        return self.global_id[key]

    def _output(self, gid, class_id, box, state, source, misses, score=None,
                visibility=None) -> TrackOutput:
        center = (box[:2] + box[2:]) / 2
        size = box[2:] - box[:2]
        last = self.last.setdefault(gid, {'score': score, 'visibility': visibility,
                                          'center': center, 'first': self.t, 'frame': None})
        velocity = np.zeros(2)
        if last['frame'] is not None:
            velocity = (center - last['center']) / max(1, self.t - last['frame'])
        if score is not None:
            last['score'], last['visibility'] = score, visibility
        last['center'] = center
        return TrackOutput(track_id=gid, class_id=int(class_id),
                           class_name=self.class_names[int(class_id)], score=float(last['score']),
                           box_cxcywh=np.concatenate([center, size]), velocity=velocity,
                           state=state, box_source=source, frames_since_seen=misses,
                           walker_confidence=1.0 if state == 'visible' else 0.0,
                           visibility=float(last['visibility']), age=self.t - last['first'] + 1)


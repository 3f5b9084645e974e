"""One model pass per frame, several trackers on its detections.

Evaluation compares occlusion models (walker = RAM, static = last seen, constant_velocity,
none = CenterTrack) on identical detections: the streaming model runs once per frame and every
tracker consumes the same inference (detections and walk transition). Used by the World 1
evaluation (`evaluation/world1.py`) and the KITTI evaluation (`evaluation/kitti_eval.py`).

Each tracker sees exactly what `TrackingPipeline.process` would give it: the transition is
always offered (computed once, when the first tracker walks a track: a pure function of the
embeddings, so asking for it changes nothing), and a new stream (first frame, new resolution)
resets the trackers.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from ram_tracker.pipeline import FrameResult, Inference, StreamingModel
from ram_tracker.tracker import Tracker, TrackerConfig


class OnePassTrackers:
    """`methods`: name -> occlusion model ('walker', 'static', 'constant_velocity', 'none'), or
    a dict of TrackerConfig fields that differ from `tracker_config` (e.g. {'occlusion_model':
    'walker', 'refine_hidden_boxes': True}); every other threshold comes from `tracker_config`."""

    def __init__(self, stream: StreamingModel, tracker_config: TrackerConfig,
                 methods: Mapping[str, str | Mapping]):
        self.stream = stream
        input_size = (stream.input_width, stream.input_height)
        self.trackers = {}
        for name, method in methods.items():
            fields = dict(method) if isinstance(method, Mapping) else {'occlusion_model': method}
            self.trackers[name] = Tracker(replace(tracker_config, **fields), input_size)

    def reset(self) -> None:
        """A new video: forget the stream's memory and every tracker's tracks."""
        self.stream.reset()
        for tracker in self.trackers.values():
            tracker.reset()

    def step(self, rgb: np.ndarray) -> tuple[Inference, dict[str, FrameResult]]:
        """One frame (H, W, 3) uint8 RGB: the inference and each method's result (source-image
        pixels)."""
        inference = self.stream.infer(rgb, need_transition=True)
        results = {}
        for name, tracker in self.trackers.items():
            if inference.new_stream:
                tracker.reset()
            tracks = tracker.update(inference.detections, inference.transition, self.stream.grid)
            results[name] = self.stream.frame_result(tracks, inference)
        return inference, results

"""Per-video track annotations in the form clips are cut from (shared by KITTI and World 1)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class TrackAnnotations:
    """All tracks of one video, frame-major (T frames, K tracks).

    boxes are x1,y1,x2,y2 in pixels of the stored images; `present` says which entries hold an
    annotation; `visibility` is the visible fraction (0 for fully hidden annotations);
    `ignore_boxes[t]` (n,4) are regions to ignore in frame t (KITTI DontCare and ignored
    classes)."""

    track_ids: np.ndarray            # (K,) int64
    classes: np.ndarray              # (K,) int64 index into the dataset's class list
    boxes: np.ndarray                # (T,K,4) float32
    present: np.ndarray              # (T,K) bool
    visibility: np.ndarray           # (T,K) float32
    ignore_boxes: list = field(default_factory=list)  # T arrays (n_t,4) float32

    @property
    def num_frames(self) -> int:
        return int(self.boxes.shape[0])

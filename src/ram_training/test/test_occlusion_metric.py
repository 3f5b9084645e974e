"""Validation measures what the node does: the occluded-localisation metric and the tracker roll
the walker out with the same code (walk.step_walkers, walk.walker_peaks) and agree to the pixel."""
import numpy as np
import pytest
import torch

from ram_tracker.tracker import PAPER_WALK, Detections, Tracker, TrackerConfig
from ram_tracker.walk import NodeGrid, WalkSettings, local_transition
from ram_training.occlusion_metric import occluded_localisation

# a pooled node grid (stride 8, as the default embedding head's), 80x48 input
GRID = NodeGrid(height=6, width=10, stride=8.0)
W, H = 80, 48


def drifting_embeddings(T, shifts):
    """(1, T, D, 6, 10): frame t+1's codes rolled by shifts[t] columns, so the walk moves the
    mass that many nodes to the right (one-hot codes, tau 0.01)."""
    n = GRID.height * GRID.width
    codes = torch.eye(n).T.reshape(n, GRID.height, GRID.width)
    frames, total = [codes], 0
    for s in shifts:
        total += s
        frames.append(torch.roll(codes, shifts=total, dims=2))
    return torch.stack(frames).unsqueeze(0)


@pytest.mark.parametrize("shifts", [(1, 1, 1, 1), (0, 1, 2, 0), (2, 0, 0, 1)])
def test_metric_and_tracker_locate_the_hidden_object_identically(shifts):
    T = len(shifts) + 1
    embed = drifting_embeddings(T, shifts)
    start = np.array([17.0, 27.0])                                   # last visible centre (px)
    truth = start + np.array([30.0, 3.0])                            # where it really is (px), hidden
    boxes = torch.zeros(1, T, 1, 4)
    boxes[0, 0, 0] = torch.tensor([start[0] - 5, start[1] - 6, start[0] + 5, start[1] + 6])
    boxes[0, 1:, 0] = torch.tensor([truth[0] - 5, truth[1] - 6, truth[0] + 5, truth[1] + 6])
    clip = {"images": torch.zeros(1, T, 3, H, W), "boxes": boxes, "present": torch.ones(1, T, 1, dtype=torch.bool),
            "visibility": torch.tensor([[[1.0]] + [[0.0]] * (T - 1)]), "classes": torch.zeros(1, 1, dtype=torch.long)}
    errors = occluded_localisation(embed, clip, GRID, WalkSettings(radius=3 / GRID.height, tau=0.01),
                                   buckets=tuple(range(1, T)))

    # the metric walks as published by default (step_sigma 0): so does this tracker
    tracker = Tracker(TrackerConfig(**PAPER_WALK, max_age=300, walker_min_confidence=0.0, border_margin=0.0),
                      (W, H))
    tracker.update(Detections(centers=start[None], sizes=np.array([[10.0, 12.0]]), scores=np.array([0.9]),
                              classes=np.array([0]), tracking=np.zeros((1, 2)), visibility=np.ones(1)))
    for t in range(1, T):
        A = local_transition(embed[:, t - 1], embed[:, t], radius=3, tau=0.01)
        (track,) = tracker.update(Detections.empty(), transition=A, grid=GRID)
        assert track.box_source == "walker"
        # the metric's error at walk step t is the tracker's box centre's error, to the pixel
        assert errors.by_length[t].walker_px == pytest.approx(np.linalg.norm(track.center - truth), abs=1e-4)

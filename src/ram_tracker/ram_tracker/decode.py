"""Head maps -> detections (CenterNet decoding), in model-input pixels.

Conventions of the heads (ram_tracker.model.heads): `hm` class logits, `reg` sub-cell offset of
the centre in stride-4 cells, `wh` box size in input pixels, `tracking` displacement to the
previous frame's centre in stride-4 cells, `visibility` logit.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ram_tracker.model import OUTPUT_STRIDE
from ram_tracker.tracker import Detections


def decode_detections(outputs: dict, threshold: float, max_detections: int = 100) -> Detections:
    """Peaks of the class heatmaps (3x3 max-pool NMS) above `threshold`, batch element 0."""
    heat = torch.sigmoid(outputs['hm'][:1].float())                      # (1, C, h, w)
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
    _, C, h, w = peaks.shape
    k = min(max_detections, C * h * w)
    scores, flat = torch.topk(peaks.reshape(-1), k)
    keep = scores > threshold
    scores, flat = scores[keep], flat[keep]
    if scores.numel() == 0:
        return Detections.empty()
    classes = flat // (h * w)
    cell = flat % (h * w)
    ys, xs = cell // w, cell % w

    def at(name: str, default: float = 0.0) -> torch.Tensor:
        if name not in outputs:
            return torch.full((len(cell), 2), default)
        m = outputs[name][0].float()                                     # (c, h, w)
        return m[:, ys, xs].T                                            # (D, c)

    reg = at('reg')
    centers = (torch.stack([xs, ys], 1).float() + reg) * OUTPUT_STRIDE
    sizes = at('wh').clamp(min=1.0)
    tracking = at('tracking') * OUTPUT_STRIDE
    if 'visibility' in outputs:
        visibility = torch.sigmoid(outputs['visibility'][0, 0, ys, xs].float())
    else:
        visibility = torch.ones(len(cell))
    return Detections(centers=centers.numpy().astype(np.float64),
                      sizes=sizes.numpy().astype(np.float64),
                      scores=scores.numpy().astype(np.float64),
                      classes=classes.numpy().astype(np.int64),
                      tracking=tracking.numpy().astype(np.float64),
                      visibility=visibility.numpy().astype(np.float64))

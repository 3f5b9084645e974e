#!/usr/bin/env python3
"""Is the World 1 target detected on its visible frames? The detector alone, no tracker
(models/world1_ram.md section 11: separates a detector's loss from the tracker's).

On every frame where the target is visible (state 0) of the first val videos: whether some
target-class detection (score >= the tracker's threshold) overlaps the true box at IoU >= 0.5,
the IoU of the highest-scoring one, and how many there are.

    python scripts/world1_target_detection.py --model models/world1_ram.safetensors --videos 10
"""
from __future__ import annotations

import numpy as np
import torch

from ram_tracker.pipeline import StreamingModel
from ram_training.evaluation.world1 import LACATER_TRACKER, box_iou
from world1_diagnostics import load, parser

TARGET = 0       # class index of the target


def main(argv=None) -> int:
    args = parser(__doc__, videos=10).parse_args(argv)
    model, (width, height), videos = load(args)
    found, top_iou, count = [], [], []
    for video in videos:
        target = int(np.flatnonzero(video.annotations.classes == TARGET)[0])
        truth = video.annotations.boxes[:, target]
        stream = StreamingModel(model, (width, height), torch.device('cpu'),
                                LACATER_TRACKER.det_threshold)
        for t in range(video.num_frames):
            image = video.image(t)
            detections = stream.infer(image, need_transition=False).detections
            if video.ann.states[t] != 0:
                continue
            scale = np.array([image.shape[1] / width, image.shape[0] / height] * 2)
            mine = np.flatnonzero(np.asarray(detections.classes) == TARGET)
            centres, sizes = np.asarray(detections.centers)[mine], np.asarray(detections.sizes)[mine]
            ious = [box_iou(np.concatenate([c - s / 2, c + s / 2]) * scale, truth[t])
                    for c, s in zip(centres, sizes)]
            found.append(max(ious, default=0.0) >= 0.5)
            best = int(np.argmax(np.asarray(detections.scores)[mine])) if mine.size else None
            top_iou.append(0.0 if best is None else ious[best])
            count.append(mine.size)
    print(f'{args.model}: {len(found)} visible target frames; detected at IoU >= 0.5 '
          f'{np.mean(found):.3f}; IoU of the top-scoring target detection {np.mean(top_iou):.3f}; '
          f'target detections per frame {np.mean(count):.2f} (none on {np.mean(np.equal(count, 0)):.3f})')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

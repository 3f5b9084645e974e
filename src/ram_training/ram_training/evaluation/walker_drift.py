"""Where does the walker win or lose against "last seen"? Its error by occlusion length.

For each World 1 video or World 2 sequence (whole video as one clip, one model pass), every object's walk starts at
its last visible centre and follows the model's transitions while it is hidden
(`occlusion_metric.occluded_localisation`, the trainer's validation metric). The distances to
the true hidden centre (model-input pixels) are split by how many frames the walk has run.
Short occlusions mostly hide an object that stays put (last seen is nearly exact); long ones
hide objects that are carried or moved (last seen is stale). The walker's peak probability says
how concentrated the belief still is.

    python -m ram_training.evaluation.walker_drift --model models/world1_ram.safetensors \
        --data data/world1 --split val --videos 10 --out eval/walker_drift.json
    python -m ram_training.evaluation.walker_drift --model models/world2_ram.safetensors \
        --data data/world2_test --kind world2      # KITTI layout with hidden_02 (true hidden boxes)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ram_tracker.checkpoint import load_weights, trained_input_size
from ram_training.data.atomic import atomic_write_text
from ram_training.data.clips import kitti_videos, make_clip, world1_videos
from ram_training.occlusion_metric import OcclusionErrors, occluded_localisation

BUCKETS = (1, 4, 8, 16, 32, 64, 10 ** 9)      # upper edges of the walk-length bins (frames)


def load_videos(kind: str, root, split: str) -> list:
    """World 1 videos of a split, or World 2 / KITTI-layout sequences (cars and pedestrians, as
    kitti_eval scores them) with their hidden boxes."""
    if kind == 'world1':
        return world1_videos(root, split)
    return kitti_videos(root, 'training', include_hidden=True)


def walker_drift(model, videos: list, input_size, step_sigma: float = 0.0) -> OcclusionErrors:
    """occluded_localisation over whole videos, split by walk length (BUCKETS); step_sigma: the
    tracker's walker_step_sigma (0: the paper's walk)."""
    total = OcclusionErrors()
    for video in videos:
        clip = make_clip(video, np.arange(video.num_frames), image_size=input_size)
        clip = {k: v[None] if torch.is_tensor(v) else v for k, v in clip.items()}
        with torch.inference_mode():
            embed = model(clip['images'])['embed']
        grid = model.node_grid(*clip['images'].shape[-2:])
        total = total.add(occluded_localisation(embed, clip, grid, model.cfg.walk, buckets=BUCKETS,
                                                step_sigma=step_sigma))
    return total


def rows(errors: OcclusionErrors) -> list[dict]:
    out, low = [], 0
    for edge in BUCKETS:
        e = errors.by_length.get(edge)
        if e is not None:
            out.append({'walk_frames': f'{low + 1}-{edge}' if edge < 10 ** 9 else f'{low + 1}+',
                        'frames': e.count, 'walker_px': round(e.walker_px, 2),
                        'last_seen_px': round(e.last_seen_px, 2),
                        'walker_peak_probability': round(e.confidence, 4)})
        low = edge
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', required=True)
    p.add_argument('--data', required=True, help='dataset root')
    p.add_argument('--kind', choices=('world1', 'world2'), default='world1',
                   help='world2: a KITTI-layout root whose hidden_02 holds the hidden boxes')
    p.add_argument('--split', default='val', help='World 1 split (World 2: every sequence)')
    p.add_argument('--videos', type=int, default=None)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--step-sigma', type=float, default=0.0,
                   help="the tracker's walker_step_sigma (fraction of the input width; 0: the paper's walk)")
    p.add_argument('--out', default=None, help='JSON (written atomically)')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, info = load_weights(args.model)
    size = trained_input_size(info)
    if size is None:
        p.error(f'{args.model} does not record its training input size')
    videos = load_videos(args.kind, args.data, args.split)[:args.videos]
    errors = walker_drift(model, videos, tuple(size), args.step_sigma)
    table = rows(errors)
    print('walk frames | hidden frames | walker px | last seen px | walker peak probability')
    for r in table:
        print(f"{r['walk_frames']:>11} | {r['frames']:>13} | {r['walker_px']:>9} | "
              f"{r['last_seen_px']:>12} | {r['walker_peak_probability']}")
    print(f'all: {errors.count} hidden frames, walker {errors.walker_px:.2f} px, '
          f'last seen {errors.last_seen_px:.2f} px')
    if args.out:
        atomic_write_text(Path(args.out), json.dumps({
            'model': args.model, 'kind': args.kind, 'data': args.data,
            'split': args.split if args.kind == 'world1' else 'training', 'videos': args.videos,
            'walker_step_sigma': args.step_sigma,
            'input_size': list(size), 'units': 'model-input pixels', 'by_walk_length': table,
            'all': {'frames': errors.count, 'walker_px': errors.walker_px,
                    'last_seen_px': errors.last_seen_px}}, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

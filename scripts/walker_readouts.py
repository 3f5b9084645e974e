#!/usr/bin/env python3
"""Where is a hidden object, read from the same walker in different ways? (World 1 diagnostic,
models/world1_ram.md section 11.)

Every object of every video is walked by the validation rollout (occlusion_metric.hidden_walks: the
walk starts at its last visible centre on its first miss, walk.step_walkers), over whole videos. On each fully hidden
frame the distance to the true centre is measured for several readouts of the one walker:
  argmax      the tracker's (walk.walker_peaks: argmax after bilinear upsampling);
  mean        the walker's expected position;
  blur1/2     the argmax after a Gaussian blur of 1 / 2 nodes;
  disp_*      the last seen centre moved by how far the argmax / mean has gone since the first step
              (undoes a first-step jump onto the occluder);
  last seen   the last visible centre.
And where the object covering the hidden one is (the visible object whose box covers most of its
box, at least half: its occluder, container or carrier): its centre's distance to the truth, the
argmax's distance to it, and how often the argmax is nearer to it than to the truth (does the
walker ride the occluder?).
`--tau` walks with another temperature than the model's (inference only). Split by how many
frames the walk has run.

    python scripts/walker_readouts.py --model models/world1_ram.safetensors --videos 12
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ram_tracker import walk
from ram_training.occlusion_metric import hidden_walks
from world1_diagnostics import SEEN, load, parser, whole_video
READOUTS = ('argmax', 'mean', 'blur1', 'blur2', 'disp_argmax', 'disp_mean', 'last_seen')
BUCKETS = ((1, 1), (2, 4), (5, 16), (17, 64), (65, None))


def blurred(walkers: torch.Tensor, grid: walk.NodeGrid, sigma: float) -> torch.Tensor:
    r = int(3 * sigma)
    x = torch.arange(-r, r + 1, dtype=walkers.dtype)
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    b = walkers.reshape(-1, 1, grid.height, grid.width)
    b = F.conv2d(F.pad(b, (r, r, 0, 0)), g.view(1, 1, 1, -1))
    b = F.conv2d(F.pad(b, (0, 0, r, r)), g.view(1, 1, -1, 1))
    return b.reshape(walkers.shape)


def covers(boxes: torch.Tensor, visible: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each hidden object k (M,), the visible object whose box covers most of k's box on this
    frame (its occluder, container or carrier): (index (M,), covered fraction (M,)). boxes (K, 4)."""
    hidden = boxes[k]                                                         # (M, 4)
    lo = torch.maximum(hidden[:, None, :2], boxes[None, :, :2])
    hi = torch.minimum(hidden[:, None, 2:], boxes[None, :, 2:])
    inter = (hi - lo).clamp_min(0).prod(-1)                                   # (M, K)
    area = (hidden[:, 2:] - hidden[:, :2]).clamp_min(0).prod(-1).clamp_min(1e-6)
    frac = inter / area[:, None]
    frac[~visible.expand_as(frac)] = -1.0
    frac[torch.arange(len(k)), k] = -1.0
    best, index = frac.max(dim=1)
    return index, best


def video_errors(model, settings: walk.WalkSettings, video, input_size) -> dict:
    embed, grid, clip = whole_video(model, video, input_size)
    node_xy = grid.node_to_pixel(torch.arange(grid.num_nodes)) + grid.feature_stride / 2
    boxes, visible = clip['boxes'][0].float(), clip['visibility'][0] > SEEN
    K = boxes.shape[1]
    first_argmax, first_mean = torch.zeros(K, 2), torch.zeros(K, 2)
    errors = {name: [] for name in READOUTS + ('steps', 'cover_to_truth', 'argmax_to_cover')}
    for step in hidden_walks(embed, clip, grid, settings):        # the validation rollout
        walker, first, last, truth = step.walker, step.first[0], step.last[0], step.centre[0]
        _, argmax = walk.walker_peaks(walker, grid)
        mean = (walker[0] @ node_xy) / walker[0].sum(-1, keepdim=True).clamp_min(1e-12)
        first_argmax[first] = argmax[0, first]
        first_mean[first] = mean[first]
        hit = step.scored[0]
        if not bool(hit.any()):
            continue
        guesses = {'argmax': argmax[0], 'mean': mean,
                   'blur1': walk.walker_peaks(blurred(walker, grid, 1.0), grid)[1][0],
                   'blur2': walk.walker_peaks(blurred(walker, grid, 2.0), grid)[1][0],
                   'disp_argmax': last + argmax[0] - first_argmax,
                   'disp_mean': last + mean - first_mean, 'last_seen': last}
        for name, guess in guesses.items():
            errors[name] += (guess[hit] - truth[hit]).norm(dim=-1).tolist()
        errors['steps'] += step.steps[0, hit].tolist()
        # the object covering the hidden one (NaN where none covers half of its box)
        k = hit.nonzero().flatten()
        index, frac = covers(boxes[step.t], visible[step.t], k)
        cover_xy = (boxes[step.t, index, :2] + boxes[step.t, index, 2:]) / 2
        nan = torch.where(frac >= 0.5, 0.0, float('nan'))
        errors['cover_to_truth'] += ((cover_xy - truth[k]).norm(dim=-1) + nan).tolist()
        errors['argmax_to_cover'] += ((argmax[0, k] - cover_xy).norm(dim=-1) + nan).tolist()
    return errors


def main(argv=None) -> int:
    p = parser(__doc__, videos=12)
    p.add_argument('--tau', type=float, default=None, help="walk temperature (default: the model's)")
    args = p.parse_args(argv)
    model, input_size, videos = load(args)
    settings = model.cfg.walk if args.tau is None else replace(model.cfg.walk, tau=args.tau)
    errors: dict = {}
    for video in videos:
        for name, values in video_errors(model, settings, video, input_size).items():
            errors.setdefault(name, []).extend(values)
    e = {name: np.array(values, dtype=float) for name, values in errors.items()}
    if not errors or not e['steps'].size:
        print('no hidden frames')
        return 1
    print(f'tau {settings.tau}; mean px to the true centre over {e["steps"].size} hidden frames')
    print('steps walked | frames | ' + ' | '.join(READOUTS)
          + ' | covered | cover to truth | argmax to cover | argmax nearer the cover')
    for low, high in BUCKETS + ((1, None),):
        sel = (e['steps'] >= low) & (e['steps'] <= (high or 10 ** 9))
        span = f'{low}-{high}' if high else f'{low}+'
        covered = sel & ~np.isnan(e['cover_to_truth'])
        print(f'{span} | {int(sel.sum())} | ' + ' | '.join(f'{e[n][sel].mean():.2f}' for n in READOUTS)
              + f" | {covered.mean() / max(sel.mean(), 1e-12):.2f} | {e['cover_to_truth'][covered].mean():.2f}"
              f" | {e['argmax_to_cover'][covered].mean():.2f}"
              f" | {(e['argmax_to_cover'] < e['argmax'])[covered].mean():.2f}")
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

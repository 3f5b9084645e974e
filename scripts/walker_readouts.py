#!/usr/bin/env python3
"""Where is a hidden object, read from the same walker in different ways? (World 1 diagnostic,
models/world1_ram.md section 11.)

Every object of every video is walked as validation does (occlusion_metric: the walk starts at its
last visible centre on its first miss, walk.step_walkers), over whole videos. On each fully hidden
frame the distance to the true centre is measured for several readouts of the one walker:
  argmax      the tracker's (walk.walker_peaks: argmax after bilinear upsampling);
  mean        the walker's expected position;
  blur1/2     the argmax after a Gaussian blur of 1 / 2 nodes;
  disp_*      the last seen centre moved by how far the argmax / mean has gone since the first step
              (undoes a first-step jump onto the occluder);
  last seen   the last visible centre.
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
from world1_diagnostics import HIDDEN, load, parser, whole_video
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


def video_errors(model, settings: walk.WalkSettings, video, input_size) -> dict:
    embed, grid, vis, exists, visible, centre = whole_video(model, video, input_size)
    K = visible.shape[2]
    node_xy = grid.node_to_pixel(torch.arange(grid.num_nodes)) + grid.feature_stride / 2
    walker = torch.zeros(1, K, grid.num_nodes)
    walking = torch.zeros(1, K, dtype=torch.bool)
    seen = torch.zeros_like(walking)
    last = torch.zeros(1, K, 2)
    steps = torch.zeros(1, K, dtype=torch.long)
    first_argmax, first_mean = torch.zeros(K, 2), torch.zeros(K, 2)
    errors = {name: [] for name in READOUTS + ('steps',)}
    for t in range(visible.shape[1]):
        vis_t = visible[:, t]
        missing = seen & ~vis_t
        if t > 0 and bool(missing.any()):
            A = settings.transition(embed[:, t - 1], embed[:, t])
            first = missing & ~walking
            stepped = walk.step_walkers(walker, first, grid.pixel_to_node(last), A)
            walker = torch.where(missing.unsqueeze(-1), stepped, walker)
            walking = missing
            steps = torch.where(first, 1, torch.where(missing, steps + 1, steps))
            _, argmax = walk.walker_peaks(walker, grid)
            mean = (walker[0] @ node_xy) / walker[0].sum(-1, keepdim=True).clamp_min(1e-12)
            first_argmax[first[0]] = argmax[0, first[0]]
            first_mean[first[0]] = mean[first[0]]
            guesses = {'argmax': argmax[0], 'mean': mean,
                       'blur1': walk.walker_peaks(blurred(walker, grid, 1.0), grid)[1][0],
                       'blur2': walk.walker_peaks(blurred(walker, grid, 2.0), grid)[1][0],
                       'disp_argmax': last[0] + argmax[0] - first_argmax,
                       'disp_mean': last[0] + mean - first_mean, 'last_seen': last[0]}
            hit = (missing & exists[:, t] & (vis[:, t] <= HIDDEN))[0]
            for name, guess in guesses.items():
                errors[name] += (guess[hit] - centre[0, t, hit]).norm(dim=-1).tolist()
            errors['steps'] += steps[0, hit].tolist()
        walking = walking & ~vis_t
        last = torch.where(vis_t.unsqueeze(-1), centre[:, t], last)
        seen = seen | vis_t
    return errors


def main(argv=None) -> int:
    p = parser(__doc__, videos=12)
    p.add_argument('--tau', type=float, default=None, help="walk temperature (default: the model's)")
    args = p.parse_args(argv)
    model, input_size, videos = load(args)
    settings = model.cfg.walk if args.tau is None else replace(model.cfg.walk, tau=args.tau)
    errors = {name: [] for name in READOUTS + ('steps',)}
    for video in videos:
        for name, values in video_errors(model, settings, video, input_size).items():
            errors[name] += values
    e = {name: np.array(values) for name, values in errors.items()}
    if not e['steps'].size:
        print('no hidden frames')
        return 1
    print(f'tau {settings.tau}; mean px to the true centre over {e["steps"].size} hidden frames')
    print('steps walked | frames | ' + ' | '.join(READOUTS))
    for low, high in BUCKETS + ((1, None),):
        sel = (e['steps'] >= low) & (e['steps'] <= (high or 10 ** 9))
        span = f'{low}-{high}' if high else f'{low}+'
        print(f'{span} | {int(sel.sum())} | ' + ' | '.join(f'{e[n][sel].mean():.2f}' for n in READOUTS))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

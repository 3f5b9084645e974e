#!/usr/bin/env python3
"""Where does the walker go on the first hidden frame? (World 1 diagnostic, models/world1_ram.md
section 10.)

For every time an object goes from visible (visibility > 0.15) to fully hidden (<= 0.05) in one
frame, start a walk one-hot at its last visible centre (as the tracker does on a first miss) and
take one step of the model's transition. Counts how often the walker's peak stays on the start
node, how far it jumps when it does not, and whether the jump lands nearer to another visible
object. Whole videos as one clip, one model pass each.

    python scripts/walker_first_step.py --model models/world1_ram.safetensors --data data/world1 \
        --split val --videos 12
"""
from __future__ import annotations

import numpy as np
import torch

from ram_tracker import walk
from world1_diagnostics import HIDDEN, load, object_states, parser, whole_video


def first_steps(model, video, input_size) -> list[dict]:
    embed, grid, clip = whole_video(model, video, input_size)
    vis, exists, visible, centre = object_states(clip)
    out = []
    for t in range(1, visible.shape[1]):
        hiding = visible[0, t - 1] & exists[0, t] & (vis[0, t] <= HIDDEN)
        if not bool(hiding.any()):
            continue
        A = model.cfg.walk.transition(embed[:, t - 1], embed[:, t])      # once per frame pair
        for k in hiding.nonzero().flatten().tolist():
            start = grid.pixel_to_node(centre[0, t - 1, k])
            walker = walk.transition_row(A, start.view(1, 1))
            peak, guess = walk.walker_peaks(walker, grid)
            node = int(torch.argmax(walker[0, 0]))
            (sy, sx), (ny, nx) = divmod(int(start), grid.width), divmod(node, grid.width)
            others = [j for j in range(visible.shape[2]) if j != k and visible[0, t, j]]
            nearer = None
            if others:
                other = centre[0, t, others]
                nearer = bool((other - guess[0, 0]).norm(dim=-1).min() < (other - centre[0, t - 1, k]).norm(dim=-1).min())
            out.append({'stays': node == int(start), 'jump_nodes': max(abs(ny - sy), abs(nx - sx)),
                        'walker_px': float((guess[0, 0] - centre[0, t, k]).norm()),
                        'last_seen_px': float((centre[0, t - 1, k] - centre[0, t, k]).norm()),
                        'peak': float(peak[0, 0]), 'start_mass': float(walker[0, 0, int(start)]),
                        'nearer_to_other': nearer})
    return out


def main(argv=None) -> int:
    args = parser(__doc__, videos=12).parse_args(argv)
    model, input_size, videos = load(args)
    rows = [r for video in videos for r in first_steps(model, video, input_size)]
    if not rows:
        print('no first hidden frames')
        return 1
    stay = [r for r in rows if r['stays']]
    jump = [r for r in rows if not r['stays']]
    print(f'first hidden frames {len(rows)}: the peak stays on the start node {len(stay)}, jumps {len(jump)}')
    print(f"walker px: stays {np.mean([r['walker_px'] for r in stay] or [np.nan]):.2f}, "
          f"jumps {np.mean([r['walker_px'] for r in jump] or [np.nan]):.2f}; "
          f"last seen {np.mean([r['last_seen_px'] for r in rows]):.2f}")
    if jump:
        print(f"jumps of 1 / 2 / 3+ nodes: {sum(r['jump_nodes'] == 1 for r in jump)} / "
              f"{sum(r['jump_nodes'] == 2 for r in jump)} / {sum(r['jump_nodes'] >= 3 for r in jump)}; "
              f"peak {np.mean([r['peak'] for r in jump]):.3f}, mass left on the start node "
              f"{np.mean([r['start_mass'] for r in jump]):.3f}")
        near = [r['nearer_to_other'] for r in jump if r['nearer_to_other'] is not None]
        print(f'jumps landing nearer to another visible object: {sum(near)} of {len(near)}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""The paper's claim in miniature: object permanence emerges from the RAM objective alone.

A blob moves at constant velocity (4 px = one node per frame, random direction and height) and
passes behind a vertical bar. A tiny model is trained with L_PT + L_RAM on *visible* labels only
(invisible frames carry no label at all). At test time the walk starts at the last visible
centre and follows the transitions through the occlusion, exactly as the tracker does
(paper Algorithm 1). Its argmax must be much nearer the hidden blob than the last-seen position.
An untrained walk is no better than the last-seen position, so the margin is learnt.
"""
import time

import torch

from ram_tracker import walk
from ram_tracker.model import ModelConfig, build_model
from ram_training.losses import LossConfig, compute_losses
from ram_training.targets import build_targets

H, W, T = 32, 64, 10
BAR = (24, 40)          # occluder columns [x0, x1): 16 px = 4 nodes
SIDE = 8                # blob side in pixels
STEPS = 120
MARGIN_PX = 3.0         # walker error must beat the last-seen error by this much (measured ~5 px)


def make_clips(B: int, gen: torch.Generator) -> dict:
    """Clip dicts in the docs/INTERFACES.md format; boxes are true, visibility says what shows."""
    direction = torch.randint(0, 2, (B,), generator=gen) * 2 - 1               # -1 left, +1 right
    y = torch.randint(SIDE // 2 + 2, H - SIDE // 2 - 2, (B,), generator=gen).float()
    phase = torch.randint(0, 4, (B,), generator=gen).float()
    t = torch.arange(T).float()
    x = 32 + direction[:, None] * (4 * (t[None] - 4.5) - phase[:, None] + 2)     # crosses the bar mid-clip
    y = y[:, None].expand(B, T)
    boxes = torch.stack([x - SIDE / 2, y - SIDE / 2, x + SIDE / 2, y + SIDE / 2], -1)   # (B,T,4)
    cols, rows = torch.arange(W).float(), torch.arange(H).float()
    in_x = (cols >= boxes[..., 0:1]) & (cols < boxes[..., 2:3])                  # (B,T,W)
    in_y = (rows >= boxes[..., 1:2]) & (rows < boxes[..., 3:4])                  # (B,T,H)
    blob = in_y[..., :, None] & in_x[..., None, :]
    images = torch.rand(B, T, 3, H, W, generator=gen) * 0.15
    colour = torch.tensor([1.0, 0.3, 0.1]).view(1, 1, 3, 1, 1).expand_as(images)
    images = torch.where(blob[:, :, None], colour, images)
    images[..., BAR[0]:BAR[1]] = 0.6                                             # the bar is in front
    behind = (cols >= BAR[0]) & (cols < BAR[1])
    visibility = (in_x & ~behind).float().sum(-1) / SIDE
    return {"images": images, "boxes": boxes.unsqueeze(2), "present": torch.ones(B, T, 1, dtype=torch.bool),
            "visibility": visibility.unsqueeze(2), "classes": torch.zeros(B, 1, dtype=torch.long),
            "track_ids": torch.zeros(B, 1, dtype=torch.long)}


def occlusion_errors(model, clip, cfg):
    """Mean pixel distance to the hidden blob over fully hidden frames: (walker argmax, last seen)."""
    model.eval()
    with torch.no_grad():
        embed = model(clip["images"])["embed"]
    model.train()
    grid = model.node_grid(H, W)
    vis = clip["visibility"][:, :, 0]
    centre = (clip["boxes"][:, :, 0, :2] + clip["boxes"][:, :, 0, 2:]) / 2
    walk_err, last_err = [], []
    for b in range(vis.shape[0]):
        walker, last = None, None
        for t in range(T):
            if vis[b, t] > cfg.vis_ignore:                                       # seen: (re)start here
                walker, last = None, centre[b, t]
                continue
            if last is None:
                continue
            A = model.cfg.walk.transition(embed[b:b + 1, t - 1], embed[b:b + 1, t])
            if walker is None:                                                   # first miss: row of A
                walker = walk.transition_row(A, grid.pixel_to_node(last).view(1, 1))
            else:
                walker = walk.propagate(walker, A)
            if vis[b, t] <= cfg.vis_no_label:                                    # fully hidden
                guess = grid.node_to_pixel(walker[0, 0].argmax()) + grid.feature_stride / 2
                walk_err.append((guess - centre[b, t]).norm())
                last_err.append((last - centre[b, t]).norm())
    return torch.stack(walk_err).mean().item(), torch.stack(last_err).mean().item()


def test_walker_finds_the_hidden_blob_with_ram_only():
    torch.manual_seed(0)
    model = build_model(ModelConfig(class_names=("blob",), backbone_width=8, neck_channels=16, memory_channels=16,
                                    head_channels=16, embed_channels=16, embed_pool="none"))
    cfg = LossConfig(variant="ram", overlap=False)          # one object: nothing to overlap with
    grid = model.node_grid(H, W)
    assert model.cfg.walk.window(grid.height) == 1          # the blob moves exactly one node per frame
    held_out = make_clips(32, torch.Generator().manual_seed(123))
    walk_before, last_seen = occlusion_errors(model, held_out, cfg)

    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.time()
    for _ in range(STEPS):
        clip = make_clips(8, gen)
        targets = build_targets(clip, 1, grid, cfg, model.cfg.walk)
        assert not (targets["reg_mask"] & (clip["visibility"] <= cfg.vis_ignore)).any()   # no hidden labels
        losses = compute_losses(model(clip["images"]), targets, cfg, grid, model.cfg.walk)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
    walk_after, _ = occlusion_errors(model, held_out, cfg)
    print(f"\ntoy permanence: walker {walk_before:.2f} -> {walk_after:.2f} px, last seen {last_seen:.2f} px, "
          f"{STEPS} steps in {time.time() - start:.0f} s")
    assert walk_before > last_seen - 1.0                    # untrained: no better than standing still
    assert walk_after < last_seen - MARGIN_PX

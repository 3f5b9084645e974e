"""Clip dict (docs/INTERFACES.md) -> dense CenterNet targets at stride 4 and walker labels on nodes.

Label hygiene (RAM_NOTES.md, the official loader):
  * visibility <= vis_no_label (0.05): no label at all (RAM never sees these boxes);
  * vis_no_label < visibility <= vis_ignore (0.15): an ignore region (heatmap weight 0 inside the
    box, no regression, neither a walk target nor an "occluded" frame);
  * visibility > vis_ignore: a full label ("visible" below);
  * the clip's optional `ignore_boxes` / `ignore_valid` (dataset ignore regions): heatmap weight 0;
  * walkers whose start is within one node of another visible object's node are skipped;
  * tracks that move farther than the walk window can reach between two visible frames are
    dropped from the walk loss (the walker cannot follow them).
The visibility head is trained on the visible fraction of each labelled object.
The supervised-invisible baseline (PermaTrack) additionally labels present but invisible objects
with heatmap weight `invisible_hm_weight` and uses no walk.

All targets are plain tensors on the clip's device. Shapes: B clips, T frames, K object slots,
C classes, (h, w) = stride-4 feature size, N = nodes of the walk grid.
"""
from __future__ import annotations

from typing import Dict

import torch

from ram_tracker.walk import NodeGrid, WalkSettings


def gaussian_radius(height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7) -> torch.Tensor:
    """CenterNet's gaussian radius for boxes of size (height, width) (any units, same out)."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + torch.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + torch.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def gaussian_maps(centre_xy: torch.Tensor, radius: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """CenterNet gaussians (peak 1 at the integer centre, sigma = (2r+1)/6, cut to the (2r+1)^2
    square) on an height x width grid. centre_xy (..., 2) long, radius (...,) long -> (..., height, width)."""
    ys = torch.arange(height, device=centre_xy.device).view(height, 1)
    xs = torch.arange(width, device=centre_xy.device).view(1, width)
    dx = xs - centre_xy[..., 0, None, None]
    dy = ys - centre_xy[..., 1, None, None]
    r = radius[..., None, None]
    sigma = (2 * r + 1).float() / 6
    g = torch.exp(-(dx * dx + dy * dy).float() / (2 * sigma * sigma))
    inside = (dx.abs() <= r) & (dy.abs() <= r)
    return torch.where(inside, g, torch.zeros_like(g))


def build_targets(clip: Dict[str, torch.Tensor], num_classes: int, node_grid: NodeGrid,
                  cfg, walk_settings: WalkSettings, output_stride: int = 4) -> Dict[str, torch.Tensor]:
    """cfg: a losses.LossConfig (thresholds, variant). node_grid: model.node_grid(H, W);
    walk_settings: the model's walk (ModelConfig.walk; its window drops too-fast tracks)."""
    walk_radius = walk_settings.window(node_grid.height)                       # None: global walk
    boxes, present, vis = clip["boxes"], clip["present"], clip["visibility"]
    classes = clip["classes"]
    B, T, K = present.shape
    H, W = clip["images"].shape[-2:]
    h, w = H // output_stride, W // output_stride
    dev = boxes.device
    supervised_invisible = cfg.variant == "supervised_invisible"

    exists = present & (classes >= 0).unsqueeze(1)
    # box clipped to the image: centres of partly-outside objects stay inside the map
    x1 = boxes[..., 0].clamp(0, W - 1)
    y1 = boxes[..., 1].clamp(0, H - 1)
    x2 = boxes[..., 2].clamp(0, W - 1)
    y2 = boxes[..., 3].clamp(0, H - 1)
    has_area = (x2 > x1) & (y2 > y1)
    visible = exists & has_area & (vis > cfg.vis_ignore)                        # full labels
    ignored = exists & has_area & (vis > cfg.vis_no_label) & (vis <= cfg.vis_ignore)
    invisible = exists & has_area & (vis <= cfg.vis_no_label)
    labelled = visible | invisible if supervised_invisible else visible

    # --- CenterNet targets at stride 4 --------------------------------------------------------
    centre = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2], -1) / output_stride   # (B,T,K,2) in cells
    centre_int = centre.floor().long()
    centre_int[..., 0].clamp_(0, w - 1)
    centre_int[..., 1].clamp_(0, h - 1)
    bw, bh = (x2 - x1) / output_stride, (y2 - y1) / output_stride
    radius = gaussian_radius(bh.clamp_min(0).ceil(), bw.clamp_min(0).ceil()).clamp_min(0).floor().long()
    g = gaussian_maps(centre_int, radius, h, w)                                  # (B,T,K,h,w)
    cls = classes.unsqueeze(1).expand(B, T, K)

    hm = torch.zeros(B, T, num_classes, h, w, device=dev)
    hm_weight = torch.ones(B, T, num_classes, h, w, device=dev)
    xs = torch.arange(w, device=dev).view(1, 1, 1, 1, w)
    ys = torch.arange(h, device=dev).view(1, 1, 1, h, 1)
    in_box = ((xs >= (x1 / output_stride).floor()[..., None, None]) & (xs <= (x2 / output_stride).ceil()[..., None, None])
              & (ys >= (y1 / output_stride).floor()[..., None, None]) & (ys <= (y2 / output_stride).ceil()[..., None, None]))
    for c in range(num_classes):
        of_c = (cls == c)
        hm[:, :, c] = torch.where((labelled & of_c)[..., None, None], g, torch.zeros_like(g)).amax(2) if K else 0
        ignore_c = (in_box & (ignored & of_c)[..., None, None]).any(2) if K else torch.zeros(B, T, h, w, dtype=torch.bool, device=dev)
        hm_weight[:, :, c] = torch.where(ignore_c & (hm[:, :, c] < 1), 0.0, 1.0)   # a real peak wins
        if supervised_invisible:
            heavy = ((g > 0) & (invisible & of_c)[..., None, None]).any(2) if K else ignore_c
            hm_weight[:, :, c] = torch.where(heavy, cfg.invisible_hm_weight, hm_weight[:, :, c])

    if "ignore_boxes" in clip and clip["ignore_boxes"].shape[2] > 0:
        # dataset ignore regions (KITTI DontCare, ignored types): no negatives there, any class
        ib = clip["ignore_boxes"] / output_stride                              # (B,T,R,4) in cells
        region = ((xs >= ib[..., 0].floor()[..., None, None]) & (xs <= ib[..., 2].ceil()[..., None, None])
                  & (ys >= ib[..., 1].floor()[..., None, None]) & (ys <= ib[..., 3].ceil()[..., None, None]))
        region = (region & clip["ignore_valid"][..., None, None]).any(2)        # (B,T,h,w)
        hm_weight = torch.where(region.unsqueeze(2) & (hm < 1), torch.zeros_like(hm_weight), hm_weight)

    ind = centre_int[..., 1] * w + centre_int[..., 0]                           # (B,T,K)
    prev_labelled = torch.zeros_like(labelled)
    prev_labelled[:, 1:] = labelled[:, :-1]
    prev_centre = torch.zeros_like(centre)
    prev_centre[:, 1:] = centre[:, :-1]
    # visibility head: the visible fraction of each labelled object (partly occluded objects are
    # the signal; a 0/1 "visible" target would be all ones here, since RAM labels visible objects
    # only). Under supervised_invisible the hidden objects add targets near 0.
    vis_target = torch.where(labelled, vis.clamp(0.0, 1.0), torch.zeros_like(vis))
    vis_mask = labelled

    # --- walker labels on the node grid -----------------------------------------------------
    centre_px = centre * output_stride
    node = node_grid.pixel_to_node(centre_px)                                   # (B,T,K)
    cell = node_grid.pixel_to_cell(centre_px)                                   # (B,T,K,2) (col,row)
    node_radius = gaussian_radius((bh * output_stride / node_grid.stride).ceil(),
                                  (bw * output_stride / node_grid.stride).ceil()).clamp_min(0).floor().long()
    t_index = torch.arange(T, device=dev).view(1, T, 1).expand(B, T, K)
    start = torch.where(visible, t_index, torch.full_like(t_index, T)).amin(1)  # (B,K); T = never visible
    walk_valid = start < T
    if cfg.variant in ("no_walk", "supervised_invisible"):
        walk_valid = torch.zeros_like(walk_valid)
    if cfg.skip_ambiguous_starts and K > 1:
        s = start.clamp(max=T - 1)
        start_cell = torch.gather(cell, 1, s.view(B, 1, K, 1).expand(B, 1, K, 2)).squeeze(1)   # (B,K,2)
        # every object's cell and visibility at object i's start frame: (B, K_i, K_j, 2)
        cells_at = torch.gather(cell, 1, s.view(B, K, 1, 1).expand(B, K, K, 2))
        vis_at = torch.gather(visible, 1, s.view(B, K, 1).expand(B, K, K))
        cheb = (cells_at - start_cell.unsqueeze(2)).abs().amax(-1)
        others = ~torch.eye(K, dtype=torch.bool, device=dev).unsqueeze(0)
        ambiguous = (vis_at & others & (cheb <= 1)).any(2)
        walk_valid = walk_valid & ~ambiguous
    # frames since the last visible frame (for occlusion weights and the speed check)
    last_seen = torch.full((B, K), -1, dtype=torch.long, device=dev)
    last_cell = torch.zeros(B, K, 2, dtype=torch.long, device=dev)
    gap = torch.zeros(B, T, K, dtype=torch.long, device=dev)
    too_fast = torch.zeros(B, K, dtype=torch.bool, device=dev)
    for t in range(T):
        seen_before = last_seen >= 0
        gap[:, t] = torch.where(seen_before, t - last_seen - 1, torch.zeros_like(last_seen))
        if walk_radius is not None and cfg.drop_fast_tracks:
            jump = (cell[:, t] - last_cell).abs().amax(-1)
            too_fast |= visible[:, t] & seen_before & (jump > walk_radius * (t - last_seen))
        last_seen = torch.where(visible[:, t], torch.full_like(last_seen, t), last_seen)
        last_cell = torch.where(visible[:, t, :, None], cell[:, t], last_cell)
    walk_valid = walk_valid & ~too_fast
    after_start = t_index > start.unsqueeze(1)
    walk_visible = visible & after_start & walk_valid.unsqueeze(1)
    walk_occluded = ~visible & ~ignored & after_start & walk_valid.unsqueeze(1)
    walk_weight = (cfg.occlusion_weight * gap.float() + 1.0) * walk_visible

    # overlap targets: radius-r gaussians around the nodes of visible objects, per frame
    ov = gaussian_maps(cell, torch.full_like(node, cfg.overlap_radius), node_grid.height, node_grid.width)
    overlap_map = torch.where(visible[..., None, None], ov, torch.zeros_like(ov)).amax(2) if K else \
        torch.zeros(B, T, node_grid.height, node_grid.width, device=dev)

    return {
        "hm": hm, "hm_weight": hm_weight,
        "ind": ind, "reg_mask": labelled,
        "wh": torch.stack([bw, bh], -1) * output_stride,          # box size in input pixels (the head's unit)
        "reg": centre - centre_int.float(),
        "tracking": prev_centre - centre_int.float(), "tracking_mask": labelled & prev_labelled,
        "vis_target": vis_target, "vis_mask": vis_mask,
        "node": node, "node_radius": node_radius, "walk_start": start, "walk_valid": walk_valid,
        "walk_visible": walk_visible, "walk_occluded": walk_occluded, "walk_weight": walk_weight,
        "overlap_map": overlap_map.flatten(-2),
    }

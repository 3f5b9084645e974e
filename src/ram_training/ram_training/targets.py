"""Clip dict (docs/INTERFACES.md) -> dense CenterNet targets at stride 4 and walker labels on nodes.

Label hygiene (the rules of the official RAM loader):
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

from dataclasses import dataclass
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
    H, W = clip["images"].shape[-2:]
    h, w = H // output_stride, W // output_stride
    objects = label_objects(clip, cfg, H, W)
    cells = box_cells(objects, output_stride, h, w)
    targets = detection_targets(clip, objects, cells, num_classes, h, w, cfg, output_stride)
    targets.update(walker_labels(objects, cells, node_grid, walk_settings, cfg, output_stride))
    return targets


@dataclass
class ObjectLabels:
    """What each object of a clip is per frame, (B, T, K) tensors: its box clipped to the image
    (centres of partly-outside objects stay inside the map), and which label it gets."""
    x1: torch.Tensor
    y1: torch.Tensor
    x2: torch.Tensor
    y2: torch.Tensor
    visible: torch.Tensor       # a full label
    ignored: torch.Tensor       # an ignore region: no loss inside its box, no walk label
    invisible: torch.Tensor     # present but hidden: no label (a heavy positive for supervised_invisible)
    labelled: torch.Tensor      # the objects with detection targets


def label_objects(clip: Dict[str, torch.Tensor], cfg, H: int, W: int) -> ObjectLabels:
    """Label hygiene (module docstring): each object's label per frame from its visibility."""
    boxes, vis = clip["boxes"], clip["visibility"]
    exists = clip["present"] & (clip["classes"] >= 0).unsqueeze(1)
    x1 = boxes[..., 0].clamp(0, W - 1)
    y1 = boxes[..., 1].clamp(0, H - 1)
    x2 = boxes[..., 2].clamp(0, W - 1)
    y2 = boxes[..., 3].clamp(0, H - 1)
    has_area = (x2 > x1) & (y2 > y1)
    visible = exists & has_area & (vis > cfg.vis_ignore)
    ignored = exists & has_area & (vis > cfg.vis_no_label) & (vis <= cfg.vis_ignore)
    invisible = exists & has_area & (vis <= cfg.vis_no_label)
    labelled = visible | invisible if cfg.variant == "supervised_invisible" else visible
    return ObjectLabels(x1, y1, x2, y2, visible, ignored, invisible, labelled)


@dataclass
class BoxCells:
    """The clipped boxes in units of stride cells."""
    centre: torch.Tensor        # (B,T,K,2) x, y
    centre_int: torch.Tensor    # (B,T,K,2) long: the cell of the centre, clamped to the map
    width: torch.Tensor         # (B,T,K)
    height: torch.Tensor        # (B,T,K)


def box_cells(objects: ObjectLabels, output_stride: int, h: int, w: int) -> BoxCells:
    """The objects' boxes on the h x w map of stride output_stride."""
    centre = torch.stack([(objects.x1 + objects.x2) / 2, (objects.y1 + objects.y2) / 2], -1) / output_stride
    centre_int = centre.floor().long()
    centre_int[..., 0].clamp_(0, w - 1)
    centre_int[..., 1].clamp_(0, h - 1)
    return BoxCells(centre, centre_int, (objects.x2 - objects.x1) / output_stride,
                    (objects.y2 - objects.y1) / output_stride)


def cells_covered(x1, y1, x2, y2, h: int, w: int) -> torch.Tensor:
    """Boxes given in stride cells, shape S -> (S..., h, w) bool: the cells each box touches."""
    xs = torch.arange(w, device=x1.device).view(1, 1, 1, 1, w)
    ys = torch.arange(h, device=x1.device).view(1, 1, 1, h, 1)
    return ((xs >= x1.floor()[..., None, None]) & (xs <= x2.ceil()[..., None, None])
            & (ys >= y1.floor()[..., None, None]) & (ys <= y2.ceil()[..., None, None]))


# ----------------------------------------------------------------------------------------------
# CenterNet targets at stride 4

def detection_targets(clip, objects: ObjectLabels, cells: BoxCells, num_classes: int, h: int, w: int, cfg,
                      output_stride: int) -> Dict[str, torch.Tensor]:
    """Heatmaps with their weights, and the regression targets of the labelled objects."""
    centre, centre_int = cells.centre, cells.centre_int
    hm, hm_weight = class_heatmaps(clip["classes"], objects, cells, num_classes, h, w, cfg, output_stride)
    hm_weight = ignore_dataset_regions(clip, hm, hm_weight, h, w, output_stride)
    labelled = objects.labelled
    prev_labelled = torch.zeros_like(labelled)
    prev_labelled[:, 1:] = labelled[:, :-1]
    prev_centre = torch.zeros_like(centre)
    prev_centre[:, 1:] = centre[:, :-1]
    # visibility head: the visible fraction of each labelled object (partly occluded objects are
    # the signal; a 0/1 "visible" target would be all ones here, since RAM labels visible objects
    # only). Under supervised_invisible the hidden objects add targets near 0.
    vis = clip["visibility"]
    vis_target = torch.where(labelled, vis.clamp(0.0, 1.0), torch.zeros_like(vis))
    return {
        "hm": hm, "hm_weight": hm_weight,
        "ind": centre_int[..., 1] * w + centre_int[..., 0], "reg_mask": labelled,       # ind: (B,T,K)
        "wh": torch.stack([cells.width, cells.height], -1) * output_stride,          # box size in input pixels (the head's unit)
        "reg": centre - centre_int.float(),
        "tracking": prev_centre - centre_int.float(), "tracking_mask": labelled & prev_labelled,
        "vis_target": vis_target, "vis_mask": labelled,
    }


def class_heatmaps(classes, objects: ObjectLabels, cells: BoxCells, num_classes: int, h: int, w: int,
                   cfg, output_stride: int):
    """Per class: the max of the labelled objects' gaussians (B,T,C,h,w), and weight 0 inside
    the boxes of ignored objects unless a real peak is there (1 elsewhere; invisible_hm_weight
    on hidden objects' gaussians for supervised_invisible)."""
    B, T, K = objects.visible.shape
    dev = cells.centre.device
    radius = gaussian_radius(cells.height.clamp_min(0).ceil(), cells.width.clamp_min(0).ceil()).clamp_min(0).floor().long()
    g = gaussian_maps(cells.centre_int, radius, h, w)                                  # (B,T,K,h,w)
    cls = classes.unsqueeze(1).expand(B, T, K)
    in_box = cells_covered(objects.x1 / output_stride, objects.y1 / output_stride, objects.x2 / output_stride,
                           objects.y2 / output_stride, h, w)
    hm = torch.zeros(B, T, num_classes, h, w, device=dev)
    hm_weight = torch.ones(B, T, num_classes, h, w, device=dev)
    for c in range(num_classes):
        of_c = (cls == c)
        hm[:, :, c] = torch.where((objects.labelled & of_c)[..., None, None], g, torch.zeros_like(g)).amax(2) if K else 0
        ignore_c = (in_box & (objects.ignored & of_c)[..., None, None]).any(2) if K else \
            torch.zeros(B, T, h, w, dtype=torch.bool, device=dev)
        hm_weight[:, :, c] = torch.where(ignore_c & (hm[:, :, c] < 1), 0.0, 1.0)   # a real peak wins
        if cfg.variant == "supervised_invisible":
            heavy = ((g > 0) & (objects.invisible & of_c)[..., None, None]).any(2) if K else ignore_c
            hm_weight[:, :, c] = torch.where(heavy, cfg.invisible_hm_weight, hm_weight[:, :, c])
    return hm, hm_weight


def ignore_dataset_regions(clip, hm, hm_weight, h: int, w: int, output_stride: int):
    """The clip's ignore regions (KITTI DontCare, ignored types): no negatives there, any class."""
    if "ignore_boxes" not in clip or clip["ignore_boxes"].shape[2] == 0:
        return hm_weight
    ib = clip["ignore_boxes"] / output_stride                                  # (B,T,R,4) in cells
    region = cells_covered(ib[..., 0], ib[..., 1], ib[..., 2], ib[..., 3], h, w)
    region = (region & clip["ignore_valid"][..., None, None]).any(2)            # (B,T,h,w)
    return torch.where(region.unsqueeze(2) & (hm < 1), torch.zeros_like(hm_weight), hm_weight)


# ----------------------------------------------------------------------------------------------
# walker labels on the node grid

def walker_labels(objects: ObjectLabels, cells: BoxCells, node_grid: NodeGrid, walk_settings: WalkSettings,
                  cfg, output_stride: int) -> Dict[str, torch.Tensor]:
    """Where each walk starts (an object's first visible frame), the frames it is scored on
    (visible: walk_visible, weighted by the occlusion before; hidden: walk_occluded) and the
    overlap map of the visible objects' nodes."""
    visible = objects.visible
    B, T, K = visible.shape
    centre_px = cells.centre * output_stride
    node = node_grid.pixel_to_node(centre_px)                                   # (B,T,K)
    cell = node_grid.pixel_to_cell(centre_px)                                   # (B,T,K,2) (col,row)
    node_radius = gaussian_radius((cells.height * output_stride / node_grid.stride).ceil(),
                                  (cells.width * output_stride / node_grid.stride).ceil()).clamp_min(0).floor().long()
    t_index = torch.arange(T, device=visible.device).view(1, T, 1).expand(B, T, K)
    start = torch.where(visible, t_index, torch.full_like(t_index, T)).amin(1)  # (B,K); T = never visible
    walk_valid = start < T
    if cfg.variant in ("no_walk", "supervised_invisible"):
        walk_valid = torch.zeros_like(walk_valid)
    if cfg.skip_ambiguous_starts and K > 1:
        walk_valid = walk_valid & ~ambiguous_starts(start, cell, visible)
    gap, too_fast = occlusion_gaps(visible, cell, walk_settings.window(node_grid.height), cfg.drop_fast_tracks)
    walk_valid = walk_valid & ~too_fast
    after_start = t_index > start.unsqueeze(1)
    walk_visible = visible & after_start & walk_valid.unsqueeze(1)
    walk_occluded = ~visible & ~objects.ignored & after_start & walk_valid.unsqueeze(1)
    walk_weight = (cfg.occlusion_weight * gap.float() + 1.0) * walk_visible
    path_node, between = hidden_paths(visible, centre_px, node_grid)
    walk_path = between & walk_occluded
    return {"node": node, "node_radius": node_radius, "walk_start": start, "walk_valid": walk_valid,
            "walk_visible": walk_visible, "walk_occluded": walk_occluded, "walk_weight": walk_weight,
            "path_node": path_node, "walk_path": walk_path,
            "overlap_map": overlap_map(cell, node, visible, cfg.overlap_radius, node_grid).flatten(-2)}


def ambiguous_starts(start, cell, visible) -> torch.Tensor:
    """(B,K): walks whose start node is within one node of another visible object's node then."""
    B, T, K = visible.shape
    s = start.clamp(max=T - 1)
    start_cell = torch.gather(cell, 1, s.view(B, 1, K, 1).expand(B, 1, K, 2)).squeeze(1)   # (B,K,2)
    # every object's cell and visibility at object i's start frame: (B, K_i, K_j, 2)
    cells_at = torch.gather(cell, 1, s.view(B, K, 1, 1).expand(B, K, K, 2))
    vis_at = torch.gather(visible, 1, s.view(B, K, 1).expand(B, K, K))
    cheb = (cells_at - start_cell.unsqueeze(2)).abs().amax(-1)
    others = ~torch.eye(K, dtype=torch.bool, device=visible.device).unsqueeze(0)
    return (vis_at & others & (cheb <= 1)).any(2)


def occlusion_gaps(visible, cell, walk_radius, drop_fast_tracks: bool):
    """Frames since each object's last visible frame (B,T,K; 0 before it was first seen: the
    occlusion weight of the walk loss), and the tracks (B,K) that moved farther between two
    visible frames than a walk of radius walk_radius nodes per frame reaches (None: global walk,
    nothing is too fast)."""
    B, T, K = visible.shape
    dev = visible.device
    last_seen = torch.full((B, K), -1, dtype=torch.long, device=dev)
    last_cell = torch.zeros(B, K, 2, dtype=torch.long, device=dev)
    gap = torch.zeros(B, T, K, dtype=torch.long, device=dev)
    too_fast = torch.zeros(B, K, dtype=torch.bool, device=dev)
    for t in range(T):
        seen_before = last_seen >= 0
        gap[:, t] = torch.where(seen_before, t - last_seen - 1, torch.zeros_like(last_seen))
        if walk_radius is not None and drop_fast_tracks:
            jump = (cell[:, t] - last_cell).abs().amax(-1)
            too_fast |= visible[:, t] & seen_before & (jump > walk_radius * (t - last_seen))
        last_seen = torch.where(visible[:, t], torch.full_like(last_seen, t), last_seen)
        last_cell = torch.where(visible[:, t, :, None], cell[:, t], last_cell)
    return gap, too_fast


def hidden_paths(visible, centre_px, node_grid: NodeGrid):
    """The straight line from an object's last visible centre before a hidden run to its first
    visible centre after it, both inside the clip: the node of that line at each hidden frame
    (B,T,K) and where there is such a line (B,T,K: hidden frames between two visible ones).
    Only visible labels go into it (the same two ends the walk loss scores); what the object did
    while hidden is not looked at."""
    B, T, K = visible.shape
    t_index = torch.arange(T, device=visible.device).view(1, T, 1).expand(B, T, K)
    before = torch.where(visible, t_index, torch.full_like(t_index, -1)).cummax(1).values
    after = torch.where(visible, t_index, torch.full_like(t_index, T)).flip(1).cummin(1).values.flip(1)
    between = ~visible & (before >= 0) & (after < T)
    t0, t1 = before.clamp(0, T - 1), after.clamp(0, T - 1)
    at = lambda t: torch.gather(centre_px, 1, t.unsqueeze(-1).expand(B, T, K, 2))     # noqa: E731
    fraction = ((t_index - t0).float() / (t1 - t0).clamp_min(1).float()).unsqueeze(-1)
    xy = at(t0) + fraction * (at(t1) - at(t0))
    return node_grid.pixel_to_node(xy), between


def overlap_map(cell, node, visible, radius: int, node_grid: NodeGrid) -> torch.Tensor:
    """(B,T,Hn,Wn): radius-r gaussians around the nodes of visible objects, per frame."""
    B, T, K = visible.shape
    if not K:
        return torch.zeros(B, T, node_grid.height, node_grid.width, device=visible.device)
    ov = gaussian_maps(cell, torch.full_like(node, radius), node_grid.height, node_grid.width)
    return torch.where(visible[..., None, None], ov, torch.zeros_like(ov)).amax(2)

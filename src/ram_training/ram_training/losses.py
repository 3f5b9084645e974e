"""Training losses: PermaTrack/CenterTrack detection losses (L_PT) and the RAM walk losses.

    L = L_PT + ram_weight * L_RAM + overlap_weight * L_over                 (paper eq. 8)
    L_PT = hm_weight * focal heatmap + wh_weight * L1 size + reg_weight * L1 offset
         + tracking_weight * L1 tracking offset + visibility_weight * visibility focal BCE

Each per-frame loss is normalised within its frame, then summed over frames and divided by T.

L_RAM (eq. 2-4 with the official details): a walker starts one-hot at each object's first visible
node (objects that appear later start later) and is propagated X <- X A through the transitions
of consecutive node embeddings. At every later frame where the object is visible, the walker is
multiplied by the label-smoothing mask H = (1 - g)^4 (g: gaussian around the true node, peak
zeroed), renormalised, and scored with a focal cross entropy -(1-p)^2 log p at the true node; the
*unmasked* walker keeps propagating. Terms are weighted by occlusion_weight * (length of the
occlusion just ended) + 1.
Normalisation (the authors' trainer, src/lib/trainer.py): the weights are normalised *within each
frame* (over the batch's objects), and the per-frame losses are summed and divided by T, like L_PT.
A single weighted mean over all frames at once (`walk_normalisation: global`, kept only for the
ablation) lets the few re-appearance terms (weights in the hundreds) carry nearly all of the walk
gradient, which then dwarfs the detection gradient at the memory (docs/TRAINING.md, diagnostics).
L_over (eq. 7): walker mass of occluded, previously seen objects on radius-1 gaussians around the
nodes of the other, visible objects; a mean per frame, summed over frames and divided by T.
No label of an invisible object is used by L_RAM or L_over.

L_path (not in the paper; hidden_path_weight, 0 = the paper's objective): on every hidden frame
between two visible frames of the clip, the walker's mass within hidden_path_radius nodes of the
straight line between the two visible centres, scored like L_RAM (focal cross entropy), a mean
per frame, summed over frames and divided by T. The paper's walk loss scores only where a walk
ends, so a walker may wander anywhere while the object is hidden and still be rewarded; this
term asks it to stay on the plausible path. Its labels are the same visible ends L_RAM uses.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict

import torch

from ram_tracker import walk
from ram_tracker.model import OUTPUT_STRIDE

from .targets import gaussian_maps

VARIANTS = ("ram", "no_walk", "supervised_invisible")
WALK_NORMALISATIONS = ("frame", "global")


@dataclass
class LossConfig:
    variant: str = "ram"             # ram | no_walk (L_PT only) | supervised_invisible (PermaTrack baseline)
    # L_PT weights (docs/METHOD.md#detection-losses: heatmap 0.5 in RAM, size 0.1, offsets 1)
    hm_weight: float = 0.5
    wh_weight: float = 0.1
    reg_weight: float = 1.0
    tracking_weight: float = 1.0
    visibility_weight: float = 1.0
    # RAM
    ram_weight: float = 0.5          # lambda_RAM
    overlap_weight: float = 50.0     # lambda_over (0 on LA-CATER)
    overlap: bool = True
    overlap_radius: int = 1
    label_smoothing: bool = True
    walk_gamma: float = 2.0          # focal exponent of the walk cross entropy
    occlusion_weight: float = 20.0   # per-term weight 20 * (just-ended occlusion length) + 1
    walk_normalisation: str = "frame"  # frame: authors' trainer (weights normalised per frame, / T); global: ablation
    hidden_path_weight: float = 0.0  # L_path (not in the paper): walker mass on the line between the visible ends
    hidden_path_radius: int = 1      # nodes (Chebyshev) around the line's node that count as on it
    # label hygiene
    vis_no_label: float = 0.05
    vis_ignore: float = 0.15
    skip_ambiguous_starts: bool = True
    drop_fast_tracks: bool = True
    invisible_hm_weight: float = 20.0   # supervised_invisible only

    def __post_init__(self):
        assert self.variant in VARIANTS, f"variant {self.variant!r} not in {VARIANTS}"
        assert self.walk_normalisation in WALK_NORMALISATIONS, \
            f"walk_normalisation {self.walk_normalisation!r} not in {WALK_NORMALISATIONS}"

    @property
    def uses_walk(self) -> bool:
        return self.variant == "ram"

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# L_PT pieces

def _per_frame_mean(numerator: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """numerator, count: (T,) -> sum_t numerator_t / max(count_t, 1) / T."""
    return (numerator / count.clamp_min(1.0)).mean()


def focal_heatmap_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CenterNet penalty-reduced focal loss. logits, target, weight: (B, T, C, h, w)."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos * weight
    neg_loss = torch.log(1 - p) * p ** 2 * (1 - target) ** 4 * (1 - pos) * weight
    dims = (0, 2, 3, 4)
    return _per_frame_mean(-(pos_loss.sum(dims) + neg_loss.sum(dims)), pos.sum(dims))


def gather_at(maps: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """maps (B, T, C, h, w), ind (B, T, K) flat h*w index -> (B, T, K, C)."""
    B, T, C = maps.shape[:3]
    flat = maps.flatten(3)                                               # (B,T,C,hw)
    return torch.gather(flat, 3, ind.unsqueeze(2).expand(B, T, C, ind.shape[-1])).transpose(2, 3)


def l1_at(maps: torch.Tensor, ind: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pred = gather_at(maps, ind)
    err = (pred - target).abs().sum(-1) * mask                              # (B,T,K)
    return _per_frame_mean(err.sum((0, 2)), mask.float().sum((0, 2)) * target.shape[-1])


def visibility_loss(logits: torch.Tensor, ind: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                    gamma: float = 2.0) -> torch.Tensor:
    """Binary focal loss on the visibility head at object centres."""
    p = torch.sigmoid(gather_at(logits, ind)[..., 0].float()).clamp(1e-4, 1 - 1e-4)
    loss = -(target * (1 - p) ** gamma * torch.log(p) + (1 - target) * p ** gamma * torch.log(1 - p)) * mask
    return _per_frame_mean(loss.sum((0, 2)), mask.float().sum((0, 2)))


# ----------------------------------------------------------------------------------------------
# RAM

def smoothing_mask(node: torch.Tensor, radius: torch.Tensor, grid: walk.NodeGrid) -> torch.Tensor:
    """H = (1 - g)^4 with g the CenterNet gaussian around `node`, its peak set to 0 so that the
    true node keeps full weight. node, radius: (B, M) -> (B, M, N)."""
    cell = torch.stack([node % grid.width, node // grid.width], -1)
    g = gaussian_maps(cell, radius, grid.height, grid.width).flatten(-2)
    g = g.scatter(-1, node.unsqueeze(-1), 0.0)
    return (1 - g) ** 4


def near_nodes(node: torch.Tensor, radius: int, grid: walk.NodeGrid) -> torch.Tensor:
    """(B, M) node indices -> (B, M, N) float mask of the nodes within `radius` (Chebyshev)."""
    x, y = node % grid.width, node // grid.width
    xs = torch.arange(grid.width, device=node.device)
    ys = torch.arange(grid.height, device=node.device)
    near_x = (xs.view(1, 1, 1, -1) - x[..., None, None]).abs() <= radius
    near_y = (ys.view(1, 1, -1, 1) - y[..., None, None]).abs() <= radius
    return (near_x & near_y).flatten(-2).float()


def ram_losses(embed: torch.Tensor, targets: Dict[str, torch.Tensor], cfg: LossConfig,
               grid: walk.NodeGrid, walk_settings: walk.WalkSettings) -> Dict[str, torch.Tensor]:
    """Walk losses from node embeddings embed (B, T, D, gh, gw), walking as the model walks
    (walk_settings = ModelConfig.walk). Returns {"ram", "overlap", "path"}."""
    B, T = embed.shape[:2]
    N = grid.num_nodes
    zero = embed.sum() * 0.0                                              # keeps the graph when empty
    # only walk objects that take part somewhere in the batch
    keep = targets["walk_valid"].any(0)
    if not bool(keep.any()) or T < 2:
        return {"ram": zero, "overlap": zero, "path": zero}
    pick = lambda x: x[:, :, keep] if x.dim() >= 3 else x[:, keep]        # noqa: E731
    node, radius = pick(targets["node"]), pick(targets["node_radius"])
    start, valid = targets["walk_start"][:, keep], targets["walk_valid"][:, keep]
    sup, occ, weight = pick(targets["walk_visible"]), pick(targets["walk_occluded"]), pick(targets["walk_weight"])
    path_node, on_path = pick(targets["path_node"]), pick(targets["walk_path"])
    M = node.shape[-1]

    # One view per frame, taken once: indexing embed[:, t] inside the loop made the backward of
    # every frame's use fill and add a zero gradient the size of the whole clip (on a 96-frame
    # World 1 clip, 1.8 s of fills and 0.6 s of adds in a 7 s step).
    frames = embed.unbind(1)
    walker = embed.new_zeros(B, M, N)
    per_frame = cfg.walk_normalisation == "frame"
    ce_sum, weight_sum = zero, zero          # global form: one weighted mean over every term
    over_sum, over_count = zero, zero
    path_sum = zero                          # L_path: per frame in both normalisations
    for t in range(T):
        if t > 0:
            A = walk_settings.transition(frames[t - 1], frames[t])
            walker = walk.propagate(walker, A)
        starting = (start == t) & valid
        if bool(starting.any()):
            walker = torch.where(starting.unsqueeze(-1), walk.one_hot_walker(node[:, t], N, walker.dtype), walker)
        if bool(sup[:, t].any()):
            belief = walker
            if cfg.label_smoothing:
                belief = belief * smoothing_mask(node[:, t], radius[:, t], grid)
            p = torch.gather(belief, -1, node[:, t].unsqueeze(-1)).squeeze(-1) / belief.sum(-1).clamp_min(1e-12)
            p = p.clamp(1e-8, 1.0)
            focal = -(1 - p) ** cfg.walk_gamma * torch.log(p)
            w = weight[:, t] * sup[:, t]
            if per_frame:
                ce_sum = ce_sum + (focal * w).sum() / w.sum()
            else:
                ce_sum = ce_sum + (focal * w).sum()
                weight_sum = weight_sum + w.sum()
        if cfg.overlap and bool(occ[:, t].any()):
            on_others = (walker * targets["overlap_map"][:, t].unsqueeze(1)).sum(-1)   # (B,M)
            if per_frame:
                over_sum = over_sum + (on_others * occ[:, t]).sum() / occ[:, t].sum()
            else:
                over_sum = over_sum + (on_others * occ[:, t]).sum()
                over_count = over_count + occ[:, t].sum()
        if cfg.hidden_path_weight and bool(on_path[:, t].any()):
            near = near_nodes(path_node[:, t], cfg.hidden_path_radius, grid)
            p = (walker * near).sum(-1) / walker.sum(-1).clamp_min(1e-12)
            p = p.clamp(1e-8, 1.0)
            focal = -(1 - p) ** cfg.walk_gamma * torch.log(p)
            path_sum = path_sum + (focal * on_path[:, t]).sum() / on_path[:, t].sum()
    path = path_sum / T
    if per_frame:
        return {"ram": ce_sum / T, "overlap": over_sum / T, "path": path}
    return {"ram": ce_sum / weight_sum.clamp_min(1e-12), "overlap": over_sum / over_count.clamp_min(1.0),
            "path": path}


# ----------------------------------------------------------------------------------------------

def compute_losses(outputs: Dict[str, torch.Tensor], targets: Dict[str, torch.Tensor], cfg: LossConfig,
                   grid: walk.NodeGrid, walk_settings: walk.WalkSettings) -> Dict[str, torch.Tensor]:
    """outputs: RAMModel.forward() dict; targets: targets.build_targets(); grid: model.node_grid(H, W);
    walk_settings: ModelConfig.walk.
    Returns every component and "total" (the weighted sum that is back-propagated)."""
    ind = targets["ind"]
    losses = {
        "hm": focal_heatmap_loss(outputs["hm"], targets["hm"], targets["hm_weight"]),
        # wh is in input pixels; the L1 is taken in stride-4 cells to keep CenterNet's scale for wh_weight
        "wh": l1_at(outputs["wh"] / OUTPUT_STRIDE, ind, targets["wh"] / OUTPUT_STRIDE, targets["reg_mask"]),
        "reg": l1_at(outputs["reg"], ind, targets["reg"], targets["reg_mask"]),
        "tracking": l1_at(outputs["tracking"], ind, targets["tracking"], targets["tracking_mask"]),
        "visibility": visibility_loss(outputs["visibility"], ind, targets["vis_target"], targets["vis_mask"]),
    }
    if cfg.uses_walk:
        # the walk multiplies probabilities over many frames: keep it in float32 even under autocast
        with torch.autocast(device_type=outputs["embed"].device.type, enabled=False):
            losses.update(ram_losses(outputs["embed"].float(), targets, cfg, grid, walk_settings))
    else:
        zero = outputs["embed"].sum() * 0.0
        losses.update(ram=zero, overlap=zero, path=zero)
    overlap_weight = cfg.overlap_weight if cfg.overlap else 0.0
    losses["total"] = (cfg.hm_weight * losses["hm"] + cfg.wh_weight * losses["wh"] + cfg.reg_weight * losses["reg"]
                       + cfg.tracking_weight * losses["tracking"] + cfg.visibility_weight * losses["visibility"]
                       + cfg.ram_weight * losses["ram"] + overlap_weight * losses["overlap"]
                       + cfg.hidden_path_weight * losses["path"])
    return losses

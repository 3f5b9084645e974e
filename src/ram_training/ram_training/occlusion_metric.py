"""Occluded-localisation error: does the walk know where a hidden object is?

For every object and frame: while the object is visible (visibility > vis_seen) its walk is
reset and its last-seen centre remembered. From the first frame it is not visible, a walker
starts at the node of the last-seen centre and is propagated with the model's transitions,
with the tracker's own code (walk.step_walkers: paper Algorithm 1, first miss = the row of the
transition at the last observed node, later misses = walker @ A). On every frame where the object
is fully hidden (visibility <= vis_hidden) but its true box is known (`present`, centre inside the
image) we record two distances in input pixels to the true centre:
  * walker: the tracker's location of the walker (walk.walker_peaks: argmax after bilinear
    upsampling to the stride-4 grid, centre of that cell);
  * last_seen: the last visible centre (what a tracker without permanence would predict).
Permanence has emerged when walker < last_seen. Frames between vis_hidden and vis_seen (the
label-hygiene ignore band) keep walking but are not scored.

Needs the true boxes of hidden objects, which only evaluation data has (World 1, World 2's
hidden_02); real KITTI has none, so the count is 0 there.

`buckets` (upper edges, e.g. (1, 4, 8, 16, 32, 64, 10**9)) also splits the sums by how many
frames the walk has run (1 = the first hidden frame): where does the walker win or lose against
last seen, on short occlusions (the object mostly stays put) or long ones (it was moved)?
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, Optional, Sequence

import torch

from ram_tracker import walk


@dataclass
class OcclusionErrors:
    """Sums over scored (object, frame) pairs; add them up over batches, then read the means."""
    walker_sum: float = 0.0
    last_seen_sum: float = 0.0
    count: int = 0
    confidence_sum: float = 0.0          # the walker's max probability
    by_length: Dict[int, "OcclusionErrors"] = field(default_factory=dict)   # bucket upper edge -> sums

    def add(self, other: "OcclusionErrors") -> "OcclusionErrors":
        by_length = dict(self.by_length)
        for edge, errors in other.by_length.items():
            by_length[edge] = by_length[edge].add(errors) if edge in by_length else errors
        return OcclusionErrors(self.walker_sum + other.walker_sum, self.last_seen_sum + other.last_seen_sum,
                               self.count + other.count, self.confidence_sum + other.confidence_sum, by_length)

    @property
    def confidence(self) -> float:
        return self.confidence_sum / self.count if self.count else float("nan")

    @property
    def walker_px(self) -> float:
        return self.walker_sum / self.count if self.count else float("nan")

    @property
    def last_seen_px(self) -> float:
        return self.last_seen_sum / self.count if self.count else float("nan")

    def as_dict(self, prefix: str = "occl_") -> Dict[str, float]:
        return {f"{prefix}walker_px": self.walker_px, f"{prefix}last_seen_px": self.last_seen_px,
                f"{prefix}gain_px": self.last_seen_px - self.walker_px, f"{prefix}frames": float(self.count)}


@dataclass
class HiddenStep:
    """One frame of the walks of hidden objects (`hidden_walks`); tensors over (B, K) objects."""
    t: int
    walker: torch.Tensor        # (B, K, N) walker distributions (rows of objects not walking: stale)
    walking: torch.Tensor       # (B, K) bool: the object is not visible, its walk ran this frame
    first: torch.Tensor         # (B, K) bool: this frame is its first miss (one-hot start)
    steps: torch.Tensor         # (B, K) frames the walk has run (1 = the first miss)
    last: torch.Tensor          # (B, K, 2) last visible centre (input pixels)
    centre: torch.Tensor        # (B, K, 2) true centre at t
    scored: torch.Tensor        # (B, K) bool: walking, fully hidden, true centre inside the image


@torch.no_grad()
def hidden_walks(embed: torch.Tensor, clip: Dict[str, torch.Tensor], grid: walk.NodeGrid,
                 settings: walk.WalkSettings, vis_seen: float = 0.15,
                 vis_hidden: float = 0.05, step_sigma: float = 0.0) -> Iterator[HiddenStep]:
    """The validation rollout: every object's walk while it is not visible, frame by frame (only
    frames where some walk runs). One implementation for the trainer's metric and the diagnostic
    scripts. Arguments as occluded_localisation; step_sigma is the tracker's walker_step_sigma
    (a prior on the step length, fraction of the input width; 0: the paper's walk)."""
    embed = embed.float()
    B, T = embed.shape[:2]
    H, W = clip["images"].shape[-2:]
    boxes, present, vis = clip["boxes"].float(), clip["present"], clip["visibility"]
    K = present.shape[-1]
    if K == 0 or T < 2:
        return
    exists = present & (clip["classes"] >= 0).unsqueeze(1)
    visible = exists & (vis > vis_seen)
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2                                 # (B,T,K,2)
    inside = (centre[..., 0] >= 0) & (centre[..., 0] < W) & (centre[..., 1] >= 0) & (centre[..., 1] < H)
    scored = exists & (vis <= vis_hidden) & inside

    walker = embed.new_zeros(B, K, grid.num_nodes)
    walking = torch.zeros(B, K, dtype=torch.bool, device=embed.device)      # a walker is running
    seen = torch.zeros_like(walking)
    last = torch.zeros(B, K, 2, device=embed.device)
    steps = torch.zeros(B, K, dtype=torch.long, device=embed.device)      # frames the walk has run
    for t in range(T):
        vis_t = visible[:, t]
        if t > 0:
            missing = seen & ~vis_t
            if bool(missing.any()):
                A = walk.with_step_prior(settings.transition(embed[:, t - 1], embed[:, t]),
                                         step_sigma * W / grid.stride, (grid.height, grid.width))
                first = missing & ~walking
                # the tracker's own rollout (walk.step_walkers)
                stepped = walk.step_walkers(walker, first, grid.pixel_to_node(last), A)
                walker = torch.where(missing.unsqueeze(-1), stepped, walker)
                walking = missing
                steps = torch.where(first, 1, torch.where(missing, steps + 1, steps))
                yield HiddenStep(t, walker, missing, first, steps, last, centre[:, t], scored[:, t] & missing)
        walking = walking & ~vis_t
        last = torch.where(vis_t.unsqueeze(-1), centre[:, t], last)
        seen = seen | vis_t


@torch.no_grad()
def occluded_localisation(embed: torch.Tensor, clip: Dict[str, torch.Tensor], grid: walk.NodeGrid,
                          settings: walk.WalkSettings, vis_seen: float = 0.15,
                          vis_hidden: float = 0.05, buckets: Optional[Sequence[int]] = None,
                          step_sigma: float = 0.0) -> OcclusionErrors:
    """embed: node embeddings (B, T, D, gh, gw) of the clip (RAMModel.forward(...)["embed"]);
    clip: the INTERFACES.md batch (boxes, present, visibility, classes); grid: model.node_grid(H, W);
    settings: the model's walk (ModelConfig.walk); step_sigma: see hidden_walks."""
    edges = sorted(buckets or ())
    by_length: Dict[int, OcclusionErrors] = {}
    walker_sum = last_sum = confidence_sum = 0.0
    count = 0
    for step in hidden_walks(embed, clip, grid, settings, vis_seen, vis_hidden, step_sigma):
        hit = step.scored
        if not bool(hit.any()):
            continue
        peak, guess = walk.walker_peaks(step.walker, grid)                # (B,K), (B,K,2): the tracker's peak
        walker_err = (guess - step.centre).norm(dim=-1)
        last_err = (step.last - step.centre).norm(dim=-1)
        walker_sum += float(walker_err[hit].sum())
        last_sum += float(last_err[hit].sum())
        confidence_sum += float(peak[hit].sum())
        count += int(hit.sum())
        low = 0
        for edge in edges:
            sel = hit & (step.steps > low) & (step.steps <= edge)
            low = edge
            if bool(sel.any()):
                by_length[edge] = by_length.get(edge, OcclusionErrors()).add(OcclusionErrors(
                    float(walker_err[sel].sum()), float(last_err[sel].sum()), int(sel.sum()),
                    float(peak[sel].sum())))
    return OcclusionErrors(walker_sum, last_sum, count, confidence_sum, by_length)

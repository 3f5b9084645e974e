"""`ram-diagnose`: what each loss term pulls on, and what the clip sampler feeds the walk.

    python -m ram_training.diagnose --config world1_cpu_long [section.key=value ...]
        [--model models/world1_ram.safetensors] [--batches 3] [--clips 200]

1. Gradient balance. For a few training batches (the config's own loader and sampler), each loss
   term's weighted value and the norm of its gradient at three places: the memory activations
   M_t (what the heads and the node embedding read), the ConvGRU parameters and the backbone
   parameters. Then the detection part (L_PT) against the walk part (lambda_RAM L_RAM +
   lambda_over L_over): norm ratio and cosine at each place. A walk loss that drowns the detector
   shows up as a walk/detection ratio far above 1 at the memory.
2. Occlusions the clips supervise. Over --clips sampled training clips: how many hold an
   occlusion that ends inside the clip (the only kind that supervises the walker), and the
   length distribution of those occlusions in frames of the clip, for the World 1 target and for
   every other object.

The backbone's gradient is measured even when the config freezes it (it says what training it
would do). Nothing is written.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from .losses import compute_losses
from .targets import build_targets
from .train_config import ConfigError, load_config

DETECTION_TERMS = ("hm", "wh", "reg", "tracking", "visibility")
LENGTH_BINS = (1, 4, 8, 16, 32, 64, 10 ** 9)


def term_weights(cfg) -> dict:
    l = cfg.loss
    return {"hm": l.hm_weight, "wh": l.wh_weight, "reg": l.reg_weight, "tracking": l.tracking_weight,
            "visibility": l.visibility_weight, "ram": l.ram_weight,
            "overlap": l.overlap_weight if l.overlap else 0.0, "path": l.hidden_path_weight}


def forward_keeping_memory(model, images):
    """RAMModel.forward, with the stacked memory activations kept for their gradient."""
    B, T = images.shape[:2]
    memory = model.clip_memory(images)
    out = model._read_memory(memory)
    return {k: v.unflatten(0, (B, T)).float() for k, v in out.items()}, memory


def gradient_norms(value, places: dict) -> dict:
    """{place: flat gradient vector} of `value` w.r.t. each place's tensors."""
    out = {}
    for name, tensors in places.items():
        grads = torch.autograd.grad(value, tensors, retain_graph=True, allow_unused=True)
        out[name] = torch.cat([(g if g is not None else torch.zeros_like(t)).reshape(-1)
                               for g, t in zip(grads, tensors)])
    return out


def gradient_balance(model, loader, cfg, batches: int) -> None:
    for p in model.parameters():
        p.requires_grad_(True)
    from .train import set_train_mode
    set_train_mode(model, cfg)          # frozen parts keep their BatchNorm statistics, as in training
    weights = term_weights(cfg)
    print(f"gradient balance ({cfg.loss.variant}, walk_normalisation {cfg.loss.walk_normalisation}; "
          f"norms of the weighted terms' gradients)")
    header = f"{'batch':>5} {'term':>10} {'weighted':>10} {'|g| memory':>11} {'|g| GRU':>10} {'|g| backbone':>12}"
    ratios = []
    for b, batch in zip(range(batches), loader):
        H, W = batch["images"].shape[-2:]
        grid = model.node_grid(H, W)
        outputs, memory = forward_keeping_memory(model, batch["images"])
        targets = build_targets(batch, cfg.model.num_classes, grid, cfg.loss, cfg.model.walk)
        losses = compute_losses(outputs, targets, cfg.loss, grid, cfg.model.walk)
        places = {"memory": [memory], "gru": list(model.memory.parameters()),
                  "backbone": list(model.backbone.parameters())}
        print(header)
        for term, w in weights.items():
            g = gradient_norms(w * losses[term], places)
            print(f"{b:>5} {term:>10} {float((w * losses[term]).detach()):>10.4f} {float(g['memory'].norm()):>11.3e} "
                  f"{float(g['gru'].norm()):>10.3e} {float(g['backbone'].norm()):>12.3e}")
        detection = sum(weights[k] * losses[k] for k in DETECTION_TERMS)
        walk_part = sum(weights[k] * losses[k] for k in ("ram", "overlap", "path"))
        gd, gw = gradient_norms(detection, places), gradient_norms(walk_part, places)
        row = {}
        for place in places:
            nd, nw = float(gd[place].norm()), float(gw[place].norm())
            cos = float(torch.nn.functional.cosine_similarity(gd[place], gw[place], dim=0)) if nd and nw else float("nan")
            row[place] = nw / nd if nd else float("nan")
            print(f"{b:>5} walk/detection at {place:>8}: |g| ratio {row[place]:8.3f}, cosine {cos:+.3f}")
        ratios.append(row)
    if ratios:
        print("median walk/detection |g| ratio over the batches: "
              + ", ".join(f"{p} {np.median([r[p] for r in ratios]):.3f}" for p in ratios[0]))


def supervised_occlusions(loader_set, clips: int, vis_seen: float, target_class: int | None) -> None:
    """Length distribution of the occlusions that end inside sampled clips."""
    from .data.clips import hidden_runs
    found = {"target": [], "other": []}
    with_one = 0
    for i in range(clips):
        _, frames = loader_set.sample_frames(i)
        video = loader_set.videos[_]
        ann = video.annotations
        runs = hidden_runs(ann.present[frames], ann.visibility[frames], vis_seen)
        with_one += bool(runs)
        for r in runs:
            kind = "target" if target_class is not None and ann.classes[r.track] == target_class else "other"
            found[kind].append(r.length)
    print(f"occlusions that end inside the clip: {with_one} of {clips} clips hold at least one")
    for kind, lengths in found.items():
        if not lengths:
            print(f"  {kind:>6}: none")
            continue
        counts, low = [], 0
        for edge in LENGTH_BINS:
            counts.append(sum(low < n <= edge for n in lengths))
            low = edge
        names = [f"<={e}" if e < 10 ** 9 else f">{LENGTH_BINS[-2]}" for e in LENGTH_BINS]
        print(f"  {kind:>6}: {len(lengths)} runs, median {np.median(lengths):.0f} clip frames; "
              + ", ".join(f"{n} {c}" for n, c in zip(names, counts)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ram-diagnose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", help="section.key=value")
    parser.add_argument("--model", help="weights to measure (default: the config's train.init_from, else random)")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--clips", type=int, default=200, help="clips for the occlusion statistics (0: skip)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as error:
        print(f"ram-diagnose: config error: {error}", file=sys.stderr)
        return 2
    torch.manual_seed(cfg.train.seed)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    from ram_tracker.checkpoint import load_weights
    from ram_tracker.model import build_model
    from .train import make_loaders
    weights = args.model or cfg.train.init_from
    if weights:
        model, _ = load_weights(weights)
        print(f"model: {weights}")
    else:
        model = build_model(cfg.model)
        print("model: randomly initialised")
    cfg.data.val_clips = 0
    loader, _ = make_loaders(cfg, 0, 0, 1)
    if args.batches:
        gradient_balance(model, loader, cfg, args.batches)
    if args.clips:
        target = 0 if cfg.data.kind == "world1" else None      # world_lacater.CLASS_NAMES[0] == "target"
        supervised_occlusions(loader.dataset.clips, args.clips, cfg.loss.vis_ignore, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

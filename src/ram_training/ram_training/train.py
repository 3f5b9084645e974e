"""`ram-train`: train a RAM model. One file, read it top to bottom.

    ram-train --config world1 [section.key=value ...] [--resume] [--check]
    python -m ram_training.train --config ... (same)
    torchrun --nproc_per_node 4 -m ram_training.train --config ...   (DDP, one process per GPU)

Outputs in <train.out_dir>/<train.name>/ (only rank 0 writes):
    config.yaml        the resolved config
    metrics.csv        one row per log step (every loss term, lr, throughput) and per validation
    checkpoint.pt      model, optimizer, scaler, step, RNG states, config, git commit (atomic)
    model.safetensors  the final model in the deployable format (ram_tracker.checkpoint)

Determinism: clip j of the global batch of step s is item s * batch_size + j of an endless
clip stream, and item g is drawn from a generator seeded by (seed, g // samples_per_epoch,
g % samples_per_epoch) (ClipDataset). The learning rate is a pure function of the step. So a
resumed run sees the same batches and learning rates as an uninterrupted one, and on the same
machine ends with bit-identical weights.

Batches: the global batch of data.batch_size clips is cut into world_size * accum_steps
micro-batches of equal size; rank r takes micro-batches r*accum .. (r+1)*accum - 1. The step's
loss is the mean of the micro-batch losses (each normalised within its micro-batch, BatchNorm
statistics per micro-batch), so N DDP processes compute exactly what one process computes with
accum_steps = N.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ram_tracker.checkpoint import save_weights
from ram_tracker.model import build_model

from .losses import compute_losses
from .occlusion_metric import OcclusionErrors, occluded_localisation
from .targets import build_targets
from .train_config import ConfigError, TrainConfig, dump_yaml, from_dict, load_config

CHECKPOINT_FORMAT = "ram-train-checkpoint/1"
LOSS_TERMS = ("total", "hm", "wh", "reg", "tracking", "visibility", "ram", "overlap")
VAL_TERMS = ("val_loss", "val_ram", "val_occl_walker_px", "val_occl_last_seen_px", "val_occl_gain_px",
             "val_occl_frames")
CSV_COLUMNS = ("step", "lr") + LOSS_TERMS + ("grad_norm", "clips_per_s", "frames_per_s", "s_per_step") + VAL_TERMS
# model settings that shape the walk but no weight: a model may be fine-tuned with other values
# (e.g. the Table 3 global-walk row from a local-walk model)
WALK_ONLY_MODEL_KEYS = {"walk_local", "walk_radius", "walk_tau"}
# config keys that may change on --resume (the rest must match the checkpoint: same run)
RESUME_MAY_CHANGE = {"train.steps", "train.log_interval", "train.val_interval", "train.checkpoint_interval",
                     "train.progress", "train.threads", "train.device", "data.workers", "data.val_batch_size", "train.init_from"}


# ----------------------------------------------------------------------------------------------
# data

def make_videos(cfg: TrainConfig, split: str, sequences, include_hidden: bool):
    """The video list of one split. World 1 always carries the true boxes of hidden objects;
    KITTI-layout data only with include_hidden (World 2's hidden_02; real KITTI has none)."""
    from .data import clips
    d = cfg.data
    if d.kind == "world1":
        return clips.world1_videos(d.root, split)
    half = None if split == "full" else split
    return clips.kitti_videos(d.root, d.kitti_folder, half=half, sequences=sequences, class_names=tuple(d.classes),
                              include_hidden=include_hidden)


class ClipStream(torch.utils.data.Dataset):
    """Endless stream of clips: item g = ClipDataset item g % samples_per_epoch of epoch
    g // samples_per_epoch (its RNG is seeded by (seed, epoch, index), so any worker, process
    or resumed run draws the same clip for the same g)."""

    def __init__(self, clips):
        self.clips = clips

    def __len__(self):
        return 2 ** 62

    def __getitem__(self, g: int) -> dict:
        epoch, index = divmod(int(g), self.clips.samples_per_epoch)
        self.clips.set_epoch(epoch)
        return self.clips[index]


class StepBatches(torch.utils.data.Sampler):
    """Yields, for steps start..steps-1, this rank's micro-batches of stream indices."""

    def __init__(self, start: int, steps: int, batch_size: int, rank: int, world: int, accum: int):
        self.start, self.steps, self.batch_size = start, steps, batch_size
        self.rank, self.world, self.accum = rank, world, accum
        self.micro = batch_size // (world * accum)

    def __len__(self):
        return (self.steps - self.start) * self.accum

    def __iter__(self):
        for step in range(self.start, self.steps):
            for m in range(self.accum):
                first = step * self.batch_size + (self.rank * self.accum + m) * self.micro
                yield list(range(first, first + self.micro))


def make_loaders(cfg: TrainConfig, start_step: int, rank: int, world: int):
    from .data.clips import ClipConfig, ClipDataset, collate_clips
    d = cfg.data
    clip_cfg = ClipConfig(clip_length=d.clip_length, strides=tuple(d.strides), image_size=tuple(d.image_size),
                          require_occlusion=d.require_occlusion, sampler=d.sampler, max_stride=d.max_stride,
                          visible_threshold=cfg.loss.vis_ignore)
    supervised = cfg.loss.variant == "supervised_invisible"
    train_videos = make_videos(cfg, d.train_split, d.train_sequences, include_hidden=supervised)
    train_set = ClipDataset(train_videos, clip_cfg, "random", d.samples_per_epoch or None, seed=cfg.train.seed)
    sampler = StepBatches(start_step, cfg.train.steps, d.batch_size, rank, world, cfg.optim.accum_steps)
    train = torch.utils.data.DataLoader(ClipStream(train_set), batch_sampler=sampler, num_workers=d.workers,
                                        collate_fn=collate_clips, persistent_workers=False)
    val = None
    if d.val_clips > 0 and rank == 0:
        # a fixed set of clips that hold an occlusion (the metric needs one), drawn once with
        # its own seed; hidden boxes are loaded for the metric (losses never read them)
        val_cfg = ClipConfig(clip_length=d.val_clip_length or d.clip_length, strides=tuple(d.strides),
                             image_size=tuple(d.image_size), require_occlusion=True)
        val_videos = make_videos(cfg, d.val_split, d.val_sequences, include_hidden=True)
        val_set = ClipDataset(val_videos, val_cfg, "random", d.val_clips, seed=cfg.train.seed + 7919)
        val = torch.utils.data.DataLoader(val_set, batch_size=d.val_batch_size, shuffle=False,
                                          num_workers=d.workers, collate_fn=collate_clips)
    return train, val


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


# ----------------------------------------------------------------------------------------------
# schedule

def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (0-based): a pure function, so resume is exact."""
    o, total = cfg.optim, cfg.train.steps
    if o.warmup_steps and step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return o.lr
    if o.schedule == "step":
        return o.lr * o.drop_factor ** sum(step >= s for s in o.drop_steps)
    progress = (step - o.warmup_steps) / max(total - o.warmup_steps, 1)           # cosine
    return o.lr * (o.min_lr_factor + (1 - o.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


# ----------------------------------------------------------------------------------------------
# checkpoints

def git_commit() -> str:
    """HEAD of the repository this file is in, '+dirty' when tracked files differ; 'unknown' outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        if not head:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=20).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def rng_states() -> dict:
    state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"name": state[0], "keys": torch.from_numpy(state[1].astype(np.int64)), "pos": int(state[2]),
                      "has_gauss": int(state[3]), "cached_gaussian": float(state[4])},
            "python": random.getstate()}


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate(states["python"])


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename over `path`: a crash at
    any point leaves either the previous checkpoint or the new one, never half a file. The
    temp files that killed runs left are removed first (one a live process is writing is not)."""
    from .data.atomic import remove_leftovers_of_dead_runs
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers_of_dead_runs(path.parent, f".{path.name}.tmp")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: Path) -> dict:
    """Safe load (weights_only: tensors and plain containers only, nothing is unpickled)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a ram-train checkpoint (format {state.get('format') if isinstance(state, dict) else None!r})")
    return state


def config_differences(a: dict, b: dict, prefix: str = "") -> list:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
        path = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, path + ".")
        elif va != vb:
            out.append((path, va, vb))
    return out


# ----------------------------------------------------------------------------------------------
# logging

class MetricsLog:
    """runs/<name>/metrics.csv, one row per log or validation step, flushed at once."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        rows = []
        if resume_step is not None and path.exists():      # drop what a killed run logged after its checkpoint
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= resume_step]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        self.file = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.file, CSV_COLUMNS, extrasaction="ignore")

    def write(self, row: dict) -> None:
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


# ----------------------------------------------------------------------------------------------
# validation

@torch.no_grad()
def validate(model, loader, cfg: TrainConfig, device: torch.device, autocast) -> dict:
    """Mean loss terms and the occluded-localisation error (occlusion_metric) over the val clips."""
    was_training = model.training
    model.eval()
    sums, batches, errors = {}, 0, OcclusionErrors()
    for batch in loader:
        batch = to_device(batch, device)
        H, W = batch["images"].shape[-2:]
        grid = model.node_grid(H, W)
        with autocast():
            outputs = model(batch["images"])
        outputs = {k: v.float() for k, v in outputs.items()}
        targets = build_targets(batch, cfg.model.num_classes, grid, cfg.loss, cfg.model.walk)
        losses = compute_losses(outputs, targets, cfg.loss, grid, cfg.model.walk)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        batches += 1
        errors = errors.add(occluded_localisation(outputs["embed"], batch, grid, cfg.model.walk,
                                                  cfg.loss.vis_ignore, cfg.loss.vis_no_label))
    model.train(was_training)
    result = {"val_loss": sums.get("total", float("nan")) / max(batches, 1),
              "val_ram": sums.get("ram", float("nan")) / max(batches, 1)}
    result.update({f"val_{k}": v for k, v in errors.as_dict().items()})
    return result


# ----------------------------------------------------------------------------------------------
# the run

def parse_args(argv):
    parser = argparse.ArgumentParser(prog="ram-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a recipe name (ram_training/recipes: world1_cpu_long, ...) or a YAML file")
    parser.add_argument("overrides", nargs="*", help="section.key=value (value parsed as YAML)")
    parser.add_argument("--resume", action="store_true", help="continue from <out_dir>/<name>/checkpoint.pt")
    parser.add_argument("--check", action="store_true", help="validate the config, print it and exit")
    return parser.parse_args(argv)


def frozen_modules(model, cfg: TrainConfig) -> list:
    """The parts of the model the optimiser leaves as loaded (their BatchNorm statistics too)."""
    if cfg.optim.freeze_detector:      # only the walk's node embedding learns: detections cannot change
        return [model.backbone, model.memory, model.heads]
    return [model.backbone] if cfg.optim.freeze_backbone else []


def set_train_mode(model, cfg: TrainConfig) -> None:
    model.train()
    for module in frozen_modules(model, cfg):
        module.eval()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as error:
        print(f"ram-train: config error: {error}", file=sys.stderr)
        return 2
    if args.check:
        print(dump_yaml(cfg), end="")
        return 0
    return train(cfg, resume=args.resume)


def train(cfg: TrainConfig, resume: bool = False) -> int:
    # --- processes and device -----------------------------------------------------------------
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        print("ram-train: train.device is cuda but CUDA is not available", file=sys.stderr)
        return 2
    device = torch.device(f"cuda:{local_rank}" if want_cuda else "cpu")
    micro_batches = world * cfg.optim.accum_steps
    if cfg.data.batch_size % micro_batches:
        print(f"ram-train: data.batch_size {cfg.data.batch_size} must be divisible by world size {world} x "
              f"optim.accum_steps {cfg.optim.accum_steps}", file=sys.stderr)
        return 2
    if world > 1:
        if want_cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if want_cuda else "gloo")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    elif world > 1 and not want_cuda:      # share the cores between the local processes
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    master = rank == 0
    run_dir = Path(cfg.train.out_dir) / cfg.train.name
    ckpt_path = run_dir / "checkpoint.pt"

    # --- model and optimiser ------------------------------------------------------------------
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).to(device)
    if cfg.train.init_from and not resume:
        # fine-tuning (the paper's long-clip stage, PD -> KITTI): weights only, fresh optimiser
        from ram_tracker.checkpoint import load_weights
        init, init_info = load_weights(cfg.train.init_from)
        differ = [k for k, _, _ in config_differences(init.cfg.to_dict(), cfg.model.to_dict())
                  if k not in WALK_ONLY_MODEL_KEYS]
        if differ:
            diff = ", ".join(differ)
            print(f"ram-train: train.init_from {cfg.train.init_from}: its model config differs in {diff}", file=sys.stderr)
            return 2
        model.load_state_dict(init.state_dict())
        if master:
            print(f"ram-train: initialised from {cfg.train.init_from} ({init_info.get('name')}, "
                  f"{init_info.get('steps')} steps)", file=sys.stderr)
    for module in frozen_modules(model, cfg):
        module.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                 weight_decay=cfg.optim.weight_decay)
    use_amp = cfg.train.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.train.amp_dtype == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    def autocast():
        return torch.autocast("cuda", dtype=amp_dtype) if use_amp else contextlib.nullcontext()

    # --- resume -------------------------------------------------------------------------------
    step, commit, last_val = 0, git_commit(), {}
    if resume:
        if not ckpt_path.exists():
            print(f"ram-train: --resume but no checkpoint at {ckpt_path}", file=sys.stderr)
            return 2
        state = load_checkpoint(ckpt_path)
        changed = [d for d in config_differences(state["config"], cfg.to_dict()) if d[0] not in RESUME_MAY_CHANGE]
        if changed:
            lines = "\n".join(f"  {k}: checkpoint {a!r}, now {b!r}" for k, a, b in changed)
            print(f"ram-train: the config differs from the checkpoint's in keys that change the run:\n{lines}\n"
                  f"(only {', '.join(sorted(RESUME_MAY_CHANGE))} may change on --resume)", file=sys.stderr)
            return 2
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_states(state["rng"])
        step, last_val = int(state["step"]), dict(state.get("val") or {})
        if master:
            print(f"ram-train: resumed {ckpt_path} at step {step} (commit {state.get('commit')})", file=sys.stderr)
    elif master and ckpt_path.exists():
        print(f"ram-train: {ckpt_path} exists: pass --resume to continue it or set train.name", file=sys.stderr)
        return 2
    if step >= cfg.train.steps and master:
        print(f"ram-train: already at step {step} of {cfg.train.steps}; raise train.steps to train on", file=sys.stderr)

    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if want_cuda else None)
    set_train_mode(model, cfg)

    # --- data and outputs ---------------------------------------------------------------------
    train_loader, val_loader = make_loaders(cfg, step, rank, world)
    log = None
    if master:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_yaml(cfg))
        log = MetricsLog(run_dir / "metrics.csv", step if resume else None)
        n_train = sum(p.numel() for p in params)
        print(f"ram-train: {cfg.train.name}: {cfg.loss.variant}, {cfg.data.kind} {cfg.data.image_size[0]}x"
              f"{cfg.data.image_size[1]} x {cfg.data.clip_length} frames, batch {cfg.data.batch_size} on {world} x "
              f"{device.type}, {n_train / 1e6:.2f} M trainable parameters, commit {commit}", file=sys.stderr)

    def checkpoint_state() -> dict:
        return {"format": CHECKPOINT_FORMAT, "step": step, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                "schedule": {"kind": cfg.optim.schedule, "lr": lr_at(max(step - 1, 0), cfg)},
                "rng": rng_states(), "config": cfg.to_dict(), "commit": commit, "val": last_val}

    # --- the loop -----------------------------------------------------------------------------
    batches = iter(train_loader)
    accum = cfg.optim.accum_steps
    window = {k: 0.0 for k in LOSS_TERMS}
    window_steps, window_start, run_start, start_step = 0, time.time(), time.time(), step
    tty = master and cfg.train.progress and sys.stderr.isatty()
    while step < cfg.train.steps:
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        for micro in range(accum):
            batch = to_device(next(batches), device)
            H, W = batch["images"].shape[-2:]
            grid = model.node_grid(H, W)
            sync = micro == accum - 1 or world == 1
            with (contextlib.nullcontext() if sync else ddp_model.no_sync()):
                with autocast():
                    outputs = ddp_model(batch["images"])
                outputs = {k: v.float() for k, v in outputs.items()}          # losses in fp32
                targets = build_targets(batch, cfg.model.num_classes, grid, cfg.loss, cfg.model.walk)
                losses = compute_losses(outputs, targets, cfg.loss, grid, cfg.model.walk)
                scaler.scale(losses["total"] / accum).backward()
            for k in LOSS_TERMS:
                window[k] += float(losses[k].detach()) / accum
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window_steps += 1
        last = step == cfg.train.steps
        row = {}

        if step % cfg.train.log_interval == 0 or last:
            means = {k: v / window_steps for k, v in window.items()}
            if world > 1:                                # mean over ranks (the logged loss is the step's loss)
                t = torch.tensor([means[k] for k in LOSS_TERMS], device=device)
                dist.all_reduce(t)
                means = {k: float(v) / world for k, v in zip(LOSS_TERMS, t)}
            seconds = time.time() - window_start
            clips_per_s = window_steps * cfg.data.batch_size / max(seconds, 1e-9)
            row.update(step=step, lr=lr, grad_norm=float(grad_norm), clips_per_s=clips_per_s,
                       frames_per_s=clips_per_s * cfg.data.clip_length, s_per_step=seconds / window_steps, **means)
            if master:
                eta = (time.time() - run_start) / (step - start_step) * (cfg.train.steps - step)
                terms = " ".join(f"{k} {means[k]:.3f}" for k in LOSS_TERMS[1:])
                print(f"{chr(13) if tty else ''}step {step}/{cfg.train.steps} | loss {means['total']:.4f} ({terms}) | "
                      f"lr {lr:.3g} | {clips_per_s:.2f} clips/s {row['frames_per_s']:.1f} frames/s | eta {format_eta(eta)}",
                      file=sys.stderr, flush=True)
            window = {k: 0.0 for k in LOSS_TERMS}
            window_steps, window_start = 0, time.time()
        elif tty:
            print(f"\rstep {step}/{cfg.train.steps} | loss {float(losses['total']):.4f}", end="", file=sys.stderr, flush=True)

        val_step = cfg.data.val_clips > 0 and ((cfg.train.val_interval and step % cfg.train.val_interval == 0) or last)
        do_val = val_step and val_loader is not None
        do_checkpoint = (cfg.train.checkpoint_interval and step % cfg.train.checkpoint_interval == 0) or last
        if do_val:                                       # rank 0 only (val_loader is None elsewhere)
            val_start = time.time()
            last_val = validate(model, val_loader, cfg, device, autocast)
            row.update(step=step, **last_val)
            print(f"validation at step {step}: loss {last_val['val_loss']:.4f}, occluded localisation: walker "
                  f"{last_val['val_occl_walker_px']:.2f} px vs last seen {last_val['val_occl_last_seen_px']:.2f} px "
                  f"over {int(last_val['val_occl_frames'])} hidden frames ({time.time() - val_start:.1f} s)",
                  file=sys.stderr, flush=True)
            window_start += time.time() - val_start      # throughput counts training only
        if master and row:
            log.write(row)
        if master and do_checkpoint:
            save_checkpoint(ckpt_path, checkpoint_state())
        if world > 1 and (val_step or do_checkpoint):
            dist.barrier()                               # rank 0 validated / saved: the others wait for it

    # --- export -------------------------------------------------------------------------------
    if master:
        if log is not None:
            log.close()
        if step == cfg.train.steps:
            info = {"name": cfg.train.name, "steps": step, "input_size": list(cfg.data.image_size),
                    "config": cfg.to_dict(), "commit": commit, "val": last_val}
            path = save_weights(run_dir / "model.safetensors", model, info)
            print(f"ram-train: wrote {path} after {step} steps ({format_eta(time.time() - run_start)})", file=sys.stderr)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def config_from_checkpoint(path) -> TrainConfig:
    """The TrainConfig a checkpoint was trained with (for tools that read runs)."""
    return from_dict(load_checkpoint(Path(path))["config"])


if __name__ == "__main__":
    sys.exit(main())

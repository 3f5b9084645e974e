"""`ram-train`: train a RAM model. One file, read it top to bottom.

    ram-train --config world1 [section.key=value ...] [--resume] [--check] [--export]
    python -m ram_training.train --config ... (same)
    torchrun --nproc_per_node 4 -m ram_training.train --config ...   (DDP, one process per GPU)

Outputs in <train.out_dir>/<train.name>/ (only rank 0 writes):
    config.yaml        the resolved config
    metrics.csv        one row per log step (every loss term, lr, throughput) and per validation
    events.out.tfevents.*  the same scalars for TensorBoard (tensorboard --logdir <train.out_dir>)
    checkpoint.pt      model, optimizer, scaler, step, RNG states, config, git commit (atomic)
    model.safetensors  the final model in the deployable format (ram_tracker.checkpoint);
                       `--export` writes it from the last checkpoint of an unfinished (or
                       running) run, e.g. to validate it or to hand it to the next session

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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ram_tracker.checkpoint import save_weights
from ram_tracker.model import build_model
from ram_tracker.model.backbones import load_imagenet_weights

from .data.atomic import atomic_path
from .losses import compute_losses
from .occlusion_metric import OcclusionErrors, occluded_localisation
from .targets import build_targets
from .provenance import git_commit
from .train_config import ConfigError, TrainConfig, dump_yaml, from_dict, load_config

CHECKPOINT_FORMAT = "ram-train-checkpoint/1"
LOSS_TERMS = ("total", "hm", "wh", "reg", "tracking", "visibility", "ram", "overlap", "path")
VAL_TERMS = ("val_loss", "val_ram", "val_occl_walker_px", "val_occl_last_seen_px", "val_occl_gain_px",
             "val_occl_frames")
CSV_COLUMNS = ("step", "lr") + LOSS_TERMS + ("grad_norm", "clips_per_s", "frames_per_s", "s_per_step") + VAL_TERMS
# model settings that shape the walk but no weight: a model may be fine-tuned with other values
# (e.g. the Table 3 global-walk row from a local-walk model)
WALK_ONLY_MODEL_KEYS = {"walk_local", "walk_radius", "walk_tau"}
# config keys that may change on --resume (the rest must match the checkpoint: same run)
RESUME_MAY_CHANGE = {"train.steps", "train.log_interval", "train.val_interval", "train.checkpoint_interval",
                     "train.progress", "train.threads", "train.device", "data.workers", "data.val_batch_size", "train.init_from",
                     "train.amp_cpu"}


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
    remove_leftovers_of_dead_runs(Path(path).parent, f".{Path(path).name}.tmp")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)


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
    """runs/<name>/metrics.csv, one row per log or validation step, flushed at once; the same
    scalars (same names, x axis = step) in TensorBoard event files beside it."""

    def __init__(self, path: Path, resume_step: int | None):
        from torch.utils.tensorboard import SummaryWriter
        self.path = path
        rows = []
        if resume_step is not None and path.exists():      # drop what a killed run logged after its checkpoint
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= resume_step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self.file = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.file, CSV_COLUMNS, extrasaction="ignore")
        # purge_step: TensorBoard hides what a killed run logged after its checkpoint (as the CSV drops it)
        self.tensorboard = SummaryWriter(str(path.parent), purge_step=None if resume_step is None else resume_step + 1)

    def write(self, row: dict) -> None:
        self.writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.file.flush()
        for name, value in row.items():
            if name != "step":
                self.tensorboard.add_scalar(name, value, row["step"])
        self.tensorboard.flush()

    def close(self) -> None:
        self.file.close()
        self.tensorboard.close()


class LogWindow:
    """This rank's loss terms summed over the steps since the last log step, and the training
    time they took (validation excluded)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums = {k: 0.0 for k in LOSS_TERMS}
        self.steps, self.start = 0, time.time()

    def add(self, micro_losses: list) -> None:
        """One step: its micro-batches' loss terms (the step's loss is their mean)."""
        for losses in micro_losses:
            for k in LOSS_TERMS:
                self.sums[k] += losses[k] / len(micro_losses)
        self.steps += 1

    def means(self) -> dict:
        return {k: v / self.steps for k, v in self.sums.items()}


class Console:
    """What rank 0 prints on stderr: one line per log step and per validation (people and CI
    read these); on a terminal (and train.progress) also a tqdm bar that moves every step."""

    def __init__(self, cfg: TrainConfig, start_step: int, master: bool):
        self.master, self.start, self.start_step, self.steps = master, time.time(), start_step, cfg.train.steps
        self.bar = None
        if master and cfg.train.progress and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=cfg.train.steps, initial=start_step, unit="step", file=sys.stderr,
                            dynamic_ncols=True)

    def line(self, text: str) -> None:
        if not self.master:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)          # above the bar, which redraws below
        else:
            print(text, file=sys.stderr, flush=True)

    def stepped(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
            self.bar.update(1)

    def eta(self, step: int) -> str:
        return format_eta((time.time() - self.start) / (step - self.start_step) * (self.steps - step))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    parser.add_argument("--export", action="store_true",
                        help="write <out_dir>/<name>/model.safetensors from the run's last checkpoint.pt "
                             "(an unfinished or running run) and exit; trains nothing")
    return parser.parse_args(argv)


def run_dir_of(cfg: TrainConfig) -> Path:
    """Where a run writes everything: <train.out_dir>/<train.name>."""
    return Path(cfg.train.out_dir) / cfg.train.name


def frozen_modules(model, cfg: TrainConfig) -> list:
    """The parts of the model the optimiser leaves as loaded (their BatchNorm statistics too)."""
    return [getattr(model, name) for name in cfg.optim.frozen]


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
    if args.export:
        return export_checkpoint(cfg)
    return train(cfg, resume=args.resume)


class StartError(Exception):
    """A run that cannot start (bad config for this machine, a clash with an existing run):
    train() prints it and returns 2."""


@dataclass
class Processes:
    """This process's place in the run: torchrun's environment (one process without it)."""
    world: int
    rank: int
    local_rank: int
    device: torch.device

    @property
    def master(self) -> bool:
        return self.rank == 0


@dataclass
class Trainee:
    """The model being trained, its DDP wrapper (the model itself in one process), the
    parameters the optimiser moves, the optimiser and the AMP settings."""
    model: torch.nn.Module
    ddp_model: torch.nn.Module
    params: list
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None            # None: no autocast
    device_type: str = "cuda"

    def autocast(self):
        if not self.amp_dtype:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.amp_dtype)


@dataclass
class Run:
    """One training run: what the steps below read, and what they advance (step, last_val)."""
    cfg: TrainConfig
    procs: Processes
    trainee: Trainee
    run_dir: Path
    commit: str
    step: int = 0
    last_val: dict = field(default_factory=dict)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"


def train(cfg: TrainConfig, resume: bool = False) -> int:
    """The run, step by step (the functions below, in this order). 0 when done, 2 when it
    cannot start (said on stderr)."""
    try:
        procs = setup_processes(cfg)
        trainee = build_model_and_optimizer(cfg, procs, resume)
        run = Run(cfg, procs, trainee, run_dir_of(cfg), git_commit())
        if resume:
            resume_from_checkpoint(run)
        elif procs.master and run.checkpoint_path.exists():
            raise StartError(f"{run.checkpoint_path} exists: pass --resume to continue it or set train.name")
    except StartError as error:
        print(f"ram-train: {error}", file=sys.stderr)
        return 2
    if run.step >= cfg.train.steps and procs.master:
        print(f"ram-train: already at step {run.step} of {cfg.train.steps}; raise train.steps to train on",
              file=sys.stderr)
    if procs.world > 1:
        trainee.ddp_model = torch.nn.parallel.DistributedDataParallel(
            trainee.model, device_ids=[procs.local_rank] if procs.device.type == "cuda" else None)
    set_train_mode(trainee.model, cfg)
    train_loader, val_loader = make_loaders(cfg, run.step, procs.rank, procs.world)
    log = open_outputs(run, resume) if procs.master else None
    console = Console(cfg, run.step, procs.master)
    try:
        train_loop(run, train_loader, val_loader, log, console)
    finally:
        console.close()
        if log is not None:
            log.close()
    if procs.master and run.step == cfg.train.steps:
        export_model(run, seconds=time.time() - console.start)
    if procs.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


# --- the steps of train(), in order -----------------------------------------------------------

def setup_processes(cfg: TrainConfig) -> Processes:
    """Rank and device from torchrun's environment; the process group and CPU threads."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise StartError("train.device is cuda but CUDA is not available")
    device = torch.device(f"cuda:{local_rank}" if want_cuda else "cpu")
    if cfg.data.batch_size % (world * cfg.optim.accum_steps):
        raise StartError(f"data.batch_size {cfg.data.batch_size} must be divisible by world size {world} x "
                         f"optim.accum_steps {cfg.optim.accum_steps}")
    if world > 1:
        if want_cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if want_cuda else "gloo")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    elif world > 1 and not want_cuda:      # share the cores between the local processes
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return Processes(world, rank, local_rank, device)


def build_model_and_optimizer(cfg: TrainConfig, procs: Processes, resume: bool) -> Trainee:
    """The seeded model (or train.init_from's weights, or the encoder's ImageNet weights), its
    frozen parts, Adam and the AMP scaler."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).to(procs.device)
    if cfg.train.init_from and not resume:
        load_initial_weights(model, cfg, procs.master)
    if cfg.train.backbone_pretrained and not resume:
        try:
            load_imagenet_weights(model.backbone.encoder)
        except RuntimeError as error:          # the weights package is missing or not Lite0's
            raise StartError(f"train.backbone_pretrained: {error}") from error
    for module in frozen_modules(model, cfg):
        module.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                 weight_decay=cfg.optim.weight_decay)
    use_amp = cfg.train.amp and (procs.device.type == "cuda" or cfg.train.amp_cpu)
    if use_amp and procs.device.type == "cpu" and not cpu_supports_bf16():
        raise StartError("train.amp_cpu: oneDNN has no bf16 path on this CPU (it needs AVX-512); "
                         "emulated bf16 is slower than fp32, leave train.amp_cpu false")
    amp_dtype = torch.bfloat16 if cfg.train.amp_dtype == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    return Trainee(model, model, params, optimizer, scaler, amp_dtype if use_amp else None,
                   procs.device.type)


def cpu_supports_bf16() -> bool:
    """oneDNN has a bf16 path on this CPU (AVX-512; AMX and AVX512-BF16 run it in hardware).
    Without it, bf16 autocast is emulated and slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def load_initial_weights(model, cfg: TrainConfig, master: bool) -> None:
    """Fine-tuning (the paper's long-clip stage, PD -> KITTI): weights only, fresh optimiser."""
    from ram_tracker.checkpoint import load_weights
    init, init_info = load_weights(cfg.train.init_from)
    differ = [k for k, _, _ in config_differences(init.cfg.to_dict(), cfg.model.to_dict())
              if k not in WALK_ONLY_MODEL_KEYS and k not in ("memory_kernel", "walk_memory_channels")]
    if differ:
        raise StartError(f"train.init_from {cfg.train.init_from}: its model config differs in {', '.join(differ)}")
    state = init.state_dict()
    grown = init.cfg.memory_kernel != cfg.model.memory_kernel
    if grown:
        state = grow_memory_kernel(state, init.cfg.memory_kernel, cfg.model.memory_kernel,
                                   cfg.train.init_from)
    added = ""
    if init.cfg.walk_memory_channels != cfg.model.walk_memory_channels:
        state, added = add_walk_memory(state, model, init.cfg, cfg.train.init_from)
    model.load_state_dict(state)
    if master:
        print(f"ram-train: initialised from {cfg.train.init_from} ({init_info.get('name')}, "
              f"{init_info.get('steps')} steps)"
              + (f", its {init.cfg.memory_kernel}x{init.cfg.memory_kernel} ConvGRU kernels zero-padded "
                 f"to {cfg.model.memory_kernel}x{cfg.model.memory_kernel}" if grown else "") + added,
              file=sys.stderr)


def add_walk_memory(state: dict, model, init_cfg, source: str) -> tuple[dict, str]:
    """`state` (a model whose embedding reads the detector's memory) for `model`, which has a walk
    memory of its own: the walk memory starts as a copy of the detector's ConvGRU and the
    embedding as the loaded one, so at step 0 the walker is the loaded model's (exactly, when
    the node grid is the feature map) and the walk loss trains on from there."""
    if init_cfg.walk_memory_channels:
        raise StartError(f"train.init_from {source}: it has a walk memory of "
                         f"{init_cfg.walk_memory_channels} channels, this model "
                         f"{model.cfg.walk_memory_channels}")
    wanted = model.state_dict()
    state = dict(state)
    copied = {"walk_memory." + k.removeprefix("memory."): v for k, v in state.items()
              if k.startswith("memory.")}
    if any(wanted[k].shape != v.shape for k, v in copied.items()):
        raise StartError(f"train.init_from {source}: model.walk_memory_channels must equal its "
                         f"memory_channels {init_cfg.memory_channels} to start from its memory")
    state.update(copied)
    return state, ", the walk memory a copy of its ConvGRU"


def grow_memory_kernel(state: dict, old: int, new: int, source: str) -> dict:
    """The ConvGRU's kernels of `state` zero-padded from old x old to new x new (a larger
    kernel, the same function: the padded taps are 0, and each convolution pads its input by
    kernel // 2), so a trained model can start a capacity test (the paper's 7x7 memory)."""
    if new < old or (new - old) % 2:
        raise StartError(f"train.init_from {source}: model.memory_kernel {new} cannot grow from its "
                         f"{old} (a larger kernel of the same parity only)")
    pad = (new - old) // 2
    return {name: torch.nn.functional.pad(value, (pad, pad, pad, pad))
            if name.startswith("memory.") and name.endswith(".weight") else value
            for name, value in state.items()}


def resume_from_checkpoint(run: Run) -> None:
    """Model, optimiser, scaler, RNG states, step and last validation of the run's checkpoint,
    if its config describes the same run (RESUME_MAY_CHANGE may differ)."""
    path, trainee = run.checkpoint_path, run.trainee
    if not path.exists():
        raise StartError(f"--resume but no checkpoint at {path}")
    state = load_checkpoint(path)
    saved = from_dict(state["config"]).to_dict()        # in today's keys (older checkpoints: legacy keys)
    changed = [d for d in config_differences(saved, run.cfg.to_dict()) if d[0] not in RESUME_MAY_CHANGE]
    if changed:
        lines = "\n".join(f"  {k}: checkpoint {a!r}, now {b!r}" for k, a, b in changed)
        raise StartError(f"the config differs from the checkpoint's in keys that change the run:\n{lines}\n"
                         f"(only {', '.join(sorted(RESUME_MAY_CHANGE))} may change on --resume)")
    trainee.model.load_state_dict(state["model"])
    trainee.optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        trainee.scaler.load_state_dict(state["scaler"])
    set_rng_states(state["rng"])
    run.step, run.last_val = int(state["step"]), dict(state.get("val") or {})
    if run.procs.master:
        print(f"ram-train: resumed {path} at step {run.step} (commit {state.get('commit')})", file=sys.stderr)


def open_outputs(run: Run, resume: bool) -> MetricsLog:
    """Rank 0: the run folder, its config.yaml and metrics log; the run's summary line."""
    cfg = run.cfg
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "config.yaml").write_text(dump_yaml(cfg))
    log = MetricsLog(run.run_dir / "metrics.csv", run.step if resume else None)
    n_train = sum(p.numel() for p in run.trainee.params)
    print(f"ram-train: {cfg.train.name}: {cfg.loss.variant}, {cfg.data.kind} {cfg.data.image_size[0]}x"
          f"{cfg.data.image_size[1]} x {cfg.data.clip_length} frames, batch {cfg.data.batch_size} on "
          f"{run.procs.world} x {run.procs.device.type}, {n_train / 1e6:.2f} M trainable parameters, "
          f"commit {run.commit}", file=sys.stderr)
    return log


def train_loop(run: Run, train_loader, val_loader, log: MetricsLog | None, console: Console) -> None:
    """Steps until train.steps: each step trains, then logs, validates and checkpoints when due.
    Only rank 0 logs, validates and saves; with DDP the others wait for it at a barrier."""
    cfg, procs = run.cfg, run.procs
    batches = iter(train_loader)
    window = LogWindow()
    while run.step < cfg.train.steps:
        lr = lr_at(run.step, cfg)
        micro_losses, grad_norm = train_step(run.trainee, batches, lr, cfg, procs)
        run.step += 1
        window.add(micro_losses)
        console.stepped(micro_losses[-1]["total"])
        last = run.step == cfg.train.steps
        row = {}
        if run.step % cfg.train.log_interval == 0 or last:
            row.update(log_losses(run, window, lr, grad_norm, console))
        val_due = cfg.data.val_clips > 0 and ((cfg.train.val_interval and run.step % cfg.train.val_interval == 0)
                                              or last)
        if val_due and val_loader is not None:             # rank 0 only (val_loader is None elsewhere)
            row.update(validate_now(run, val_loader, window, console))
        if log is not None and row:
            log.write(row)
        save_due = (cfg.train.checkpoint_interval and run.step % cfg.train.checkpoint_interval == 0) or last
        if procs.master and save_due:
            save_checkpoint(run.checkpoint_path, checkpoint_state(run))
        if procs.world > 1 and (val_due or save_due):
            dist.barrier()                               # rank 0 validated / saved: the others wait for it


def train_step(trainee: Trainee, batches, lr: float, cfg: TrainConfig, procs: Processes):
    """One optimiser step over this rank's accum_steps micro-batches. Returns each micro-batch's
    loss terms (floats) and the gradient norm before clipping."""
    accum = cfg.optim.accum_steps
    for group in trainee.optimizer.param_groups:
        group["lr"] = lr
    micro_losses = []
    for micro in range(accum):
        batch = to_device(next(batches), procs.device)
        H, W = batch["images"].shape[-2:]
        grid = trainee.model.node_grid(H, W)
        sync = micro == accum - 1 or procs.world == 1    # DDP averages the gradients once, at the last
        with (contextlib.nullcontext() if sync else trainee.ddp_model.no_sync()):
            with trainee.autocast():
                outputs = trainee.ddp_model(batch["images"])
            outputs = {k: v.float() for k, v in outputs.items()}          # losses in fp32
            targets = build_targets(batch, cfg.model.num_classes, grid, cfg.loss, cfg.model.walk)
            losses = compute_losses(outputs, targets, cfg.loss, grid, cfg.model.walk)
            trainee.scaler.scale(losses["total"] / accum).backward()
        micro_losses.append({k: float(losses[k].detach()) for k in LOSS_TERMS})
    trainee.scaler.unscale_(trainee.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(trainee.params,
                                               cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
    trainee.scaler.step(trainee.optimizer)
    trainee.scaler.update()
    trainee.optimizer.zero_grad(set_to_none=True)
    return micro_losses, grad_norm


def log_losses(run: Run, window: LogWindow, lr: float, grad_norm, console: Console) -> dict:
    """The metrics row of a log step (the window's mean loss terms over all ranks, throughput);
    rank 0 prints it as one line."""
    cfg, world = run.cfg, run.procs.world
    means = window.means()
    if world > 1:                                # mean over ranks (the logged loss is the step's loss)
        t = torch.tensor([means[k] for k in LOSS_TERMS], device=run.procs.device)
        dist.all_reduce(t)
        means = {k: float(v) / world for k, v in zip(LOSS_TERMS, t)}
    seconds = time.time() - window.start
    clips_per_s = window.steps * cfg.data.batch_size / max(seconds, 1e-9)
    row = dict(step=run.step, lr=lr, grad_norm=float(grad_norm), clips_per_s=clips_per_s,
               frames_per_s=clips_per_s * cfg.data.clip_length, s_per_step=seconds / window.steps, **means)
    terms = " ".join(f"{k} {means[k]:.3f}" for k in LOSS_TERMS[1:])
    console.line(f"step {run.step}/{cfg.train.steps} | loss {means['total']:.4f} ({terms}) | lr {lr:.3g} | "
                 f"{clips_per_s:.2f} clips/s {row['frames_per_s']:.1f} frames/s | eta {console.eta(run.step)}")
    window.reset()
    return row


def validate_now(run: Run, val_loader, window: LogWindow, console: Console) -> dict:
    """Validation (rank 0): the row's val_* columns and one console line; its time does not
    count as training time in the throughput."""
    val_start = time.time()
    run.last_val = validate(run.trainee.model, val_loader, run.cfg, run.procs.device, run.trainee.autocast)
    v = run.last_val
    console.line(f"validation at step {run.step}: loss {v['val_loss']:.4f}, occluded localisation: walker "
                 f"{v['val_occl_walker_px']:.2f} px vs last seen {v['val_occl_last_seen_px']:.2f} px "
                 f"over {int(v['val_occl_frames'])} hidden frames ({time.time() - val_start:.1f} s)")
    window.start += time.time() - val_start
    return dict(step=run.step, **v)


def checkpoint_state(run: Run) -> dict:
    trainee, step = run.trainee, run.step
    return {"format": CHECKPOINT_FORMAT, "step": step, "model": trainee.model.state_dict(),
            "optimizer": trainee.optimizer.state_dict(),
            "scaler": trainee.scaler.state_dict() if trainee.scaler.is_enabled() else None,
            "schedule": {"kind": run.cfg.optim.schedule, "lr": lr_at(max(step - 1, 0), run.cfg)},
            "rng": rng_states(), "config": run.cfg.to_dict(), "commit": run.commit, "val": run.last_val}


def export_model(run: Run, seconds: float) -> None:
    """The final model in the deployable format (ram_tracker.checkpoint), beside the checkpoint."""
    path = write_weights(run.run_dir / "model.safetensors", run.trainee.model, run.cfg, run.step,
                         run.commit, run.last_val)
    print(f"ram-train: wrote {path} after {run.step} steps ({format_eta(seconds)})", file=sys.stderr)


def write_weights(path: Path, model, cfg: TrainConfig, step: int, commit: str, val) -> Path:
    info = {"name": cfg.train.name, "steps": step, "input_size": list(cfg.data.image_size),
            "config": cfg.to_dict(), "commit": commit, "val": val}
    return save_weights(path, model, info)


def export_checkpoint(cfg: TrainConfig) -> int:
    """`--export`: the run's last checkpoint as model.safetensors (the model trained so far; the
    checkpoint itself, needed to resume bit-identically, stays). The model is rebuilt from the
    checkpoint's own config, so overrides given here only name the run."""
    run_dir = run_dir_of(cfg)
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        print(f"ram-train: --export: no checkpoint at {path} (is train.name right?)", file=sys.stderr)
        return 2
    try:
        state = load_checkpoint(path)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"ram-train: --export: {error}", file=sys.stderr)
        return 2
    trained = from_dict(state["config"])
    model = build_model(trained.model)
    model.load_state_dict(state["model"])
    out = write_weights(run_dir / "model.safetensors", model.eval(), trained, state["step"],
                        state.get("commit", ""), state.get("val"))
    print(f"ram-train: wrote {out} from {path} (step {state['step']} of {trained.train.steps})",
          file=sys.stderr)
    return 0


def config_from_checkpoint(path) -> TrainConfig:
    """The TrainConfig a checkpoint was trained with (for tools that read runs)."""
    return from_dict(load_checkpoint(Path(path))["config"])


if __name__ == "__main__":
    sys.exit(main())

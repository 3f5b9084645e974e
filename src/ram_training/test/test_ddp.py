"""DDP: two CPU processes on gloo (started by torchrun, as on a cluster) compute the same losses,
gradient norms and weights as one process over the same global batch.

One step's global batch is cut into world_size x accum_steps micro-batches (train.py docstring),
so 2 processes with accum_steps 1 must match 1 process with accum_steps 2 exactly up to the
order of floating-point reductions.
"""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY_MODEL
from ram_tracker.checkpoint import load_weights

def config(tmp_path, world1, name, accum) -> Path:
    raw = {"data": dict(kind="world1", root=str(world1), train_split="train", val_split="val", clip_length=4,
                        image_size=[64, 64], batch_size=2, workers=0, val_clips=1, val_batch_size=1),
           "model": dict(TINY_MODEL),
           "loss": dict(overlap=False, overlap_weight=0.0),
           "optim": dict(lr=1.0e-4, accum_steps=accum, grad_clip=10.0),
           "train": dict(name=name, out_dir=str(tmp_path / "runs"), steps=3, log_interval=1, val_interval=0,
                         checkpoint_interval=2, progress=False)}
    path = tmp_path / f"train_{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def metrics(run: Path) -> list:
    with open(run / "metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["total"]]


def run(args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_gloo_processes_match_one_process(tmp_path, world1):
    ddp = config(tmp_path, world1, "ddp", accum=1)
    out = run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "ram_training.train", "--config", str(ddp)])
    assert "batch 2 on 2 x cpu" in out.stderr
    single = config(tmp_path, world1, "single", accum=2)
    run(["-m", "ram_training.train", "--config", str(single), "train.threads=1"])

    a, b = metrics(tmp_path / "runs" / "ddp"), metrics(tmp_path / "runs" / "single")
    assert [r["step"] for r in a] == [r["step"] for r in b] == ["1", "2", "3"]
    for ra, rb in zip(a, b):
        for key in ("total", "hm", "ram", "grad_norm"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=1e-4, abs=1e-6), (ra["step"], key)
    model_a, info_a = load_weights(tmp_path / "runs" / "ddp" / "model.safetensors")
    model_b, _ = load_weights(tmp_path / "runs" / "single" / "model.safetensors")
    assert info_a["steps"] == 3
    params_b = dict(model_b.named_parameters())
    worst = max(float((p.detach() - params_b[k].detach()).abs().max()) for k, p in model_a.named_parameters())
    print(f"\nddp vs single: max parameter difference {worst:.2e} after 3 steps")
    assert worst < 1e-5
    # only rank 0 wrote: one run folder with one of each file (one TensorBoard event file), no stray temp files
    files = sorted(p.name for p in (tmp_path / "runs" / "ddp").iterdir())
    events = [f for f in files if f.startswith("events.out.tfevents.")]
    assert len(events) == 1 and [f for f in files if f not in events] == \
        ["checkpoint.pt", "config.yaml", "metrics.csv", "model.safetensors"]
    assert torch.load(tmp_path / "runs" / "ddp" / "checkpoint.pt", weights_only=True)["step"] == 3

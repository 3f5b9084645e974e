"""Smoke training: a tiny model on a tiny generated World 1 for a few steps.

Loss falls; kill + --resume ends bit-identical to an uninterrupted run; a crash while saving
leaves the previous checkpoint readable; the exported safetensors loads in the tracker's loader;
each paper variant runs; the occluded-localisation metric matches the toy test's reference.
"""
import csv
import importlib.util
import math
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY_MODEL
from ram_tracker.checkpoint import load_weights
from ram_training import train
from ram_training.occlusion_metric import occluded_localisation
from ram_training.train_config import from_dict, load_config

def write_config(tmp_path, world1, name="tiny", **sections) -> Path:
    raw = {"data": dict(kind="world1", root=str(world1), train_split="train", val_split="val", clip_length=4,
                        image_size=[64, 64], batch_size=2, workers=0, val_clips=2, val_batch_size=2),
           "model": dict(TINY_MODEL),
           "loss": dict(overlap=False, overlap_weight=0.0),
           "optim": dict(lr=3e-3),
           "train": dict(name=name, out_dir=str(tmp_path / "runs"), steps=6, log_interval=1, val_interval=0,
                         checkpoint_interval=3, threads=1, progress=False)}
    for section, values in sections.items():
        raw[section].update(values)
    path = tmp_path / f"train_{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def read_metrics(run_dir: Path) -> list:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def losses_of(rows) -> list:
    return [float(r["total"]) for r in rows if r["total"]]


def train_killed_at(config_path, step: int, monkeypatch) -> None:
    """Run ram-train on config_path and kill it (KeyboardInterrupt) as step `step` starts."""
    real_lr_at = train.lr_at

    def dies(at, cfg):
        if at == step:
            raise KeyboardInterrupt("killed")
        return real_lr_at(at, cfg)

    monkeypatch.setattr(train, "lr_at", dies)
    with pytest.raises(KeyboardInterrupt):
        train.main(["--config", str(config_path)])
    monkeypatch.setattr(train, "lr_at", real_lr_at)


def test_smoke_training_loss_falls_and_exports(tmp_path, world1):
    path = write_config(tmp_path, world1, "smoke", train=dict(steps=16, checkpoint_interval=8))
    assert train.main(["--config", str(path)]) == 0
    run = tmp_path / "runs" / "smoke"
    rows = read_metrics(run)
    losses = losses_of(rows)
    assert len(losses) == 16 and all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    print(f"\nsmoke: loss {first:.3f} -> {last:.3f}")
    assert last < 0.8 * first
    assert all(float(r["clips_per_s"]) > 0 for r in rows if r["clips_per_s"])
    val = [r for r in rows if r["val_loss"]]                       # validation at the end
    assert len(val) == 1 and val[0]["step"] == "16" and math.isfinite(float(val[0]["val_loss"]))
    # the checkpoint loads safely (weights_only) and carries step, config, commit
    state = train.load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 16 and state["config"]["train"]["name"] == "smoke" and state["commit"]
    assert train.config_from_checkpoint(run / "checkpoint.pt") == load_config(path)
    # the deployable export: the tracker's loader rebuilds the same model
    model, info = load_weights(run / "model.safetensors")
    assert info["steps"] == 16 and info["name"] == "smoke" and "val_loss" in info["val"]
    assert tuple(model.cfg.class_names) == tuple(TINY_MODEL["class_names"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, state["model"][k]), k
    # a fresh start refuses to overwrite the run
    assert train.main(["--config", str(path)]) == 2


def test_kill_and_resume_is_bit_identical(tmp_path, world1, monkeypatch):
    straight = write_config(tmp_path, world1, "straight")
    assert train.main(["--config", str(straight)]) == 0

    killed = write_config(tmp_path, world1, "killed")
    train_killed_at(killed, 4, monkeypatch)             # 4 steps done, last checkpoint at 3
    run = tmp_path / "runs" / "killed"
    assert train.load_checkpoint(run / "checkpoint.pt")["step"] == 3
    assert len(read_metrics(run)) == 4 and not (run / "model.safetensors").exists()

    # a resume with a config that changes the run is refused; steps may change
    assert train.main(["--config", str(killed), "optim.lr=1.0e-3", "--resume"]) == 2
    assert train.main(["--config", str(killed), "--resume"]) == 0

    a = train.load_checkpoint(tmp_path / "runs" / "straight" / "checkpoint.pt")
    b = train.load_checkpoint(run / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # the log of the resumed run is the log of the straight run (the killed step-4 row dropped)
    rows_a, rows_b = read_metrics(tmp_path / "runs" / "straight"), read_metrics(run)
    assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a]
    assert losses_of(rows_b) == losses_of(rows_a)


def test_export_writes_the_unfinished_runs_model_and_resume_still_works(tmp_path, world1, monkeypatch):
    """--export: a run stopped mid-way hands over its model (deployable safetensors, the step it
    reached) without training or touching its checkpoint; no checkpoint: a clear refusal."""
    from ram_tracker.checkpoint import load_weights
    path = write_config(tmp_path, world1, "halfway")
    assert train.main(["--config", str(path), "--export"]) == 2             # nothing to export yet
    train_killed_at(path, 4, monkeypatch)                                   # last checkpoint at step 3
    run = tmp_path / "runs" / "halfway"
    before = (run / "checkpoint.pt").read_bytes()
    assert train.main(["--config", str(path), "--export"]) == 0
    assert (run / "checkpoint.pt").read_bytes() == before
    model, info = load_weights(run / "model.safetensors")
    assert info["steps"] == 3 and info["name"] == "halfway"
    saved = train.load_checkpoint(run / "checkpoint.pt")["model"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert len(read_metrics(run)) == 4                                      # nothing trained
    assert train.main(["--config", str(path), "--resume"]) == 0             # and it still resumes
    assert train.load_checkpoint(run / "checkpoint.pt")["step"] == 6


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoint.pt"
    good = {"format": train.CHECKPOINT_FORMAT, "step": 1, "model": {"w": torch.ones(3)}}
    train.save_checkpoint(path, good)

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        train.save_checkpoint(path, {**good, "step": 2})
    monkeypatch.undo()
    state = train.load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]      # no temp file left


# Saves a checkpoint whose torch.save stops half-way: "kill" SIGKILLs the process there (what a
# killed run leaves: its .checkpoint.pt.tmp<pid>), "hang" says so and waits (a run still saving).
HALF_SAVE = """
import os, signal, sys, time
from pathlib import Path
import torch
from ram_training import train
path, how = sys.argv[1:]
def half_save(obj, f, *args, **kwargs):
    f.write(b"PK\\x03\\x04 half a checkpoint")
    f.flush()
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    print("saving", flush=True)
    time.sleep(120)
torch.save = half_save
train.save_checkpoint(Path(path), {"step": 1})
"""


def test_a_killed_runs_temp_checkpoint_is_removed_and_a_live_runs_is_not(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "run" / "checkpoint.pt"

    def half_save(how):
        return subprocess.Popen([sys.executable, "-c", HALF_SAVE, str(path), how],
                                stdout=subprocess.PIPE, text=True)
    killed = half_save("kill")
    assert killed.wait(timeout=120) == -9
    dead_tmp = path.with_name(f".checkpoint.pt.tmp{killed.pid}")
    assert dead_tmp.is_file()
    live = half_save("hang")
    try:
        assert live.stdout.readline() == "saving\n"
        live_tmp = path.with_name(f".checkpoint.pt.tmp{live.pid}")
        before = live_tmp.read_bytes()
        train.save_checkpoint(path, {"format": train.CHECKPOINT_FORMAT, "step": 2})   # the next run
        assert not dead_tmp.exists()
        assert live_tmp.read_bytes() == before                  # still being written: untouched
        assert train.load_checkpoint(path)["step"] == 2
    finally:
        live.kill()
        live.wait()


class _NotATensor:
    pass


def test_checkpoint_loading_is_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": train.CHECKPOINT_FORMAT, "step": 0, "payload": _NotATensor()}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        train.load_checkpoint(path)


@pytest.mark.parametrize("variant", [
    dict(loss=dict(variant="no_walk")),
    dict(loss=dict(variant="supervised_invisible")),
    dict(model=dict(walk_local=False), loss=dict(label_smoothing=False, overlap=True, overlap_weight=50.0),
         optim=dict(frozen=["backbone"], schedule="step", drop_steps=[1], accum_steps=2, grad_clip=1.0)),
], ids=["no_walk", "supervised_invisible", "global_nosmooth_overlap_frozen"])
def test_variants_train(tmp_path, world1, variant):
    path = write_config(tmp_path, world1, "variant", train=dict(steps=2, checkpoint_interval=0),
                        data=dict(val_clips=0), **variant)
    assert train.main(["--config", str(path)]) == 0
    state = train.load_checkpoint(tmp_path / "runs" / "variant" / "checkpoint.pt")
    cfg = train.config_from_checkpoint(tmp_path / "runs" / "variant" / "checkpoint.pt")
    if cfg.optim.frozen == ["backbone"]:     # the frozen backbone did not move
        import ram_tracker.model as m
        torch.manual_seed(cfg.train.seed)
        init = m.build_model(cfg.model).state_dict()
        assert all(torch.equal(init[k], v) for k, v in state["model"].items() if k.startswith("backbone."))
        assert not all(torch.equal(init[k], v) for k, v in state["model"].items() if k.startswith("heads."))
    rows = read_metrics(tmp_path / "runs" / "variant")
    assert all(math.isfinite(x) for x in losses_of(rows))
    if cfg.loss.variant != "ram":
        assert all(float(r["ram"]) == 0.0 for r in rows)


def test_long_clip_finetuning_from_exported_weights(tmp_path, world1):
    """The paper's LA-CATER recipe: train, then fine-tune on longer clips with a frozen backbone."""
    first = write_config(tmp_path, world1, "first", train=dict(steps=2, checkpoint_interval=0), data=dict(val_clips=0))
    assert train.main(["--config", str(first)]) == 0
    weights = tmp_path / "runs" / "first" / "model.safetensors"
    second = write_config(tmp_path, world1, "second", train=dict(steps=2, checkpoint_interval=0, init_from=str(weights)),
                          data=dict(val_clips=0, clip_length=8), optim=dict(frozen=["backbone"]))
    assert train.main(["--config", str(second)]) == 0
    before, _ = load_weights(weights)
    after, info = load_weights(tmp_path / "runs" / "second" / "model.safetensors")
    b, a = before.state_dict(), after.state_dict()
    assert all(torch.equal(b[k], a[k]) for k in a if k.startswith("backbone."))   # BN statistics included
    assert not all(torch.equal(b[k], a[k]) for k in a if k.startswith("memory."))
    assert info["config"]["train"]["init_from"] == str(weights)
    # a model config that does not match the weights is refused; walk settings hold no weight
    assert train.main(["--config", str(second), "train.name=third", "model.head_channels=8"]) == 2
    assert train.main(["--config", str(second), "train.name=fourth", "model.walk_local=false"]) == 0


def test_lr_schedules():
    base = {"train": {"steps": 100}}
    cfg = from_dict({**base, "optim": {"lr": 1.0, "schedule": "step", "drop_steps": [10, 50], "drop_factor": 0.1}})
    assert [train.lr_at(s, cfg) for s in (0, 9, 10, 49, 50, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    cfg = from_dict({**base, "optim": {"lr": 1.0, "schedule": "cosine", "warmup_steps": 10, "min_lr_factor": 0.1}})
    assert train.lr_at(0, cfg) == pytest.approx(0.1) and train.lr_at(9, cfg) == pytest.approx(1.0)
    assert train.lr_at(10, cfg) == pytest.approx(1.0) and train.lr_at(100, cfg) == pytest.approx(0.1)
    cfg = from_dict({**base, "optim": {"lr": 0.5}})
    assert {train.lr_at(s, cfg) for s in range(100)} == {0.5}


def test_occlusion_metric_matches_the_toy_reference():
    """The trainer's metric equals the per-object loop of test_toy_permanence.occlusion_errors."""
    spec = importlib.util.spec_from_file_location("toy", Path(__file__).with_name("test_toy_permanence.py"))
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    from ram_tracker.model import ModelConfig, build_model
    from ram_training.losses import LossConfig
    torch.manual_seed(0)
    model = build_model(ModelConfig(class_names=("blob",), backbone_width=8, neck_channels=16, memory_channels=16,
                                    head_channels=16, embed_channels=16, embed_pool="none")).eval()
    clip = toy.make_clips(6, torch.Generator().manual_seed(5))
    cfg = LossConfig(variant="ram", overlap=False)
    ref_walker, ref_last = toy.occlusion_errors(model, clip, cfg)
    model.eval()
    with torch.no_grad():
        embed = model(clip["images"])["embed"]
    grid = model.node_grid(toy.H, toy.W)
    errors = occluded_localisation(embed, clip, grid, model.cfg.walk,
                                   cfg.vis_ignore, cfg.vis_no_label)
    assert errors.count > 0
    assert errors.walker_px == pytest.approx(ref_walker, rel=1e-5)
    assert errors.last_seen_px == pytest.approx(ref_last, rel=1e-5)
    assert errors.by_length == {} and 0 < errors.confidence <= 1
    # split by how long the walk has run: the buckets partition the same scored frames
    split = occluded_localisation(embed, clip, grid, model.cfg.walk,
                                  cfg.vis_ignore, cfg.vis_no_label, buckets=(1, 3, 10**9))
    assert split.count == errors.count and split.walker_px == pytest.approx(errors.walker_px)
    assert set(split.by_length) <= {1, 3, 10**9} and 1 in split.by_length
    assert sum(e.count for e in split.by_length.values()) == errors.count
    assert sum(e.walker_sum for e in split.by_length.values()) == pytest.approx(errors.walker_sum)
    assert sum(e.last_seen_sum for e in split.by_length.values()) == pytest.approx(errors.last_seen_sum)


def outputs_before_and_after_fine_tuning(tmp_path, world1, frozen, **sections):
    """Train 2 steps, fine-tune 2 more with optim.frozen = `frozen` (lr 1e-2, so what learns
    visibly moves); the outputs of both models on one random clip."""
    first = write_config(tmp_path, world1, "first", train=dict(steps=2, checkpoint_interval=0), data=dict(val_clips=0))
    assert train.main(["--config", str(first)]) == 0
    weights = tmp_path / "runs" / "first" / "model.safetensors"
    second = write_config(tmp_path, world1, "second", train=dict(steps=2, checkpoint_interval=0, init_from=str(weights)),
                          data=dict(val_clips=0, clip_length=8), optim=dict(frozen=frozen, lr=1e-2), **sections)
    assert train.main(["--config", str(second)]) == 0
    before, _ = load_weights(weights)
    after, _ = load_weights(tmp_path / "runs" / "second" / "model.safetensors")
    clip = torch.rand(1, 3, 3, 64, 64)
    with torch.no_grad():
        return before.eval()(clip), after.eval()(clip)


def test_frozen_detector_trains_only_the_walk_embedding(tmp_path, world1):
    """optim.frozen [backbone, memory, heads]: the walk learns on a fixed detector, so every detection head output
    of the result equals its start's, while the node embedding (what the walker reads) moves."""
    out_before, out_after = outputs_before_and_after_fine_tuning(tmp_path, world1, ["backbone", "memory", "heads"])
    for head in out_before:
        if head != "embed":
            assert torch.equal(out_before[head], out_after[head]), head
    assert not torch.allclose(out_before["embed"], out_after["embed"])


def test_a_walk_memory_starts_as_the_loaded_walker_and_learns_on_a_fixed_detector(tmp_path, world1, capsys):
    """model.walk_memory_channels from a model without one: the walk memory starts as a copy of
    its ConvGRU, so step 0 is the loaded model exactly (detections and node embeddings); with
    the detector frozen the detections stay the loaded model's while the embeddings learn. A
    walk memory of another width cannot start from that GRU and is refused."""
    first = write_config(tmp_path, world1, "first", train=dict(steps=2, checkpoint_interval=0),
                         data=dict(val_clips=0))
    assert train.main(["--config", str(first)]) == 0
    weights = tmp_path / "runs" / "first" / "model.safetensors"
    start, _ = load_weights(weights)
    from ram_tracker.model import build_model
    channels = start.cfg.memory_channels
    dual = build_model(start.cfg.from_dict({**start.cfg.to_dict(), "walk_memory_channels": channels})).eval()
    dual.load_state_dict(train.add_walk_memory(start.state_dict(), dual, start.cfg, str(weights))[0])
    clip = torch.rand(1, 5, 3, 64, 64)
    with torch.no_grad():
        a, b = start.eval()(clip), dual(clip)
    assert all(torch.equal(a[k], b[k]) for k in a)
    second = write_config(tmp_path, world1, "wm", train=dict(steps=2, checkpoint_interval=0, init_from=str(weights)),
                          data=dict(val_clips=0, clip_length=8), optim=dict(frozen=["backbone", "memory", "heads"], lr=1e-2),
                          model=dict(walk_memory_channels=channels))
    assert train.main(["--config", str(second)]) == 0
    assert "the walk memory a copy of its ConvGRU" in capsys.readouterr().err
    after, _ = load_weights(tmp_path / "runs" / "wm" / "model.safetensors")
    with torch.no_grad():
        c = after.eval()(clip)
    assert all(torch.equal(a[k], c[k]) for k in a if k != "embed")
    assert not torch.allclose(a["embed"], c["embed"])
    other = write_config(tmp_path, world1, "wm8", train=dict(steps=1, init_from=str(weights)),
                         data=dict(val_clips=0), model=dict(walk_memory_channels=channels // 2))
    assert train.main(["--config", str(other)]) == 2
    assert "must equal its memory_channels" in capsys.readouterr().err


def test_frozen_walker_trains_only_the_heads(tmp_path, world1):
    """optim.frozen [backbone, memory, embed]: the heads learn on a fixed memory, so the node
    embeddings (what the walker reads) are exactly the start's, while a head's output moves."""
    out_before, out_after = outputs_before_and_after_fine_tuning(tmp_path, world1, ["backbone", "memory", "embed"],
                                                                 loss=dict(variant="no_walk"))
    assert torch.equal(out_before["embed"], out_after["embed"])
    assert not torch.allclose(out_before["hm"], out_after["hm"])


@pytest.mark.parametrize("frozen, message", [
    (["backbone", "memory", "heads"], "needs train.init_from"),
    (["backbone", "gru"], "'gru' is not one of backbone, memory, walk_memory, heads, embed"),
    (["backbone", "memory", "heads", "embed"], "leaves nothing to train"),
    (["walk_memory"], "walk_memory: this model has none"),
])
def test_frozen_parts_are_checked(tmp_path, world1, capsys, frozen, message):
    path = write_config(tmp_path, world1, "bad", train=dict(steps=1), optim=dict(frozen=frozen))
    assert train.main(["--config", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_tensorboard_scalars_match_the_csv_after_a_kill_and_resume(tmp_path, world1, monkeypatch):
    """Every metrics.csv value is also a TensorBoard scalar (same name, same step); what the
    killed run logged after its checkpoint is gone from both."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    path = write_config(tmp_path, world1, "tb", train=dict(steps=4, checkpoint_interval=2))
    train_killed_at(path, 3, monkeypatch)               # steps 1-3 logged, last checkpoint at 2
    assert train.main(["--config", str(path), "--resume"]) == 0

    run = tmp_path / "runs" / "tb"
    assert len(list(run.glob("events.out.tfevents.*"))) == 2          # one per process that logged
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    rows = read_metrics(run)
    expected = {column: [(int(r["step"]), float(r[column])) for r in rows if r[column]]
                for column in train.CSV_COLUMNS if column != "step"}
    expected = {column: values for column, values in expected.items() if values}
    assert set(expected) >= {"total", "ram", "lr", "val_loss", "val_occl_walker_px"}
    assert sorted(events.Tags()["scalars"]) == sorted(expected)
    for column, values in expected.items():
        logged = [(e.step, e.value) for e in events.Scalars(column)]
        assert [s for s, _ in logged] == [s for s, _ in values], column        # step 3 once, not twice
        assert [v for _, v in logged] == pytest.approx([v for _, v in values], rel=1e-5, abs=1e-9, nan_ok=True), column


def test_a_terminal_gets_a_progress_bar_and_one_line_per_log_step(tmp_path, world1):
    """On a terminal: tqdm's bar (steps done, rate, the step's loss) and, above it, the same
    log lines as in a log file."""
    import fcntl
    import os
    import pty
    import re
    import struct
    import subprocess
    import sys
    import termios
    path = write_config(tmp_path, world1, "tty", train=dict(steps=4, log_interval=2, checkpoint_interval=0,
                                                            progress=True), data=dict(val_clips=0))
    terminal, child_end = pty.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))      # 40 rows, 120 columns
    process = subprocess.Popen([sys.executable, "-m", "ram_training.train", "--config", str(path)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child_end,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    os.close(child_end)
    output = b""
    try:
        while chunk := os.read(terminal, 4096):
            output += chunk
    except OSError:                                     # EIO: the child closed the terminal
        pass
    finally:
        os.close(terminal)
    assert process.wait(timeout=240) == 0, output.decode(errors="replace")[-3000:]
    text = output.decode()
    for step in (2, 4):                                  # whole lines, not overwritten by the bar
        assert re.search(rf"(^|[\r\n])step {step}/4 \| loss [0-9.]+ \(hm .*\| eta \S+\r?\n", text), text
    assert re.search(r"4/4 \[[^\]]*step/s, loss [0-9.]+\]", text), text


@pytest.mark.skipif(not train.cpu_supports_bf16(), reason="oneDNN has no bf16 path on this CPU")
def test_cpu_bf16_autocast_trains_when_asked(tmp_path, world1, monkeypatch):
    """train.amp_cpu: the model's forward runs under bf16 autocast on the CPU, the run trains and
    exports fp32 weights; without it the CPU forward runs in fp32."""
    from ram_tracker.model.ram_model import RAMModel
    autocast_dtypes = []
    real_forward = RAMModel.forward

    def spy(self, clip):
        autocast_dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu")
                               else torch.float32)
        return real_forward(self, clip)

    monkeypatch.setattr(RAMModel, "forward", spy)
    for name, amp_cpu, expected in (("bf16", True, torch.bfloat16), ("fp32", False, torch.float32)):
        autocast_dtypes.clear()
        path = write_config(tmp_path, world1, name, train=dict(steps=4, amp_cpu=amp_cpu))
        assert train.main(["--config", str(path)]) == 0
        assert autocast_dtypes and set(autocast_dtypes) == {expected}, name
        losses = losses_of(read_metrics(tmp_path / "runs" / name))
        assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
        model, _ = load_weights(tmp_path / "runs" / name / "model.safetensors")
        assert all(v.dtype == torch.float32 for v in model.state_dict().values() if v.is_floating_point())


def test_cpu_autocast_without_bf16_support_refuses_to_start(tmp_path, world1, monkeypatch, capsys):
    monkeypatch.setattr(train, "cpu_supports_bf16", lambda: False)
    path = write_config(tmp_path, world1, "nobf16", train=dict(amp_cpu=True))
    assert train.main(["--config", str(path)]) == 2
    assert "train.amp_cpu" in capsys.readouterr().err
    path = write_config(tmp_path, world1, "fp16", train=dict(amp_cpu=True, amp_dtype="fp16"))
    assert train.main(["--config", str(path)]) == 2
    assert "bf16" in capsys.readouterr().err


def test_init_from_a_smaller_gru_kernel_keeps_the_function_and_trains(tmp_path, world1, capsys):
    """The capacity test's start: 3x3 ConvGRU weights grown to the paper's 7x7 (zero taps) give
    the same outputs on a clip; the trainer starts from them and trains the new taps; a kernel
    that would shrink is refused."""
    first = write_config(tmp_path, world1, "k3", train=dict(steps=2, checkpoint_interval=0),
                         data=dict(val_clips=0))
    assert train.main(["--config", str(first)]) == 0
    weights = tmp_path / "runs" / "k3" / "model.safetensors"
    small, _ = load_weights(weights)
    grown_cfg = small.cfg.from_dict({**small.cfg.to_dict(), "memory_kernel": 7})
    from ram_tracker.model import build_model
    grown = build_model(grown_cfg).eval()
    grown.load_state_dict(train.grow_memory_kernel(small.state_dict(), 3, 7, str(weights)))
    clip = torch.rand(1, 5, 3, 64, 64)
    with torch.no_grad():
        a, b = small(clip), grown(clip)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    second = write_config(tmp_path, world1, "k7", train=dict(steps=2, checkpoint_interval=0, init_from=str(weights)),
                          data=dict(val_clips=0), model=dict(memory_kernel=7))
    assert train.main(["--config", str(second)]) == 0
    assert "zero-padded to 7x7" in capsys.readouterr().err
    after, _ = load_weights(tmp_path / "runs" / "k7" / "model.safetensors")
    gates = after.state_dict()["memory.gates.weight"]
    assert gates.shape[-2:] == (7, 7) and float(gates[..., 0, :].abs().sum()) > 0   # new taps learnt
    shrink = write_config(tmp_path, world1, "k1", train=dict(steps=2, init_from=str(tmp_path / "runs" / "k7" / "model.safetensors")),
                          data=dict(val_clips=0), model=dict(memory_kernel=3))
    assert train.main(["--config", str(shrink)]) == 2
    assert "cannot grow" in capsys.readouterr().err

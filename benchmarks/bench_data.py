"""Data generator benchmark: frames/s of World 1 and World 2, loader speed, dataset sizes and
occlusion-length distributions. Writes benchmarks/results/data.json (atomically) and data.md.

  PYTHONPATH=src/ram_training .venv/bin/python benchmarks/bench_data.py [--quick]

Speeds are given two ways: wall-clock (what you wait for on this machine, which other
processes may share) and per CPU-second of the generator processes (what one free core does).
The default-dataset estimates use the CPU figure with 2 workers on 2 free cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ram_training.data import clips, world_lacater as w1, world_street as w2
from ram_training.data.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (worker pools)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def bench_world1(tmp: Path, videos: int, workers: int, moving: bool) -> dict:
    cfg = w1.World1Config(moving_camera=moving)
    spec = w1.World1DatasetSpec(config=cfg, counts={"train": videos, "val": 0, "test": 0}, base_seed=100)
    out = tmp / f"w1_{'moving' if moving else 'static'}"
    summary, wall, cpu = timed(lambda: w1.generate_dataset(out, spec, workers=workers))
    frames = summary["all"]["frames"]
    return {"videos": videos, "frames": frames, "workers": workers, "moving_camera": moving,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "frames_per_s_wall": round(frames / wall, 1), "frames_per_cpu_s": round(frames / cpu, 1),
            "bytes_per_video": dir_bytes(out / "train") // videos,
            "frames_per_state": summary["all"]["frames_per_state"],
            "occlusion_runs": summary["all"]["occlusion_runs"], "path": out}


def bench_world2(tmp: Path, sequences: int, frames: int, width: int, height: int, workers: int) -> dict:
    cfg = w2.World2Config(width=width, height=height, min_frames=frames, max_frames=frames)
    out = tmp / f"w2_{width}x{height}"
    summary, wall, cpu = timed(lambda: w2.generate_dataset(out, w2.World2DatasetSpec(cfg, sequences, 100), workers=workers))
    n = summary["frames"]
    return {"sequences": sequences, "frames": n, "size": f"{width}x{height}", "workers": workers,
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "frames_per_s_wall": round(n / wall, 1), "frames_per_cpu_s": round(n / cpu, 1),
            "bytes_per_frame": dir_bytes(out) // n, "labels_per_frame": round(summary["labels"] / n, 1),
            "dontcare_per_frame": round(summary["dontcare"] / n, 1), "tracks": summary["tracks"],
            "occlusion_runs": summary["occlusion_runs"], "path": out}


def bench_loader(w1_root: Path, w2_root: Path) -> dict:
    videos = clips.world1_videos(w1_root, "train")
    video = videos[0].video
    start = time.perf_counter()
    for t in range(100):
        w1.render_frame(video, t)
    render_fps = 100 / (time.perf_counter() - start)
    ds1 = clips.ClipDataset(videos, clips.ClipConfig(clip_length=70), samples_per_epoch=4)
    start = time.perf_counter()
    for i in range(4):
        ds1[i]
    w1_clip_s = (time.perf_counter() - start) / 4
    ds2 = clips.ClipDataset(clips.kitti_videos(w2_root), clips.ClipConfig(clip_length=12, image_size=(640, 192)),
                            samples_per_epoch=4)
    start = time.perf_counter()
    for i in range(4):
        ds2[i]
    w2_clip_s = (time.perf_counter() - start) / 4
    return {"world1_rerender_frames_per_s": round(render_fps, 1),
            "world1_clip_70x320x240_s": round(w1_clip_s, 3),
            "world2_clip_12x1242x375_png_to_640x192_s": round(w2_clip_s, 3)}


def estimate_defaults(w1_static: dict, w2_full: dict) -> dict:
    """Default sizes (the CLI's defaults) and how long they take on 2 free cores."""
    w1_defaults = w1.World1DatasetSpec().counts
    w1_frames = sum(w1_defaults.values()) * w1.World1Config().num_frames
    w1_train_frames = w1_defaults["train"] * w1.World1Config().num_frames
    w2_seq = w2.World2DatasetSpec().num_sequences
    w2_cfg = w2.World2Config()
    w2_frames = w2_seq * (w2_cfg.min_frames + w2_cfg.max_frames) / 2
    return {
        "world1": {"counts": w1_defaults, "frames": w1_frames,
                   "minutes_on_2_cores_all_splits": round(w1_frames / (2 * w1_static["frames_per_cpu_s"]) / 60, 1),
                   "minutes_on_2_cores_train": round(w1_train_frames / (2 * w1_static["frames_per_cpu_s"]) / 60, 1),
                   "megabytes": round(sum(w1_defaults.values()) * w1_static["bytes_per_video"] / 1e6, 1)},
        "world2": {"sequences": w2_seq, "frames_expected": int(w2_frames),
                   "minutes_on_2_cores": round(w2_frames / (2 * w2_full["frames_per_cpu_s"]) / 60, 1),
                   "megabytes": round(w2_frames * w2_full["bytes_per_frame"] / 1e6, 1)},
    }


def markdown(results: dict) -> str:
    r = results
    lines = ["# Data generator benchmark", "",
             f"Machine: {r['machine']['cpus']} CPUs, {r['machine']['platform']}, load average at start "
             f"{r['machine']['load_at_start']} (other processes share the cores; per-CPU-second figures are "
             "what one free core does).", "",
             "| generator | frames | workers | wall s | frames/s wall | frames per CPU-s | size |",
             "|---|---|---|---|---|---|---|"]
    for key in ("world1_static", "world1_moving"):
        b = r[key]
        lines.append(f"| World 1 {'moving' if b['moving_camera'] else 'static'} 320x240 | {b['frames']} | {b['workers']} | "
                     f"{b['wall_s']} | {b['frames_per_s_wall']} | {b['frames_per_cpu_s']} | {b['bytes_per_video'] / 1e3:.1f} kB/video |")
    for key in ("world2_full", "world2_half"):
        b = r[key]
        lines.append(f"| World 2 {b['size']} (PNG) | {b['frames']} | {b['workers']} | {b['wall_s']} | "
                     f"{b['frames_per_s_wall']} | {b['frames_per_cpu_s']} | {b['bytes_per_frame'] / 1e3:.0f} kB/frame |")
    d = r["defaults"]
    lines += ["", "## Default datasets (CLI defaults) on 2 free cores", "",
              f"- World 1: {d['world1']['counts']} videos x 300 frames = {d['world1']['frames']} frames: "
              f"{d['world1']['minutes_on_2_cores_all_splits']} min for all splits "
              f"({d['world1']['minutes_on_2_cores_train']} min for train), {d['world1']['megabytes']} MB "
              "(scene scripts + annotations; frames are re-rendered on load).",
              f"- World 2: {d['world2']['sequences']} sequences, ~{d['world2']['frames_expected']} frames at 1242x375: "
              f"{d['world2']['minutes_on_2_cores']} min, ~{d['world2']['megabytes']} MB.", "",
              "## Loader", ""]
    lines += [f"- {k}: {v}" for k, v in r["loader"].items()]
    lines += ["", "## Occlusion lengths", "",
              "World 1: runs of consecutive frames in which the target is not visible (occluded, contained or carried).", ""]
    for key in ("world1_static", "world1_moving"):
        o = r[key]["occlusion_runs"]
        lines.append(f"- {key}: {o['count']} runs, histogram (frames) {o['histogram_frames']}, median {o['median_frames']}, "
                     f"max {o['max_frames']}, longer than 2 s: {o['longer_than_2s']}; frames per state {r[key]['frames_per_state']}")
    o = r["world2_full"]["occlusion_runs"]
    lines += ["", "World 2: full occlusions (object in view, below the label threshold, between two labelled frames).", "",
              f"- world2_full: {o['count']} runs, histogram (frames) {o['histogram_frames']}, mean {o['mean_frames']:.1f}, max {o['max_frames']}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer videos (a smoke run)")
    args = parser.parse_args()
    n1, n1m, n2, f2 = (4, 2, 2, 40) if args.quick else (16, 8, 4, 150)
    tmp = Path(tempfile.mkdtemp(prefix="ram_bench_data_"))
    try:
        results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                               "load_at_start": [round(x, 2) for x in os.getloadavg()]}}
        results["world1_static"] = bench_world1(tmp, n1, 2, moving=False)
        results["world1_moving"] = bench_world1(tmp, n1m, 2, moving=True)
        results["world2_full"] = bench_world2(tmp, n2, f2, 1242, 375, 2)
        results["world2_half"] = bench_world2(tmp, 2, 40, 621, 188, 2)
        results["loader"] = bench_loader(results["world1_static"]["path"], results["world2_full"]["path"])
        results["defaults"] = estimate_defaults(results["world1_static"], results["world2_full"])
        for key in ("world1_static", "world1_moving", "world2_full", "world2_half"):
            results[key].pop("path")
        results["quick"] = args.quick
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "data.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(RESULTS / "data.md", markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()

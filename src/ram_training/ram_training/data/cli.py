"""`ram-data`: generate the synthetic worlds, convert KITTI sequences to rosbag2, play bags.

  ram-data world1 data/world1 [--moving] [--train 200 --val 30 --test 30] [--frames none|png|jpg]
  ram-data world2 data/world2 [--sequences 21] [--width 1242 --height 375]
  ram-data stats data/world2            (KITTI layout: types, occlusion levels, label gaps)
  ram-data stats data/world1            (World 1: states and occlusion lengths)
  ram-data half-split data/kitti data/kitti_val_half [--half val_half]
  ram-data to-bag data/world2 0000 data/bags/0000 [--storage mcap|sqlite3] [--include-hidden]
  ram-data read-bag data/bags/0000
  ram-data play data/bags/0000 [--mode realtime|fast] [--rate 1.0]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _progress(label):
    start = time.monotonic()

    def report(done, total):
        rate = done / max(time.monotonic() - start, 1e-9)
        print(f"\r{label}: {done}/{total} ({rate:.1f}/s)", end="" if done < total else "\n", file=sys.stderr, flush=True)
    return report


def cmd_world1(args) -> int:
    from . import world_lacater as w1
    cfg = w1.World1Config(width=args.width, height=args.height, num_frames=args.num_frames,
                          moving_camera=args.moving)
    spec = w1.World1DatasetSpec(config=cfg, counts={"train": args.train, "val": args.val, "test": args.test},
                                base_seed=args.seed)
    start = time.monotonic()
    summary = w1.generate_dataset(Path(args.out), spec, workers=args.workers, frames=args.frames,
                                  progress=_progress("world1 videos"))
    seconds = time.monotonic() - start
    print(json.dumps({"out": args.out, "seconds": round(seconds, 1), "frames": summary["all"]["frames"],
                      "frames_per_second": round(summary["all"]["frames"] / seconds, 1),
                      "frames_per_state": summary["all"]["frames_per_state"],
                      "occlusion_runs": summary["all"]["occlusion_runs"]}, indent=2))
    return 0


def cmd_world2(args) -> int:
    from . import world_street as w2
    cfg = w2.World2Config(width=args.width, height=args.height, min_frames=args.min_frames,
                          max_frames=args.max_frames)
    spec = w2.World2DatasetSpec(config=cfg, num_sequences=args.sequences, base_seed=args.seed)
    start = time.monotonic()
    summary = w2.generate_dataset(Path(args.out), spec, workers=args.workers, progress=_progress("world2 sequences"))
    seconds = time.monotonic() - start
    print(json.dumps({"out": args.out, "seconds": round(seconds, 1), "frames": summary["frames"],
                      "frames_per_second": round(summary["frames"] / seconds, 1),
                      **{k: summary[k] for k in ("tracks", "labels", "dontcare", "hidden_rows", "occlusion_runs")}},
                     indent=2))
    return 0


def cmd_stats(args) -> int:
    root = Path(args.root)
    if (root / "world1.json").exists():
        from . import world_lacater as w1
        records = []
        for split in w1.SPLITS:
            for path in w1.list_videos(root, split):
                _, ann = w1.load_video(path)
                import numpy as np
                records.append({"split": split, "frames": len(ann.states),
                                "state_counts": np.bincount(ann.states, minlength=4).tolist(),
                                "occlusion_runs": w1.occlusion_runs(ann.states)})
        fps = json.loads((root / "world1.json").read_text())["config"]["fps"]
        out = {s: w1.summarize([r for r in records if r["split"] == s], fps) for s in w1.SPLITS}
    else:
        from . import kitti
        out = kitti.dataset_statistics(root, args.split)
    print(json.dumps(out, indent=2))
    return 0


def cmd_half_split(args) -> int:
    from . import kitti
    names = kitti.write_half_split_labels(args.root, args.out, args.half, args.split)
    print(f"wrote {args.half} labels of {len(names)} sequences to {args.out}")
    return 0


def cmd_to_bag(args) -> int:
    from . import rosbag_io
    config = rosbag_io.BagConfig(storage=args.storage, include_hidden=args.include_hidden, rate_hz=args.rate_hz)
    stats = rosbag_io.kitti_to_bag(args.root, args.sequence, args.bag, split=args.split, config=config,
                                   max_frames=args.max_frames)
    print(json.dumps(stats, indent=2))
    return 0


def cmd_read_bag(args) -> int:
    from . import rosbag_io
    frames = 0
    first = last = None
    tracks = 0
    shape = None
    for frame in rosbag_io.read_bag(args.bag):
        frames += 1
        first = frame.stamp_ns if first is None else first
        last = frame.stamp_ns
        tracks += len(frame.tracks or [])
        shape = frame.image.shape if frame.image is not None else shape
    print(json.dumps({"frames": frames, "topics": rosbag_io.topics_of(args.bag), "image_shape": shape,
                      "tracks": tracks, "first_stamp_ns": first, "last_stamp_ns": last,
                      "rate_hz": (frames - 1) / ((last - first) / 1e9) if frames > 1 and last != first else None},
                     indent=2))
    return 0


def cmd_play(args) -> int:
    from .player import PlayerConfig, play_bag
    config = PlayerConfig(mode=args.mode, rate=args.rate, topics=args.topics,
                          wait_for_subscribers_s=args.wait, extra_wait_s=args.extra_wait,
                          reliable=not args.best_effort)
    print(json.dumps(play_bag(args.bag, config), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import world_lacater as w1
    from . import world_street as w2
    parser = argparse.ArgumentParser(prog="ram-data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("world1", help="generate the LA-CATER-like permanence benchmark")
    p.add_argument("out")
    w1_counts, w1_cfg = w1.World1DatasetSpec().counts, w1.World1Config()
    p.add_argument("--train", type=int, default=w1_counts["train"])
    p.add_argument("--val", type=int, default=w1_counts["val"])
    p.add_argument("--test", type=int, default=w1_counts["test"])
    p.add_argument("--num-frames", type=int, default=w1_cfg.num_frames)
    p.add_argument("--width", type=int, default=w1_cfg.width)
    p.add_argument("--height", type=int, default=w1_cfg.height)
    p.add_argument("--moving", action="store_true", help="moving camera (LA-CATER-Moving)")
    p.add_argument("--frames", choices=["none", "png", "jpg"], default="none",
                   help="also write frame images (default: re-rendered from the scene script on load)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_world1)

    p = sub.add_parser("world2", help="generate the KITTI-like street benchmark (KITTI tracking layout)")
    p.add_argument("out")
    w2_cfg = w2.World2Config()
    p.add_argument("--sequences", type=int, default=w2.World2DatasetSpec().num_sequences)
    p.add_argument("--min-frames", type=int, default=w2_cfg.min_frames)
    p.add_argument("--max-frames", type=int, default=w2_cfg.max_frames)
    p.add_argument("--width", type=int, default=w2_cfg.width, help="smaller sizes scale the KITTI camera")
    p.add_argument("--height", type=int, default=w2_cfg.height)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_world2)

    p = sub.add_parser("stats", help="statistics of a World 1 dataset or a KITTI-layout dataset")
    p.add_argument("root")
    p.add_argument("--split", default="training")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("half-split", help="write label_02 files of one half (KITTI val protocol)")
    p.add_argument("root")
    p.add_argument("out")
    p.add_argument("--half", choices=["train_half", "val_half"], default="val_half")
    p.add_argument("--split", default="training")
    p.set_defaults(func=cmd_half_split)

    p = sub.add_parser("to-bag", help="convert a KITTI-format sequence to a rosbag2 bag")
    p.add_argument("root")
    p.add_argument("sequence")
    p.add_argument("bag")
    p.add_argument("--split", default="training")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    p.add_argument("--include-hidden", action="store_true", help="add hidden_02 objects as OCCLUDED tracks")
    p.add_argument("--rate-hz", type=float, default=10.0)
    p.add_argument("--max-frames", type=int, default=None)
    p.set_defaults(func=cmd_to_bag)

    p = sub.add_parser("read-bag", help="read a bag back as frames and summarise it")
    p.add_argument("bag")
    p.set_defaults(func=cmd_read_bag)

    p = sub.add_parser("play", help="publish a bag into the live ROS graph (rclpy)")
    p.add_argument("bag")
    p.add_argument("--mode", choices=["realtime", "fast"], default="realtime")
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--topics", nargs="*", default=None)
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for subscribers on every topic")
    p.add_argument("--extra-wait", type=float, default=3.0,
                   help="once one topic has a subscriber, wait at most this long for the others")
    p.add_argument("--best-effort", action="store_true")
    p.set_defaults(func=cmd_play)
    return parser


def main(argv=None) -> int:
    from .rosbag_io import BagError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BagError as error:           # the message names the bag file and what is wrong
        print(f"ram-data: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

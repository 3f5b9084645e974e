"""`make demo`: the tracker node, live over DDS, following a hidden object.

1. data: a World 1 (LA-CATER-like) test video in which the golden target is covered by a cone
   that then slides away with it (generated once, ~2 s, or reused);
2. the video converted to a rosbag2 bag (images, camera info, ground truth);
3. the installed tracker_node started with the shipped model (another process);
4. the bag replayed into it frame by frame (lockstep), its outputs recorded into a bag;
5. a summary (tracks, id switches of the target, frames/s, IoU while hidden) and a filmstrip
   of the node's debug images: demo_output/summary.json, demo_output/filmstrip.png.

    python -m ram_training.demo [--model models/world1_ram.safetensors] [--out demo_output]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from ram_training.node_process import start_node

# The repository (scripts/env.sh exports it; a --symlink-install build resolves to the source).
ROOT = Path(os.environ.get('RAM_ROS_ROOT') or Path(__file__).resolve().parents[3])
DEFAULT_MODEL = ROOT / 'models' / 'world1_ram.safetensors'
# World 1 test-split video with a containment + carry episode (seed chosen by looking at it).
DEMO_SEED = 7
STATE_NAMES = ('visible', 'occluded', 'contained', 'carried')


def demo_video(out: Path) -> Path:
    from ram_training.data import world_lacater
    folder = out / 'world1'
    videos = world_lacater.list_videos(folder, 'test')
    if videos:
        return videos[0]
    spec = world_lacater.World1DatasetSpec(config=world_lacater.World1Config(num_frames=240),
                                           counts={'train': 0, 'val': 0, 'test': 1},
                                           base_seed=DEMO_SEED)
    world_lacater.generate_dataset(folder, spec, workers=1)
    return world_lacater.list_videos(folder, 'test')[0]


def summarize(out_bag: Path, node_fps: float) -> tuple[dict, list]:
    """Target id switches and IoU per state from the recorded bag; debug frames for the strip."""
    from ram_training.data import rosbag_io
    from ram_training.evaluation.world1 import box_iou
    ids, ious, debug = [], {s: [] for s in STATE_NAMES}, []
    all_ids = set()
    for frame in rosbag_io.read_bag(out_bag):
        node_tracks = frame.messages.get('/tracks')
        truth = frame.messages.get('/ground_truth/tracks')
        if '/debug_image' in frame.messages:
            debug.append(rosbag_io.decode_image(frame.messages['/debug_image']))
        if node_tracks is None or truth is None:
            continue
        target = next((o for o in truth.tracks if o.class_id == 'target'), None)
        if target is None:
            continue
        gt = _xyxy(target)
        live = [o for o in node_tracks.tracks if o.class_id == 'target' and o.state != 2]
        all_ids.update(o.id for o in node_tracks.tracks)
        best = max(live, key=lambda o: o.score, default=None)
        iou = box_iou(_xyxy(best), gt) if best is not None else 0.0
        state = 'visible' if target.state == 0 else 'hidden'
        ious.setdefault(state, []).append(iou)
        if best is not None and iou > 0.1:
            ids.append(best.id)
    switches = sum(1 for a, b in zip(ids, ids[1:]) if a != b)
    summary = {'frames': sum(len(v) for v in ious.values()),
               'node_frames_per_s': round(node_fps, 1),
               'track_ids_published': len(all_ids),
               'target_ids': sorted(set(ids)), 'target_id_switches': switches,
               'target_iou_visible': _mean(ious.get('visible')),
               'target_iou_hidden': _mean(ious.get('hidden')),
               'hidden_frames': len(ious.get('hidden', []))}
    return summary, debug


def _xyxy(obj) -> np.ndarray:
    c = obj.bbox.center.position
    return np.array([c.x - obj.bbox.size_x / 2, c.y - obj.bbox.size_y / 2,
                     c.x + obj.bbox.size_x / 2, c.y + obj.bbox.size_y / 2])


def _mean(values):
    return round(float(np.mean(values)), 3) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default=str(DEFAULT_MODEL))
    parser.add_argument('--out', default=str(ROOT / 'demo_output'))
    args = parser.parse_args(argv)
    from ram_tracker.checkpoint import load_weights, trained_input_size
    from ram_tracker.ros_env import isolated_ros_env
    from ram_training.data import rosbag_io
    from ram_training.replay import ReplayConfig, replay_into_node
    from ram_tracker.visualize import filmstrip

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = Path(args.model)
    _, info = load_weights(model)          # fails here, clearly, if the model is missing/corrupt
    input_size = trained_input_size(info)
    if input_size is None:
        parser.error(f'{model} does not record its input size')
    started = time.time()
    video = demo_video(out)
    in_bag = out / 'input_bag'
    rosbag_io.world1_to_bag(video, in_bag)
    print(f'[demo] {video.name} -> {in_bag}')
    env = isolated_ros_env()
    os.environ.update({k: env[k] for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID',
                                           'FASTDDS_DEFAULT_PROFILES_FILE')})
    print(f'[demo] ROS_DOMAIN_ID={env["ROS_DOMAIN_ID"]}; node log: {out / "tracker_node.log"}')
    node = start_node(model, input_size, env, out / 'tracker_node.log')
    try:
        result = replay_into_node(in_bag, out / 'output_bag', ReplayConfig(
            node_namespace='', record=('tracks', 'belief', 'belief_grid', 'markers',
                                       'debug_image')))
    finally:
        node.terminate()
        node.wait(timeout=30)
    summary, debug = summarize(out / 'output_bag', result.node_fps)
    summary.update(model=str(model), video=video.name, missed_frames=len(result.missed_stamps),
                   wall_s=round(time.time() - started, 1))
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    if debug:
        picks = np.linspace(0, len(debug) - 1, 12).round().astype(int)
        strip = filmstrip([debug[i] for i in picks], columns=4, width=320)
        cv2.imwrite(str(out / 'filmstrip.png'), strip[:, :, ::-1])
    print(json.dumps(summary, indent=2))
    print(f'[demo] filmstrip: {out / "filmstrip.png"}; bags: {in_bag}, {out / "output_bag"}')
    return 0 if result.answered else 1


if __name__ == '__main__':
    sys.exit(main())

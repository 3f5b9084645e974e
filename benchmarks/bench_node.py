"""Node throughput and latency -> benchmarks/results/node.json (+ node.md).

For each case (CASES: a camera resolution and the network input), three processes as in
deployment: the installed tracker_node (2 threads, the default model of config/tracker.yaml
unless --model), image_publisher as a 30 Hz camera (a node slower than that skips to the newest
frame), and this script counting `tracks` answers and reading the node's /diagnostics. Cases:
  640x192                    640x192 camera, the network at its default input (the size the
                             weights were trained at: 640x192 for the shipped model)
  1242x375                   full KITTI camera, the network at its default input (the shipped
                             model: each frame resized to 640x192, as a user gets it)
  1242x375_input1280x384     full KITTI camera, the network at the paper's KITTI input 1280x384

  fps_<res>_cpu              tracks messages per second over the measuring window
  latency_ms_p50_<res>_cpu   image received -> tracks published, median (node diagnostics)
  e2e_ms_p50_<res>_cpu       image stamped by the publisher -> tracks received here, median
  stamp_age_ms_p50_<res>_cpu image stamped by the publisher -> the node's callback starts on it,
                             median (node diagnostics): the image's transport and its wait in
                             the depth-1 queue, the part of e2e before the node's latency
  frames_dropped_<res>_cpu   frames the node skipped to stay current (node diagnostics)
  (no suffix)                the torch backend
  ..._default                the node's default: backend auto, precision and everything else
                             from config/tracker.yaml; default_backend is what the node says it
                             picked (its /diagnostics `backend`), default_backend_log its
                             configure log line
  ..._onnxruntime            backend onnxruntime, fp32; when auto picked ONNX Runtime fp32 these
                             keys are that same run (not a second one)
  ..._onnxruntime_int8       backend onnxruntime, precision int8 (calibrated on
                             data/world2_640/training/image_02; only when that folder exists)

Frames come from the first sequence of a World 2 set rendered at the camera's size when one
exists (data/world2*/, `ram-data world2 --width W --height H`), else from the built-in
moving-shapes pattern; `source_<res>` says which. Run on an idle machine (make bench).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ram_tracker.atomic_write import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results'
# (label, camera resolution, network input). None: the node's default, the size the weights were
# trained at (640x192 for the shipped World 2 model: a full KITTI frame is resized to it, as a
# user with a 1242x375 camera and that model gets it). The third case runs the network at the
# paper's KITTI input 1280x384, what a model trained at that size would do.
CASES = [
    ('640x192', (640, 192), None),
    ('1242x375', (1242, 375), None),
    ('1242x375_input1280x384', (1242, 375), (1280, 384)),
]


def _world2_frames(size) -> str | None:
    """The first sequence of a World 2 set rendered at `size` (data/world2*/world2.json), test
    sets first (the tracker has not trained on them)."""
    metas = sorted((ROOT / 'data').glob('world2*/world2.json'),
                   key=lambda p: ('test' not in p.parent.name, p.parent.name))
    for meta in metas:
        config = json.loads(meta.read_text()).get('config', {})
        folder = meta.parent / 'training' / 'image_02' / '0000'
        if (config.get('width'), config.get('height')) == tuple(size) and folder.is_dir():
            return str(folder)
    return None


def _number(diag: dict, key: str) -> float | None:
    """A /diagnostics value as a number; None when the node had none ('n/a') or never sent it."""
    try:
        return float(diag[key])
    except (KeyError, ValueError):
        return None


def measure(label, camera, model_input, model, seconds, env, backend='torch',
            extra=(), suffix='') -> dict:
    """One run; keys end in _cpu + suffix (the torch run: no suffix). Also returns, under
    '_picked' and '_log', the backend the node reports and its configure log line."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.time import Time

    from ram_msgs.msg import TrackedObjectArray

    lib = ROOT / 'install' / 'ram_tracker' / 'lib' / 'ram_tracker'
    params = ROOT / 'install' / 'ram_tracker' / 'share' / 'ram_tracker' / 'config' / 'tracker.yaml'
    node_cmd = [str(lib / 'tracker_node'), '--ros-args', '--params-file', str(params),
                *(('-p', f'input_width:={model_input[0]}', '-p', f'input_height:={model_input[1]}')
                  if model_input else ()),
                '-p', 'device:=cpu', '-p', f'backend:={backend}', '-p', 'num_threads:=2',
                '-p', 'publish_debug_image:=false', *extra]
    if model:
        node_cmd += ['-p', f'model_path:={model}']
    source = _world2_frames(camera)
    pub_cmd = [str(lib / 'image_publisher'), '--ros-args', '-p', 'rate_hz:=30.0',
               '-p', f'source:={source or f"pattern:{camera[0]}x{camera[1]}"}']
    log = tempfile.TemporaryFile('w+')
    procs = [subprocess.Popen(node_cmd, env=env, stdout=log, stderr=subprocess.STDOUT),
             subprocess.Popen(pub_cmd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    rclpy.init()
    node = rclpy.create_node('bench_listener')
    arrivals, e2e, diag = [], [], {}

    def on_tracks(msg):
        now = node.get_clock().now()
        arrivals.append(time.monotonic())
        e2e.append((now - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6)

    def on_diag(msg):
        for status in msg.status:
            if 'tracker_node' in status.name:
                diag.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(TrackedObjectArray, 'tracks', on_tracks, 10)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    try:
        deadline = time.monotonic() + 180
        while len(arrivals) < 10 and time.monotonic() < deadline:   # start-up and warm-up
            rclpy.spin_once(node, timeout_sec=0.1)
        arrivals.clear()
        e2e.clear()
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            rclpy.spin_once(node, timeout_sec=0.1)
        # one more diagnostics message that covers the window
        seen = dict(diag)
        deadline = time.monotonic() + 3
        while diag == seen and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)
    fps = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    log.seek(0)
    configured = [line.strip() for line in log if ' backend ' in line]
    return {f'fps_{label}_cpu{suffix}': round(fps, 2),
            f'latency_ms_p50_{label}_cpu{suffix}': _number(diag, 'latency_ms_p50'),
            f'e2e_ms_p50_{label}_cpu{suffix}': round(statistics.median(e2e), 1) if e2e else None,
            f'stamp_age_ms_p50_{label}_cpu{suffix}': _number(diag, 'stamp_age_ms_p50'),
            f'frames_dropped_{label}_cpu{suffix}': int(diag.get('frames_dropped', 0)),
            '_picked': diag.get('backend', 'unknown'),
            '_log': configured[-1] if configured else ''}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='', help='weights (default: config/tracker.yaml)')
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--no-int8', action='store_true', help='skip the int8 runs')
    parser.add_argument('--only-default', action='store_true',
                        help='only the node default (backend auto) per case: quick A/B runs of models')
    parser.add_argument('--out', default=str(RESULTS),
                        help='folder for node.json and node.md (default benchmarks/results)')
    args = parser.parse_args()
    out = Path(args.out)
    sys.path[:0] = [str(ROOT / 'src' / 'ram_tracker')]
    from ram_training.ros_env import isolated_ros_env
    env = isolated_ros_env()
    os.environ.update({k: env[k] for k in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID',
                                           'FASTDDS_DEFAULT_PROFILES_FILE')})
    results = {'machine': f'{platform.processor() or platform.machine()}, '
                          f'{os.cpu_count()} cores', 'threads': 2,
               'backend': 'torch (keys without suffix); the node default (backend auto): keys '
                          'ending _default; onnxruntime fp32 / int8: _onnxruntime / '
                          '_onnxruntime_int8',
               'model': args.model or 'config/tracker.yaml default'}
    calibration = ROOT / 'data' / 'world2_640' / 'training' / 'image_02'
    for label, camera, model_input in CASES:
        wanted = f'{model_input[0]}x{model_input[1]}' if model_input else 'the trained size'
        print(f'[bench node] {label}: camera {camera[0]}x{camera[1]}, network input {wanted} ...',
              flush=True)
        if not args.only_default:
            torch_run = measure(label, camera, model_input, args.model, args.seconds, env)
            torch_run.pop('_picked'), torch_run.pop('_log')
            results.update(torch_run)
        results[f'camera_{label}'] = f'{camera[0]}x{camera[1]}'
        frames = _world2_frames(camera)
        results[f'source_{label}'] = (str(Path(frames).relative_to(ROOT)) if frames
                                      else 'pattern')
        default = measure(label, camera, model_input, args.model, args.seconds, env,
                          backend='auto', suffix='_default')
        picked, configured = default.pop('_picked'), default.pop('_log')
        results.update(default)
        results['default_backend'] = picked
        results[f'default_backend_log_{label}'] = configured
        # what the node ran at, from its configure line ("..., input 640x192, ...")
        ran = re.search(r'input (\d+x\d+)', configured)
        results[f'model_input_{label}'] = ran.group(1) if ran else wanted
        if args.only_default:
            continue
        if picked == 'onnxruntime' and ', fp32' in configured:
            # the default run is ONNX Runtime fp32: its numbers are the _onnxruntime keys too
            results.update({key.replace('_default', '_onnxruntime'): value
                            for key, value in default.items()})
        else:
            run = measure(label, camera, model_input, args.model, args.seconds, env,
                          backend='onnxruntime', extra=('-p', 'precision:=fp32'),
                          suffix='_onnxruntime')
            run.pop('_picked'), run.pop('_log')
            results.update(run)
        if calibration.is_dir() and not args.no_int8:
            run = measure(label, camera, model_input, args.model, args.seconds, env,
                          backend='onnxruntime', suffix='_onnxruntime_int8',
                          extra=('-p', 'precision:=int8',
                                 '-p', f'calibration_images:={calibration}'))
            run.pop('_picked'), run.pop('_log')
            results.update(run)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / 'node.json', json.dumps(results, indent=2) + '\n')
    lines = ['## Tracker node (2 CPU threads, camera publishing at 30 Hz)', '',
             '| camera | network input | backend | frames/s | node latency p50 (ms) | '
             'stamp-to-answer p50 (ms) | stamp to callback p50 (ms) | frames dropped |',
             '|---|---|---|---|---|---|---|---|']
    for label, _, _ in CASES:
        for backend, suffix in (('torch', ''),
                                (f'default (auto: {results["default_backend"]})', '_default'),
                                ('onnxruntime fp32', '_onnxruntime'),
                                ('onnxruntime int8', '_onnxruntime_int8')):
            if f'fps_{label}_cpu{suffix}' not in results:
                continue
            lines.append(f'| {results[f"camera_{label}"]} | {results[f"model_input_{label}"]} | '
                         f'{backend} | '
                         f'{results[f"fps_{label}_cpu{suffix}"]} | '
                         f'{results[f"latency_ms_p50_{label}_cpu{suffix}"]} | '
                         f'{results[f"e2e_ms_p50_{label}_cpu{suffix}"]} | '
                         f'{results.get(f"stamp_age_ms_p50_{label}_cpu{suffix}")} | '
                         f'{results.get(f"frames_dropped_{label}_cpu{suffix}")} |')
    lines += ['', f'Model: {results["model"]}. Measured by `make bench` (benchmarks/bench_node.py).',
              'The default row is the node started with `backend: auto` (what it picked: its '
              '/diagnostics `backend` and configure log line, in node.json); when that is ONNX '
              'Runtime fp32, the onnxruntime fp32 row is the same run. Runs are sequential: '
              'compare rows only from an idle machine.']
    atomic_write_text(out / 'node.md', '\n'.join(lines) + '\n')
    print(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

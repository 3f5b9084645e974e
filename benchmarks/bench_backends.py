"""Inference backends: frames/s and latency per backend and resolution
-> benchmarks/results/backends.json (+ backends.md).

The default model (ModelConfig(): ResNet-18-like, stride-4 neck, 3x3 ConvGRU, heads,
max-pooled node embeddings): the shipped World 2 weights (models/world2_ram.safetensors, this
architecture; the int8 graph needs real weights to calibrate) when present, else untrained
(fp32 speed does not depend on the weights), batch 1,
torch.set_num_threads(2) and ONNX Runtime intra-op threads 2. A "frame" is
StreamingModel.infer(frame, need_transition=False) on a frame of the camera's size: resize,
the backend's step (recurrent state carried), decode. Backends run in interleaved rounds so
that load from other processes on a shared machine hits them alike.

  fps_<backend>_<camera>_<cpu|gpu>             1 / mean frame time
  latency_ms_p50/p90_<backend>_<camera>_<..>   per-frame latency percentiles
  max_abs_diff_onnxruntime                     ONNX Runtime vs torch, every output and the
                                               state, 10 frames at 640x192
  cpu_ms_1thread_<backend>_<camera>            one thread, CPU time of the step (thread_time,
                                               best of N): a load-insensitive cross-check
  transition_core_ms_<camera>                  walk.transition in the tracking core (torch),
                                               one thread, CPU time, best of N
  transition_in_graph_ms_<camera>              extra CPU time of an ONNX graph that also
                                               computes the transition (export --with-transition)
                                               over the plain graph, one thread, best of N
  export_s_<camera>                            ONNX export time (what the first configure costs)
  ..._onnxruntime_int8_...                     ONNX Runtime on the static int8 graph
                                               (inference/quantize.py), calibrated on World 2
                                               frames (data/world2_640); measured in the same
                                               interleaved rounds as fp32
  speedup_int8_<camera>_cpu                    fps int8 / fps fp32 (ONNX Runtime, 2 threads)
  cpu_speedup_int8_<camera>                    the same from one-thread CPU times
  model_gflop_<camera>                         the step's FLOPs (2 x multiply-adds of every
                                               Conv/MatMul/Gemm of the fp32 ONNX graph)
  gemm_peak_gflops_cpu, _1thread               fp32 peak of this machine: the best large sgemm
                                               (torch.mm 2048^3, 2 threads wall / 1 thread CPU
                                               time), measured before each case
  gflops_onnxruntime_<camera>_cpu              model_gflop / frame p50 (2 threads; the frame also
                                               resizes and decodes, so a lower bound)
  gflops_1thread_onnxruntime_<camera>          model_gflop / one-thread step CPU time
  peak_fraction_..._<camera>                   achieved / gemm peak at the same thread count

`--int8-parity` instead scores the shipped World 2 model on the World 2 test set
(data/world2_test) with ram-eval's offline path (walker) twice - ONNX Runtime fp32 and int8 -
and writes benchmarks/results/int8_parity.{json,md}: car/pedestrian HOTA, DetA, AssA, MOTA,
IDF1, Track AP and the hidden-object error of each, and the int8 - fp32 differences.

The camera 1242x375 (KITTI) runs the model at 1280x384, the paper's KITTI input. On a machine
with CUDA, torch on CUDA and (with the tensorrt package) TensorRT FP16 are measured too
(fps_tensorrt_1242x375_gpu). Run on an idle machine: `make bench` or
`python benchmarks/bench_backends.py [--quick]`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ram_tracker.atomic_write import atomic_write_text
from ram_tracker.checkpoint import load_weights
from ram_tracker.inference import export, tensorrt_available
from ram_tracker.inference.quantize import ensure_int8_onnx
from ram_tracker.inference.onnxruntime_backend import OnnxRuntimeBackend
from ram_tracker.inference.torch_backend import TorchBackend
from ram_tracker.model import ModelConfig, build_model
from ram_tracker.pipeline import StreamingModel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results'
CASES = [('640x192', (640, 192), (640, 192)),       # (camera label, camera size, model input)
         ('1242x375', (1242, 375), (1280, 384))]
THREADS = 2


def cpu_busy_counters() -> tuple[int, int]:
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v)                        # idle + iowait, total


def wait_for_quiet(max_wait_s: float = 30.0, idle: float = 0.8) -> float:
    """The machine may be shared: wait (bounded) until the CPUs are mostly idle."""
    deadline = time.time() + max_wait_s
    while True:
        i0, t0 = cpu_busy_counters()
        time.sleep(1.0)
        i1, t1 = cpu_busy_counters()
        measured = (i1 - i0) / max(t1 - t0, 1)
        if measured >= idle or time.time() > deadline:
            return measured


def frames(camera, n=8, seed=0):
    rng = np.random.default_rng(seed)
    w, h = camera
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def time_rounds(streams: dict, images, rounds: int, per_round: int) -> dict:
    """Interleaved rounds: each backend does `per_round` frames per round."""
    times = {name: [] for name in streams}
    for stream in streams.values():                  # warm-up (first frames allocate)
        for image in images[:2]:
            stream.infer(image, need_transition=False)
    k = 0
    for _ in range(rounds):
        for name, stream in streams.items():
            for _ in range(per_round):
                image = images[k % len(images)]
                k += 1
                started = time.perf_counter()
                stream.infer(image, need_transition=False)
                if stream.device.type == 'cuda':
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - started)
    return times


def max_diff(model, onnx_path, size, n=10) -> float:
    a_b = TorchBackend(model, size, torch.device('cpu'))
    b_b = OnnxRuntimeBackend(onnx_path, model.cfg, size, THREADS)
    sa, sb = a_b.initial_state(), b_b.initial_state()
    worst = 0.0
    for i in range(n):
        torch.manual_seed(100 + i)
        image = torch.rand(1, 3, size[1], size[0])
        a, sa = a_b.step(image, sa)
        b, sb = b_b.step(image, sb)
        worst = max(worst, *(float((a[k] - b[k]).abs().max()) for k in a),
                    *(float((x - y).abs().max()) for x, y in zip(sa, sb)))
    return worst


def model_flops(onnx_path) -> float:
    """2 x multiply-adds of every Conv, MatMul and Gemm of an fp32 batch-1 graph (shapes
    inferred; the batch dimension is left unknown after Resize, so it is taken as 1)."""
    import onnx
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    g = proto.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(g.value_info) + list(g.input) + list(g.output)}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    flops = 0.0
    for node in g.node:
        if node.op_type == 'Conv':
            weight, out = shapes[node.input[1]], shapes[node.output[0]]
            flops += 2.0 * float(np.prod(out[1:])) * float(np.prod(weight[1:]))
        elif node.op_type in ('MatMul', 'Gemm'):
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            flops += 2.0 * float(np.prod([d or 1 for d in out])) * a[-1]
    return flops


def gemm_peak_gflops(threads: int, n: int = 2048, reps: int = 5) -> tuple[float, float]:
    """(best GFLOP/s of an n^3 sgemm with `threads` threads by wall time, best with one thread
    by CPU time): this machine's fp32 peak as a library reaches it."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    flops = 2.0 * n ** 3
    torch.mm(a, b)
    best_wall = best_cpu = float('inf')
    for nthreads in (threads, 1):
        torch.set_num_threads(nthreads)
        for _ in range(reps):
            wall, cpu = time.perf_counter(), time.thread_time()
            torch.mm(a, b)
            if nthreads == 1:
                best_cpu = min(best_cpu, time.thread_time() - cpu)
            else:
                best_wall = min(best_wall, time.perf_counter() - wall)
    torch.set_num_threads(threads)
    return flops / best_wall / 1e9, flops / best_cpu / 1e9


def summarize(results, key, times):
    """frames/s from the median frame time (robust to other processes' bursts)."""
    ms = np.array(times) * 1e3
    results[f'fps_{key}'] = round(1e3 / float(np.median(ms)), 2)
    results[f'latency_ms_p50_{key}'] = round(float(np.percentile(ms, 50)), 1)
    results[f'latency_ms_p90_{key}'] = round(float(np.percentile(ms, 90)), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='fewer frames (smoke run)')
    parser.add_argument('--gpu-only', action='store_true',
                        help='only the CUDA rows, written to backends_gpu.json/.md (a lent GPU '
                             'machine whose CPU numbers would not be this project\'s 2-core target)')
    parser.add_argument('--int8-parity', action='store_true',
                        help='tracking metrics of int8 vs fp32 on World 2 test (ram-eval, ~8 min)')
    args = parser.parse_args()
    if args.int8_parity:
        return int8_parity()
    if args.gpu_only and not torch.cuda.is_available():
        parser.error('--gpu-only: CUDA is not available on this machine')
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    weights = ROOT / 'models' / 'world2_ram.safetensors'
    calibration = ROOT / 'data' / 'world2_640' / 'training' / 'image_02'
    if weights.is_file():
        model, _ = load_weights(weights)
    else:
        weights, model = None, build_model(ModelConfig()).eval()
    results: dict = {}
    notes = []
    if not calibration.is_dir():
        notes.append(f'int8 not measured: no calibration frames in {calibration} '
                     '(`ram-data world2 --out data/world2_640`)')
    peaks = []
    cache = Path(tempfile.mkdtemp(prefix='ram_bench_onnx_'))
    idle_before = []
    i0, t0 = cpu_busy_counters()
    for label, camera, size in ([] if args.gpu_only else CASES):
        idle_before.append(round(wait_for_quiet(), 2))
        big = size[0] >= 1000
        rounds, per_round = (2, 2) if args.quick else ((4, 3) if big else (5, 5))
        started = time.perf_counter()
        path = export.export_step(model, cache / f'step_{label}.onnx', size)
        results[f'export_s_{label}'] = round(time.perf_counter() - started, 1)
        results[f'model_gflop_{label}'] = round(model_flops(path) / 1e9, 2)
        peaks.append(gemm_peak_gflops(THREADS))
        int8 = {}
        if calibration.is_dir():
            started = time.perf_counter()
            int8_path = ensure_int8_onnx(model, size, calibration, weights, num_threads=THREADS)
            results[f'int8_ready_s_{label}'] = round(time.perf_counter() - started, 1)
            int8 = {'onnxruntime_int8': OnnxRuntimeBackend(int8_path, model.cfg, size, THREADS,
                                                           'int8')}
        backends = {
            'torch': TorchBackend(model, size, torch.device('cpu')),
            # each TorchBackend runs its own BatchNorm-folded copy of the model
            'torch_channels_last': TorchBackend(model, size, torch.device('cpu'), channels_last=True),
            'onnxruntime': OnnxRuntimeBackend(path, model.cfg, size, THREADS),
            **int8,
        }
        streams = {name: StreamingModel(model, size, torch.device('cpu'), 0.4, backend=b)
                   for name, b in backends.items()}
        times = time_rounds(streams, frames(camera), rounds, per_round)
        for name, t in times.items():
            summarize(results, f'{name}_{label}_cpu', t)
        print(label, {k: v for k, v in results.items() if label in k and k.startswith('fps')},
              flush=True)
        # One thread, CPU time of the calling thread (time.thread_time): much less sensitive to
        # other processes than wall time. Per backend step, and the transition in the core
        # (walk.py, torch) vs in the graph (ONNX Runtime, export --with-transition).
        torch.set_num_threads(1)
        walk_path = export.export_step(model, cache / f'step_walk_{label}.onnx', size,
                                       with_transition=True)
        single = {'torch': backends['torch'],
                  'onnxruntime': OnnxRuntimeBackend(path, model.cfg, size, 1),
                  'onnxruntime_walk': OnnxRuntimeBackend(walk_path, model.cfg, size, 1)}
        if int8:
            single['onnxruntime_int8'] = OnnxRuntimeBackend(int8_path, model.cfg, size, 1, 'int8')
        reps = 3 if args.quick else (5 if big else 8)
        cpu = {name: [] for name in list(single) + ['transition_core']}
        states = {name: b.initial_state() for name, b in single.items()}
        image = torch.rand(1, 3, size[1], size[0])
        g = model.node_grid(size[1], size[0])
        q = [torch.nn.functional.normalize(torch.rand(1, model.cfg.embed_channels, g.height,
                                                      g.width), dim=1) for _ in range(2)]
        with torch.inference_mode():
            for r in range(reps + 1):                 # interleaved; the first round warms up
                for name, b in single.items():
                    started = time.thread_time()
                    _, states[name] = b.step(image, states[name])
                    if r:
                        cpu[name].append(time.thread_time() - started)
                started = time.thread_time()
                model.transition(*q)
                if r:
                    cpu['transition_core'].append(time.thread_time() - started)
        best = {name: min(v) * 1e3 for name, v in cpu.items()}
        for name in ('torch', 'onnxruntime', 'onnxruntime_int8'):
            if name in best:
                results[f'cpu_ms_1thread_{name}_{label}'] = round(best[name], 1)
        gflop = results[f'model_gflop_{label}']
        results[f'gflops_1thread_onnxruntime_{label}'] = round(gflop / best['onnxruntime'] * 1e3, 1)
        results[f'gflops_onnxruntime_{label}_cpu'] = round(
            gflop / results[f'latency_ms_p50_onnxruntime_{label}_cpu'] * 1e3, 1)
        if int8:
            results[f'speedup_int8_{label}_cpu'] = round(
                results[f'fps_onnxruntime_int8_{label}_cpu'] / results[f'fps_onnxruntime_{label}_cpu'], 2)
            results[f'cpu_speedup_int8_{label}'] = round(
                best['onnxruntime'] / best['onnxruntime_int8'], 2)
        results[f'transition_core_ms_{label}'] = round(best['transition_core'], 2)
        results[f'transition_in_graph_ms_{label}'] = round(
            best['onnxruntime_walk'] - best['onnxruntime'], 2)
        torch.set_num_threads(THREADS)
        if label == '640x192':
            results['max_abs_diff_onnxruntime'] = float(f'{max_diff(model, path, size):.3g}')
        del streams, backends, single
    if peaks:                  # the best of the measurements before each case
        results['gemm_peak_gflops_cpu'] = round(max(p[0] for p in peaks), 1)
        results['gemm_peak_gflops_1thread'] = round(max(p[1] for p in peaks), 1)
        for label, _, _ in CASES:
            results[f'peak_fraction_onnxruntime_{label}_cpu'] = round(
                results[f'gflops_onnxruntime_{label}_cpu'] / results['gemm_peak_gflops_cpu'], 3)
            results[f'peak_fraction_1thread_onnxruntime_{label}'] = round(
                results[f'gflops_1thread_onnxruntime_{label}'] / results['gemm_peak_gflops_1thread'], 3)

    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
        results['gpu'] = gpu
        ok, why = tensorrt_available()
        for label, camera, size in CASES:
            cuda = torch.device('cuda')
            gpu_model = build_model(model.cfg).eval()
            gpu_model.load_state_dict(model.state_dict())
            backends = {'torch': TorchBackend(gpu_model, size, cuda)}
            if ok:
                from ram_tracker.inference.tensorrt_backend import TensorRTBackend
                path16 = export.export_step(model, cache / f'step16_{label}.onnx', size, 'fp16')
                started = time.perf_counter()
                backends['tensorrt'] = TensorRTBackend(path16, model.cfg, size, cuda, 'fp16',
                                                       cache_directory=cache / 'trt')
                results[f'tensorrt_build_s_{label}'] = round(time.perf_counter() - started, 1)
            streams = {name: StreamingModel(model, size, cuda, 0.4, backend=b)
                       for name, b in backends.items()}
            times = time_rounds(streams, frames(camera), 5 if args.quick else 20, 10)
            for name, t in times.items():
                summarize(results, f'{name}_{label}_gpu', t)
            if ok:
                ref, trt_b = backends['torch'], backends['tensorrt']
                sa, sb = ref.initial_state(), trt_b.initial_state()
                worst = 0.0
                for i in range(10):
                    image = torch.rand(1, 3, size[1], size[0], device=cuda)
                    a, sa = ref.step(image, sa)
                    b, sb = trt_b.step(image, sb)
                    worst = max(worst, *(float((a[k] - b[k]).abs().max()) for k in a))
                results[f'max_abs_diff_tensorrt_fp16_{label}'] = float(f'{worst:.3g}')
            print(label, 'gpu', {k: v for k, v in results.items() if 'gpu' in k}, flush=True)
        if not ok:
            notes.append(f'TensorRT not measured: {why}')
    else:
        notes.append('No CUDA on this machine: GPU rows (torch CUDA, TensorRT FP16) not measured; '
                     'rerun `python benchmarks/bench_backends.py` on a GPU machine.')

    i1, t1 = cpu_busy_counters()
    meta = {'cpu_idle_before_cases': idle_before,
            # 2 threads busy on 2 cores = 0: anything above is others' load on this machine
            'cpu_idle_fraction_during_run': round((i1 - i0) / max(t1 - t0, 1), 3),
            'machine': platform.node(), 'cpu_count': os.cpu_count(), 'threads': THREADS,
            'torch': torch.__version__, 'load_average_1min': round(os.getloadavg()[0], 2),
            'quick': args.quick, 'notes': notes,
            'model': str(weights.relative_to(ROOT)) if weights else 'untrained ModelConfig()'}
    import onnxruntime
    meta['onnxruntime'] = onnxruntime.__version__
    write(results, meta, 'backends_gpu' if args.gpu_only else 'backends')
    print(json.dumps(results, indent=2))
    return 0


# The recorded int8 parity ran on these 5 sequences (make eval's whole test set until it grew).
INT8_PARITY_SEQUENCES = ('0000', '0001', '0002', '0003', '0004')


def int8_parity() -> int:
    """ram-eval (offline path, walker) of the shipped World 2 model with ONNX Runtime fp32 and
    int8 on data/world2_test, calibrated on data/world2_640 (the training street)."""
    import subprocess
    import sys
    data, calibration = ROOT / 'data' / 'world2_test', ROOT / 'data' / 'world2_640'
    weights = ROOT / 'models' / 'world2_ram.safetensors'
    for need in (data, calibration / 'training' / 'image_02', weights):
        if not need.exists():
            raise SystemExit(f'--int8-parity needs {need} (`ram-data world2`, see README)')
    out = Path(tempfile.mkdtemp(prefix='ram_int8_parity_'))
    results: dict = {}
    commands = {}
    for precision in ('fp32', 'int8'):
        command = [sys.executable, '-m', 'ram_training.evaluation.kitti_eval', '--data', str(data),
                   '--model', str(weights), '--out', str(out / precision), '--path', 'offline',
                   '--sequences', *INT8_PARITY_SEQUENCES,
                   '--methods', 'walker', '-p', 'backend=onnxruntime', '-p', f'precision={precision}',
                   '-p', f'calibration_images={calibration / "training" / "image_02"}',
                   '-p', f'num_threads={THREADS}']
        commands[precision] = ' '.join(command[1:])
        print('[int8 parity]', commands[precision], flush=True)
        subprocess.run(command, check=True)
        summary = json.loads((out / precision / 'summary.json').read_text())
        for cls, scores in summary['methods']['walker'].items():
            for metric, value in scores.items():
                results[f'{metric}_{cls}_{precision}'] = value
        results[f'hidden_error_px_{precision}'] = summary['occluded_localization_px']['walker']
    for key in [k for k in results if k.endswith('_int8')]:
        base = key[:-len('_int8')]
        if results.get(f'{base}_fp32') is not None and results[key] is not None:
            results[f'{base}_delta'] = round(results[key] - results[f'{base}_fp32'], 2)
    from ram_tracker.inference import quantize
    meta = {'data': 'data/world2_test (5 sequences, 601 frames, seed 2022)',
            'calibration': 'data/world2_640/training/image_02',
            'model': 'models/world2_ram.safetensors', 'quant_version': quantize.QUANT_VERSION,
            'commands': commands}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / 'int8_parity.json', json.dumps({**results, 'meta': meta}, indent=2) + '\n')
    lines = ['# int8 vs fp32 (ONNX Runtime), World 2 test, offline path, walker', '',
             f"Generated by `python benchmarks/bench_backends.py --int8-parity` (quantize.py "
             f"QUANT_VERSION {meta['quant_version']}, calibrated on {meta['calibration']}).", '',
             '| class | metric | fp32 | int8 | int8 - fp32 |', '|---|---|---|---|---|']
    for cls in ('car', 'pedestrian'):
        for metric in ('HOTA', 'DetA', 'AssA', 'MOTA', 'IDF1', 'TrackAP'):
            lines.append(f"| {cls} | {metric} | {results.get(f'{metric}_{cls}_fp32')} | "
                         f"{results.get(f'{metric}_{cls}_int8')} | "
                         f"{results.get(f'{metric}_{cls}_delta')} |")
    lines.append(f"| all | hidden-object error px | {results['hidden_error_px_fp32']} | "
                 f"{results['hidden_error_px_int8']} | {results.get('hidden_error_px_delta')} |")
    atomic_write_text(RESULTS / 'int8_parity.md', '\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


def write(results: dict, meta: dict, name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f'{name}.json', json.dumps({**results, 'meta': meta}, indent=2) + '\n')
    lines = ['# Inference backends (batch 1, default ResNet-18-like model)', '',
             f"Generated by `benchmarks/bench_backends.py` (torch {meta['torch']}, onnxruntime "
             f"{meta['onnxruntime']}, {meta['threads']} threads, {meta['cpu_count']} cores, "
             f"1-min load average at the end {meta['load_average_1min']}, CPU idle before the "
             f"cases {meta['cpu_idle_before_cases']}). A frame = resize + step + decode "
             '(StreamingModel.infer, no transition); frames/s = 1 / median frame time. 1242x375 '
             'runs the model at 1280x384 (the paper\'s KITTI input). The machine is shared: '
             'rerun on an idle one for final numbers.', '',
             '| backend | camera (model input) | device | frames/s | latency p50 ms | p90 ms |',
             '|---|---|---|---|---|---|']
    for key in sorted(k for k in results if k.startswith('fps_')):
        rest = key[len('fps_'):]
        backend, label, device = rest.rsplit('_', 2)
        size = dict((c[0], c[2]) for c in CASES)[label]
        lines.append(f'| {backend} | {label} ({size[0]}x{size[1]}) | {device} | {results[key]} | '
                     f"{results[f'latency_ms_p50_{rest}']} | {results[f'latency_ms_p90_{rest}']} |")
    if 'gpu' in results:
        lines += ['', f"GPU: {results['gpu']}."]
    if any(k.startswith('cpu_ms_') for k in results):          # absent with --gpu-only
        lines += cpu_time_rows(results)
    lines += [f'- {note}' for note in meta['notes']]
    atomic_write_text(RESULTS / f'{name}.md', '\n'.join(lines) + '\n')


def cpu_time_rows(results: dict) -> list[str]:
    lines = ['', 'One thread, CPU time of the calling thread (best of N; less sensitive to other '
              'load than wall time):', '',
              '| camera | torch step ms | onnxruntime step ms | transition in core (torch) ms | '
              'extra onnxruntime ms with the transition in the graph | ONNX export s |',
              '|---|---|---|---|---|---|']
    for label, _, _ in CASES:
        lines.append(f"| {label} | {results.get(f'cpu_ms_1thread_torch_{label}')} | "
                     f"{results.get(f'cpu_ms_1thread_onnxruntime_{label}')} | "
                     f"{results.get(f'transition_core_ms_{label}')} | "
                     f"{results.get(f'transition_in_graph_ms_{label}')} | "
                     f"{results.get(f'export_s_{label}')} |")
    lines += ['', f"max |onnxruntime - torch| (every output and the state, 10 frames, 640x192): "
              f"{results.get('max_abs_diff_onnxruntime')}"]
    if 'gemm_peak_gflops_cpu' in results:
        lines += ['', 'Distance to the fp32 peak (sgemm 2048^3 in the same run: '
                  f"{results['gemm_peak_gflops_cpu']} GFLOP/s with {THREADS} threads, "
                  f"{results['gemm_peak_gflops_1thread']} with one):", '',
                  '| camera | model GFLOP | onnxruntime GFLOP/s (2 threads, frame) | of peak | '
                  'GFLOP/s (1 thread, step CPU time) | of peak | int8 speed-up (2 threads / '
                  '1 thread CPU) |', '|---|---|---|---|---|---|---|']
        for label, _, _ in CASES:
            lines.append(f"| {label} | {results[f'model_gflop_{label}']} | "
                         f"{results[f'gflops_onnxruntime_{label}_cpu']} | "
                         f"{results[f'peak_fraction_onnxruntime_{label}_cpu']} | "
                         f"{results[f'gflops_1thread_onnxruntime_{label}']} | "
                         f"{results[f'peak_fraction_1thread_onnxruntime_{label}']} | "
                         f"{results.get(f'speedup_int8_{label}_cpu')} / "
                         f"{results.get(f'cpu_speedup_int8_{label}')} |")
        lines.append('')
    return lines


if __name__ == '__main__':
    raise SystemExit(main())

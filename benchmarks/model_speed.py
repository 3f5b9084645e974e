"""Cheaper models: the model step of ModelConfig variants against the default, ONNX Runtime on the
CPU, printed as JSON. docs/INFERENCE.md records the runs; not a bench_*.py, so make bench does not
run it (it writes no benchmarks/results file).

Each variant is ModelConfig() with a few fields changed (VARIANTS below), untrained (fp32 speed
does not depend on the weights), batch 1, at bench_backends' model inputs 640x192 and 1280x384.
Per variant and input:

  model_gflop_<variant>_<size>              2 x multiply-adds of every Conv/MatMul/Gemm of the
                                            exported step (bench_backends.model_flops)
  fps_<variant>_<size>, ms_p50_...          OnnxRuntimeBackend.step alone (no resize, no decode),
                                            2 intra-op threads, all variants in interleaved
                                            rounds so that other load hits them alike
  cpu_ms_1thread_<variant>_<size>           one thread, CPU time of the step (thread_time, best
                                            of N): the load-insensitive cross-check
  speedup_<variant>_<size>, cpu_speedup_... default time / the variant's time

Run on an idle machine: `python benchmarks/model_speed.py [--variants default slim ...]
[--sizes 640x192] [--quick]`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench_backends import THREADS, model_flops, wait_for_quiet
from ram_tracker.inference import export
from ram_tracker.inference.onnxruntime_backend import OnnxRuntimeBackend
from ram_tracker.model import ModelConfig, build_model

# name -> the ModelConfig fields that differ from the default
VARIANTS = {
    'default': {},                                               # ResNet-18 width 32, 48-ch neck/memory, 32-ch heads
    'efficientnet_lite0': {'backbone': 'efficientnet_lite0'},    # half the FLOPs, memory-bound on 2 cores
    'memory32': {'memory_channels': 32, 'head_channels': 24},     # cheaper ConvGRU and heads, same encoder
    'slim': {'backbone_width': 24, 'neck_channels': 32, 'memory_channels': 32, 'head_channels': 24},
}
SIZES = {'640x192': (640, 192), '1280x384': (1280, 384)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    parser.add_argument('--quick', action='store_true', help='fewer steps (smoke run)')
    args = parser.parse_args()
    names = ['default'] + [v for v in args.variants if v != 'default']
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    models = {name: build_model(dataclasses.replace(ModelConfig(), **VARIANTS[name])).eval() for name in names}
    cache = Path(tempfile.mkdtemp(prefix='ram_bench_model_'))
    results: dict = {'threads': THREADS, 'variants': {name: VARIANTS[name] for name in names}}
    for label in args.sizes:
        width, height = SIZES[label]
        results[f'idle_before_{label}'] = round(wait_for_quiet(), 2)
        paths = {name: export.export_step(model, cache / f'{name}_{label}.onnx', (width, height))
                 for name, model in models.items()}
        for name, path in paths.items():
            results[f'model_gflop_{name}_{label}'] = round(model_flops(path) / 1e9, 2)
        image = torch.rand(1, 3, height, width)
        rounds, per_round = (2, 3) if args.quick else (6, 10)
        for threads, key in ((THREADS, 'wall'), (1, 'cpu')):
            backends = {name: OnnxRuntimeBackend(path, models[name].cfg, (width, height), threads)
                        for name, path in paths.items()}
            states = {name: b.initial_state() for name, b in backends.items()}
            clock = time.perf_counter if key == 'wall' else time.thread_time
            times = {name: [] for name in backends}
            for r in range(rounds + 1):                  # interleaved; round 0 warms up
                for name, backend in backends.items():
                    for _ in range(per_round if key == 'wall' else 2):
                        started = clock()
                        _, states[name] = backend.step(image, states[name])
                        if r:
                            times[name].append(clock() - started)
            for name, t in times.items():
                if key == 'wall':
                    results[f'fps_{name}_{label}'] = round(1.0 / statistics.fmean(t), 1)
                    results[f'ms_p50_{name}_{label}'] = round(statistics.median(t) * 1e3, 1)
                else:
                    results[f'cpu_ms_1thread_{name}_{label}'] = round(min(t) * 1e3, 1)
        for name in names[1:]:
            results[f'speedup_{name}_{label}'] = round(
                results[f'fps_{name}_{label}'] / results[f'fps_default_{label}'], 2)
            results[f'cpu_speedup_{name}_{label}'] = round(
                results[f'cpu_ms_1thread_default_{label}'] / results[f'cpu_ms_1thread_{name}_{label}'], 2)
        print(label, {k: v for k, v in results.items() if label in k}, flush=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""ONNX export of the streaming step, and the ONNX file cache.

The graph is RAMModel.step for batch 1 at one input resolution (static shapes):

    inputs : image (1, 3, H, W) float32 RGB in [0, 1]
             memory_in (1, C, H/4, W/4) float32     the ConvGRU state M_{t-1}
    outputs: one per head (hm, wh, reg, tracking, visibility: (1, c, H/4, W/4) float32),
             embed (1, D, h, w) float32             node embeddings q_t (the walk's input)
             memory_out (1, C, H/4, W/4) float32    M_t, fed back as memory_in next frame

The recurrent state of the tracker is (memory, embed): the previous embeddings are only needed
by the transition, which runs in the tracking core (walk.py), so the default graph has no
embed_in input. `with_transition=True` adds embed_in and a `transition` output (the local
window values (1, N, K) of walk.SparseTransition) - kept for measurements, see
docs/INFERENCE.md for why the core computes it instead.

precision 'fp16' exports an FP16 graph (weights and activations half) whose inputs and outputs
stay FP32: the image and the recurrent state are cast inside the graph, so the state carried
between frames is FP32 (TensorRT >= 11 takes precision from the graph, there is no FP16
builder flag).

Exports use the TorchScript-based exporter (torch.onnx.export(..., dynamo=False)): the dynamo
exporter needs onnxscript, which this project does not depend on.

The ONNX cache: a file is keyed by the weights digest (config + every tensor), resolution,
precision and EXPORT_VERSION; it is looked up beside the weights file (what `ram-export`
writes by default) and in the cache directory ($RAM_ROS_CACHE, else $XDG_CACHE_HOME/ram_ros,
else ~/.cache/ram_ros), and exported into the cache directory when missing. Writes are atomic
(temporary file in the same folder + rename).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from ram_tracker.atomic_write import CACHE_LEFTOVER_AGE_S, atomic_path, remove_leftovers_of_dead_runs

EXPORT_FORMAT = 'ram-ros-step-onnx/1'
EXPORT_VERSION = 1            # bump when the graph's interface or contents change
OPSET = 17
PRECISIONS = ('fp32', 'fp16')
INPUT_IMAGE, INPUT_MEMORY, INPUT_EMBED = 'image', 'memory_in', 'embed_in'
OUTPUT_EMBED, OUTPUT_MEMORY, OUTPUT_TRANSITION = 'embed', 'memory_out', 'transition'


def head_names(cfg) -> list[str]:
    return sorted(cfg.heads())


def output_names(cfg, with_transition: bool = False) -> list[str]:
    names = head_names(cfg) + [OUTPUT_EMBED, OUTPUT_MEMORY]
    return names + [OUTPUT_TRANSITION] if with_transition else names


class StepGraph(nn.Module):
    """RAMModel.step with tensors in and out (what the exporter traces)."""

    def __init__(self, model, precision: str = 'fp32', with_transition: bool = False):
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision '{precision}' is not one of {PRECISIONS}")
        self.dtype = torch.float16 if precision == 'fp16' else torch.float32
        self.model = copy.deepcopy(model).to(self.dtype).eval() if precision == 'fp16' else model
        self.with_transition = with_transition
        self.names = output_names(model.cfg, with_transition)

    def forward(self, image, memory, prev_embed):
        state = (memory.to(self.dtype), prev_embed.to(self.dtype))
        out, (new_memory, _) = self.model.step(image.to(self.dtype), state,
                                               with_transition=self.with_transition)
        out[OUTPUT_MEMORY] = new_memory
        return tuple(out[name].float() for name in self.names)   # FP32 at the graph boundary


def weights_digest(model) -> str:
    """sha256 over the model config and every tensor of its state dict (names, dtypes, shapes,
    bytes): the same for a weights file and the model loaded from it, and defined for an
    in-memory (untrained) model too. Training-only config fields (ModelConfig.TRAINING_ONLY)
    are left out: they do not change the graph, so they must not invalidate cached exports."""
    config = {k: v for k, v in model.cfg.to_dict().items() if k not in model.cfg.TRAINING_ONLY}
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to('cpu').contiguous()
        h.update(f'{name}|{t.dtype}|{tuple(t.shape)}|'.encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16
                 else t.numpy().tobytes())
    return h.hexdigest()


def cache_dir() -> Path:
    if os.environ.get('RAM_ROS_CACHE'):
        return Path(os.environ['RAM_ROS_CACHE']).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(base) / 'ram_ros'


def onnx_file_name(digest: str, input_size: tuple[int, int], precision: str,
                   with_transition: bool = False) -> str:
    width, height = input_size
    walk = '_walk' if with_transition else ''
    return f'ram_step_{digest[:16]}_v{EXPORT_VERSION}_{width}x{height}_{precision}{walk}.onnx'


def beside_weights_path(weights_path: str | Path, input_size: tuple[int, int],
                        precision: str = 'fp32') -> Path:
    """Where `ram-export` puts the ONNX file of a weights file by default."""
    p = Path(weights_path)
    return p.with_name(f'{p.stem}.{input_size[0]}x{input_size[1]}.{precision}.onnx')


def read_metadata(path: str | Path) -> dict:
    """The metadata_props this module writes (without loading the weights into memory)."""
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def export_step(model, path: str | Path, input_size: tuple[int, int], precision: str = 'fp32',
                with_transition: bool = False, digest: Optional[str] = None) -> Path:
    """Export the step of `model` (any device; exported from a CPU copy) to `path`, atomically."""
    import onnx
    width, height = input_size
    if width % 32 or height % 32:
        raise ValueError(f'input {width}x{height}: width and height must be multiples of 32')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu_model = copy.deepcopy(model).to('cpu').float().eval()
    digest = digest or weights_digest(cpu_model)
    graph = StepGraph(cpu_model, precision, with_transition).eval()
    memory, prev_embed = cpu_model.initial_state(1, height, width)
    image = torch.rand(1, 3, height, width)
    with atomic_path(path, keep_suffix=True) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')          # tracer warnings about Python ints
            with torch.no_grad():
                torch.onnx.export(graph, (image, memory, prev_embed), tmp,
                                  input_names=[INPUT_IMAGE, INPUT_MEMORY, INPUT_EMBED],
                                  output_names=graph.names, opset_version=OPSET,
                                  do_constant_folding=True, dynamo=False)
        proto = onnx.load(tmp)
        metadata = {
            'format': EXPORT_FORMAT, 'export_version': str(EXPORT_VERSION),
            'weights_sha256': digest, 'input_width': str(width), 'input_height': str(height),
            'precision': precision, 'with_transition': str(bool(with_transition)).lower(),
            'model_config': json.dumps(cpu_model.cfg.to_dict()),
            'outputs': json.dumps(graph.names), 'torch_version': torch.__version__,
        }
        del proto.metadata_props[:]
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, tmp)
    return path


def matches(path: Path, digest: str, input_size: tuple[int, int], precision: str,
            with_transition: bool = False) -> bool:
    """Is `path` an export of these weights for this resolution and precision?"""
    try:
        meta = read_metadata(path)
    except Exception:                      # unreadable or truncated: not usable
        return False
    return (meta.get('format') == EXPORT_FORMAT
            and meta.get('export_version') == str(EXPORT_VERSION)
            and meta.get('weights_sha256') == digest
            and meta.get('input_width') == str(input_size[0])
            and meta.get('input_height') == str(input_size[1])
            and meta.get('precision') == precision
            and meta.get('with_transition') == str(bool(with_transition)).lower())


def ensure_onnx(model, input_size: tuple[int, int], precision: str = 'fp32',
                weights_path: str | Path | None = None, directory: str | Path | None = None,
                with_transition: bool = False, log=None) -> Path:
    """The ONNX file of `model` at `input_size`: beside the weights file (ram-export's default
    name) or in the cache directory if one there matches the weights digest, else exported into
    the cache directory now (a few seconds)."""
    digest = weights_digest(model)
    candidates = []
    if weights_path and not with_transition:
        candidates.append(beside_weights_path(weights_path, input_size, precision))
    target = Path(directory or cache_dir() / 'onnx') / onnx_file_name(
        digest, input_size, precision, with_transition)
    candidates.append(target)
    remove_leftovers_of_dead_runs(target.parent, f'.{target.name}.tmp', CACHE_LEFTOVER_AGE_S)
    for candidate in candidates:
        if candidate.is_file() and matches(candidate, digest, input_size, precision,
                                           with_transition):
            return candidate
    started = time.perf_counter()
    export_step(model, target, input_size, precision, with_transition, digest)
    if log:
        log(f'exported {target} in {time.perf_counter() - started:.1f} s')
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog='ram-export',
        description='Export the RAM streaming step (image + recurrent state in, head maps + '
                    'embeddings + new state out) to ONNX for one input resolution.')
    parser.add_argument('weights', nargs='?', default='',
                        help='weights file (.safetensors); empty: the untrained default model '
                             '(seed 0, for plumbing tests)')
    parser.add_argument('--width', type=int, default=640, help='model input width (x32)')
    parser.add_argument('--height', type=int, default=192, help='model input height (x32)')
    parser.add_argument('--precision', choices=PRECISIONS + ('int8',), default='fp32',
                        help='fp16: FP16 graph with FP32 image/state inputs and outputs '
                             '(for TensorRT); int8: statically quantized graph for ONNX Runtime '
                             '(quantize.py; needs --calibration)')
    parser.add_argument('--calibration', default='',
                        help='int8: folder of calibration frames (each sub-folder a sequence, '
                             'e.g. data/world2_640/training/image_02)')
    parser.add_argument('--with-transition', action='store_true',
                        help='also compute the walk transition in the graph (measurements only)')
    parser.add_argument('-o', '--output', default='',
                        help='output .onnx; default: beside the weights file as '
                             '<stem>.<W>x<H>.<precision>.onnx (found there by the node), or the '
                             'cache directory for the untrained model')
    parser.add_argument('--check', action='store_true',
                        help='run the file once with ONNX Runtime (CPU) and print the largest '
                             'difference to torch')
    args = parser.parse_args(argv)
    size = (args.width, args.height)
    if args.weights:
        from ram_tracker.checkpoint import load_weights
        model, _ = load_weights(args.weights)
    else:
        from ram_tracker.model import ModelConfig, build_model
        torch.manual_seed(0)
        model = build_model(ModelConfig()).eval()
    digest = weights_digest(model)
    if args.output:
        out = Path(args.output)
    elif args.weights and not args.with_transition:
        out = beside_weights_path(args.weights, size, args.precision)
    else:
        out = cache_dir() / 'onnx' / onnx_file_name(digest, size, args.precision,
                                                    args.with_transition)
    if args.precision == 'int8' and (args.with_transition or not args.calibration):
        parser.error('--precision int8 needs --calibration DIR and no --with-transition')
    started = time.perf_counter()
    try:
        if args.precision == 'int8':
            from ram_tracker.checkpoint import file_sha256
            from ram_tracker.inference.quantize import quantize_step
            fp32 = ensure_onnx(model, size, 'fp32', args.weights or None)
            quantize_step(model, fp32, out, size, args.calibration, digest,
                          file_sha256(args.weights) if args.weights else '')
        else:
            export_step(model, out, size, args.precision, args.with_transition, digest)
    except ValueError as error:
        print(f'ram-export: {error}', file=sys.stderr)
        return 2
    print(f'wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {args.precision}, '
          f'{size[0]}x{size[1]}) in {time.perf_counter() - started:.1f} s')
    if args.check:
        from ram_tracker.inference.onnxruntime_backend import OnnxRuntimeBackend
        from ram_tracker.inference.torch_backend import TorchBackend
        ort_backend = OnnxRuntimeBackend(out, model.cfg, size, precision=args.precision)
        torch_backend = TorchBackend(model, size, torch.device('cpu'))
        image = torch.rand(1, 3, size[1], size[0])
        a, _ = torch_backend.step(image, torch_backend.initial_state())
        b, _ = ort_backend.step(image, ort_backend.initial_state())
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        print(f'max |onnxruntime - torch| over all outputs, one frame: {diff:.2e}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

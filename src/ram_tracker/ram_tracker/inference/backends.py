"""One interface over the ways to run the model's streaming step, and the rules that pick one.

A StepBackend runs RAMModel.step for batch 1 at one input resolution:

    state = backend.initial_state()                  # (memory, embed) torch tensors, FP32
    outputs, state = backend.step(image, state)      # image (1, 3, H, W) float32 in [0, 1]
                                                     # on backend.device
    outputs: {head name: (1, c, H/4, W/4), 'embed': (1, D, h, w)} torch FP32 tensors on
    backend.device (CPU for ONNX Runtime, CUDA for TensorRT). state[1] is outputs['embed'].

Every backend speaks torch tensors at its boundary (ONNX Runtime's numpy arrays are wrapped
without a copy), so the tracking core (decode, walk transition, Tracker) is the same for all.
The transition between consecutive embeddings is not part of any backend: the core computes it
with walk.py when a track may walk (docs/INFERENCE.md has the measurement behind this).

Selection (node parameter `backend`, see select_backend):
  torch        eager PyTorch on the `device` (CPU: channels_last convolutions, measured
               faster; CUDA: default layout);
  onnxruntime  ONNX Runtime, CPU execution provider (device must be cpu or auto);
  tensorrt     TensorRT engine built from the FP16 ONNX graph on first use (needs CUDA and the
               tensorrt package); cached in <cache>/tensorrt;
  auto         tensorrt if the device is CUDA and tensorrt imports, else (CUDA) torch;
               on CPU: onnxruntime if it imports and the ONNX file exists or exports, else torch.
               A fallback is logged with its reason and shown in `describe()`.

Precision (node parameter `precision`): fp32, or int8 = ONNX Runtime running the statically
quantized graph of quantize.py (calibrated on `calibration_images`, cached). int8 needs a CPU
and backend onnxruntime or auto; with auto it does not fall back to fp32 (asked for, it is
either given or refused with the reason).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

BACKENDS = ('torch', 'onnxruntime', 'tensorrt', 'auto')
PRECISIONS = ('fp32', 'int8')      # int8: ONNX Runtime only (static QDQ, quantize.py)
State = tuple[torch.Tensor, torch.Tensor]


class BackendError(ValueError):
    """A backend that was asked for cannot run here; the message says why."""


class StepBackend:
    """Base class: subclasses set name, device, input_size, cfg and implement step()."""
    name: str = 'none'
    device: torch.device = torch.device('cpu')
    input_size: tuple[int, int]
    cfg = None                         # the ModelConfig (class names, heads, walk settings)
    reason: str = ''                   # why this backend was chosen (auto fallbacks)

    @property
    def device_name(self) -> str:
        if self.device.type == 'cuda':
            return f'{self.device} ({torch.cuda.get_device_name(self.device)})'
        return 'cpu'

    state_shapes: tuple[tuple[int, ...], tuple[int, ...]]   # (memory, embed), batch 1

    def initial_state(self) -> State:
        memory_shape, embed_shape = self.state_shapes
        return (torch.zeros(memory_shape, device=self.device),
                torch.zeros(embed_shape, device=self.device))

    def step(self, image: torch.Tensor, state: State) -> tuple[dict, State]:
        raise NotImplementedError

    def describe(self) -> str:
        return f'{self.name} on {self.device_name}' + (f' ({self.reason})' if self.reason else '')


def tensorrt_available() -> tuple[bool, str]:
    """(usable, reason if not): the tensorrt package imports and CUDA is present."""
    if not torch.cuda.is_available():
        return False, 'CUDA is not available'
    try:
        import tensorrt  # noqa: F401
    except ImportError as error:
        return False, f'the tensorrt package is not installed ({error})'
    return True, ''


def select_backend(name: str, model, input_size: tuple[int, int], device: torch.device, *,
                   num_threads: int = 0, weights_path: Optional[str | Path] = None,
                   precision: str = 'fp32', calibration_images: str | Path = '',
                   log: Optional[Callable[[str], None]] = None) -> StepBackend:
    """The backend `name` (one of BACKENDS) for `model` at `input_size` on `device`, at
    `precision` (one of PRECISIONS).

    Explicit names fail with BackendError when they cannot run; 'auto' falls back (see the
    module docstring) and records why in backend.reason.
    """
    from ram_tracker.inference.torch_backend import TorchBackend
    if name not in BACKENDS:
        raise BackendError(f"backend '{name}' is not one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise BackendError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    log = log or (lambda message: None)
    if precision == 'int8':
        if name not in ('onnxruntime', 'auto') or device.type != 'cpu':
            raise BackendError(f'precision int8 runs on backend onnxruntime (or auto) on the '
                               f'CPU, not backend {name} on device {device}: use '
                               f'backend:=onnxruntime device:=cpu, or precision:=fp32')
        return _onnxruntime(model, input_size, num_threads, weights_path, log, 'int8',
                            calibration_images)
    if name == 'torch':
        # channels_last on CPU: ~1.2-1.3x faster (benchmarks/results/backends.md)
        return TorchBackend(model, input_size, device, channels_last=device.type == 'cpu')
    if name == 'onnxruntime':
        if device.type != 'cpu':
            raise BackendError(f'backend onnxruntime runs on the CPU execution provider, but '
                               f'device is {device}: use device:=cpu (or auto without CUDA)')
        return _onnxruntime(model, input_size, num_threads, weights_path, log)
    if name == 'tensorrt':
        if device.type != 'cuda':
            raise BackendError(f'backend tensorrt needs a CUDA device, device is {device}')
        ok, why = tensorrt_available()
        if not ok:
            raise BackendError(f'backend tensorrt cannot run: {why}')
        return _tensorrt(model, input_size, device, weights_path, log)
    # auto
    if device.type == 'cuda':
        ok, why = tensorrt_available()
        if ok:
            try:
                return _tensorrt(model, input_size, device, weights_path, log)
            except Exception as error:          # build/parse problems: torch still works
                why = f'tensorrt failed: {error}'
        backend = TorchBackend(model, input_size, device)
        backend.reason = f'auto: {why}'
        log(f'backend auto -> torch on {device}: {why}')
        return backend
    try:
        return _onnxruntime(model, input_size, num_threads, weights_path, log)
    except Exception as error:                  # no onnxruntime / export failed
        backend = TorchBackend(model, input_size, device, channels_last=True)
        backend.reason = f'auto: onnxruntime unavailable ({error})'
        log(f'backend auto -> torch on cpu: {backend.reason}')
        return backend


def _onnxruntime(model, input_size, num_threads, weights_path, log, precision='fp32',
                 calibration_images=''):
    from ram_tracker.inference.export import ensure_onnx
    from ram_tracker.inference.onnxruntime_backend import OnnxRuntimeBackend
    try:
        import onnxruntime  # noqa: F401
    except ImportError as error:
        raise BackendError(f'backend onnxruntime: the onnxruntime package is not installed '
                           f'({error})') from error
    if precision == 'int8':
        from ram_tracker.inference.quantize import CalibrationError, ensure_int8_onnx
        try:
            path = ensure_int8_onnx(model, input_size, calibration_images, weights_path,
                                    num_threads=num_threads, log=log)
        except CalibrationError as error:
            raise BackendError(str(error)) from error
    else:
        path = ensure_onnx(model, input_size, 'fp32', weights_path, log=log)
    return OnnxRuntimeBackend(path, model.cfg, input_size, num_threads, precision)


def _tensorrt(model, input_size, device, weights_path, log):
    from ram_tracker.inference.export import ensure_onnx
    from ram_tracker.inference.tensorrt_backend import TensorRTBackend
    path = ensure_onnx(model, input_size, 'fp16', weights_path, log=log)
    return TensorRTBackend(path, model.cfg, input_size, device, precision='fp16', log=log)

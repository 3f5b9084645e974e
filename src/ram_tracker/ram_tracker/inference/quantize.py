"""Static int8 quantization of the exported step for ONNX Runtime (CPU).

QDQ format, int8 weights per output channel, uint8 activations calibrated (percentile of the
histogram, not min/max) on a folder of real frames that run through the fp32 graph in order, so
the recurrent memory seen in calibration is the one the tracker carries. Only the encoder (the
ResNet stages, ~40% of the FLOPs) is quantized; the neck, the ConvGRU (`/memory/...`), the heads
and the embeddings stay fp32, so memory_in / memory_out and the state carried between frames are
fp32 end to end (an int8 rounding of the state would compound frame after frame). Quantizing
more was faster and lost tracking quality on World 2 (docs/INFERENCE.md has each step).

The cache: `<cache>/onnx/ram_step_<weights digest>_v<EXPORT_VERSION>_<W>x<H>_int8.onnx` beside
the fp32 exports (export.py), or `<weights stem>.<W>x<H>.int8.onnx` beside the weights file
(`ram-export --precision int8 --calibration DIR`). A file is used when its metadata names the
same weights (export.weights_digest, a sha256 over the model config and every tensor; the
weights file's sha256 is recorded too), resolution and QUANT_VERSION, and - when a
calibration folder is given - the same calibration frames (sha256 over their names and bytes).
Writes are atomic.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ram_tracker.atomic_write import CACHE_LEFTOVER_AGE_S, atomic_path, remove_leftovers_of_dead_runs
from ram_tracker.inference import export
from ram_tracker.inference.backends import StepBackend

QUANT_VERSION = 1            # bump when the quantization recipe changes
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
# Calibration frames: up to this many, taken in order from each sub-folder (a sequence) so that
# the memory state evolves as in tracking; a flat folder is one sequence.
MAX_CALIBRATION_FRAMES = 96
FRAMES_PER_SEQUENCE = 32
# ONNX Runtime's histogram (percentile) calibration keeps every activation of every frame in
# memory: 96 frames at 1280x384 took over 22 GB and were OOM-killed. At most this many input
# pixels in all (96 frames at 640x192, 24 at 1280x384).
MAX_CALIBRATION_PIXELS = 96 * 640 * 192
# Node-name prefixes kept fp32 (RAMModel's modules as the exporter names them): the ConvGRUs
# (the recurrent state), the heads and embeddings (the graph's outputs) and the neck. Measured
# on World 2 test, car HOTA / Track AP int8 - fp32: everything but the ConvGRU -5.8 / -10.4
# (MinMax); + outputs' convs fp32 and percentile calibration -0.35 / -1.80; + heads and
# embeddings -0.29 / -0.83; + neck (this) +0.06 / -0.25, at 1.21x instead of 1.29x.
FP32_NODE_PREFIXES = ('/memory/', '/walk_memory/', '/heads/', '/embed/', '/backbone/neck/')
# Every op ONNX Runtime can quantize (Conv, Add, MaxPool, ...): a chain of int8 ops needs no
# DequantizeLinear/QuantizeLinear between them (1.32x vs 1.27x with Conv alone, one thread).
OPS_TO_QUANTIZE = None
WORK_PREFIX = '.ram_int8.tmp'  # calibration's work folder: WORK_PREFIX<pid>_<random>
CALIBRATION = 'Percentile'      # onnxruntime.quantization.CalibrationMethod


class CalibrationError(ValueError):
    """The calibration frames cannot be read; the message names the folder or file."""


def calibration_files(folder: str | Path, input_size: tuple[int, int]) -> list[list[Path]]:
    """The calibration frames of `folder` as sequences: each sub-folder holding images is one
    sequence (e.g. a KITTI `image_02` folder), else the folder itself. Sorted; at most
    FRAMES_PER_SEQUENCE per sequence, MAX_CALIBRATION_FRAMES and MAX_CALIBRATION_PIXELS (at
    the model's `input_size`) in all."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise CalibrationError(f'calibration_images: {root} is not a folder')

    def images(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    folders = [root] if images(root) else sorted(
        d for d in root.iterdir() if d.is_dir() and images(d))
    limit = max(1, min(MAX_CALIBRATION_FRAMES,
                       MAX_CALIBRATION_PIXELS // (input_size[0] * input_size[1])))
    sequences, total = [], 0
    for d in folders:
        take = images(d)[:min(FRAMES_PER_SEQUENCE, limit - total)]
        if take:
            sequences.append(take)
            total += len(take)
    if not sequences:
        raise CalibrationError(f'calibration_images: no {"/".join(IMAGE_SUFFIXES)} images in '
                               f'{root} or its sub-folders')
    return sequences


def calibration_digest(sequences: list[list[Path]]) -> str:
    h = hashlib.sha256()
    for sequence in sequences:
        for path in sequence:
            h.update(f'{path.parent.name}/{path.name}|'.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _read_rgb(path: Path) -> np.ndarray:
    import cv2
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CalibrationError(f'calibration image {path} cannot be decoded')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def calibration_feeds(model, fp32_path: Path, input_size: tuple[int, int],
                      sequences: list[list[Path]], num_threads: int = 0) -> list[dict]:
    """The graph inputs (image, memory_in) the fp32 graph sees when the tracker streams the
    calibration sequences: preprocessing is StreamingModel's own (resize, [0, 1])."""
    from ram_tracker.inference.onnxruntime_backend import OnnxRuntimeBackend
    from ram_tracker.pipeline import StreamingModel

    fp32 = OnnxRuntimeBackend(fp32_path, model.cfg, input_size, num_threads)
    feeds: list[dict] = []
    stream = StreamingModel(model, input_size, fp32.device, 1.0, backend=_Recording(fp32, feeds))
    for sequence in sequences:
        stream.reset()
        for path in sequence:
            stream.infer(_read_rgb(path), need_transition=False)
    return feeds


class _Recording(StepBackend):
    """A backend that keeps the inputs it is fed (calibration data) and delegates the step."""

    def __init__(self, inner: StepBackend, feeds: list):
        self.inner, self.feeds = inner, feeds
        self.name, self.device, self.cfg = inner.name, inner.device, inner.cfg
        self.input_size, self.state_shapes = inner.input_size, inner.state_shapes

    def step(self, image, state):
        self.feeds.append({export.INPUT_IMAGE: image.numpy().copy(),
                           export.INPUT_MEMORY: state[0].numpy().copy()})
        return self.inner.step(image, state)


def fp32_nodes(onnx_path: Path) -> list[str]:
    import onnx
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.name.startswith(FP32_NODE_PREFIXES)]


def quantize_step(model, fp32_path: Path, path: Path, input_size: tuple[int, int],
                  calibration_images: str | Path, digest: str, weights_sha256: str = '',
                  num_threads: int = 0) -> Path:
    """Write the int8 (QDQ) graph of `fp32_path` to `path`, calibrated on `calibration_images`."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    sequences = calibration_files(calibration_images, input_size)
    feeds = calibration_feeds(model, fp32_path, input_size, sequences, num_threads)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    path = Path(path).absolute()        # calibration runs in another working directory
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f'{WORK_PREFIX}{os.getpid()}_', dir=path.parent))
    try:
        with atomic_path(path, keep_suffix=True) as tmp:
            cwd = os.getcwd()
            os.chdir(work)                      # calibration writes its augmented model here
            try:
                quantize_static(str(fp32_path), tmp, Reader(), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, op_types_to_quantize=OPS_TO_QUANTIZE,
                                nodes_to_exclude=fp32_nodes(fp32_path),
                                calibrate_method=CalibrationMethod[CALIBRATION],
                                extra_options={'CalibTensorRangeSymmetric': False})
            finally:
                os.chdir(cwd)
            proto = onnx.load(tmp)
            metadata = export.read_metadata(fp32_path)       # format, sizes, config, outputs
            metadata.update({'precision': 'int8', 'quant_version': str(QUANT_VERSION),
                             'weights_sha256': digest, 'weights_file_sha256': weights_sha256,
                             'calibration_sha256': calibration_digest(sequences),
                             'calibration_images': str(Path(calibration_images).resolve()),
                             'calibration_frames': str(len(feeds))})
            del proto.metadata_props[:]
            for key, value in metadata.items():
                proto.metadata_props.add(key=key, value=value)
            onnx.save(proto, tmp)
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()
    return path


def matches(path: Path, digest: str, input_size: tuple[int, int],
            calibration_sha256: Optional[str] = None) -> bool:
    """Is `path` an int8 graph of these weights at this size (and this calibration, if given)?"""
    if not (path.is_file() and export.matches(path, digest, input_size, 'int8')):
        return False
    meta = export.read_metadata(path)
    return (meta.get('quant_version') == str(QUANT_VERSION)
            and (calibration_sha256 is None or meta.get('calibration_sha256') == calibration_sha256))


def int8_file_name(digest: str, input_size: tuple[int, int]) -> str:
    return export.onnx_file_name(digest, input_size, 'int8')


def ensure_int8_onnx(model, input_size: tuple[int, int], calibration_images: str | Path = '',
                     weights_path: str | Path | None = None,
                     directory: str | Path | None = None, num_threads: int = 0,
                     log: Optional[Callable[[str], None]] = None) -> Path:
    """The int8 graph of `model` at `input_size`: a cached one (beside the weights or in the
    cache directory) that matches, else quantized now from the fp32 export, calibrated on
    `calibration_images` (tens of seconds). Without calibration images and without a cached
    file: CalibrationError naming what to do."""
    from ram_tracker.checkpoint import file_sha256
    digest = export.weights_digest(model)
    wanted = None
    if calibration_images:
        wanted = calibration_digest(calibration_files(calibration_images, input_size))
    target = Path(directory or export.cache_dir() / 'onnx') / int8_file_name(digest, input_size)
    for prefix in (f'.{target.name}.tmp', WORK_PREFIX):     # what killed quantizations left
        remove_leftovers_of_dead_runs(target.parent, prefix, CACHE_LEFTOVER_AGE_S)
    candidates = ([export.beside_weights_path(weights_path, input_size, 'int8')]
                  if weights_path else []) + [target]
    for candidate in candidates:
        if matches(candidate, digest, input_size, wanted):
            return candidate
    if not calibration_images:
        raise CalibrationError(
            f'precision int8: no calibrated int8 graph of these weights at '
            f'{input_size[0]}x{input_size[1]} in {target.parent}: set calibration_images to a '
            f'folder of frames from the deployment camera (e.g. data/world2_640/training/'
            f'image_02) or run `ram-export WEIGHTS --precision int8 --calibration DIR`')
    fp32_path = export.ensure_onnx(model, input_size, 'fp32', weights_path, directory, log=log)
    started = time.perf_counter()
    quantize_step(model, fp32_path, target, input_size, calibration_images, digest,
                  file_sha256(weights_path) if weights_path else '', num_threads)
    if log:
        log(f'quantized {target} (int8, calibrated on {calibration_images}) in '
            f'{time.perf_counter() - started:.1f} s')
    return target

"""TensorRT backend: an engine built from the exported ONNX graph on first use, cached on disk.

Precision comes from the graph (TensorRT 11 has no FP16 builder flag): the node uses the FP16
export (export.py, precision='fp16'), whose image/state inputs and outputs are FP32, so the
recurrent state carried between frames stays FP32. The network is created strongly typed when
the installed TensorRT has that flag (>= 9), so the graph's types are what runs; on an older
TensorRT without it, precision='fp16' sets BuilderFlag.FP16 instead.

Engine cache (<cache>/tensorrt/<key>.engine + <key>.json): the key is a hash of the ONNX file's
sha256, the TensorRT version, the GPU name and compute capability, the precision and the I/O
shapes (engine_cache_key, a pure function). An engine that does not match (other GPU, other
TensorRT, other graph) has another key and is rebuilt; a cached file that fails to deserialize
is rebuilt and replaced. A timing cache per (TensorRT version, GPU, compute capability) makes
rebuilds of other graphs on the same machine faster. Files are written atomically.

Execution: torch CUDA tensors are the device buffers (no pycuda); the engine runs with
execute_async_v3 on its own CUDA stream, ordered after torch's current stream (which produced
the inputs) and before it (which reads the outputs) with stream waits, and record_stream keeps
the caching allocator from reusing a buffer while the engine may still use it.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from ram_tracker.atomic_write import CACHE_LEFTOVER_AGE_S, atomic_write_bytes, remove_leftovers_of_dead_runs
from ram_tracker.checkpoint import file_sha256
from ram_tracker.inference import export
from ram_tracker.inference.backends import State, StepBackend


def engine_cache_key(onnx_sha256: str, tensorrt_version: str, gpu_name: str,
                     compute_capability: tuple[int, int], precision: str,
                     shapes: dict[str, tuple[int, ...]]) -> str:
    """The name of a cached engine: changes with every component that makes an engine
    unusable or different (pure function; unit-tested on CPU)."""
    parts = {
        'onnx_sha256': onnx_sha256, 'tensorrt': tensorrt_version, 'gpu': gpu_name,
        'compute_capability': list(compute_capability), 'precision': precision,
        'shapes': {name: list(shape) for name, shape in sorted(shapes.items())},
    }
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def timing_cache_name(tensorrt_version: str, gpu_name: str,
                      compute_capability: tuple[int, int]) -> str:
    gpu = ''.join(c if c.isalnum() else '-' for c in gpu_name)
    return f'timing_trt{tensorrt_version}_{gpu}_sm{compute_capability[0]}{compute_capability[1]}.cache'




def _write_atomic(path: Path, data) -> None:
    atomic_write_bytes(path, bytes(data))       # TensorRT hands out its own buffer types


def _onnx_io_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    import onnx
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    shapes = {}
    for value in list(graph.input) + list(graph.output):
        if value.name in initializers:
            continue
        shapes[value.name] = tuple(d.dim_value for d in value.type.tensor_type.shape.dim)
    return shapes


class TensorRTBackend(StepBackend):
    name = 'tensorrt'

    def __init__(self, onnx_path: str | Path, cfg, input_size: tuple[int, int],
                 device: torch.device, precision: str = 'fp16',
                 cache_directory: str | Path | None = None, workspace_bytes: int = 1 << 30,
                 log: Optional[Callable[[str], None]] = None):
        import tensorrt as trt
        self.trt = trt
        self.path = Path(onnx_path)
        self.cfg = cfg
        self.input_size = tuple(input_size)
        self.device = torch.device(device)
        if self.device.index is None:
            self.device = torch.device('cuda', torch.cuda.current_device())
        self.precision = precision
        self.workspace = workspace_bytes
        self.log = log or (lambda message: None)
        self.cache_directory = Path(cache_directory or export.cache_dir() / 'tensorrt')
        self.logger = trt.Logger(trt.Logger.WARNING)
        gpu = torch.cuda.get_device_name(self.device)
        capability = torch.cuda.get_device_capability(self.device)
        shapes = _onnx_io_shapes(self.path)
        self.key = engine_cache_key(file_sha256(self.path), trt.__version__, gpu, capability,
                                    precision, shapes)
        self.engine_path = self.cache_directory / f'{self.key}.engine'
        self.timing_cache_path = self.cache_directory / timing_cache_name(trt.__version__, gpu,
                                                                          capability)
        for written in (self.engine_path, self.engine_path.with_suffix('.json'), self.timing_cache_path):
            remove_leftovers_of_dead_runs(self.cache_directory, f'.{written.name}.tmp',
                                          CACHE_LEFTOVER_AGE_S)   # what killed builds left there
        self.built = False                 # True when this instance built (not loaded) it
        self.build_seconds = 0.0
        with torch.cuda.device(self.device):
            self.runtime = trt.Runtime(self.logger)
            engine = self._load()
            if engine is None:
                engine = self._build(gpu, capability, shapes)
            self.engine = engine
            self.context = self.engine.create_execution_context()
            # TensorRT's own stream (enqueue on the legacy default stream synchronises)
            self.stream = torch.cuda.Stream(self.device)
        self._io = []                      # (name, is_input, shape, torch dtype)
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(self.engine.get_tensor_shape(name))
            self._io.append((name, is_input, shape, _torch_dtype(trt, self.engine.get_tensor_dtype(name))))
        io = {name: shape for name, _, shape, _ in self._io}
        self.state_shapes = (io[export.INPUT_MEMORY], io[export.OUTPUT_EMBED])

    # -- engine -------------------------------------------------------------------------------
    def _load(self):
        if not self.engine_path.is_file():
            return None
        engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:                 # corrupt, or from another TensorRT build: rebuild
            self.log(f'cached engine {self.engine_path} does not deserialize: rebuilding')
            return None
        return engine

    def _build(self, gpu: str, capability, shapes):
        trt = self.trt
        started = time.perf_counter()
        builder = trt.Builder(self.logger)
        flags = 0
        strongly_typed = hasattr(trt.NetworkDefinitionCreationFlag, 'STRONGLY_TYPED')
        if strongly_typed:
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        if hasattr(trt.NetworkDefinitionCreationFlag, 'EXPLICIT_BATCH'):   # TensorRT < 10
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(self.path)):
            errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f'TensorRT cannot parse {self.path}: {errors}')
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace)
        if not strongly_typed and self.precision == 'fp16' and hasattr(trt.BuilderFlag, 'FP16'):
            config.set_flag(trt.BuilderFlag.FP16)
        timing = self.timing_cache_path.read_bytes() if self.timing_cache_path.is_file() else b''
        timing_cache = config.create_timing_cache(timing)
        config.set_timing_cache(timing_cache, ignore_mismatch=True)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError(f'TensorRT failed to build an engine from {self.path}')
        _write_atomic(self.engine_path, serialized)
        _write_atomic(self.timing_cache_path, config.get_timing_cache().serialize())
        _write_atomic(self.engine_path.with_suffix('.json'), json.dumps({
            'onnx': str(self.path), 'tensorrt': trt.__version__, 'gpu': gpu,
            'compute_capability': list(capability), 'precision': self.precision,
            'shapes': {k: list(v) for k, v in shapes.items()}}, indent=1).encode())
        self.built = True
        self.build_seconds = time.perf_counter() - started
        self.log(f'built TensorRT engine {self.engine_path} in {self.build_seconds:.0f} s')
        engine = self.runtime.deserialize_cuda_engine(bytes(serialized))
        if engine is None:
            raise RuntimeError(f'TensorRT built {self.engine_path} but cannot deserialize it')
        return engine

    # -- streaming ----------------------------------------------------------------------------
    def step(self, image: torch.Tensor, state: State) -> tuple[dict, State]:
        feeds = {export.INPUT_IMAGE: image, export.INPUT_MEMORY: state[0],
                 export.INPUT_EMBED: state[1]}
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)           # inputs were produced on torch's stream
        outputs, inputs = {}, []
        with torch.cuda.stream(self.stream):
            for name, is_input, shape, dtype in self._io:
                if is_input:
                    tensor = feeds[name].to(self.device, dtype).contiguous()
                    if tuple(tensor.shape) != shape:
                        raise ValueError(f'TensorRT input {name} is {tuple(tensor.shape)}, the '
                                         f'engine wants {shape}')
                    inputs.append(tensor)
                else:
                    tensor = torch.empty(shape, dtype=dtype, device=self.device)
                    outputs[name] = tensor
                self.context.set_tensor_address(name, tensor.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError('TensorRT execute_async_v3 failed')
        current.wait_stream(self.stream)           # torch reads the outputs after the engine
        for tensor in inputs:                      # keep input memory until the engine is done
            tensor.record_stream(self.stream)
        for tensor in outputs.values():            # allocated on our stream, used on torch's
            tensor.record_stream(current)
        outputs = {k: v.float() for k, v in outputs.items()}
        memory = outputs.pop(export.OUTPUT_MEMORY)
        return outputs, (memory, outputs[export.OUTPUT_EMBED])


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
             trt.bool: torch.bool}
    if hasattr(trt, 'int64'):
        table[trt.int64] = torch.int64
    if hasattr(trt, 'bfloat16'):
        table[trt.bfloat16] = torch.bfloat16
    return table[dtype]

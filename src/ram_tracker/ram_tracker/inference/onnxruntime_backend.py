"""ONNX Runtime backend, CPU execution provider, on the graph written by export.py."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ram_tracker.inference import export
from ram_tracker.inference.backends import State, StepBackend


class OnnxRuntimeBackend(StepBackend):
    name = 'onnxruntime'

    def __init__(self, onnx_path: str | Path, cfg, input_size: tuple[int, int],
                 num_threads: int = 0, precision: str = 'fp32'):
        """num_threads: intra-op threads (0: ONNX Runtime's default, one per core); precision:
        what the graph computes in (fp32, or int8 for quantize.py's graph), for describe()."""
        import onnxruntime as ort
        self.path = Path(onnx_path)
        self.precision = precision
        self.cfg = cfg
        self.input_size = tuple(input_size)
        self.device = torch.device('cpu')
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if num_threads > 0:
            options.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(str(self.path), options,
                                            providers=['CPUExecutionProvider'])
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]
        shapes = {t.name: tuple(t.shape) for t in
                  self.session.get_inputs() + self.session.get_outputs()}
        width, height = self.input_size
        if shapes[export.INPUT_IMAGE] != (1, 3, height, width):
            raise ValueError(f'{self.path}: graph input image is {shapes[export.INPUT_IMAGE]}, '
                             f'expected (1, 3, {height}, {width}): export it for {width}x{height}')
        self.state_shapes = (shapes[export.INPUT_MEMORY], shapes[export.OUTPUT_EMBED])

    def describe(self) -> str:
        return f'{super().describe()}, {self.precision}'

    def step(self, image: torch.Tensor, state: State) -> tuple[dict, State]:
        feeds = {export.INPUT_IMAGE: _array(image), export.INPUT_MEMORY: _array(state[0])}
        if export.INPUT_EMBED in self._inputs:
            feeds[export.INPUT_EMBED] = _array(state[1])
        values = self.session.run(self._outputs, feeds)
        outputs = {name: torch.from_numpy(v) for name, v in zip(self._outputs, values)}
        memory = outputs.pop(export.OUTPUT_MEMORY)
        return outputs, (memory, outputs[export.OUTPUT_EMBED])


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)

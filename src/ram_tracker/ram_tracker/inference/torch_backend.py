"""Eager PyTorch backend (CPU or CUDA): RAMModel.step as is."""
from __future__ import annotations

import torch

from ram_tracker.inference.backends import State, StepBackend


class TorchBackend(StepBackend):
    name = 'torch'

    def __init__(self, model, input_size: tuple[int, int], device: torch.device,
                 channels_last: bool = False):
        """channels_last: NHWC convolutions (CPU oneDNN; numerically a little different from
        the default layout, so off by default; benchmarks/bench_backends.py measures it)."""
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.input_size = tuple(input_size)
        self.cfg = model.cfg
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def describe(self) -> str:
        layout = ', channels_last' if self.channels_last else ''
        return (f'{self.name} on {self.device_name}{layout}'
                + (f' ({self.reason})' if self.reason else ''))

    def initial_state(self) -> State:
        width, height = self.input_size
        return self.model.initial_state(1, height, width, self.device)

    @torch.inference_mode()
    def step(self, image: torch.Tensor, state: State) -> tuple[dict, State]:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        outputs, state = self.model.step(image, state, with_transition=False)
        return outputs, state

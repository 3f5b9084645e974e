"""Eager PyTorch backend (CPU or CUDA): RAMModel.step on an inference copy of the model whose
BatchNorm layers are folded into the convolutions before them (same outputs to float rounding;
saves one memory pass per BatchNorm; ONNX Runtime and TensorRT do the same in their graph
optimisers)."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ram_tracker.inference.backends import State, StepBackend
from ram_tracker.model.backbones import BasicBlock


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with every Conv2d -> BatchNorm2d pair of the backbone
    (conv_bn_relu / projection Sequentials, BasicBlock, DLA Root) folded into the convolution."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                    module[i + 1] = nn.Identity()
        elif isinstance(module, BasicBlock):
            module.conv1 = fuse_conv_bn_eval(module.conv1, module.bn1)
            module.conv2 = fuse_conv_bn_eval(module.conv2, module.bn2)
            module.bn1, module.bn2 = nn.Identity(), nn.Identity()
        elif hasattr(module, 'conv') and isinstance(getattr(module, 'bn', None), nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)     # DLA Root
            module.bn = nn.Identity()
    return model


class TorchBackend(StepBackend):
    name = 'torch'

    def __init__(self, model, input_size: tuple[int, int], device: torch.device,
                 channels_last: bool = False):
        """channels_last: NHWC convolutions (CPU oneDNN; numerically a little different from
        the default layout, so off by default; benchmarks/bench_backends.py measures it)."""
        self.model = fold_batchnorm(model.to(device).eval())
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

"""Backbones f: image -> stride-4 feature map F_t. Plain convolutions only (no DCN, no torchvision).

Both backbones produce a pyramid at strides 4, 8, 16, 32 and share one upsampling neck
(IDA-style: the deepest level is upsampled step by step and merged with each shallower one),
ending at stride 4 with `neck_channels` channels. The official DLA-34 neck uses deformable
convolutions; plain 3x3 convolutions replace them here (docs/METHOD.md#model: DCN is not needed).
"""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs and a residual connection."""

    def __init__(self, cin: int, cout: int, stride: int = 1, project: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if project:   # ResNet: project the residual when the shape changes
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor, residual: torch.Tensor = None) -> torch.Tensor:
        if residual is None:
            residual = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + residual, inplace=True)


# ----------------------------------------------------------------------------------------------
# ResNet-18-like

class ResNet18(nn.Module):
    """ResNet-18 layout (2-2-2-2 basic blocks); returns the stride 4, 8, 16, 32 maps."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_bn_relu(3, w, 7, 2), nn.MaxPool2d(3, 2, 1))
        self.channels = [w, 2 * w, 4 * w, 8 * w]
        stages, cin = [], w
        for i, cout in enumerate(self.channels):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride, project=stride != 1 or cin != cout),
                                        BasicBlock(cout, cout)))
            cin = cout
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.stem(x)
        pyramid = []
        for stage in self.stages:
            x = stage(x)
            pyramid.append(x)
        return pyramid


# ----------------------------------------------------------------------------------------------
# DLA-34-like (Yu et al. 2018, the CenterNet/CenterTrack/PermaTrack backbone)

class Root(nn.Module):
    """Aggregation node: concatenate children, 1x1 conv, BN, ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, *children: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(torch.cat(children, dim=1))), inplace=True)


class Tree(nn.Module):
    """Hierarchical deep aggregation tree (DLA). `levels` deep; the leaves are basic blocks."""

    def __init__(self, levels: int, cin: int, cout: int, stride: int = 1, level_root: bool = False,
                 root_dim: int = 0):
        super().__init__()
        root_dim = root_dim or 2 * cout
        if level_root:
            root_dim += cin
        if levels == 1:
            self.tree1 = BasicBlock(cin, cout, stride)
            self.tree2 = BasicBlock(cout, cout, 1)
            self.root = Root(root_dim, cout)
        else:
            self.tree1 = Tree(levels - 1, cin, cout, stride)
            self.tree2 = Tree(levels - 1, cout, cout, root_dim=root_dim + cout)
        self.levels, self.level_root = levels, level_root
        self.downsample = nn.MaxPool2d(stride, stride) if stride > 1 else None
        # Only leaves use the projected residual (an inner tree recomputes its own); the
        # original DLA builds this projection at every level and leaves it dead above level 1.
        self.project = (nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
                        if cin != cout and levels == 1 else None)

    def forward(self, x: torch.Tensor, residual: torch.Tensor = None, children: list = None) -> torch.Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample is not None else x
        residual = self.project(bottom) if self.project is not None else bottom
        if self.levels > 1:
            residual = None
        if self.level_root:
            children.append(bottom)
        x1 = self.tree1(x, residual)
        if self.levels == 1:
            return self.root(self.tree2(x1), x1, *children)
        children.append(x1)
        return self.tree2(x1, children=children)


class DLA34(nn.Module):
    """DLA-34 layout: levels (1, 1, 1, 2, 2, 1), channels w * (1, 2, 4, 8, 16, 32), w = 16."""

    def __init__(self, width: int = 16):
        super().__init__()
        c = [width * m for m in (1, 2, 4, 8, 16, 32)]
        self.base = conv_bn_relu(3, c[0], 7, 1)
        self.level0 = conv_bn_relu(c[0], c[0], 3, 1)
        self.level1 = conv_bn_relu(c[0], c[1], 3, 2)
        self.level2 = Tree(1, c[1], c[2], 2, level_root=False)
        self.level3 = Tree(2, c[2], c[3], 2, level_root=True)
        self.level4 = Tree(2, c[3], c[4], 2, level_root=True)
        self.level5 = Tree(1, c[4], c[5], 2, level_root=True)
        self.channels = c[2:]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.level1(self.level0(self.base(x)))
        pyramid = []
        for level in (self.level2, self.level3, self.level4, self.level5):
            x = level(x)
            pyramid.append(x)
        return pyramid


# ----------------------------------------------------------------------------------------------
# neck

class UpsamplingNeck(nn.Module):
    """Iterative deep aggregation up to stride 4: from the deepest level, project to
    `channels`, upsample x2, add the projected next level, 3x3 conv. Returns stride 4."""

    def __init__(self, in_channels: List[int], channels: int):
        super().__init__()
        self.lateral = nn.ModuleList(conv_bn_relu(c, channels, 1) for c in in_channels)
        self.merge = nn.ModuleList(conv_bn_relu(channels, channels, 3) for _ in in_channels[:-1])

    def forward(self, pyramid: List[torch.Tensor]) -> torch.Tensor:
        x = self.lateral[-1](pyramid[-1])
        for i in range(len(pyramid) - 2, -1, -1):
            x = F.interpolate(x, size=pyramid[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.merge[i](x + self.lateral[i](pyramid[i]))
        return x


class Backbone(nn.Module):
    """Encoder + neck: (B, 3, H, W) normalised image -> (B, neck_channels, H/4, W/4)."""

    def __init__(self, name: str, width: int, neck_channels: int):
        super().__init__()
        if name == "resnet18":
            self.encoder = ResNet18(width)
        elif name == "dla34":
            self.encoder = DLA34(width)
        else:
            raise ValueError(f"unknown backbone {name!r} (resnet18 | dla34)")
        self.neck = UpsamplingNeck(self.encoder.channels, neck_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.encoder(x))

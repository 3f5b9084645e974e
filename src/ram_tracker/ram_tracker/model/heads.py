"""Output heads on the memory M_t: CenterTrack/PermaTrack dense heads and the RAM node embedding f_q."""
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class DenseHeads(nn.Module):
    """The heads dictionary: name -> channels. Each head: 3x3 conv + ReLU + 1x1 conv.

    hm: class heatmap logits (sigmoid at decode time); wh: box size in input pixels; reg:
    sub-pixel centre offset in stride-4 cells; tracking: displacement to the previous frame's
    centre in stride-4 cells; visibility: logit of the object being visible at its centre.

    Heads named in `detached` read the memory without passing gradient back into it."""

    def __init__(self, in_channels: int, heads: Dict[str, int], head_channels: int, heatmap_bias: float,
                 detached: Tuple[str, ...] = ()):
        super().__init__()
        self.detached = tuple(detached)
        self.heads = nn.ModuleDict({
            name: nn.Sequential(nn.Conv2d(in_channels, head_channels, 3, padding=1), nn.ReLU(inplace=True),
                                nn.Conv2d(head_channels, channels, 1))
            for name, channels in heads.items()})
        for name, head in self.heads.items():
            last = head[-1]
            if name == "hm":
                nn.init.constant_(last.bias, heatmap_bias)      # CenterNet focal-loss prior
            else:
                nn.init.normal_(last.weight, std=0.001)         # regressions start near 0
                nn.init.zeros_(last.bias)

    def forward(self, memory: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {name: head(memory.detach() if name in self.detached else memory)
                for name, head in self.heads.items()}


class NodeEmbedding(nn.Module):
    """f_q: pooling, two 1x1 conv + ReLU, L2 normalisation over channels (paper sec. 4.2).

    Pooling coarsens the node grid (kernel 3, stride 2: 160x48 -> 80x24) which makes the walk
    ~20x cheaper; "max" is the paper, "avg" the official code, "none" LA-CATER."""

    def __init__(self, in_channels: int, channels: int, pool: str, kernel: int, stride: int, padding: int):
        super().__init__()
        assert pool in ("max", "avg", "none"), pool
        self.pool, self.kernel, self.stride, self.padding = pool, kernel, stride, padding
        self.conv1 = nn.Conv2d(in_channels, channels, 1)
        self.conv2 = nn.Conv2d(channels, channels, 1)

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        x = pool_to_nodes(memory, self.pool, self.kernel, self.stride, self.padding)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return F.normalize(x, dim=1, eps=1e-6)


def pool_to_nodes(x: torch.Tensor, pool: str, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """A stride-4 map pooled to the node grid (RAMModel.node_grid)."""
    if pool == "max":
        return F.max_pool2d(x, kernel, stride, padding)
    if pool == "avg":
        return F.avg_pool2d(x, kernel, stride, padding, count_include_pad=False)
    return x

"""Model configuration: one plain dataclass, YAML-able (dataclasses.asdict / ModelConfig(**d))."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Dict, Optional, Tuple

if TYPE_CHECKING:
    from ..walk import WalkSettings


@dataclass
class ModelConfig:
    # what is detected (the heatmap head has one channel per class)
    class_names: Tuple[str, ...] = ("car", "pedestrian")

    # The default is sized for KITTI's real-time rate on a 2-core CPU: a ResNet-18 layout at half
    # width and 48-channel memory/neck with 32-channel heads costs ~2.9 GMAC per 640x192 frame
    # (the full-width 64-channel version cost ~8 GMAC, 184 ms/frame on 2 cores: the separate
    # stride-4 heads and the ConvGRU were 40% of it). ModelConfig.paper() is the paper's size.
    # backbone: "resnet18" (ResNet-18 layout), "dla34" (the paper's) or "efficientnet_lite0"
    # (the mobile-CPU ImageNet architecture; its ImageNet weights: train.backbone_pretrained);
    # all end in an upsampling neck to stride 4.
    backbone: str = "resnet18"
    backbone_width: int = 32          # channels of the first stage (64 = the real ResNet-18 / 16 for DLA; efficientnet_lite0: unused)
    neck_channels: int = 48           # channels of the stride-4 feature map F_t

    # ConvGRU spatial memory M_t = GRU(F_t, M_{t-1}). Paper: 7x7, 64 channels. CPU default 3x3:
    # a 7x7 GRU at 160x48 costs ~9 GMACs per frame, more than the whole backbone.
    memory_channels: int = 48
    memory_kernel: int = 3

    # CenterTrack/PermaTrack heads on M_t: name -> output channels ("hm" = number of classes,
    # filled in by heads()). Each head is 3x3 conv(head_channels) + ReLU + 1x1 conv.
    extra_heads: Dict[str, int] = field(default_factory=lambda: {"wh": 2, "reg": 2, "tracking": 2, "visibility": 1})
    head_channels: int = 32           # paper/CenterTrack DLA: 256; CenterNet ResNet: 64
    heatmap_bias: float = -4.6        # sigmoid(-4.6) ~ 0.01 prior
    # The visibility head reads the memory without sending its gradient back into it (training
    # only; the forward is the same). PermaTrack and RAM train it jointly; here it is an observer:
    # learning it through the shared memory cost the detector (World 1 twin, 150 fine-tuning
    # steps: visible mIoU 0.616 without the visibility loss, 0.572 with it; models/world1_ram.md).
    detach_visibility: bool = True

    # A memory of its own for the walk (not in the paper). 0: the node embedding reads M_t, the
    # detector's memory (the paper), so the walk loss and the detection losses share the memory:
    # at our sizes they compete (models/world1_ram.md: the walk cost the detector 0.1-0.2
    # visible mIoU). > 0: a second ConvGRU of this many channels runs on the node grid, fed the
    # pooled features F_t *detached*, and the embedding reads it: the walk loss never reaches
    # the backbone, the detector's memory or the heads, so the detections are the detector's own.
    # Its state travels inside the memory state (RAMModel.initial_state). The kernel is
    # memory_kernel's.
    walk_memory_channels: int = 0

    # node-embedding head f_q: pool -> 1x1 conv + ReLU -> 1x1 conv + ReLU -> L2 norm
    embed_channels: int = 64
    embed_pool: str = "max"           # "max" (paper), "avg" (official code) or "none"
    embed_pool_kernel: int = 3
    embed_pool_stride: Optional[int] = None   # None: official floor(k/2)+1 (k=3 -> 2)

    # random walk used by step() to emit the transition from the previous frame
    walk_local: bool = True
    walk_radius: float = 0.2          # window radius relative to the node-grid height
    walk_tau: float = 0.1

    # Fields that change how the model trains but not what its forward computes: the weights
    # digest of an exported graph (inference/export.py) leaves them out.
    TRAINING_ONLY = ("detach_visibility",)

    @property
    def walk(self) -> "WalkSettings":
        """The walk settings as one object (what the tracker and the training loss both use)."""
        from ..walk import WalkSettings
        return WalkSettings(local=self.walk_local, radius=self.walk_radius, tau=self.walk_tau)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def heads(self) -> Dict[str, int]:
        return {"hm": self.num_classes, **self.extra_heads}

    @property
    def pool_stride(self) -> int:
        if self.embed_pool == "none":
            return 1
        return self.embed_pool_stride or self.embed_pool_kernel // 2 + 1

    @property
    def pool_padding(self) -> int:
        return 0 if self.embed_pool == "none" else self.embed_pool_kernel // 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        if "class_names" in d:
            d["class_names"] = tuple(d["class_names"])
        return cls(**d)

    @classmethod
    def paper(cls, **overrides) -> "ModelConfig":
        """The paper's sizes: DLA-34, 7x7 GRU, 256-channel heads, max-pool 3 (PD/KITTI)."""
        base = dict(backbone="dla34", backbone_width=16, neck_channels=64, memory_channels=64, memory_kernel=7,
                    head_channels=256)
        base.update(overrides)
        return cls(**base)

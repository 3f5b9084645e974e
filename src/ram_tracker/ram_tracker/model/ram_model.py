"""RAM model: backbone -> ConvGRU memory -> (CenterTrack heads, node embeddings).

    image_t --f--> F_t --GRU(., M_{t-1})--> M_t --heads--> hm, wh, reg, tracking, visibility
                                                 +--f_q--> q_t (node embeddings, L2-normalised)

With cfg.walk_memory_channels > 0 the walk has a memory of its own (not in the paper):

    F_t --GRU(., M_{t-1})--> M_t --heads--> hm, wh, ...
    F_t --detach, pool--GRU(., W_{t-1})--> W_t (node grid) --f_q--> q_t

Two APIs over the same weights:
  * forward(clip (B, T, 3, H, W)) for training: every per-frame output stacked over T;
  * step(image (B, 3, H, W), state) -> (outputs, state) for streaming. The state is a tuple of
    plain tensors (GRU hidden, previous embeddings), so memory per step is constant and the
    step exports to ONNX with the state as explicit inputs/outputs.
Images are RGB in [0, 1]; normalisation happens here.
"""
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import walk
from .backbones import Backbone
from .config import ModelConfig
from .heads import DenseHeads, NodeEmbedding, pool_to_nodes
from .memory import ConvGRU

State = Tuple[torch.Tensor, torch.Tensor]   # (memory (B, C, H/4, W/4), previous embeddings (B, D, h, w))

OUTPUT_STRIDE = 4


class RAMModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.backbone, cfg.backbone_width, cfg.neck_channels)
        self.memory = ConvGRU(cfg.neck_channels, cfg.memory_channels, cfg.memory_kernel)
        self.heads = DenseHeads(cfg.memory_channels, cfg.heads(), cfg.head_channels, cfg.heatmap_bias,
                                detached=("visibility",) if cfg.detach_visibility else ())
        if cfg.walk_memory_channels % cfg.pool_stride ** 2:
            raise ValueError(f"walk_memory_channels {cfg.walk_memory_channels}: must be a multiple of "
                             f"{cfg.pool_stride ** 2} (the node grid's stride squared; see _pack)")
        if cfg.walk_memory_channels:
            # on the node grid already: the embedding only projects it
            self.walk_memory = ConvGRU(cfg.neck_channels, cfg.walk_memory_channels, cfg.memory_kernel)
            self.embed = NodeEmbedding(cfg.walk_memory_channels, cfg.embed_channels, "none", 1, 1, 0)
        else:
            self.embed = NodeEmbedding(cfg.memory_channels, cfg.embed_channels, cfg.embed_pool,
                                       cfg.embed_pool_kernel, cfg.pool_stride, cfg.pool_padding)
        # the encoder's input statistics (ImageNet's; EfficientNet-Lite0's checkpoint wants [-1, 1])
        mean, std = self.backbone.input_mean_std
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    # --- geometry -------------------------------------------------------------------------------
    def feature_size(self, image_h: int, image_w: int) -> Tuple[int, int]:
        return image_h // OUTPUT_STRIDE, image_w // OUTPUT_STRIDE

    def node_grid(self, image_h: int, image_w: int) -> walk.NodeGrid:
        """Where the nodes of the walk are, in input pixels."""
        h, w = self.feature_size(image_h, image_w)
        if self.cfg.embed_pool == "none":
            return walk.NodeGrid(h, w, float(OUTPUT_STRIDE), 0.0)
        k, s, p = self.cfg.embed_pool_kernel, self.cfg.pool_stride, self.cfg.pool_padding
        gh, gw = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        # node y covers feature rows [y*s - p, y*s - p + k): its centre is y*s - p + (k-1)/2
        return walk.NodeGrid(gh, gw, float(OUTPUT_STRIDE * s), OUTPUT_STRIDE * (-p + (k - 1) / 2))

    # --- shared pieces --------------------------------------------------------------------------
    def _features(self, images: torch.Tensor) -> torch.Tensor:
        H, W = images.shape[-2:]
        assert H % 32 == 0 and W % 32 == 0, f"input {W}x{H}: width and height must be multiples of 32"
        return self.backbone((images - self.mean) / self.std)

    def _update_memory(self, features: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """M_t from F_t and M_{t-1} (with a walk memory: both memories, packed)."""
        if not self.cfg.walk_memory_channels:
            return self.memory(features, memory)
        detector, walker = self._unpack(memory)
        nodes = pool_to_nodes(features.detach(), self.cfg.embed_pool, self.cfg.embed_pool_kernel,
                              self.cfg.pool_stride, self.cfg.pool_padding)
        return self._pack(self.memory(features, detector), self.walk_memory(nodes, walker))

    def _read_memory(self, memory: torch.Tensor) -> Dict[str, torch.Tensor]:
        if not self.cfg.walk_memory_channels:
            out = self.heads(memory)
            out["embed"] = self.embed(memory)
            return out
        detector, walker = self._unpack(memory)
        out = self.heads(detector)
        out["embed"] = self.embed(walker)
        return out

    # The walk memory W_t (C', h, w) on the node grid travels in the one memory state tensor, after
    # the detector's channels, moved to stride 4 by pixel_shuffle (C'/s^2, h*s, w*s; exact and
    # undone by pixel_unshuffle): every backend, export and quantizer keeps its two state tensors.
    def _pack(self, detector: torch.Tensor, walker: torch.Tensor) -> torch.Tensor:
        return torch.cat([detector, F.pixel_shuffle(walker, self.cfg.pool_stride)], 1)

    def _unpack(self, memory: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        detector, walker = memory.split([self.cfg.memory_channels,
                                         memory.shape[1] - self.cfg.memory_channels], 1)
        return detector, F.pixel_unshuffle(walker, self.cfg.pool_stride)

    def state_channels(self) -> int:
        """Channels of the memory state: the detector's (+ the packed walk memory's)."""
        return self.cfg.memory_channels + self.cfg.walk_memory_channels // self.cfg.pool_stride ** 2

    def transition(self, q_prev: torch.Tensor, q_next: torch.Tensor) -> walk.Transition:
        """A between consecutive node embeddings, local or global per the config."""
        return self.cfg.walk.transition(q_prev, q_next)

    # --- training -------------------------------------------------------------------------------
    def forward(self, clip: torch.Tensor) -> Dict[str, torch.Tensor]:
        """clip (B, T, 3, H, W) -> {head: (B, T, C, H/4, W/4), "embed": (B, T, D, h, w)}."""
        B, T = clip.shape[:2]
        out = self._read_memory(self.clip_memory(clip))
        return {k: v.unflatten(0, (B, T)) for k, v in out.items()}

    def clip_memory(self, clip: torch.Tensor) -> torch.Tensor:
        """The memory M_t of every frame of clip (B, T, 3, H, W), stacked as (B*T, C, H/4, W/4)
        (what the heads and the node embedding read; ram-diagnose measures gradients there)."""
        B, T = clip.shape[:2]
        features = self._features(clip.flatten(0, 1))           # the backbone sees B*T frames at once
        features = features.unflatten(0, (B, T))
        memory = self.initial_state(B, *clip.shape[-2:], clip.device, features.dtype)[0]
        memories = []
        # unbind once: features[:, t] in the loop would, with a trainable backbone, give every
        # frame's backward a zero gradient the size of the whole clip to fill and add
        for frame in features.unbind(1):                        # the recurrence is the only loop
            memory = self._update_memory(frame, memory)
            memories.append(memory)
        return torch.stack(memories, 1).flatten(0, 1)

    # --- streaming ------------------------------------------------------------------------------
    def initial_state(self, batch: int, image_h: int, image_w: int, device=None, dtype=torch.float32) -> State:
        h, w = self.feature_size(image_h, image_w)
        grid = self.node_grid(image_h, image_w)
        if self.cfg.walk_memory_channels:
            s = self.cfg.pool_stride
            assert (grid.height * s, grid.width * s) == (h, w), \
                f"input {image_w}x{image_h}: the walk memory needs a node grid of exactly 1/{s} the feature map"
        memory = torch.zeros(batch, self.state_channels(), h, w, device=device, dtype=dtype)
        prev_embed = torch.zeros(batch, self.cfg.embed_channels, grid.height, grid.width, device=device, dtype=dtype)
        return memory, prev_embed

    def step(self, image: torch.Tensor, state: State, with_transition: bool = True) -> Tuple[Dict[str, torch.Tensor], State]:
        """One frame: image (B, 3, H, W), state from initial_state() or the previous step.

        outputs: the head maps (B, C, H/4, W/4), "embed" (B, D, h, w) and, if with_transition,
        "transition": the walk from the previous frame's nodes to this frame's, as values
        (B, N, K) of a local window (see walk.SparseTransition; indices via walk.neighbour_table)
        or a dense (B, N, N) matrix when walk_local is False. On the first frame the previous
        embeddings are zeros and the transition is uniform: do not walk on it.
        """
        memory, prev_embed = state
        memory = self._update_memory(self._features(image), memory)
        out = self._read_memory(memory)
        if with_transition:
            A = self.transition(prev_embed, out["embed"])
            out["transition"] = A.values if isinstance(A, walk.SparseTransition) else A
        return out, (memory, out["embed"])


def build_model(cfg: ModelConfig = None) -> RAMModel:
    return RAMModel(cfg or ModelConfig())

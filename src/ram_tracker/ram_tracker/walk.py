"""Random walk along memory (RAM, Tokmakov et al. ICML 2022, eq. 1, 2 and 5).

Nodes are the cells of the node-embedding grid (B, D, H, W) produced by the model's f_q head.
A transition A_t^{t+1}(i, j) = softmax_j(<q_t^i, q_{t+1}^j> / tau) moves walker mass from node i
in frame t to node j in frame t+1. A walker is a probability distribution over nodes: (B, M, N) for
M walkers (objects) on N = H * W nodes. Propagation is X <- X A.

Two forms of A:
  * global: a dense (B, N, N) matrix, every node connected to every node (paper eq. 1);
  * local (paper sec. 3.3): node i only connects to the nodes of a square window of
    (2R+1) x (2R+1) cells around its own position, R = int(r * H) (the official window;
    docs/METHOD.md#transitions).
    Stored sparse as values (B, N, K), K = (2R+1)^2, with an implicit offset table: entry k of
    row i is the node at i's position + offsets[k]. Neighbours outside the image are masked
    out of the softmax (value exactly 0; the official code lets them leak onto node 0).

The local logits are computed with a tiled matmul + gather: the grid is cut into S x S tiles,
each tile's queries are multiplied with its (S+2R)^2 neighbourhood in the next frame (one
batched matmul, BLAS speed), then the K entries of each node's own window are gathered.
Memory stays O(N * (S+2R)^2) instead of unfold's O(D * N * K) (which blows up on big grids,
measured in docs/METHOD.md#transitions), and no dense N x N matrix is ever built.

Pure PyTorch, no ROS, no custom CUDA; device follows the input tensors.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F


def window_radius(grid_height: int, radius_rel: float) -> int:
    """Window radius in cells: R = int(r * H') as in the official code (r = 0.2 PD/KITTI)."""
    return max(int(grid_height * radius_rel), 0)


def window_offsets(radius: int, device=None) -> torch.Tensor:
    """(K, 2) integer (dy, dx) offsets of a square window, row-major; the centre is K // 2."""
    d = torch.arange(-radius, radius + 1, device=device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    return torch.stack([dy.reshape(-1), dx.reshape(-1)], dim=1)


@dataclass
class SparseTransition:
    """Local transition matrix in row-sparse form.

    values[b, i, k] = A(i, j) with j = node at (y_i + offsets[k, 0], x_i + offsets[k, 1]).
    Entries whose neighbour lies outside the grid are exactly 0 (their index points at i itself
    so that every index is valid, but they carry no mass). Rows sum to 1.
    """
    values: torch.Tensor   # (B, N, K) float
    indices: torch.Tensor  # (N, K) long, neighbour node index (self for masked entries)
    valid: torch.Tensor    # (N, K) bool, neighbour inside the grid
    radius: int
    grid: Tuple[int, int]  # (H, W) of the node grid

    @property
    def num_nodes(self) -> int:
        return self.grid[0] * self.grid[1]


Transition = Union[torch.Tensor, SparseTransition]  # dense (B, N, N) or sparse local


def neighbour_table(grid: Tuple[int, int], radius: int, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Neighbour indices (N, K) and in-grid mask (N, K) of the square window on an H x W grid.

    A constant of the grid: built once per (grid, radius, device) and cached (the int64 index
    table is N*K*8 bytes, 22 MB at 160x48 nodes with R = 9); treat the tensors as read-only."""
    return _neighbour_table(tuple(grid), int(radius), str(torch.device(device or "cpu")))


# Normal tensors even when first asked for under inference_mode (the tracker, validation):
# training's scatter-add in propagate() saves the index table for its backward.
@functools.lru_cache(maxsize=16)
@torch.inference_mode(False)
def _neighbour_table(grid: Tuple[int, int], radius: int, device: str) -> Tuple[torch.Tensor, torch.Tensor]:
    H, W = grid
    off = window_offsets(radius, device)
    ys = torch.arange(H, device=device).view(H, 1, 1)
    xs = torch.arange(W, device=device).view(1, W, 1)
    ny = ys + off[:, 0].view(1, 1, -1)
    nx = xs + off[:, 1].view(1, 1, -1)
    valid = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
    self_index = (ys * W + xs).expand(H, W, off.shape[0])
    indices = torch.where(valid, ny * W + nx, self_index)
    return indices.reshape(H * W, -1), valid.reshape(H * W, -1)


# ----------------------------------------------------------------------------------------------
# transitions

def global_transition(q_prev: torch.Tensor, q_next: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Dense A (B, N, N) between embeddings (B, D, H, W) of consecutive frames (paper eq. 1)."""
    B, D = q_prev.shape[:2]
    a = q_prev.reshape(B, D, -1).transpose(1, 2)          # (B, N, D)
    b = q_next.reshape(B, D, -1)                          # (B, D, N)
    logits = torch.bmm(a, b) / tau
    return torch.softmax(logits, dim=-1)                  # softmax subtracts the row max internally


def _local_logits(q_prev: torch.Tensor, q_next: torch.Tensor, radius: int, tile: int, tau: float) -> torch.Tensor:
    """<q_prev[i], q_next[i + offset_k]> / tau for every node i and window offset k: (B, N, K).

    Out-of-grid neighbours get logit 0 here (zero padding); the caller masks them. Rows of tiles
    are processed in bands of about _BAND_BYTES of similarity blocks, which bounds the transient
    memory without a long loop of small ops.
    """
    B, D, H, W = q_prev.shape
    R, S = radius, tile
    Hp, Wp = -(-H // S) * S, -(-W // S) * S               # grid padded to whole tiles
    ny, nx = Hp // S, Wp // S
    L = S + 2 * R                                         # side of a tile's neighbourhood
    K = (2 * R + 1) ** 2
    queries = F.pad(q_prev / tau, (0, Wp - W, 0, Hp - H))  # 1/tau on D*N values, not N*K
    keys = F.pad(q_next, (R, Wp - W + R, R, Hp - H + R))
    bytes_per_tile_row = B * nx * S * S * L * L * q_prev.element_size()
    rows = max(1, min(ny, _BAND_BYTES // max(bytes_per_tile_row, 1)))
    logits = q_prev.new_empty(B, Hp, Wp, K)
    for iy in range(0, ny, rows):
        r = min(rows, ny - iy)
        # this band's queries: (B * r * nx tiles, S*S, D)
        q = queries[:, :, iy * S:(iy + r) * S].reshape(B, D, r, S, nx, S)
        q = q.permute(0, 2, 4, 3, 5, 1).reshape(B * r * nx, S * S, D)
        # each tile's (S+2R)^2 neighbourhood in the next frame, copied once: the band is copied
        # ((S+2R)/S)^2 times, never K times
        band = keys[:, :, iy * S:(iy + r) * S + 2 * R]
        if torch.onnx.is_in_onnx_export():
            # the exporter cannot size Tensor.unfold's views; im2col gives the same numbers
            k = F.unfold(band, kernel_size=L, stride=S)                              # (B, D*L*L, r*nx)
            k = k.reshape(B, D, L * L, r * nx).permute(0, 3, 1, 2)
        else:
            # strided views and one copy: 3-6x faster than im2col on CPU (walk.md)
            k = band.unfold(2, L, S).unfold(3, L, S).permute(0, 2, 3, 1, 4, 5)     # (B, r, nx, D, L, L)
        k = k.reshape(B * r * nx, D, L * L)
        sim = torch.bmm(q, k)                                                     # (tiles, S*S, L*L)
        col = _window_columns(S, R, q_prev.device).expand(sim.shape[0], -1, -1)
        sim = torch.gather(sim, 2, col)                   # each query's own window: (tiles, S*S, K)
        sim = sim.reshape(B, r, nx, S, S, K).permute(0, 1, 3, 2, 4, 5).reshape(B, r * S, Wp, K)
        logits[:, iy * S:(iy + r) * S] = sim
    return logits[:, :H, :W].reshape(B, H * W, K)


_BAND_BYTES = 16 * 2 ** 20    # transient similarity blocks per band


def local_transition(q_prev: torch.Tensor, q_next: torch.Tensor, radius: int, tau: float = 0.1,
                     tile: Optional[int] = None) -> SparseTransition:
    """Sparse local A (paper eq. 5 with the official square window of radius R cells).

    q_prev, q_next: (B, D, H, W) node embeddings. Softmax over the in-grid window only.
    """
    B, D, H, W = q_prev.shape
    R = int(radius)
    if tile is None:
        tile = _tile_size(H, W)
    logits = _local_logits(q_prev, q_next, R, tile, tau)
    indices, valid = neighbour_table((H, W), R, q_prev.device)
    logits = logits.masked_fill_(~valid, float("-inf"))  # out-of-image: exactly 0 after softmax
    values = torch.softmax(logits, dim=-1)               # max-subtracted; the centre is always valid
    return SparseTransition(values=values, indices=indices, valid=valid, radius=R, grid=(H, W))


def transition(q_prev: torch.Tensor, q_next: torch.Tensor, tau: float = 0.1,
               radius: Optional[int] = None) -> Transition:
    """Local sparse transition if `radius` is given, otherwise the dense global one."""
    if radius is None:
        return global_transition(q_prev, q_next, tau)
    return local_transition(q_prev, q_next, radius, tau)


def with_step_prior(A: Transition, sigma: float, grid: Optional[Tuple[int, int]] = None,
                    mean=(0.0, 0.0)) -> Transition:
    """A with a Gaussian prior on how far a walker steps (not in the paper):
    A'(i, j) = A(i, j) exp(-|d_ij - mean|^2 / (2 sigma^2)) / Z_i, d_ij = (dy, dx) from node i to
    node j in nodes, rows renormalised. The same as subtracting |d - mean|^2 / (2 sigma^2) from the
    logits <q, q'> / tau, so on frames where the embeddings do not tell nodes apart (a hidden object
    under a uniform occluder) the walker takes the expected step (`mean`; 0: it stays put) instead
    of spreading over every similar node; a clearly better match elsewhere still wins.
    `mean` is one (dy, dx) or M of them, (M, 2), for a batch-1 A: then the result is M
    transitions (batch M), one per mean, for M walkers that each expect their own step.
    sigma <= 0: A unchanged. `grid` (H, W) is needed for a dense A."""
    if sigma <= 0:
        return A
    values = A.values if isinstance(A, SparseTransition) else A
    mean = torch.as_tensor(mean, dtype=values.dtype, device=values.device).reshape(-1, 1, 2)  # (M, 1, 2)
    if isinstance(A, SparseTransition):
        off = window_offsets(A.radius, A.values.device).to(A.values.dtype)
        penalty = ((off - mean) ** 2).sum(-1)[:, None] / (2 * sigma ** 2)             # (M, 1, K)
        return SparseTransition(values=_penalised(A.values, penalty), indices=A.indices,
                                valid=A.valid, radius=A.radius, grid=A.grid)
    if grid is None:
        raise ValueError('with_step_prior: a dense transition needs the node grid (H, W)')
    H, W = grid
    ys, xs = torch.meshgrid(torch.arange(H, device=A.device), torch.arange(W, device=A.device), indexing="ij")
    pos = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1).to(A.dtype)        # (N, 2)
    step = pos[None] - pos[:, None]                                                 # [i, j]: j - i
    penalty = ((step[None] - mean[:, None]) ** 2).sum(-1) / (2 * sigma ** 2)         # (M, N, N)
    return _penalised(A, penalty)           # M = 1 broadcasts over A's batch


def _penalised(probs: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """softmax(log probs - penalty) over the last axis, in log space: A * exp(-penalty) in float32
    underflows to an all-zero row (a lost walker) when A's own entry is tiny and the penalties
    large (small sigma); the softmax keeps a distribution whenever a row has any mass."""
    logits = torch.log(probs) - penalty                      # log 0 = -inf: masked stays masked
    top = logits.amax(-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))   # rows without any mass
    e = torch.exp(logits - top)
    return e / e.sum(-1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


@dataclass(frozen=True)
class WalkSettings:
    """How the walker moves: a local window (sec. 3.3; `radius` relative to the node-grid height)
    or the global walk, and the softmax temperature. The model's config is their one home
    (ModelConfig.walk): the tracker walks and the training loss walks with the same values."""
    local: bool = True
    radius: float = 0.2
    tau: float = 0.1

    def window(self, grid_height: int) -> Optional[int]:
        """Window radius in nodes, or None for the global walk."""
        return window_radius(grid_height, self.radius) if self.local else None

    def transition(self, q_prev: torch.Tensor, q_next: torch.Tensor) -> Transition:
        return transition(q_prev, q_next, self.tau, self.window(q_prev.shape[-2]))


# ----------------------------------------------------------------------------------------------
# walkers

def propagate(walker: torch.Tensor, A: Transition) -> torch.Tensor:
    """One step of the walk X <- X A for walkers (B, M, N); returns (B, M, N).

    Local form: the mass of node i is pushed to its K window neighbours with weights
    values[i, :]; no dense N x N matrix is built. Two exact implementations, picked by size:
      * scatter-add of the (B, M, N*K) contributions onto their target nodes: fastest for a
        few walkers on small grids (the tracker's hidden tracks);
      * tiled: the rows of A for an S x S tile of source nodes are scattered into a dense
        (S^2, (S+2R)^2) block (all their targets), one batched matmul moves every walker's tile
        mass onto the tile's neighbourhood, and fold sums the overlapping neighbourhoods. Work
        M*N*(S+2R)^2 at BLAS speed, memory N*(S+2R)^2 + M*N*((S+2R)/S)^2: the fast path for
        many walkers (training) on big windows.
    """
    if isinstance(A, torch.Tensor):
        return torch.bmm(walker, A)
    B, M, N = walker.shape
    H, W = A.grid
    R = A.radius
    k = 2 * R + 1
    if M * k * k * N <= _SCATTER_MAX_ELEMENTS:       # per transition: its walkers share nothing else
        # contribution of source node i to its k-th neighbour, added onto that neighbour's node
        # (out-of-grid entries point at i itself and carry exactly 0)
        contrib = walker.unsqueeze(-1) * A.values.unsqueeze(1)                  # (B, M, N, K)
        targets = A.indices.reshape(1, 1, N * k * k).expand(B, M, -1)
        return walker.new_zeros(B, M, N).scatter_add_(2, targets, contrib.reshape(B, M, N * k * k))
    S = _tile_size(H, W)
    Hp, Wp = -(-H // S) * S, -(-W // S) * S
    ny, nx, L = Hp // S, Wp // S, S + 2 * R
    # dense per-tile blocks of A: (B*tiles, S*S sources, L*L neighbourhood targets)
    vals = F.pad(A.values.reshape(B, H, W, k * k), (0, 0, 0, Wp - W, 0, Hp - H))
    vals = vals.reshape(B, ny, S, nx, S, k * k).permute(0, 1, 3, 2, 4, 5).reshape(B * ny * nx, S * S, k * k)
    col = _window_columns(S, R, walker.device).expand(vals.shape[0], -1, -1)
    block = vals.new_zeros(B * ny * nx, S * S, L * L).scatter_(2, col, vals)   # in place: no zero copy
    # walker mass per source tile: (B*tiles, M, S*S)
    src = F.pad(walker.reshape(B, M, H, W), (0, Wp - W, 0, Hp - H))
    src = src.reshape(B, M, ny, S, nx, S).permute(0, 2, 4, 1, 3, 5).reshape(B * ny * nx, M, S * S)
    moved = torch.bmm(src, block)                                            # (B*tiles, M, L*L)
    moved = moved.reshape(B, ny * nx, M * L * L).permute(0, 2, 1)             # fold layout (B, M*L*L, tiles)
    canvas = F.fold(moved, output_size=(Hp + 2 * R, Wp + 2 * R), kernel_size=L, stride=S)
    return canvas[:, :, R:R + H, R:R + W].reshape(B, M, N)


# Above this many (M*K*N, per transition of the batch) contributions propagate() switches from
# scatter-add to the tiled matmul (which pays off by moving many walkers with one transition's
# blocks; the tracker's per-track priors are M = 1 walker per transition). Measured on one CPU
# thread (2026-11-30, forward, B = 1): scatter-add wins up to 2 walkers at 80x24 nodes (0.21
# vs 0.63 ms for one) and 4 at 40x32; the tiled matmul from 4 walkers at 80x24 (0.80 vs 0.89
# ms) and 8 at 40x32. (F.fold, used before, was slower than one or the other in every case:
# 2.0 ms for 4 walkers at 80x24.)
_SCATTER_MAX_ELEMENTS = 400_000


def _tile_size(H: int, W: int) -> int:
    # Big enough that the (S+2R)^2 halo overhead stays small, small enough that the per-tile
    # dense block (S^2 x (S+2R)^2) stays cheap. S = 8 measured best on CPU for r = 0.2.
    return max(4, min(8, max(H, W)))


def _window_columns(S: int, R: int, device) -> torch.Tensor:
    """(1, S*S, K): column of window entry k of tile-local node (sy, sx) inside the tile's
    (S+2R)^2 neighbourhood, row-major."""
    L = S + 2 * R
    s = torch.arange(S, device=device)
    off = window_offsets(R, device)
    col = ((s.view(S, 1, 1) + R + off[:, 0].view(1, 1, -1)) * L
           + (s.view(1, S, 1) + R + off[:, 1].view(1, 1, -1)))
    return col.reshape(1, S * S, -1)


def densify(A: Transition) -> torch.Tensor:
    """Dense (B, N, N) copy of a transition (tests and debugging only: O(N^2) memory)."""
    if isinstance(A, torch.Tensor):
        return A
    B = A.values.shape[0]
    N = A.num_nodes
    dense = A.values.new_zeros(B, N, N)
    vals = A.values * A.valid                               # masked entries are 0 already
    dense.scatter_add_(2, A.indices.unsqueeze(0).expand(B, -1, -1), vals)
    return dense


def transition_row(A: Transition, node_index: torch.Tensor) -> torch.Tensor:
    """Rows A[b, node_index[b, m], :] as walkers (B, M, N): the walk started at those nodes,
    advanced one step (Algorithm 1, first miss). node_index: (B, M) long."""
    if isinstance(A, torch.Tensor):
        B, N, _ = A.shape
        return torch.gather(A, 1, node_index.unsqueeze(-1).expand(-1, -1, N))
    start = one_hot_walker(node_index, A.num_nodes, A.values.dtype)
    return propagate(start, A)


def step_walkers(walkers: torch.Tensor, starting: torch.Tensor, start_node: torch.Tensor,
                 A: Transition) -> torch.Tensor:
    """One step of the walk of Algorithm 1 for walkers (B, M, N): where `starting` (B, M) is True
    the walker first restarts one-hot at start_node (B, M) (a track's first miss, so after the
    step it is that node's row of A); every walker then moves X <- X A. The tracker and the
    validation metric both roll out with this, so model selection measures what the node does."""
    restart = one_hot_walker(start_node, walkers.shape[-1], walkers.dtype)
    return propagate(torch.where(starting.unsqueeze(-1), restart, walkers), A)


def walker_peaks(walkers: torch.Tensor, grid: "NodeGrid") -> Tuple[torch.Tensor, torch.Tensor]:
    """Confidence (...,) and (x, y) pixel location (..., 2) of walkers (..., N): the max of each
    walker, and its argmax after bilinear upsampling to the stride-4 feature grid (finer than
    pooled nodes; as in the official code), at the centre of that feature cell."""
    lead = walkers.shape[:-1]
    flat = walkers.reshape(-1, grid.num_nodes).float()
    confidences = flat.max(dim=1).values
    belief = flat.view(-1, 1, grid.height, grid.width)
    factor = max(int(round(grid.stride / grid.feature_stride)), 1)
    if factor > 1 and grid.height > 1 and grid.width > 1:
        # align_corners keeps node (y, x) at upsampled (y * factor, x * factor), i.e. at its pixel.
        belief = F.interpolate(belief, size=((grid.height - 1) * factor + 1, (grid.width - 1) * factor + 1),
                               mode="bilinear", align_corners=True)
    width = belief.shape[-1]
    index = torch.argmax(belief.flatten(1), dim=1)
    step = grid.stride / factor
    # NodeGrid.node_to_pixel is the corner of a node's stride-4 feature cell (CenterNet
    # convention); the cell's centre is half a feature cell further.
    xy = torch.stack([index % width, torch.div(index, width, rounding_mode="floor")], dim=1).float() * step \
        + grid.offset + grid.feature_stride / 2
    return confidences.reshape(lead), xy.reshape(*lead, 2)


def one_hot_walker(node_index: torch.Tensor, num_nodes: int, dtype=torch.float32) -> torch.Tensor:
    """Walkers (B, M, N) with all mass at node_index (B, M)."""
    walker = torch.zeros(*node_index.shape, num_nodes, dtype=dtype, device=node_index.device)
    return walker.scatter_(-1, node_index.unsqueeze(-1), 1.0)


# ----------------------------------------------------------------------------------------------
# node index <-> pixel

@dataclass(frozen=True)
class NodeGrid:
    """Geometry of the node grid in image pixels (CenterNet convention: feature cell c stands for
    pixel c * feature_stride, and pixel p falls in cell floor(p / feature_stride)).

    Node (y, x) stands for pixel (x * stride + offset, y * stride + offset). For the default
    embedding head (pool kernel 3, stride 2, padding 1 on the stride-4 memory) stride = 8 and
    offset = 0; unpooled: stride = 4, offset = 0 and nodes are exactly the heatmap cells.
    """
    height: int
    width: int
    stride: float
    offset: float = 0.0
    feature_stride: float = 4.0

    @property
    def num_nodes(self) -> int:
        return self.height * self.width

    def node_to_pixel(self, node_index: torch.Tensor) -> torch.Tensor:
        """(...,) long node indices -> (..., 2) float pixel (x, y)."""
        y = torch.div(node_index, self.width, rounding_mode="floor")
        x = node_index - y * self.width
        return torch.stack([x, y], dim=-1).to(torch.float32) * self.stride + self.offset

    def pixel_to_cell(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) pixel (x, y) -> (..., 2) long (col, row) of the node nearest to the pixel's
        feature cell (ties go to the higher node), clamped to the grid."""
        cell_px = torch.floor(xy / self.feature_stride) * self.feature_stride
        c = torch.floor((cell_px - self.offset) / self.stride + 0.5).long()
        return torch.stack([c[..., 0].clamp(0, self.width - 1), c[..., 1].clamp(0, self.height - 1)], dim=-1)

    def pixel_to_node(self, xy: torch.Tensor) -> torch.Tensor:
        """(..., 2) pixel (x, y) -> (...,) long index of the nearest node."""
        c = self.pixel_to_cell(xy)
        return c[..., 1] * self.width + c[..., 0]

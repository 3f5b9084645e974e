"""Transitions and walker propagation (ram_tracker.walk): exactness, masking, sparsity."""
import pytest
import torch
import torch.nn.functional as F

from ram_tracker import walk


def embeddings(B, D, H, W, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, D, H, W, generator=g, dtype=dtype)
    return F.normalize(q, dim=1)


@pytest.mark.parametrize("H,W,tile", [(5, 7, None), (6, 4, 3), (9, 13, 4), (8, 8, 8)])
def test_local_equals_global_when_window_covers_grid(H, W, tile):
    q0, q1 = embeddings(2, 16, H, W, 1), embeddings(2, 16, H, W, 2)
    R = max(H, W) - 1                                   # every node is in every window
    local = walk.local_transition(q0, q1, R, tau=0.1, tile=tile)
    dense = walk.global_transition(q0, q1, tau=0.1)
    assert local.values.shape == (2, H * W, (2 * R + 1) ** 2)
    assert torch.allclose(walk.densify(local), dense, atol=1e-6, rtol=0)
    # and the walker follows: propagate in the sparse form equals X @ A
    x = torch.softmax(torch.randn(2, 3, H * W, dtype=torch.float64), -1)
    assert torch.allclose(walk.propagate(x, local), walk.propagate(x, dense), atol=1e-6, rtol=0)


@pytest.mark.parametrize("R,band_bytes", [(1, None), (2, None), (3, None), (2, 1)])
def test_local_matches_brute_force_window(R, band_bytes, monkeypatch):
    if band_bytes is not None:                              # one tile row per band
        monkeypatch.setattr(walk, "_BAND_BYTES", band_bytes)
    H, W, tau = 6, 9, 0.1
    q0, q1 = embeddings(1, 8, H, W, 3), embeddings(1, 8, H, W, 4)
    A = walk.densify(walk.local_transition(q0, q1, R, tau, tile=4))[0]
    sim = torch.einsum("dn,dm->nm", q0[0].reshape(8, -1), q1[0].reshape(8, -1)) / tau
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    inside = ((ys[:, None] - ys[None]).abs() <= R) & ((xs[:, None] - xs[None]).abs() <= R)
    expect = torch.softmax(sim.masked_fill(~inside, float("-inf")), -1)
    assert torch.allclose(A, expect, atol=1e-9, rtol=0)


@pytest.mark.parametrize("R", [2, None])
@pytest.mark.parametrize("mean", [(0.0, 0.0), (0.5, -1.25)])
def test_step_prior_is_a_distance_penalty_on_the_logits(R, mean):
    """with_step_prior(A, sigma, mean) = softmax(<q, q'> / tau - |d - mean|^2 / (2 sigma^2)) over
    the window, d = (dy, dx) from the row's node to the column's in nodes, for the local and the
    global walk; sigma 0 leaves A as it is."""
    H, W, tau, sigma = 6, 9, 0.1, 1.3
    q0, q1 = embeddings(1, 8, H, W, 3), embeddings(1, 8, H, W, 4)
    A = walk.transition(q0, q1, tau, R)
    assert walk.with_step_prior(A, 0.0, mean=mean) is A
    prior = walk.with_step_prior(A, sigma, (H, W), mean)
    got = (walk.densify(prior) if R is not None else prior)[0]
    sim = torch.einsum("dn,dm->nm", q0[0].reshape(8, -1), q1[0].reshape(8, -1)) / tau
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy, dx = ys[None] - ys[:, None], xs[None] - xs[:, None]          # [i, j]: node j - node i
    logits = sim - ((dy - mean[0]) ** 2 + (dx - mean[1]) ** 2).double() / (2 * sigma ** 2)
    if R is not None:
        logits = logits.masked_fill((dy.abs() > R) | (dx.abs() > R), float("-inf"))
    assert torch.allclose(got, torch.softmax(logits, -1), atol=1e-9, rtol=0)


def test_a_strong_step_prior_never_empties_a_row():
    """A sharp float32 transition (every row's mass one node to the right, its own entry ~1e-44)
    under a prior of 0.05 node: A * exp(-d^2 / 2 sigma^2) underflowed to an all-zero row, so the
    walker lost its mass and the tracker ended the track. In log space the rows stay
    distributions, the prior wins (mass on the start node), and masked entries stay 0."""
    H, W, R = 6, 10, 2
    n = H * W
    codes = torch.eye(n).T.reshape(1, n, H, W)
    A = walk.local_transition(codes, torch.roll(codes, shifts=1, dims=3), R, tau=0.01)
    prior = walk.with_step_prior(A, 0.05)
    assert torch.allclose(prior.values.sum(-1), torch.ones(1, n))
    centre = (2 * R + 1) ** 2 // 2                       # the window's own node
    assert (prior.values[..., centre] > 0.99).all()
    assert (prior.values[:, ~A.valid] == 0).all()


def test_rows_sum_to_one_and_masked_neighbours_are_exactly_zero():
    H, W, R = 7, 10, 3
    q0, q1 = embeddings(2, 32, H, W, 5, torch.float32), embeddings(2, 32, H, W, 6, torch.float32)
    A = walk.local_transition(q0, q1, R, tau=0.1)
    assert torch.allclose(A.values.sum(-1), torch.ones(2, H * W), atol=1e-5)
    assert (A.values[:, ~A.valid] == 0).all()
    assert (A.values[:, A.valid] > 0).all()
    # corner node 0 has only (R+1)^2 in-grid neighbours, nothing leaks onto node 0 from padding
    assert int(A.valid[0].sum()) == (R + 1) ** 2
    dense = walk.densify(A)[0]
    far = torch.tensor([W - 1, (H - 1) * W + W - 1])      # nodes farther than R from node 0
    assert (dense[far, 0] == 0).all()
    # mass is conserved by propagation
    x = torch.softmax(torch.randn(2, 4, H * W), -1)
    assert torch.allclose(walk.propagate(x, A).sum(-1), torch.ones(2, 4), atol=1e-5)


def test_softmax_is_stable_for_large_logits():
    q = embeddings(1, 4, 5, 5, 7, torch.float32)
    A = walk.local_transition(q, q, 2, tau=1e-4)         # logits up to 1e4: raw exp would overflow
    assert torch.isfinite(A.values).all()
    centre = A.values.shape[-1] // 2
    assert torch.allclose(A.values[0, :, centre], torch.ones(25))   # self-similarity wins


def test_transition_row_and_one_hot():
    H, W, R = 5, 6, 2
    q0, q1 = embeddings(1, 8, H, W, 8), embeddings(1, 8, H, W, 9)
    A = walk.local_transition(q0, q1, R, 0.1)
    idx = torch.tensor([[0, 13, 29]])
    rows = walk.transition_row(A, idx)
    dense = walk.densify(A)
    assert torch.allclose(rows[0], dense[0, idx[0]], atol=1e-12)
    assert torch.allclose(walk.transition_row(dense, idx), rows, atol=1e-12)


def test_gradients_flow_through_local_walk():
    H, W, R = 6, 6, 2
    q0 = embeddings(1, 8, H, W, 10).requires_grad_()
    q1 = embeddings(1, 8, H, W, 11).requires_grad_()
    x = walk.one_hot_walker(torch.tensor([[14]]), H * W, torch.float64)
    A = walk.local_transition(q0, q1, R, 0.1)
    out = walk.propagate(walk.propagate(x, A), A)
    out[0, 0, 20].log().backward()
    assert q0.grad.abs().sum() > 0 and q1.grad.abs().sum() > 0
    # same gradient as the dense path
    g0, g1 = q0.grad.clone(), q1.grad.clone()
    q0.grad = q1.grad = None
    Ad = walk.densify(walk.local_transition(q0, q1, R, 0.1))
    walk.propagate(walk.propagate(x, Ad), Ad)[0, 0, 20].log().backward()
    assert torch.allclose(g0, q0.grad) and torch.allclose(g1, q1.grad)


def test_node_grid_round_trip():
    grid = walk.NodeGrid(height=24, width=80, stride=8.0)
    idx = torch.arange(grid.num_nodes)
    xy = grid.node_to_pixel(idx)
    assert torch.equal(grid.pixel_to_node(xy), idx)
    assert torch.equal(grid.pixel_to_node(xy + 3.0), idx)   # nearest node
    assert grid.pixel_to_node(torch.tensor([-50.0, 1e4])).item() == (grid.height - 1) * grid.width
    assert walk.window_radius(24, 0.2) == 4 and walk.window_radius(48, 0.2) == 9


def test_both_propagation_paths_agree(monkeypatch):
    for H, W, R in [(7, 9, 2), (20, 13, 3), (3, 17, 5)]:       # grids that are not whole tiles
        q0, q1 = embeddings(2, 8, H, W, 12), embeddings(2, 8, H, W, 13)
        A = walk.local_transition(q0, q1, R, 0.1)
        x = torch.softmax(torch.randn(2, 5, H * W, dtype=torch.float64), -1).requires_grad_()
        via_scatter = walk.propagate(x, A)
        g_scatter, = torch.autograd.grad(via_scatter[:, :, ::3].sum(), x)
        monkeypatch.setattr(walk, "_SCATTER_MAX_ELEMENTS", 0)
        via_tiles = walk.propagate(x, A)
        g_tiles, = torch.autograd.grad(via_tiles[:, :, ::3].sum(), x)
        monkeypatch.undo()
        assert torch.allclose(via_scatter, via_tiles, atol=1e-12)
        assert torch.allclose(g_scatter, g_tiles, atol=1e-12)
        assert torch.allclose(via_scatter, x @ walk.densify(A), atol=1e-12)


def test_a_walk_trains_after_the_same_grid_was_walked_under_inference_mode():
    """The neighbour table is cached per grid; a table first built under inference_mode (the
    tracker, validation) must still serve a training walk's backward on that grid."""
    H, W, R = 11, 13, 2                          # a grid no other test caches first
    q0, q1 = embeddings(1, 8, H, W, 21), embeddings(1, 8, H, W, 22)
    with torch.inference_mode():
        uniform = torch.full((1, 1, H * W), 1.0 / (H * W), dtype=torch.float64)
        walk.propagate(uniform, walk.local_transition(q0, q1, R))
    q0.requires_grad_()
    x = torch.softmax(torch.randn(1, 2, H * W, dtype=torch.float64), -1)
    walk.propagate(x, walk.local_transition(q0, q1, R))[0, 0, 5].backward()
    assert q0.grad is not None and torch.isfinite(q0.grad).all()

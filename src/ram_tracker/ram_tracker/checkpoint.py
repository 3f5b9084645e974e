"""Model weights files: safetensors + the model config in the file's metadata.

One format for everything that ships or is deployed (the node, evaluation, export). Training
checkpoints with optimizer state are the trainer's business; it exports to this format.
safetensors never unpickles anything, so a weights file from anywhere is safe to open.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ram_tracker.atomic_write import atomic_path
from ram_tracker.model import ModelConfig, RAMModel, build_model

FORMAT = 'ram-ros-weights/1'


class WeightsError(ValueError):
    """A weights file exists but cannot be used; the message names the file and the reason."""


def save_weights(path: str | Path, model: RAMModel, info: dict | None = None) -> Path:
    """Write `model`'s weights and config atomically (atomic_write.atomic_path)."""
    path = Path(path)
    metadata = {'format': FORMAT, 'model_config': json.dumps(model.cfg.to_dict()),
                'info': json.dumps(info or {})}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def load_weights(path: str | Path, device: str | torch.device = 'cpu') -> tuple[RAMModel, dict]:
    """Build the model described in the file and load its weights. Returns (model in eval
    mode on `device`, info dict). Raises FileNotFoundError or WeightsError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'weights file not found: {path}')
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework='pt') as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path), device='cpu')
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f'{path}: not a readable safetensors weights file ({error})') from error
    if metadata.get('format') != FORMAT:
        raise WeightsError(f"{path}: metadata format is {metadata.get('format')!r}, "
                           f"expected {FORMAT!r} (write it with ram_tracker.checkpoint.save_weights)")
    try:
        config = ModelConfig.from_dict(json.loads(metadata['model_config']))
        info = json.loads(metadata.get('info', '{}'))
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise WeightsError(f'{path}: model_config metadata is invalid ({error})') from error
    model = build_model(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise WeightsError(f'{path}: weights do not match its model_config ({error})') from error
    return model.to(device).eval(), info


def trained_input_size(info: dict) -> tuple[int, int] | None:
    """(width, height) the model was trained at, from a weights file's info (ram-train writes
    `input_size`; older files only carry the training config)."""
    size = info.get('input_size') or info.get('config', {}).get('data', {}).get('image_size')
    return (int(size[0]), int(size[1])) if size else None


def file_sha256(path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks (weights identity in logs, caches and
    evaluation fingerprints)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

# A model small enough for CPU tests, with World 1's classes (used by the training tests).
TINY_MODEL = dict(class_names=["target", "cube", "sphere", "cylinder", "cone"], backbone_width=8, neck_channels=16,
                  memory_channels=16, head_channels=16, embed_channels=16, embed_pool="none", walk_radius=0.1)


def rounded_sha256(*arrays) -> str:
    """Short sha256 of arrays rounded to 4 decimals: pins generated data to the values datasets
    were made with, and is not upset by last-bit float differences between machines."""
    digest = hashlib.sha256()
    for array in arrays:
        rounded = np.round(np.asarray(array, np.float64), 4) + 0.0   # + 0.0: -0.0 becomes 0.0
        digest.update(np.ascontiguousarray(rounded).tobytes())
    return digest.hexdigest()[:16]


def process_state(pid: int) -> str | None:
    """/proc/<pid>/stat's state letter (R, S, Z, ...); None when there is no such process."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return None
    return stat[stat.rindex(')') + 2]          # the command name may hold spaces and ')'


def children_running(parent: int, name: str) -> list[int]:
    """Live (not zombie) processes whose parent is `parent` and whose command line holds `name`."""
    found = []
    for stat_path in Path('/proc').glob('[0-9]*/stat'):
        try:
            stat = stat_path.read_text()
            cmdline = (stat_path.parent / 'cmdline').read_bytes().decode(errors='replace')
        except OSError:
            continue
        fields = stat[stat.rindex(')') + 2:].split()
        if int(fields[1]) == parent and fields[0] != 'Z' and name in cmdline:
            found.append(int(stat_path.parent.name))
    return found


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Test tensors are tiny: a second thread only adds synchronisation cost, and on CI's two
    shared cores (other processes of the same test running) it made tests many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world1(tmp_path_factory) -> Path:
    """A tiny World 1 dataset (2 train videos, 1 val video, 48 frames at 64x64)."""
    from ram_training.data import world_lacater as w1
    root = tmp_path_factory.mktemp("world1")
    spec = w1.World1DatasetSpec(config=w1.World1Config(width=64, height=64, num_frames=48),
                                counts={"train": 2, "val": 1, "test": 0}, base_seed=3)
    w1.generate_dataset(root, spec, workers=1)
    return root

"""Atomic file writes: a killed run never leaves half a file behind (temp file beside the
target + os.replace). No ROS; the training and evaluation packages write through these too."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, keep_suffix: bool = False):
    """A temporary path beside `path` to write to, `.<name>.tmp<pid>`; it replaces `path` when
    the block ends without an error and is removed otherwise. keep_suffix appends `path`'s
    suffix, for writers that pick the format by it (OpenCV's VideoWriter: the container)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}{path.suffix if keep_suffix else ""}')
    try:
        yield tmp
        with open(tmp, 'rb') as written:        # on disk before the rename: a crash leaves
            os.fsync(written.fileno())          # the old file or the whole new one
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())

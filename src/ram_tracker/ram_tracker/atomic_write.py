"""Atomic file writes: a killed run never leaves half a file behind (temp file beside the
target + os.replace). No ROS; the training and evaluation packages write through these too."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, keep_suffix: bool = False):
    """A temporary path beside `path` to write to, `.<name>.tmp<pid>`; it replaces `path` when
    the block ends without an error and is removed otherwise. keep_suffix appends `path`'s
    suffix, for writers that pick the format by it (OpenCV's VideoWriter: the container)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}{temporary_tag()}{path.suffix if keep_suffix else ""}')
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


def temporary_tag() -> str:
    """`.tmp<pid>`: the part of a temporary name (file or work folder) that says it is one and
    which process writes it, so that remove_abandoned can tell a killed writer's leftovers from
    a live writer's work."""
    return f'.tmp{os.getpid()}'


_TEMPORARY = re.compile(r'^\..+\.tmp(?P<pid>\d+)(?:[._].*)?$')


def remove_abandoned(directory, min_age_s: float = 3600.0) -> list[Path]:
    """Remove the temporaries (files or folders named with temporary_tag()) that writers killed
    mid-write left in `directory` (SIGKILL or a power cut: their cleanup never ran; a cache
    directory otherwise grows by a whole file per killed export). A temporary goes only if its
    writer's pid is not alive here *and* it is older than `min_age_s`: a cache shared with
    another machine (where our pid check means nothing) loses no write that is still under way.
    Returns what was removed; errors (a race with another sweeper) are ignored."""
    directory = Path(directory)
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or _alive(int(match['pid'])):
            continue
        try:
            if now - entry.lstat().st_mtime < min_age_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True         # another user's process, or no pid at all: keep its file
    return True

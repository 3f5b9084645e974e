"""Atomic file writes: a killed run never leaves half a file behind (temp file beside the
target + os.replace), and the removal of the temporaries a killed run left behind. No ROS; the
training and evaluation packages use these too."""
from __future__ import annotations

import contextlib
import glob
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


# Caches (ONNX graphs, TensorRT engines) may be shared with another machine, where our pid check
# says nothing: a leftover there must also be this old (no export or build takes an hour).
CACHE_LEFTOVER_AGE_S = 3600.0


def remove_leftovers_of_dead_runs(folder, prefix: str, min_age_s: float = 0.0) -> list:
    """Remove the entries `<prefix><pid>` of `folder` (optionally followed by `.<suffix>` or
    `_<anything>`) whose process no longer exists: the temporaries (files or folders written
    under a run's pid and renamed into place when complete) that a killed run left behind
    (SIGKILL or a power cut: its own cleanup never ran). Those of a live process, a run still
    writing, are not touched, nor is any other name, nor (min_age_s, for folders another machine
    may share, where a pid says nothing) anything modified less than min_age_s ago. Returns the
    removed paths."""
    folder = Path(folder)
    removed = []
    now = time.time()
    for entry in sorted(folder.glob(glob.escape(prefix) + '*')) if folder.is_dir() else ():
        match = _PID_THEN_TAIL.fullmatch(entry.name[len(prefix):])
        if not match or _process_exists(int(match[1])):
            continue
        try:
            if min_age_s and now - entry.lstat().st_mtime < min_age_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        except OSError:
            continue                    # another sweeper got there first
        removed.append(entry)
    return removed


_PID_THEN_TAIL = re.compile(r'(\d+)(?:[._].*)?')


def _process_exists(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (conservatively True where that cannot be
    told: another user's process, or a system without POSIX signals)."""
    if os.name != 'posix' or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)                 # signal 0: only the existence and permission checks
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True

"""Atomic file writes: one implementation, in ram_tracker (which the run-time tools use too).
Here also the removal of the temporaries a killed run left behind (remove_leftovers_of_dead_runs)."""
from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from ram_tracker.atomic_write import atomic_path, atomic_write_bytes, atomic_write_text  # noqa: F401


def remove_leftovers_of_dead_runs(folder, prefix: str) -> list:
    """Remove the entries `<prefix><pid>` of `folder` whose process no longer exists: the
    temporaries (files or folders written under a run's pid and renamed into place when
    complete) that a killed run left behind. Those of a live process, a run still writing, are
    not touched, nor is any other name. Returns the removed paths."""
    folder = Path(folder)
    removed = []
    for entry in sorted(folder.glob(glob.escape(prefix) + '*')) if folder.is_dir() else ():
        pid = entry.name[len(prefix):]
        if not pid.isdigit() or _process_exists(int(pid)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


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

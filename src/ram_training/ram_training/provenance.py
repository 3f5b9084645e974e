"""Where a result came from: the git state of the code that produced it (training runs record it
in their checkpoints and weights, evaluations in their results)."""
from __future__ import annotations

import functools
import hashlib
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# What computes a result: every source and data file of both packages (the model, the walk,
# the tracker, the node's schema, the datasets, the metrics).
CODE_SUFFIXES = ('.py', '.json')


def code_digest(roots: tuple[Path, ...] | None = None) -> str:
    """sha256 over the relative path and bytes of every CODE_SUFFIXES file under `roots` (default:
    the installed ram_tracker and ram_training packages). Caches of results key on it: a change
    to the code that computes them is never answered with the old code's numbers."""
    if roots is None:
        return _installed_code_digest()
    h = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in root.rglob('*') if p.suffix in CODE_SUFFIXES and p.is_file()):
            h.update(f'{root.name}/{path.relative_to(root).as_posix()}'.encode() + b'\0')
            h.update(path.read_bytes() + b'\0')
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _installed_code_digest() -> str:
    """The code this process runs (read once: it is the code loaded at start)."""
    import ram_tracker
    return code_digest((Path(ram_tracker.__file__).resolve().parent, PACKAGE))


def git_state(root: Path = PACKAGE) -> dict:
    """{'commit': HEAD, 'dirty': tracked files differ} of the repository `root` is in; None values
    outside git (an installed copy) or when git is missing."""
    def git(*args):
        return subprocess.run(['git', '-C', str(root), *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
    try:
        return {'commit': git('rev-parse', 'HEAD') or None,
                'dirty': bool(git('status', '--porcelain', '--untracked-files=no'))}
    except (OSError, subprocess.SubprocessError):
        return {'commit': None, 'dirty': None}


def git_commit(root: Path = PACKAGE) -> str:
    """The same as one string: HEAD, '+dirty' when tracked files differ; 'unknown' outside git."""
    state = git_state(root)
    if not state['commit']:
        return 'unknown'
    return state['commit'] + ('+dirty' if state['dirty'] else '')

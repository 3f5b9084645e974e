"""Where a result came from: the git state of the code that produced it (training runs record it
in their checkpoints and weights, evaluations in their results)."""
from __future__ import annotations

import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


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

"""provenance: the git state results record (one implementation for training and evaluation)."""
import subprocess

from ram_training.provenance import git_commit, git_state


def test_git_state_of_a_repository_clean_and_dirty(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {"commit": head, "dirty": False} and git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("not part of the code")
    assert git_state(tmp_path)["dirty"] is False                 # untracked files do not count
    (tmp_path / "a.txt").write_text("2")
    assert git_state(tmp_path)["dirty"] is True and git_commit(tmp_path) == head + "+dirty"


def test_outside_git(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    assert git_commit(tmp_path) == "unknown"


def test_code_digest_follows_every_source_file_and_nothing_else(tmp_path):
    """What evaluation caches key on: a byte changed in any .py or .json file of the packages
    changes it, a renamed file too; other files (a README, a plot) do not."""
    from ram_training.provenance import code_digest
    pkg = tmp_path / 'pkg'
    (pkg / 'sub').mkdir(parents=True)
    (pkg / 'walk.py').write_text('SIGMA = 0.0\n')
    (pkg / 'sub' / 'schema.json').write_text('{"a": 1}')
    first = code_digest((pkg,))
    assert code_digest((pkg,)) == first
    (pkg / 'notes.md').write_text('not code')
    assert code_digest((pkg,)) == first
    (pkg / 'walk.py').write_text('SIGMA = 0.005\n')
    second = code_digest((pkg,))
    assert second != first
    (pkg / 'sub' / 'schema.json').rename(pkg / 'sub' / 'other.json')
    assert code_digest((pkg,)) not in (first, second)
    assert len(code_digest()) == 64            # the installed packages

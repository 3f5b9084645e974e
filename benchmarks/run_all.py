"""make bench: run every benchmarks/bench_*.py, then write benchmarks/results/summary.md.

Each benchmark writes benchmarks/results/<name>.json (numbers) and <name>.md (a table). Run
them on an otherwise idle machine: they measure time.
"""
import subprocess
import sys
import time
from pathlib import Path

from ram_tracker.atomic_write import atomic_write_text

HERE = Path(__file__).resolve().parent
RESULTS = HERE / 'results'


def main() -> int:
    failed = []
    only = set(sys.argv[1:])
    for script in sorted(HERE.glob('bench_*.py')):
        name = script.stem.removeprefix('bench_')
        if only and name not in only:
            continue
        print(f'[bench] {name} ...', flush=True)
        started = time.time()
        rc = subprocess.call([sys.executable, str(script)])
        print(f'[bench] {name}: {"ok" if rc == 0 else f"FAILED ({rc})"} in '
              f'{time.time() - started:.0f} s', flush=True)
        if rc:
            failed.append(name)
    parts = ['# Benchmark results', '',
             'Written by `make bench` (benchmarks/run_all.py); one JSON per benchmark beside '
             'this file.', '']
    for md in sorted(RESULTS.glob('*.md')):
        if md.name != 'summary.md':
            parts += [md.read_text().strip(), '']
    atomic_write_text(RESULTS / 'summary.md', '\n'.join(parts))
    if failed:
        print(f'[bench] failed: {", ".join(failed)}')
    return 1 if failed else 0


if __name__ == '__main__':
    raise SystemExit(main())

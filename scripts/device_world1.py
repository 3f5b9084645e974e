#!/usr/bin/env python3
"""Stage 3 of the World 1 models on a lent GPU machine, inside one bounded call.

A lent GPU comes with minutes, not hours, so this script sizes the work to the time it has:

1. facts: GPU, python, torch (printed);
2. probe: the four runs below side by side for a few steps -> seconds per step under that load;
3. the four runs with the number of steps that fits the budget, the same N for all four, so each
   RAM model and its no-walk twin get equal budgets:
     world1_gpu                  recipe world1_gpu          (frozen backbone)
     world1_gpu_nowalk           recipe world1_gpu_nowalk   (its twin)
     world1_gpu_unfrozen         the same with optim.frozen=[]
     world1_gpu_unfrozen_nowalk  its twin
   A run still going at the hard deadline is stopped; its last checkpoint is exported with
   `ram-train --resume train.steps=<checkpoint step>` (the schedule was then cut short: the
   printed summary says so);
4. the CUDA inference benchmark (benchmarks/bench_backends.py --gpu-only) if time remains;
5. results in --out: each run's model.safetensors, summary.json and one tar of metrics,
   configs, logs and nvidia-smi (six files: the lent machine returns at most eight, so a
   caller should add no more than two of its own).

`--plan FILE` replaces the four runs by those of a JSON file, {name: {"config": recipe,
"overrides": [...]}} (e.g. models/campaign/device_plan.json: the campaign's unfinished stage,
continued from its committed weights); every run still gets the same number of steps.

It prints the exact ram-train commands it ran: those reproduce the models on any CUDA machine.
Runs from the repository root with the sources on PYTHONPATH (no colcon build needed):
    python3 scripts/device_world1.py --out "$OUT" --budget-s 540
A local smoke run of the same logic on CPU:
    python3 scripts/device_world1.py --device cpu --budget-s 240 --max-steps 2 \
        --extra 'data.clip_length=4 data.val_clips=2 data.val_clip_length=4 data.batch_size=1'
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The default (stage-3) runs start from the shipped pair. When stage 3 ran (2026-11-26) that was
# stage 2 (runs/world1_cpu_long*/model.safetensors, sha256 988c8e5c... in git history); since
# then the shipped pair is later stages, so these runs now fine-tune it further.
RAM_INIT = 'models/world1_ram.safetensors'
NOWALK_INIT = 'models/world1_nowalk.safetensors'
RUNS = {
    'world1_gpu': ('world1_gpu', [f'train.init_from={RAM_INIT}']),
    'world1_gpu_nowalk': ('world1_gpu_nowalk', [f'train.init_from={NOWALK_INIT}']),
    'world1_gpu_unfrozen': ('world1_gpu', [
        f'train.init_from={RAM_INIT}', 'optim.frozen=[]', 'train.name=world1_gpu_unfrozen']),
    'world1_gpu_unfrozen_nowalk': ('world1_gpu_nowalk', [
        f'train.init_from={NOWALK_INIT}', 'optim.frozen=[]',
        'train.name=world1_gpu_unfrozen_nowalk']),
}


def log(msg: str) -> None:
    print(f'[{time.strftime("%H:%M:%S")}] {msg}', flush=True)


def env() -> dict:
    e = dict(os.environ, PYTHONUNBUFFERED='1')
    e['PYTHONPATH'] = os.pathsep.join([str(ROOT / 'src/ram_tracker'), str(ROOT / 'src/ram_training'),
                                       e.get('PYTHONPATH', '')])
    return e


def load_plan(path: str) -> dict:
    """{name: (recipe, overrides)} from a plan file; a clear error for a malformed one."""
    plan = json.loads(Path(path).read_text())
    if not isinstance(plan, dict) or not plan:
        raise SystemExit(f'{path}: expected a JSON object {{name: {{"config": ..., "overrides": [...]}}}}')
    runs = {}
    for name, run in plan.items():
        if not (isinstance(run, dict) and isinstance(run.get('config'), str)
                and isinstance(run.get('overrides', []), list)):
            raise SystemExit(f'{path}: run {name!r} needs "config" (a recipe) and "overrides" (a list)')
        runs[name] = (run['config'], [str(o) for o in run.get('overrides', [])] + [f'train.name={name}'])
    return runs


def command(name: str, steps: int, out_dir: Path, extra: list[str]) -> list[str]:
    config, overrides = RUNS[name]
    return [sys.executable, '-m', 'ram_training.train', '--config', config, *overrides,
            f'train.steps={steps}', f'train.out_dir={out_dir}', *extra]


def launch(names, steps, out_dir: Path, extra: list[str]) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = {}
    for name in names:
        cmd = command(name, steps, out_dir, extra)
        log('run: ' + ' '.join(cmd[1:]))
        handle = open(out_dir / f'{name}.log', 'w')
        procs[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=handle,
                                        stderr=subprocess.STDOUT), handle)
    return procs


def wait(procs: dict, deadline: float) -> dict:
    """Exit codes by run; a run still going at the deadline is terminated (code None)."""
    codes = {}
    for name, (proc, handle) in procs.items():
        try:
            codes[name] = proc.wait(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            codes[name] = None
        handle.close()
    return codes


def rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.environ.get('OUT', 'device_out'))
    parser.add_argument('--budget-s', type=float, default=540.0, help='wall time of the whole script')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--probe-steps', type=int, default=6)
    parser.add_argument('--max-steps', type=int, default=3000)
    parser.add_argument('--plan', default='', help='JSON file of runs (default: the four stage-3 runs)')
    parser.add_argument('--runs', default='', help='comma-separated subset of the runs (default: all)')
    parser.add_argument('--extra', default='', help='overrides for every run (smoke runs), space-separated')
    args = parser.parse_args()
    if args.plan:
        RUNS.clear()
        RUNS.update(load_plan(args.plan))
    start = time.time()
    end = start + args.budget_s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path('/tmp/device_world1')
    names = args.runs.split(',') if args.runs else list(RUNS)
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        raise SystemExit(f'unknown runs {unknown}; the plan has {sorted(RUNS)}')
    device = [f'train.device={args.device}'] + (['train.amp=false', 'data.workers=0', 'train.threads=1']
                                                 if args.device == 'cpu' else []) + args.extra.split()
    summary: dict = {'started': time.strftime('%Y-%m-%dT%H:%M:%S'), 'budget_s': args.budget_s}
    facts = subprocess.run([sys.executable, '-c', (
        'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available(), '
        'torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-", __import__("os").cpu_count())')],
        capture_output=True, text=True, env=env())
    summary['facts'] = facts.stdout.strip() or facts.stderr.strip()[-500:]
    work.mkdir(parents=True, exist_ok=True)
    try:
        smi = subprocess.run(['nvidia-smi'], capture_output=True, text=True, timeout=30)
        (work / 'nvidia-smi.log').write_text(smi.stdout + smi.stderr)
    except (OSError, subprocess.TimeoutExpired) as e:
        (work / 'nvidia-smi.log').write_text(f'nvidia-smi: {e}\n')
    log(f'facts: {summary["facts"]}')

    # --- probe: the real load (all runs side by side), a few steps, no validation -------------
    probe = launch(names, args.probe_steps, work / 'probe', device + [
        'data.val_clips=0', f'train.log_interval={max(args.probe_steps // 2, 1)}', 'train.checkpoint_interval=0'])
    codes = wait(probe, start + 0.3 * args.budget_s)
    s_per_step = {}
    for name in names:
        r = rows(work / 'probe' / name / 'metrics.csv')
        if codes[name] != 0 or not r:
            tail = (work / 'probe' / f'{name}.log').read_text()[-3000:]
            log(f'probe of {name} failed (exit {codes[name]}):\n{tail}')
            continue
        s_per_step[name] = float(r[-1]['s_per_step'])
    summary['probe_s_per_step'] = s_per_step
    log(f'probe: seconds per step {s_per_step} ({time.time() - start:.0f} s in)')
    names = [n for n in names if n in s_per_step]
    if not names:
        write_summary(out, summary)
        return 1

    # --- the runs: one N for all, sized to the time left (start-up, 4 validations, a margin) ---
    train_end = end - 110.0                              # export, benchmark, packing
    slowest = max(s_per_step.values())
    available = train_end - time.time() - 40.0          # process start-up and the first batches
    steps = int(available / (slowest * 1.15 + 1e-9) - 8)  # ~8 steps' worth of validation
    steps = max(min(steps - steps % 10, args.max_steps), 10)
    summary['steps'] = steps
    log(f'training {names} for {steps} steps each (slowest probe {slowest:.2f} s/step)')
    runs = launch(names, steps, work / 'runs', device + [f'train.val_interval={max(steps // 3, 1)}'])
    summary['commands'] = {n: ' '.join(['ram-train'] + command(n, steps, Path('runs'), [])[3:]) for n in names}
    codes = wait(runs, train_end)
    summary['exit_codes'] = codes
    summary['train_wall_s'] = round(time.time() - start, 1)
    for name in names:
        run_dir = work / 'runs' / name
        if codes[name] is None and (run_dir / 'checkpoint.pt').exists():
            # stopped at the deadline: export the last checkpoint (its cosine schedule was cut short)
            done = subprocess.run([sys.executable, '-c', 'import sys; from ram_training.train import load_checkpoint; '
                                   'print(load_checkpoint(sys.argv[1])["step"])', str(run_dir / 'checkpoint.pt')],
                                  capture_output=True, text=True, env=env())
            at = int(done.stdout.strip() or 0)
            log(f'{name} stopped at the deadline; exporting its checkpoint of step {at}')
            summary.setdefault('cut_short', {})[name] = at
            if at:
                subprocess.run(command(name, at, work / 'runs', device + ['--resume']), cwd=ROOT, env=env(),
                               timeout=90)
        r = rows(run_dir / 'metrics.csv')
        val = [x for x in r if x.get('val_occl_walker_px')]
        summary.setdefault('runs', {})[name] = {
            'last_step': int(r[-1]['step']) if r else 0,
            'seconds_per_step': r[-1]['s_per_step'] if r else None,
            'val': [{k: x[k] for k in ('step', 'val_ram', 'val_occl_walker_px', 'val_occl_last_seen_px',
                                       'val_occl_frames')} for x in val]}
        model = run_dir / 'model.safetensors'
        if model.exists():
            os.replace(model, out / f'{name}.safetensors')
    log(json.dumps(summary.get('runs'), indent=1))

    # --- the CUDA inference benchmark, if there is time ------------------------------------------
    if args.device == 'cuda' and end - time.time() > 75:
        try:
            b = subprocess.run([sys.executable, 'benchmarks/bench_backends.py', '--gpu-only'], cwd=ROOT,
                               env=env(), capture_output=True, text=True, timeout=end - time.time() - 15)
            summary['bench_exit'] = b.returncode
            (work / 'bench.log').write_text(b.stdout + b.stderr)
        except subprocess.TimeoutExpired:
            summary['bench_exit'] = 'timeout'
    write_summary(out, summary)
    with tarfile.open(out / 'logs.tar.gz', 'w:gz') as tar:
        for path in sorted(work.rglob('*')):
            if path.is_file() and path.suffix in ('.csv', '.yaml', '.log'):
                tar.add(path, arcname=str(path.relative_to(work)))
        for path in sorted((ROOT / 'benchmarks/results').glob('backends_gpu.*')):
            tar.add(path, arcname=path.name)
    log(f'done in {time.time() - start:.0f} s')
    return 0


def write_summary(out: Path, summary: dict) -> None:
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')


if __name__ == '__main__':
    sys.exit(main())

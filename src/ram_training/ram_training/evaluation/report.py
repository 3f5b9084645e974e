"""The evaluation report: eval/REPORT.md with plots, from the results JSON that `make eval` writes.

    python -m ram_training.evaluation.report eval/results.json --out eval/ \
        [--belief-video data/world1/test/00000.npz] [--model models/world1_ram.safetensors]

Input (every section optional; unknown extra numbers are listed too, nothing is dropped):

    {"commit": "<git hash>",
     "datasets": {
       "world1": {"methods": {name: {"miou_visible": f, "miou_occluded": f,
                                     "miou_contained": f, "miou_carried": f, ...}}},
       "world2": {"methods": {name: {"car": {"HOTA": f, "DetA": f, "AssA": f, "MOTA": f,
                                              "IDF1": f, "TrackAP": f, ...},
                                      "pedestrian": {...}}},
                  "occluded_localization_px": {name: f}}},
     "occlusion_errors": [{"dataset": str, "method": str, "occlusion_length": int,
                           "error_px": f or null}, ...]}

A dataset is a World 1 dataset when its methods carry `miou_<state>` keys (mIoU in 0..1, the
paper's Table 1 protocol, evaluation/world1.py), a tracking dataset when each method maps class
names to metric dicts (trackeval percentages, evaluation/mot_metrics.py; TrackAP from
evaluation/track_ap.py). `None` / NaN values are shown as n/a.

`occlusion_errors`: one record per occlusion, i.e. per maximal run of consecutive frames in which
one ground-truth object is hidden, and per method: `occlusion_length` = the run's length in
frames (int >= 1); `error_px` = the mean, over the run's frames in which the method reports a
box for that object, of the distance in source-image pixels between the box centre and the true
centre; `null` when the method reports no box in any frame of the run (counted as "no
estimate", not plotted). `dataset` is optional (default "all").

Output in `out_dir` (all written atomically):

* REPORT.md: every number of the results in tables, with the plots embedded;
* <dataset>_miou.png: World 1 mIoU per target state, one bar per method;
* <dataset>_tracking.png: HOTA, AssA, IDF1, Track AP per class, one bar per method;
* occlusion_error.png: localization error vs occlusion length per method (each occlusion a
  dot, the mean per length bin a line; one panel per dataset);
* belief_filmstrip.png / belief.gif (`belief_filmstrip`, CLI `--belief-video`): the RAM
  tracker (TrackingPipeline, shipped World 1 model) over a World 1 video, drawn by
  ram_tracker.visualize (boxes, ids, the walker's belief heatmap), the frames around the
  target's longest hidden stretch.

Plots use matplotlib's Agg canvas directly (no pyplot state, no display).
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ram_training.data.atomic import atomic_write_bytes, atomic_write_text

REPORT_NAME = 'REPORT.md'
WORLD1_STATES = ('visible', 'occluded', 'contained', 'carried')
TRACKING_HEADLINE = ('HOTA', 'AssA', 'IDF1', 'TrackAP')           # plotted
TRACKING_ORDER = ('HOTA', 'DetA', 'AssA', 'MOTA', 'IDF1', 'TrackAP')  # first columns
# occlusion-length bins (frames): 1, 2, 3-4, 5-8, ... 65+
LENGTH_BINS = (1, 2, 3, 5, 9, 17, 33, 65)
FILMSTRIP_PNG = 'belief_filmstrip.png'
FILMSTRIP_GIF = 'belief.gif'


class ResultsError(ValueError):
    """The results JSON is not what the report reads; the message names the offending path."""


# ---------------------------------------------------------------------------------------
# Reading and checking the results


def load_results(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f'results file {path} does not exist')
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f'{path} is not valid JSON: {exc}') from None
    if not isinstance(results, dict):
        raise ResultsError(f'{path}: the top level must be a JSON object, got {type(results).__name__}')
    return results


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(v, where: str):
    if v is None or _is_number(v):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    raise ResultsError(f'{where} must be a number or null, got {v!r}')


def _mapping(v, where: str) -> Mapping:
    if not isinstance(v, Mapping):
        raise ResultsError(f'{where} must be an object, got {type(v).__name__}')
    return v


def _dataset_kind(name: str, methods: Mapping) -> str:
    kinds = set()
    for method, values in methods.items():
        values = _mapping(values, f"datasets.{name}.methods.{method}")
        if any(k.startswith('miou_') for k in values):
            kinds.add('world1')
        elif values and all(isinstance(v, Mapping) for v in values.values()):
            kinds.add('tracking')
        elif values:
            raise ResultsError(f"datasets.{name}.methods.{method} is neither World 1 metrics "
                               "(miou_<state> keys) nor {class: {metric: value}}")
    if len(kinds) > 1:
        raise ResultsError(f'datasets.{name} mixes World 1 and tracking methods')
    return kinds.pop() if kinds else 'empty'


def validate(results) -> None:
    """Raise ResultsError, naming the path, for anything the report cannot read (checked before
    any file is written)."""
    results = _mapping(results, 'results')
    datasets = _mapping(results.get('datasets') or {}, 'datasets')
    for name, data in datasets.items():
        data = _mapping(data, f'datasets.{name}')
        methods = _mapping(data.get('methods') or {}, f'datasets.{name}.methods')
        kind = _dataset_kind(name, methods)
        for method, values in methods.items():
            where = f'datasets.{name}.methods.{method}'
            if kind == 'world1':
                for key, v in values.items():
                    _number(v, f'{where}.{key}')
            else:
                for cls, metrics in values.items():
                    for key, v in _mapping(metrics, f'{where}.{cls}').items():
                        _number(v, f'{where}.{cls}.{key}')
        px = data.get('occluded_localization_px')
        if px is not None:
            for method, v in _mapping(px, f'datasets.{name}.occluded_localization_px').items():
                _number(v, f'datasets.{name}.occluded_localization_px.{method}')
    _occlusion_records(results)


def _occlusion_records(results: Mapping) -> list[dict]:
    raw = results.get('occlusion_errors') or []
    if not isinstance(raw, list):
        raise ResultsError(f'occlusion_errors must be a list, got {type(raw).__name__}')
    records = []
    for i, r in enumerate(raw):
        where = f'occlusion_errors[{i}]'
        r = _mapping(r, where)
        for key in ('method', 'occlusion_length', 'error_px'):
            if key not in r:
                raise ResultsError(f'{where} has no {key!r} (needs method, occlusion_length, error_px)')
        length = r['occlusion_length']
        if not (_is_number(length) and float(length).is_integer() and length >= 1):
            raise ResultsError(f'{where}.occlusion_length must be an integer >= 1, got {length!r}')
        error = _number(r['error_px'], f'{where}.error_px')
        if error is not None and error < 0:
            raise ResultsError(f'{where}.error_px must be >= 0, got {error!r}')
        records.append({'dataset': str(r.get('dataset', 'all')), 'method': str(r['method']),
                        'occlusion_length': int(length), 'error_px': error})
    return records


# ---------------------------------------------------------------------------------------
# Formatting


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return 'n/a'
    if isinstance(v, bool) or not _is_number(v):
        return str(v)
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 1000:
        return str(int(v))
    return f'{v:.3f}' if abs(v) < 10 else f'{v:.2f}'


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for row in rows:
        lines.append('| ' + ' | '.join(c if isinstance(c, str) else _fmt(c) for c in row) + ' |')
    return '\n'.join(lines) + '\n'


def _leaves(obj, path=()):
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _leaves(v, path + (str(k),))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (str(i),))
    elif _is_number(obj):
        yield path, obj


# ---------------------------------------------------------------------------------------
# Plots (matplotlib's Agg canvas, no pyplot)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100, layout='constrained')
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', bbox_inches='tight')
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _bars(ax, groups: Sequence[str], series: Sequence[str], value, ylabel: str, ylim=None):
    """Grouped bars: one group per `groups` entry, one bar per series; value(series, group)."""
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        heights = [value(name, g) for g in groups]
        bars = ax.bar(x - 0.4 + width * (i + 0.5), [np.nan if h is None else h for h in heights],
                      width, label=name)
        if ylim is not None:
            ax.set_ylim(*ylim)
        for bar, h in zip(bars, heights):
            if h is None:
                ax.text(bar.get_x() + bar.get_width() / 2, ax.get_ylim()[1] * 0.01, 'n/a',
                        ha='center', va='bottom', fontsize=7)
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    ax.set_ylabel(ylabel)
    ax.grid(axis='y', alpha=0.3)


def plot_world1(name: str, methods: Mapping, path: Path) -> Path:
    fig = _figure(8, 4)
    ax = fig.add_subplot(1, 1, 1)
    _bars(ax, WORLD1_STATES, list(methods),
          lambda m, s: _number(methods[m].get(f'miou_{s}'), f'datasets.{name}.methods.{m}.miou_{s}'),
          'mIoU of the target box', (0, 1))
    ax.set_title(f'{name}: mIoU per target state (paper Table 1 protocol)')
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def plot_tracking(name: str, methods: Mapping, path: Path) -> Path:
    classes = sorted({c for per_class in methods.values() for c in per_class})
    fig = _figure(4 * len(TRACKING_HEADLINE), 3.6)
    for i, metric in enumerate(TRACKING_HEADLINE):
        ax = fig.add_subplot(1, len(TRACKING_HEADLINE), i + 1)
        _bars(ax, classes, list(methods),
              lambda m, c: _number(methods[m].get(c, {}).get(metric),
                                   f'datasets.{name}.methods.{m}.{c}.{metric}'),
              f'{metric} (%)', (0, 100))
        ax.set_title(f'{name}: {metric}')
        if i == 0:
            ax.legend(fontsize=8)
    return _save(fig, path)


def _length_bin(length: int) -> int:
    return int(np.searchsorted(LENGTH_BINS, length, side='right') - 1)


def _bin_label(i: int) -> str:
    lo = LENGTH_BINS[i]
    if i + 1 == len(LENGTH_BINS):
        return f'{lo}+'
    hi = LENGTH_BINS[i + 1] - 1
    return str(lo) if hi == lo else f'{lo}-{hi}'


def plot_occlusion_errors(records: list[dict], path: Path) -> Path:
    datasets = sorted({r['dataset'] for r in records})
    methods = sorted({r['method'] for r in records})
    colours = {m: f'C{i % 10}' for i, m in enumerate(methods)}     # one colour per method
    fig = _figure(6 * len(datasets), 4)
    for i, dataset in enumerate(datasets):
        ax = fig.add_subplot(1, len(datasets), i + 1)
        rows = [r for r in records if r['dataset'] == dataset]
        for method in sorted({r['method'] for r in rows}):
            mine = [r for r in rows if r['method'] == method and r['error_px'] is not None]
            if not mine:
                continue
            lengths = np.array([r['occlusion_length'] for r in mine], float)
            errors = np.array([r['error_px'] for r in mine], float)
            ax.scatter(lengths, errors, s=10, alpha=0.35, color=colours[method])
            bins = np.array([_length_bin(int(v)) for v in lengths])
            xs, ys = [], []
            for b in np.unique(bins):
                xs.append(float(np.exp(np.mean(np.log(lengths[bins == b])))))   # geometric mean
                ys.append(float(np.mean(errors[bins == b])))
            ax.plot(xs, ys, marker='o', color=colours[method], label=method)
        ax.set_xscale('log')
        ax.set_xlim(0.8, max(r['occlusion_length'] for r in rows) * 1.5)
        ax.set_ylim(bottom=0)
        ax.set_xlabel('occlusion length (frames)')
        ax.set_ylabel('mean centre error while hidden (px)')
        ax.set_title(f'{dataset}: localization error vs occlusion length')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------
# The report


def write_report(results: dict, out_dir, filmstrip: Mapping | None = None) -> Path:
    """Write out_dir/REPORT.md and its PNG plots; returns the report's path.

    `filmstrip`: what `belief_filmstrip` returned (its PNG / GIF are embedded when they are
    inside out_dir)."""
    validate(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shown: set[tuple] = set()
    md = ['# RAM-ROS evaluation report\n\n',
          f"commit: `{results.get('commit', 'unknown')}`\n\n",
          'Written by `python -m ram_training.evaluation.report` from the results JSON; the '
          'definitions are in docs/METRICS.md. n/a: no value (e.g. no frame in that state).\n']
    datasets = _mapping(results.get('datasets') or {}, 'datasets')
    if not datasets:
        md.append('\nNo dataset results.\n')
    for name, data in datasets.items():
        data = _mapping(data, f'datasets.{name}')
        methods = _mapping(data.get('methods') or {}, f'datasets.{name}.methods')
        kind = _dataset_kind(name, methods)
        if kind == 'world1':
            md += _world1_section(name, methods, out_dir, shown)
            fresh = data.get('fresh_first')
            if fresh is not None:
                md += _world1_rule_section(name, _mapping(fresh, f'datasets.{name}.fresh_first'), shown)
        elif kind == 'tracking':
            md += _tracking_section(name, methods, out_dir, shown)
        else:
            md.append(f'\n## {name}\n\nNo method results.\n')
        px = data.get('occluded_localization_px')
        if px is not None:
            px = _mapping(px, f'datasets.{name}.occluded_localization_px')
            md.append(f'\n### {name}: localization error of occluded objects (px)\n\n'
                      'As computed by the evaluation that wrote the results '
                      '(docs/METRICS.md).\n\n')
            md.append(_table(['method', 'error (px)'], [
                (m, _number(v, f'datasets.{name}.occluded_localization_px.{m}'))
                for m, v in px.items()]))
            shown.update(('datasets', name, 'occluded_localization_px', m) for m in px)
    records = _occlusion_records(results)
    if records:
        md += _occlusion_section(records, out_dir)
        shown.update(p for p, _ in _leaves(results.get('occlusion_errors'), ('occlusion_errors',)))
    if filmstrip:
        md += _filmstrip_section(filmstrip, out_dir)
    shown.add(('commit',))
    other = [(p, v) for p, v in _leaves(results) if p not in shown]
    if other:
        md.append('\n## Other numbers\n\n')
        md.append(_table(['path', 'value'], [('.'.join(p), v) for p, v in other]))
    path = out_dir / REPORT_NAME
    atomic_write_text(path, ''.join(s if s.endswith('\n') else s + '\n' for s in md))
    return path


def _world1_section(name, methods, out_dir, shown) -> list[str]:
    png = plot_world1(name, methods, out_dir / f'{name}_miou.png')
    md = [f'\n## {name}: mIoU of the target box per state\n\n',
          'Per frame, the IoU of the highest-scoring target box with the true box (0 without '
          'a box), averaged within each video, then over the videos with frames in that state '
          '(paper Table 1 protocol).\n\n', f'![{name} mIoU]({png.name})\n\n']
    rows = []
    for m, values in methods.items():
        rows.append([m] + [_number(values.get(f'miou_{s}'), f'datasets.{name}.methods.{m}.miou_{s}')
                           for s in WORLD1_STATES])
        shown.update(('datasets', name, 'methods', m, f'miou_{s}') for s in WORLD1_STATES)
    md.append(_table(['method', *WORLD1_STATES], rows))
    md += _all_fields(name, {m: v for m, v in methods.items()}, ('datasets', name, 'methods'), shown)
    return md


def _world1_rule_section(name, methods, shown) -> list[str]:
    """The same pass scored under the fresh-first rule (evaluation/world1.SELECTION_RULES): a
    visible target track outranks every hidden hypothesis, so visible frames measure the detector."""
    md = [f'\n### {name}: the same tracks, fresh-first rule\n\n',
          'A visible target track first, else the most recently seen hidden one (the paper\'s '
          'rule takes the highest score, and a hidden track keeps its last detection score).\n\n']
    rows = []
    for m, values in methods.items():
        values = _mapping(values, f'datasets.{name}.fresh_first.{m}')
        rows.append([m] + [_number(values.get(f'miou_{s}'), f'datasets.{name}.fresh_first.{m}.miou_{s}')
                           for s in WORLD1_STATES])
        shown.update(('datasets', name, 'fresh_first', m, k) for k in values)
    md.append(_table(['method', *WORLD1_STATES], rows))
    return md


def _tracking_section(name, methods, out_dir, shown) -> list[str]:
    png = plot_tracking(name, methods, out_dir / f'{name}_tracking.png')
    md = [f'\n## {name}: tracking\n\n',
          'HOTA, DetA, AssA, MOTA, IDF1 in percent (trackeval, KITTI protocol); TrackAP: Track '
          'AP at 0.5 spatio-temporal IoU in percent.\n\n', f'![{name} tracking]({png.name})\n\n']
    rows = []
    for m, per_class in methods.items():
        for c, values in per_class.items():
            values = _mapping(values, f'datasets.{name}.methods.{m}.{c}')
            rows.append([m, c] + [_number(values.get(k), f'datasets.{name}.methods.{m}.{c}.{k}')
                                  for k in TRACKING_ORDER])
            shown.update(('datasets', name, 'methods', m, c, k) for k in TRACKING_ORDER)
    md.append(_table(['method', 'class', *TRACKING_ORDER], rows))
    for c in sorted({c for per_class in methods.values() for c in per_class}):
        md += _all_fields(f'{name}, {c}', {m: per_class.get(c, {}) for m, per_class in methods.items()},
                          ('datasets', name, 'methods'), shown, suffix=(c,))
    return md


def _all_fields(title, per_method: Mapping, prefix: tuple, shown: set, suffix=()) -> list[str]:
    """Every remaining number of these methods: one row per field, one column per method."""
    fields = []
    for m, values in per_method.items():
        for k, v in values.items():
            if (*prefix, m, *suffix, k) not in shown and _is_number(v) and k not in fields:
                fields.append(k)
    if not fields:
        return []
    rows = []
    for k in fields:
        rows.append([k] + [_number(per_method[m].get(k), '.'.join((*prefix, m, *suffix, k)))
                           if _is_number(per_method[m].get(k)) else None for m in per_method])
        shown.update((*prefix, m, *suffix, k) for m in per_method)
    return [f'\n<details><summary>{title}: all fields</summary>\n\n',
            _table(['field', *per_method], rows), '\n</details>\n']


def _occlusion_section(records, out_dir) -> list[str]:
    png = plot_occlusion_errors(records, out_dir / 'occlusion_error.png')
    md = ['\n## Localization error vs occlusion length\n\n',
          'One record per occlusion (a maximal run of frames in which one object is hidden) and '
          'method: the mean centre error (px) over the run\'s frames with a reported box. '
          'Dots: occlusions; line: mean per length bin. "no estimate": occlusions in which the '
          'method reported no box at all.\n\n', f'![occlusion error]({png.name})\n\n']
    rows = []
    keys = sorted({(r['dataset'], r['method'], _length_bin(r['occlusion_length'])) for r in records})
    for dataset, method, b in keys:
        group = [r for r in records if (r['dataset'], r['method']) == (dataset, method)
                 and _length_bin(r['occlusion_length']) == b]
        errors = [r['error_px'] for r in group if r['error_px'] is not None]
        rows.append([dataset, method, _bin_label(b), len(group),
                     float(np.mean(errors)) if errors else None,
                     float(np.median(errors)) if errors else None, len(group) - len(errors)])
    md.append(_table(['dataset', 'method', 'length (frames)', 'occlusions', 'mean error (px)',
                      'median error (px)', 'no estimate'], rows))
    md.append('\nThe individual records are in the results JSON (`occlusion_errors`).\n')
    return md


def _filmstrip_section(info: Mapping, out_dir: Path) -> list[str]:
    md = ['\n## The belief heatmap following a hidden object\n\n',
          f"RAM (`{info.get('model', '?')}`) on `{info.get('video', '?')}`: frames "
          f"{info['frames'][0]}-{info['frames'][-1]} around the target's longest hidden stretch "
          f"(frames {info['hidden'][0]}-{info['hidden'][1]}). Solid boxes: visible tracks; "
          'dashed box, `id?` and walker confidence: the target\'s occluded track at the walker\'s '
          'argmax, with its belief as a heatmap (normalised to its peak; other hidden objects\' '
          'beliefs are not drawn); thin white box: the true target box.\n\n']
    for key, alt in (('png', 'belief filmstrip'), ('gif', 'belief animation')):
        path = Path(info[key]) if info.get(key) else None
        if path is not None and path.exists():
            rel = path.name if path.parent.resolve() == out_dir.resolve() else str(path)
            md.append(f'![{alt}]({rel})\n\n')
    return md


# ---------------------------------------------------------------------------------------
# Belief filmstrip


def _longest_run(mask: np.ndarray) -> tuple[int, int] | None:
    """(first, last) frame of the longest run of True (the first of equal runs)."""
    padded = np.concatenate([[0], np.asarray(mask, np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    if edges.size == 0:
        return None
    starts, ends = edges[::2], edges[1::2]
    i = int(np.argmax(ends - starts))
    return int(starts[i]), int(ends[i]) - 1


def _open_video(video):
    """(name, num_frames, frame(t) -> RGB, states or None, true target boxes or None)."""
    from ram_training.data.clips import World1VideoSource
    if isinstance(video, (str, Path)):
        path = Path(video)
        if not path.is_file():
            raise FileNotFoundError(f'World 1 video {path} does not exist')
        video = World1VideoSource(path)
    if hasattr(video, 'image') and hasattr(video, 'num_frames'):
        states = getattr(getattr(video, 'ann', None), 'states', None)
        boxes = None
        annotations = getattr(video, 'annotations', None)
        if annotations is not None:
            target = np.flatnonzero(np.asarray(annotations.classes) == 0)
            if target.size:
                boxes = np.asarray(annotations.boxes)[:, int(target[0])]
        return getattr(video, 'name', 'video'), int(video.num_frames), video.image, states, boxes
    frames = list(video)
    if not frames:
        raise ValueError('belief_filmstrip needs at least one frame')
    for i, f in enumerate(frames):
        f = np.asarray(f)
        if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
            raise ValueError(f'frame {i}: expected an (H, W, 3) uint8 RGB image, got {f.dtype} {f.shape}')
    return 'frames', len(frames), lambda t: np.asarray(frames[t]), None, None


def _for_drawing(result, s: float, target_class: str):
    """What the filmstrip draws of a FrameResult: visible tracks of every class, occluded
    tracks and beliefs of the target class only (the other hidden objects' walkers would bury
    the one the figure is about), boxes and belief geometry scaled by s (an enlarged frame)."""
    from ram_tracker.pipeline import FrameResult
    tracks = [replace(t, box_cxcywh=np.asarray(t.box_cxcywh) * s, velocity=np.asarray(t.velocity) * s)
              for t in result.tracks if t.state == 'visible' or t.class_name == target_class]
    beliefs = [replace(b, cell_width=b.cell_width * s, cell_height=b.cell_height * s,
                       origin_x=b.origin_x * s, origin_y=b.origin_y * s)
               for b in result.beliefs if b.class_name == target_class]
    return FrameResult(tracks, beliefs, result.num_detections)


def _filmstrip_pipeline(model_path, input_size, tracker_config, target_class: str):
    """The RAM tracker of a World 1 model, on the CPU, at its training size unless given one."""
    import torch

    from ram_tracker.checkpoint import load_weights, trained_input_size
    from ram_tracker.pipeline import TrackingPipeline
    from ram_training.evaluation.world1 import LACATER_TRACKER
    model, info = load_weights(model_path)
    if input_size is None:
        input_size = trained_input_size(info)
        if input_size is None:
            raise ValueError(f'{model_path} does not record its input size: pass input_size')
    if model.cfg.class_names.count(target_class) != 1:
        raise ValueError(f'the model has no class {target_class!r} (classes {model.cfg.class_names})')
    return TrackingPipeline(model.eval(), tracker_config or LACATER_TRACKER,
                            tuple(int(v) for v in input_size), torch.device('cpu'), info)


def _track_hidden_stretch(pipeline, name: str, num_frames: int, frame, states, context: int,
                          target_class: str) -> tuple[list, tuple[int, int], int]:
    """Tracks the video as far as the filmstrip needs: (per-frame results, the target's longest
    hidden stretch (first, last), the last frame tracked). The stretch comes from the ground
    truth states, or else from the tracker's best target track being occluded."""
    if states is not None:
        hidden = _longest_run(np.asarray(states) != 0)
        if hidden is None:
            raise ValueError(f'{name}: the target is never hidden; nothing to follow')
        last_needed = min(num_frames - 1, hidden[1] + context)
    else:
        last_needed = num_frames - 1
    results = [pipeline.process(frame(t)) for t in range(last_needed + 1)]
    if states is None:
        occluded = []
        for r in results:
            targets = [o for o in r.tracks if o.class_name == target_class and o.state != 'lost']
            best = max(targets, key=lambda o: o.score, default=None)
            occluded.append(best is not None and best.state == 'occluded')
        hidden = _longest_run(np.array(occluded))
        if hidden is None:
            raise ValueError(f'{name}: the tracker never reports the target as occluded')
    return results, hidden, last_needed


def _draw_filmstrip_frame(rgb: np.ndarray, t: int, result, truth, states, min_width: int,
                          target_class: str) -> np.ndarray:
    """One frame enlarged to at least min_width: the tracks and beliefs as the node's
    debug_image draws them, the true target box in thin white, frame number and state."""
    import cv2

    from ram_tracker.visualize import draw_tracks
    h, w = rgb.shape[:2]
    s = max(1.0, min_width / w)
    if s > 1:
        rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR)
    r = _for_drawing(result, s, target_class)
    canvas = draw_tracks(rgb, r.tracks, r.beliefs)
    if truth is not None and np.all(np.isfinite(truth[t])) and truth[t][2] > truth[t][0]:
        x1, y1, x2, y2 = (int(round(v * s)) for v in truth[t])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (255, 255, 255), 1)
    label = f't={t}' + (f' {_state_name(states[t])}' if states is not None else '')
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    hh = canvas.shape[0]
    cv2.rectangle(canvas, (0, hh - th - 6), (tw + 6, hh), (0, 0, 0), -1)
    cv2.putText(canvas, label, (3, hh - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return canvas


def _write_png(path, image_rgb: np.ndarray) -> None:
    import cv2
    ok, png = cv2.imencode('.png', image_rgb[:, :, ::-1])
    if not ok:
        raise RuntimeError('PNG encoding failed')
    atomic_write_bytes(path, png.tobytes())


def _write_gif(path, frames_rgb: Sequence[np.ndarray], fps: float) -> None:
    from PIL import Image
    pil = [Image.fromarray(image) for image in frames_rgb]
    buffer = io.BytesIO()
    pil[0].save(buffer, format='GIF', save_all=True, append_images=pil[1:],
                duration=max(20, int(round(1000 / fps))), loop=0)
    atomic_write_bytes(path, buffer.getvalue())


def belief_filmstrip(model_path, video, out_png, out_gif, *, input_size=None, tracker_config=None,
                     num_tiles: int = 12, context: int = 6, max_gif_frames: int = 90,
                     fps: float = 10.0, min_width: int = 320, target_class: str = 'target') -> dict:
    """Run the RAM tracker over a World 1 video and draw the frames around the target's longest
    hidden stretch: a tiled PNG (`num_tiles` frames, 4 per row) and an animated GIF (every frame
    of the stretch plus `context` frames either side, at most `max_gif_frames`).

    `video`: a World 1 video file (.npz), a World1VideoSource, or a sequence of RGB frames. With
    ground truth the hidden stretch is the longest run of frames in which the target is not
    visible; with bare frames, the longest run in which the tracker's best target track is
    occluded. Drawing is ram_tracker.visualize.draw_tracks (the node's debug_image) on frames
    enlarged to at least `min_width` pixels: visible tracks of every class, the target class's
    occluded tracks and beliefs (not the other hidden objects'), the true target box in thin
    white, the frame number and target state in the corner.
    Tracker: World 1's Algorithm 1 settings (evaluation/world1.LACATER_TRACKER), walker.
    Returns {'png', 'gif', 'video', 'model', 'hidden': (first, last), 'frames': [tile frames],
    'gif_frames': [...], 'target_belief': [per tile: a target belief is drawn]}."""
    from ram_tracker.visualize import filmstrip

    if num_tiles < 1 or max_gif_frames < 1 or context < 0 or fps <= 0:
        raise ValueError('num_tiles and max_gif_frames must be >= 1, context >= 0, fps > 0')
    name, num_frames, frame, states, truth = _open_video(video)
    pipeline = _filmstrip_pipeline(model_path, input_size, tracker_config, target_class)
    results, hidden, last_needed = _track_hidden_stretch(pipeline, name, num_frames, frame, states,
                                                         context, target_class)
    first, last = max(0, hidden[0] - context), min(last_needed, hidden[1] + context)
    gif_frames = np.unique(np.linspace(first, last, min(max_gif_frames, last - first + 1))
                           .round().astype(int)).tolist()
    tile_frames = np.unique(np.linspace(first, last, min(num_tiles, last - first + 1))
                            .round().astype(int)).tolist()
    images = {t: _draw_filmstrip_frame(frame(t), t, results[t], truth, states, min_width,
                                       target_class)
              for t in sorted(set(gif_frames) | set(tile_frames))}
    _write_png(out_png, filmstrip([images[t] for t in tile_frames], columns=4, width=min_width))
    _write_gif(out_gif, [images[t] for t in gif_frames], fps)
    return {'png': str(out_png), 'gif': str(out_gif), 'video': name, 'model': str(model_path),
            'hidden': hidden, 'frames': tile_frames, 'gif_frames': gif_frames,
            'target_belief': [any(b.class_name == target_class for b in results[t].beliefs)
                              for t in tile_frames]}


def _state_name(state) -> str:
    from ram_training.data.world_lacater import STATE_NAMES
    return STATE_NAMES[int(state)]


# ---------------------------------------------------------------------------------------
# CLI


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('results', help='results JSON (what make eval writes)')
    parser.add_argument('--out', required=True, help='output folder (REPORT.md and PNGs)')
    parser.add_argument('--belief-video', help='a World 1 video (.npz) for the belief filmstrip '
                        'and GIF (skipped without it)')
    parser.add_argument('--model', help='RAM weights for the filmstrip (default: the shipped '
                        'models/world1_ram.safetensors)')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args(argv)
    try:
        results = load_results(args.results)
        out = Path(args.out)
        strip = None
        if args.belief_video:
            import torch
            torch.set_num_threads(args.threads)
            from ram_training.demo import WORLD1_MODEL
            model = args.model or str(WORLD1_MODEL)
            strip = belief_filmstrip(model, args.belief_video, out / FILMSTRIP_PNG,
                                     out / FILMSTRIP_GIF)
        path = write_report(results, out, strip)
    except (ResultsError, ValueError, FileNotFoundError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(f'report: {path}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

"""`ram-eval`: KITTI-format tracking evaluation through the live tracker node, and offline.

For every sequence of a KITTI-format dataset (real KITTI, or World 2 with its hidden_02 files):

1. the sequence is converted to a rosbag2 bag (`rosbag_io.kitti_to_bag`, hidden objects
   included as OCCLUDED ground truth);
2. ROS path: the installed `tracker_node` is started with the run's parameters file, the bag
   is replayed into it in lockstep over DDS (`replay.replay_into_node`), everything it publishes
   on `tracks` and `belief` is recorded into an output bag, and the tracks become a KITTI
   result file;
3. offline path: the same tracking core without ROS (`TrackingPipeline.from_params` on the
   same parameters) on the images decoded from the same bag. One model pass per frame feeds
   every occlusion model (walker = RAM, static = last seen, constant_velocity, none =
   CenterTrack; `evaluation/one_pass.py`) and the per-frame detections (source pixels) feed
   any extra tracker (`extra_trackers`, e.g. the peers of `evaluation/peers.py`);
4. every result folder is scored: HOTA / DetA / AssA / MOTA / IDF1 (trackeval, KITTI protocol)
   and Track AP @ 0.5 per class (car, pedestrian); the node's tracks are compared with the
   offline tracks of the same occlusion model (same frames, ids, classes, states, boxes);
   World 2's hidden objects give the occluded-localisation errors.

Resumable: a sequence whose record (`ros/<seq>/done.json`, `offline/<seq>/done.json`) carries
the same fingerprint (model sha256, parameters, frames, methods, the code: provenance.code_digest)
is not run again; every file is written atomically, so a killed run keeps every sequence it
finished.

    ram-eval --data data/world2_640 --model models/m.safetensors --out eval/world2 \
        [--sequences 0000 0001] [--path ros|offline|both] [--params config/tracker.yaml] \
        [-p detection_threshold=0.3 ...] [--max-frames N]

Output folder:
    params.yaml                    the node's parameters (both paths run exactly these)
    summary.json                   git commit, model + sha256, parameters, timing, scores
    bags/<seq>/ (+ <seq>.json)     the converted input bag
    ros/<seq>/output_bag/          what the node published (+ ground truth, camera info)
    ros/<seq>/tracker_node.log, done.json
    offline/<seq>/tracks.json      the offline tracks of the node's occlusion model (full)
    offline/<seq>/done.json
    results/<method>/<seq>.txt     KITTI tracking results; method "ros" = the node
    scores/<method>.json           every trackeval field and the Track AP details
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ram_tracker.checkpoint import file_sha256  # noqa: F401 (also imported from here by run_all)
from ram_tracker.tracker import PAPER_WALK
from ram_training.data import kitti, rosbag_io
from ram_training.data.atomic import atomic_write_text
from ram_training import provenance

ROOT = Path(os.environ.get('RAM_ROS_ROOT') or Path(__file__).resolve().parents[4])
METHODS = ('walker', 'static', 'constant_velocity', 'none', 'walker_paper')
# Methods that are not an occlusion model of their own name: the TrackerConfig fields they set
# over the node's ('walker_paper': Algorithm 1's walk as published; the node's default walk has
# two settings beyond the paper).
METHOD_VARIANTS = {'walker_paper': PAPER_WALK}
PATHS = ('ros', 'offline', 'both')
CLASSES = ('car', 'pedestrian')
HEADLINE = ('HOTA', 'DetA', 'AssA', 'MOTA', 'IDF1')
ROS_METHOD = 'ros'
# KITTI output policy of RAM / PermaTrack: boxes of occluded tracks are written while they are
# at most 3 frames old (max_out_age 4); ended ('lost') tracks never.
MAX_OUT_AGE = 4
# Boxes travel as float64 in TrackedObject; the tolerance only allows for float32 rounding.
BOX_RTOL, BOX_ATOL = 1e-6, 1e-4
STATES = {0: 'visible', 1: 'occluded', 2: 'lost'}
_KITTI_CLASSES = {t.lower() for t in kitti.KITTI_TYPES if t != 'DontCare'}
ExtraTracker = Callable[[list, float], list]   # (per-frame Detections, frame rate) -> TrackOutputs


class EvalError(ValueError):
    """Bad input (dataset, sequence, model, parameters); the message names the problem."""


# ---------------------------------------------------------------------------------------
# inputs

def parse_overrides(items: Iterable[str]) -> dict:
    """['key=value', ...] -> {key: value}, values read as YAML (numbers, booleans, strings)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        if not sep or not key.strip():
            raise EvalError(f'parameter override {item!r} is not key=value')
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ''
    return out


def _coerce(values: dict) -> dict:
    """Values in the schema's types (an int for a number parameter would make the node reject
    the parameters file: ROS parameters are typed)."""
    from ram_tracker.parameters import load_schema
    props = load_schema()['properties']
    out = {}
    for key, value in values.items():
        kind = props.get(key, {}).get('type')
        if kind == 'number' and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif kind == 'integer' and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif kind == 'string' and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        out[key] = value
    return out


def _node_input_size(model_info: dict) -> tuple[int, int]:
    """The size the node runs a model at with input_width / input_height left at 0."""
    from ram_tracker.pipeline import UNTRAINED_INPUT_SIZE
    if model_info['untrained']:
        return UNTRAINED_INPUT_SIZE
    if not model_info['trained_input_size']:
        raise EvalError(f"{model_info['path']} does not record the input size it was trained at: "
                        'pass -p input_width=W -p input_height=H')
    return tuple(model_info['trained_input_size'])


def resolve_params(model_path, params_file=None, overrides: Mapping | None = None) -> tuple[dict, dict]:
    """The node's parameters for this run and a description of the model.

    Precedence: schema defaults < `params_file` < `overrides`, with an input size left at 0 x 0
    taken from the model's training size as the node does; model_path is always the model given
    here (absolute; empty = the seeded untrained model, so allow_untrained follows it)."""
    from ram_tracker import parameters
    from ram_tracker.checkpoint import WeightsError, load_weights, trained_input_size
    values: dict = {}
    model_info: dict = {'path': None, 'sha256': None, 'untrained': True}
    if model_path:
        model_path = Path(model_path).expanduser().resolve()
        if not model_path.is_file():
            raise EvalError(f'model not found: {model_path}')
        try:
            model, info = load_weights(model_path)
        except WeightsError as error:
            raise EvalError(str(error)) from error
        size = trained_input_size(info)
        model_info = {'path': str(model_path), 'sha256': file_sha256(model_path),
                      'untrained': False, 'classes': list(model.cfg.class_names),
                      'trained_input_size': list(size) if size else None}
    else:
        from ram_tracker.model import ModelConfig
        model_info['classes'] = list(ModelConfig().class_names)
    if params_file:
        if not Path(params_file).is_file():
            raise EvalError(f'parameters file not found: {params_file}')
        values.update(parameters.load_params_file(params_file))
    values.update(overrides or {})
    values['model_path'] = str(model_info['path'] or '')
    values['allow_untrained'] = model_info['untrained']
    if not values.get('input_width') and not values.get('input_height'):
        # Written out (not left 0) so the fingerprints and the report name the size that runs.
        values.update(zip(('input_width', 'input_height'), _node_input_size(model_info)))
    try:
        params = parameters.validate(_coerce(values))
    except parameters.ParameterError as error:
        raise EvalError(str(error)) from error
    if not set(c.lower() for c in model_info['classes']) & set(CLASSES):
        raise EvalError(f"model classes {model_info['classes']} include neither car nor pedestrian: "
                        'nothing to evaluate on KITTI')
    return params, model_info


def select_sequences(data_root, sequences: Sequence[str] | None = None,
                     split: str = 'training') -> list[str]:
    root = Path(data_root)
    if not root.is_dir():
        raise EvalError(f'dataset folder not found: {root}')
    try:
        available = kitti.list_sequences(root, split)
    except kitti.KittiFormatError as error:
        raise EvalError(str(error)) from error
    if not sequences:
        return available
    missing = [s for s in sequences if s not in available]
    if missing:
        raise EvalError(f"sequence(s) {', '.join(missing)} not found in {root} "
                        f"(available: {', '.join(available)})")
    return list(dict.fromkeys(sequences))


# ---------------------------------------------------------------------------------------
# tracks: one row format for both paths

def _row(track_id, class_name, state, cx, cy, w, h, score, frames_since_seen) -> list:
    return [int(track_id), str(class_name), str(state), float(cx), float(cy), float(w),
            float(h), float(score), int(frames_since_seen)]


def rows_from_outputs(tracks) -> list:
    """ram_tracker.pipeline.TrackOutput list -> rows."""
    return [_row(t.track_id, t.class_name, t.state, *t.box_cxcywh, t.score, t.frames_since_seen)
            for t in tracks]


def rows_from_message(msg) -> list:
    """A TrackedObjectArray (rclpy or rosbags) -> rows."""
    return [_row(o.id, o.class_id, STATES.get(int(o.state), str(o.state)),
                 o.bbox.center.position.x, o.bbox.center.position.y, o.bbox.size_x,
                 o.bbox.size_y, o.score, o.frames_since_seen) for o in msg.tracks]


def predictions(frames: Sequence, max_out_age: int = MAX_OUT_AGE) -> list:
    """Per-frame rows -> per-frame KITTI predictions (track_id, class, x1, y1, x2, y2, score):
    live tracks (not 'lost') seen within the last max_out_age - 1 frames, KITTI classes only."""
    out = []
    for rows in frames:
        preds = []
        for track_id, name, state, cx, cy, w, h, score, since in rows or ():
            if state == 'lost' or since >= max_out_age or name.lower() not in _KITTI_CLASSES:
                continue
            preds.append((track_id, name, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score))
        out.append(preds)
    return out


def first_difference(a: Sequence, b: Sequence) -> str | None:
    """None when two per-frame track lists agree (frames, order, ids, classes, states, ages,
    boxes and scores up to float32 rounding); else where they first differ."""
    if len(a) != len(b):
        return f'{len(a)} vs {len(b)} frames'
    for t, (fa, fb) in enumerate(zip(a, b)):
        if fa is None or fb is None:
            return f'frame {t}: no output on one side'
        if len(fa) != len(fb):
            return f'frame {t}: {len(fa)} vs {len(fb)} tracks'
        for ra, rb in zip(fa, fb):
            same_keys = (ra[0], ra[1], ra[2], ra[8]) == (rb[0], rb[1], rb[2], rb[8])
            if not same_keys or not np.allclose(ra[3:8], rb[3:8], rtol=BOX_RTOL, atol=BOX_ATOL):
                return f'frame {t}: {ra} vs {rb}'
    return None


# ---------------------------------------------------------------------------------------
# per sequence

def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + '\n')


def convert_sequence(data_root: Path, seq: str, out: Path, max_frames: int | None,
                     log=print) -> dict:
    """The sequence's input bag (reused when it was converted from the same data and frames)."""
    record_path = out / 'bags' / f'{seq}.json'
    sequence = kitti.load_sequence(data_root, seq)
    labels = ''.join(r.to_line() + '\n' for r in sequence.labels + sequence.hidden)
    key = {'data': str(data_root), 'sequence': seq, 'max_frames': max_frames,
           'images': len(sequence.image_paths),
           'labels_sha256': hashlib.sha256(labels.encode()).hexdigest()}
    record = _read_json(record_path)
    bag = out / 'bags' / seq
    if record and record.get('key') == key and bag.is_dir():
        return record
    started = time.perf_counter()
    info = rosbag_io.kitti_to_bag(data_root, seq, bag, max_frames=max_frames,
                                  config=rosbag_io.BagConfig(include_hidden=True))
    record = {'key': key, 'bag': str(bag), 'frames': info['frames'], 'bytes': info['bytes'],
              'seconds': round(time.perf_counter() - started, 2)}
    _write_json(record_path, record)
    log(f'[ram-eval] {seq}: {info["frames"]} frames -> {bag}')
    return record


def ros_rows(out_bag: Path, num_frames: int, bag_config=rosbag_io.BagConfig()) -> list:
    """Per-frame rows from the node's /tracks in a recorded bag (None for an unanswered frame),
    frames found by their header stamps."""
    index = {rosbag_io.frame_stamp_ns(bag_config, t): t for t in range(num_frames)}
    frames: list = [None] * num_frames
    typestore = rosbag_io.make_typestore()
    for _, msgtype, _, raw in rosbag_io.iterate_raw(out_bag, topics=['/tracks']):
        msg = typestore.deserialize_cdr(raw, msgtype)
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if stamp in index:
            frames[index[stamp]] = rows_from_message(msg)
    return frames


def run_ros_sequence(seq: str, bag: Path, num_frames: int, out: Path, params_file: Path,
                     env: dict, log=print) -> dict:
    """The installed node on one bag: output bag, result file, timing."""
    from ram_training.node_process import stop_node, tracker_node
    from ram_training.replay import ReplayConfig, replay_into_node
    folder = out / 'ros' / seq
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / 'tracker_node.log'
    started = time.perf_counter()
    with tracker_node(env, log_path, params_file=params_file) as node:   # stopped however this ends
        try:
            result = replay_into_node(bag, folder / 'output_bag',
                                      ReplayConfig(record=('tracks', 'belief')),
                                      log=lambda message: log(f'[ram-eval] {seq}: {message}'))
        except Exception as error:
            stop_node(node)
            tail = log_path.read_text(errors='replace')[-2000:] if log_path.exists() else ''
            raise RuntimeError(f'sequence {seq}: replay into the tracker node failed ({error}); '
                               f'node exit code {node.returncode}, log {log_path}:\n{tail}') from error
    frames = ros_rows(folder / 'output_bag', num_frames)
    from ram_training.evaluation.kitti_results import write_results
    write_results(out / 'results' / ROS_METHOD / f'{seq}.txt', predictions(frames))
    return {'frames': result.frames, 'answered': result.answered,
            'missed_frames': len(result.missed_stamps),
            'node_fps': round(result.node_fps, 2), 'replay_s': round(result.seconds, 2),
            'wall_s': round(time.perf_counter() - started, 2),
            'tracks': sum(len(f or ()) for f in frames)}


def _bag_images(bag: Path, image_topic: str = rosbag_io.BagConfig().image_topic):
    """RGB frames of a bag, decoded exactly as the node decodes them (rosbag_io.decode_image)."""
    typestore = rosbag_io.make_typestore()
    for _, msgtype, _, raw in rosbag_io.iterate_raw(bag, topics=[image_topic]):
        yield rosbag_io.decode_image(typestore.deserialize_cdr(raw, msgtype))


def oracle_walk_errors(sequence: kitti.KittiSequence, embeds: list, stream, source_size):
    """occlusion_metric.occluded_localisation on the model's embeddings of this sequence: the
    walk started at each hidden object's last visible centre vs that centre, against the true
    hidden centre (model-input pixels). None when the sequence has no hidden objects."""
    import torch

    from ram_training.occlusion_metric import occluded_localisation
    T = len(embeds)
    ann = sequence.track_annotations(class_names=('Car', 'Pedestrian'), include_hidden=True)
    if T < 2 or ann.boxes.shape[1] == 0:
        return None
    W, H = stream.input_width, stream.input_height
    scale = np.array([W / source_size[0], H / source_size[1]] * 2, np.float32)
    clip = {'images': torch.zeros(1, 1, 3, H, W).expand(1, T, 3, H, W),
            'boxes': torch.from_numpy(ann.boxes[:T] * scale)[None],
            'present': torch.from_numpy(ann.present[:T])[None],
            'visibility': torch.from_numpy(ann.visibility[:T])[None],
            'classes': torch.from_numpy(ann.classes)[None]}
    model = stream.model
    grid = stream.grid
    embed = torch.stack([e.float() for e in embeds], dim=1)          # (1, T, D, h, w)
    return occluded_localisation(embed, clip, grid, model.cfg.walk)


def owner_of(rows, class_name: str, box_xyxy, iou_threshold: float = 0.5) -> int | None:
    """The id of the visible track (rows as rows_from_outputs) of `class_name` that overlaps the
    ground-truth box x1, y1, x2, y2 best with IoU >= iou_threshold, or None."""
    from ram_training.evaluation.world1 import box_iou, cxcywh_to_xyxy
    best, best_iou = None, iou_threshold
    for r in rows or ():
        if r[2] != 'visible' or r[1].lower() != class_name.lower():
            continue
        box = cxcywh_to_xyxy(r[3:7])
        iou = box_iou(box, np.asarray(box_xyxy, np.float64))
        if iou >= best_iou:
            best, best_iou = r[0], iou
    return best


def hidden_object_errors(frames: Sequence, labels: Sequence, hidden: Sequence,
                         iou_threshold: float = 0.5) -> dict:
    """What a tracker says about World 2's hidden objects. A ground-truth object is owned by the
    predicted track that last matched it (same class, IoU >= iou_threshold, visible state)
    while it was labelled; on each frame it is hidden (hidden_02) after having been owned, the
    owner is either still alive (not 'lost': kept, error = distance between the owner's box
    centre and the true centre, source pixels) or gone.

    Also 'occlusions': per occlusion (world1.occlusion_runs: a run of hidden frames of one
    object right after a labelled frame) [object track id, first frame, length, mean error over
    the run's frames with a live owner, or None], the report's `occlusion_errors` records."""
    from ram_training.evaluation.world1 import occlusion_errors
    by_frame: dict = {}
    for r in labels:
        if r.type.lower() in CLASSES and r.track_id >= 0:
            by_frame.setdefault(r.frame, []).append(r)
    hidden_by_frame: dict = {}
    for r in hidden:
        if r.type.lower() in CLASSES:
            hidden_by_frame.setdefault(r.frame, []).append(r)
    owner: dict = {}
    sums = {'hidden_frames': 0, 'kept': 0, 'error_sum': 0.0}
    status: dict = {}                   # gt track id -> per frame 0 / 1 labelled / 2 hidden
    errors: dict = {}                   # gt track id -> per frame error or None
    for r in labels:
        if r.type.lower() in CLASSES and r.track_id >= 0 and r.frame < len(frames):
            status.setdefault(r.track_id, np.zeros(len(frames), np.int8))[r.frame] = 1
    for r in hidden:
        if r.type.lower() in CLASSES and r.frame < len(frames):
            status.setdefault(r.track_id, np.zeros(len(frames), np.int8))[r.frame] = 2
    for t, rows in enumerate(frames):
        rows = rows or []
        live = {r[0]: r for r in rows if r[2] != 'lost'}
        for gt in by_frame.get(t, []):
            best = owner_of(rows, gt.type, gt.box, iou_threshold)
            if best is not None:
                owner[gt.track_id] = best
        for gt in hidden_by_frame.get(t, []):
            if gt.track_id not in owner:
                continue
            sums['hidden_frames'] += 1
            track = live.get(owner[gt.track_id])
            if track is None:
                continue
            x1, y1, x2, y2 = gt.box
            error = float(np.hypot(track[3] - (x1 + x2) / 2, track[4] - (y1 + y2) / 2))
            sums['kept'] += 1
            sums['error_sum'] += error
            errors.setdefault(gt.track_id, {})[t] = error
    sums['occlusions'] = [
        [int(track_id), first, length, error] for track_id, column in sorted(status.items())
        for first, length, error in occlusion_errors(
            column, [errors.get(track_id, {}).get(t) for t in range(len(frames))])]
    return sums


def run_offline_sequence(seq: str, bag: Path, sequence: kitti.KittiSequence, num_frames: int,
                         out: Path, pipeline, methods: Sequence[str], node_method: str,
                         extra_trackers: Mapping[str, ExtraTracker], frame_rate: float,
                         log=print) -> dict:
    """One model pass per frame for every method; extra trackers on the same detections."""
    import torch

    from ram_training.evaluation.kitti_results import write_results
    from ram_training.evaluation.one_pass import OnePassTrackers
    from ram_training.evaluation.peers import scale_detections
    run_methods = list(dict.fromkeys([*methods, node_method]))
    trackers = OnePassTrackers(pipeline.stream, pipeline.tracker_config,
                               {m: METHOD_VARIANTS.get(m, m) for m in run_methods})
    trackers.reset()
    stream = pipeline.stream
    frames = {m: [] for m in run_methods}
    detections, embeds = [], []
    want_embeds = bool(sequence.hidden)
    source_size = None
    started = time.perf_counter()
    for rgb in _bag_images(bag):
        inference, results = trackers.step(rgb)
        source_size = inference.source_size
        for method, result in results.items():
            frames[method].append(rows_from_outputs(result.tracks))
        if extra_trackers:
            sx = source_size[0] / stream.input_width
            sy = source_size[1] / stream.input_height
            detections.append(scale_detections(inference.detections, sx, sy))
        if want_embeds:
            embeds.append(stream.embed.detach().to('cpu', torch.float16).clone())
    model_s = time.perf_counter() - started
    count = len(frames[node_method])
    if count != num_frames:
        raise RuntimeError(f'sequence {seq}: {count} images in {bag}, expected {num_frames}')
    record = {'frames': count, 'model_pass_s': round(model_s, 2),
              'frames_per_s': round(count / model_s, 2) if model_s > 0 else None,
              'methods': run_methods, 'extra_trackers': {}}
    for method in run_methods:
        write_results(out / 'results' / method / f'{seq}.txt', predictions(frames[method]))
    all_frames = dict(frames)
    for name, tracker in (extra_trackers or {}).items():
        started = time.perf_counter()
        outputs = tracker(detections, frame_rate)
        if len(outputs) != count:
            raise RuntimeError(f'extra tracker {name!r} returned {len(outputs)} frames for {count}')
        class_names = stream.class_names
        for frame in outputs:
            for track in frame:        # class ids index the model's classes (the detections')
                if 0 <= int(track.class_id) < len(class_names):
                    track.class_name = class_names[int(track.class_id)]
        all_frames[name] = [rows_from_outputs(f) for f in outputs]
        write_results(out / 'results' / name / f'{seq}.txt', predictions(all_frames[name]))
        record['extra_trackers'][name] = {'seconds': round(time.perf_counter() - started, 2)}
    labels = [r for r in sequence.labels if r.frame < count]
    hidden = [r for r in sequence.hidden if r.frame < count]
    record['hidden_objects'] = {name: hidden_object_errors(f, labels, hidden)
                                for name, f in all_frames.items()}
    oracle = oracle_walk_errors(sequence, embeds, stream, source_size) if want_embeds else None
    record['oracle_walk'] = None if oracle is None else {
        'walker_sum': oracle.walker_sum, 'last_seen_sum': oracle.last_seen_sum,
        'count': oracle.count}
    _write_json(out / 'offline' / seq / 'tracks.json',
                {'occlusion_model': node_method, 'frames': frames[node_method]})
    return record


# ---------------------------------------------------------------------------------------
# scores

def score_method(results_dir: Path, gt: Mapping[str, list], num_frames: Mapping[str, int]) -> dict:
    """trackeval HOTA / CLEAR / Identity and Track AP for one method's result folder."""
    from ram_training.evaluation.mot_metrics import evaluate_kitti
    from ram_training.evaluation.track_ap import track_ap
    preds = {seq: results_dir / f'{seq}.txt' for seq in gt}
    missing = [str(p) for p in preds.values() if not p.is_file()]
    if missing:
        raise RuntimeError(f'result files missing: {", ".join(missing)}')
    mot = evaluate_kitti(gt, preds, num_frames, CLASSES)
    ap = track_ap(gt, preds, CLASSES)
    headline = {c: {**{k: mot[c][k] for k in HEADLINE},
                    'TrackAP': None if ap[c]['AP'] is None else round(ap[c]['AP'], 2)}
                for c in CLASSES}
    return {'headline': headline, 'trackeval': mot, 'track_ap': ap}


def _fingerprint(model_info: dict, params: dict, bag_record: dict, **extra) -> dict:
    return {'model_sha256': model_info['sha256'] or 'untrained-seed0',
            # allow_untrained only follows model_path: results of runs before it existed stay valid
            'params': {k: v for k, v in params.items()
                       if k not in ('model_path', 'allow_untrained')},
            'bag': bag_record['key'], 'max_out_age': MAX_OUT_AGE,
            'code': provenance.code_digest(), **extra}


@dataclass
class _EvalRun:
    """What the steps of one evaluation share: its inputs, resolved, and its output folder."""

    data_root: Path
    out: Path
    sequences: list
    params: dict                    # the node's parameters (both paths run exactly these)
    params_path: Path               # ... written as a ROS 2 parameters file
    model_info: dict
    bag_records: dict               # sequence -> its convert_sequence record

    @property
    def node_method(self) -> str:
        return self.params['occlusion_model']

    def frames(self, seq: str) -> int:
        return self.bag_records[seq]['frames']

    def bag(self, seq: str) -> Path:
        return Path(self.bag_records[seq]['bag'])


def _check_arguments(path: str, methods: Sequence[str], extra_trackers: Mapping,
                     max_frames: int | None) -> None:
    if path not in PATHS:
        raise EvalError(f"path must be one of {', '.join(PATHS)}, got {path!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise EvalError(f"unknown method(s) {', '.join(unknown)} (occlusion models: {', '.join(METHODS)})")
    clash = set(extra_trackers) & (set(METHODS) | {ROS_METHOD})
    if clash:
        raise EvalError(f'extra tracker names clash with built-in methods: {sorted(clash)}')
    if max_frames is not None and max_frames < 1:
        raise EvalError(f'max_frames must be >= 1, got {max_frames}')


def _prepare_run(data_root, model_path, out_dir, sequences, params_file, params_overrides,
                 max_frames: int | None, log) -> _EvalRun:
    """Inputs checked before anything is written; then params.yaml and the input bags."""
    data_root = Path(data_root).expanduser().resolve()
    names = select_sequences(data_root, sequences)
    params, model_info = resolve_params(model_path, params_file, params_overrides)
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    params_path = out / 'params.yaml'
    atomic_write_text(params_path, yaml.safe_dump({'/**': {'ros__parameters': params}},
                                                  sort_keys=False))
    bag_records = {seq: convert_sequence(data_root, seq, out, max_frames, log) for seq in names}
    return _EvalRun(data_root, out, names, params, params_path, model_info, bag_records)


def _run_ros_path(run: _EvalRun, ros_env: dict | None, log) -> None:
    """Every sequence not done before with the same fingerprint through the tracker node."""
    from ram_training.ros_env import in_process, isolated_ros_env
    env = ros_env or isolated_ros_env()
    with in_process(env):                       # the in-process replayer
        for seq in run.sequences:
            fingerprint = _fingerprint(run.model_info, run.params, run.bag_records[seq])
            done_path = run.out / 'ros' / seq / 'done.json'
            done = _read_json(done_path)
            if done and done.get('fingerprint') == fingerprint and \
                    (run.out / 'results' / ROS_METHOD / f'{seq}.txt').is_file():
                log(f'[ram-eval] {seq}: ROS path done before, skipped')
                continue
            done_path.unlink(missing_ok=True)
            log(f'[ram-eval] {seq}: ROS path (tracker_node, domain {env.get("ROS_DOMAIN_ID")})')
            record = run_ros_sequence(seq, run.bag(seq), run.frames(seq), run.out,
                                      run.params_path, env, log)
            _write_json(done_path, {'fingerprint': fingerprint, 'timing': record})


def _run_offline_path(run: _EvalRun, methods: Sequence[str],
                      extra_trackers: Mapping[str, ExtraTracker], log) -> None:
    """Every sequence not done before with the same fingerprint and methods, without ROS; the
    pipeline (model load) only when some sequence needs it."""
    pipeline = None
    wanted = set(methods) | {run.node_method}
    for seq in run.sequences:
        fingerprint = _fingerprint(run.model_info, run.params, run.bag_records[seq],
                                   extra_trackers=sorted(extra_trackers), occlusion_records=1)
        done_path = run.out / 'offline' / seq / 'done.json'
        done = _read_json(done_path)
        if done and done.get('fingerprint') == fingerprint and \
                wanted <= set(done['timing']['methods']):
            log(f'[ram-eval] {seq}: offline path done before, skipped')
            continue
        done_path.unlink(missing_ok=True)
        if pipeline is None:
            from ram_tracker.pipeline import TrackingPipeline
            pipeline = TrackingPipeline.from_params(run.params)
            log(f'[ram-eval] offline: {pipeline.describe()}')
        log(f'[ram-eval] {seq}: offline path ({", ".join(sorted(wanted | set(extra_trackers)))})')
        record = run_offline_sequence(seq, run.bag(seq), kitti.load_sequence(run.data_root, seq),
                                      run.frames(seq), run.out, pipeline, methods, run.node_method,
                                      extra_trackers, rosbag_io.BagConfig().rate_hz, log)
        _write_json(done_path, {'fingerprint': fingerprint, 'timing': record})


def _score_methods(run: _EvalRun, methods: Sequence[str]) -> dict:
    """method -> headline scores of its result files; every score also in scores/<method>.json."""
    gt, num_frames = {}, {}
    for seq in run.sequences:
        num_frames[seq] = run.frames(seq)
        gt[seq] = [r for r in kitti.load_sequence(run.data_root, seq).labels
                   if r.frame < num_frames[seq]]
    scores = {}
    for method in methods:
        result = score_method(run.out / 'results' / method, gt, num_frames)
        _write_json(run.out / 'scores' / f'{method}.json', result)
        scores[method] = result['headline']
    return scores


def _per_sequence(run: _EvalRun, do_ros: bool, do_offline: bool) -> tuple[dict, bool | None]:
    """Timing per sequence and, where both paths ran, whether the node's tracks are the offline
    tracks; the second value: all sequences identical (None when not both paths ran)."""
    per_sequence: dict = {}
    identical = None
    for seq in run.sequences:
        entry = {'frames': run.frames(seq), 'bag_conversion_s': run.bag_records[seq]['seconds']}
        ros_done = _read_json(run.out / 'ros' / seq / 'done.json') if do_ros else None
        off_done = _read_json(run.out / 'offline' / seq / 'done.json') if do_offline else None
        if ros_done:
            entry['ros'] = ros_done['timing']
        if off_done:
            entry['offline'] = {k: v for k, v in off_done['timing'].items()
                                if k not in ('hidden_objects', 'oracle_walk')}
        if ros_done and off_done:
            offline_frames = _read_json(run.out / 'offline' / seq / 'tracks.json')['frames']
            difference = first_difference(
                ros_rows(run.out / 'ros' / seq / 'output_bag', run.frames(seq)), offline_frames)
            entry['ros_offline_identical'] = difference is None
            entry['ros_offline_difference'] = difference
            identical = (identical is not False) and difference is None
        per_sequence[seq] = entry
    return per_sequence, identical


def evaluate_dataset(data_root, model_path, out_dir, sequences: Sequence[str] | None = None,
                     path: str = 'both', params_overrides: Mapping | None = None,
                     methods: Sequence[str] = ('walker', 'static', 'constant_velocity', 'none'),
                     extra_trackers: Mapping[str, ExtraTracker] | None = None,
                     params_file=None, max_frames: int | None = None, ros_env: dict | None = None,
                     log=print) -> dict:
    """Evaluate `model_path` (None / '' = the seeded untrained model) on a KITTI-format dataset;
    see the module docstring. Returns the run summary (also written to out_dir/summary.json):
    {"dataset", "sequences", "git", "model", "params", "methods": {name: {class: {HOTA, DetA,
    AssA, MOTA, IDF1, TrackAP}}}, "ros", "ros_offline_identical", "occluded_localization_px":
    {method: px}, "occluded_localization", "per_sequence", ...}.

    `extra_trackers`: name -> callable(per-frame list of ram_tracker.tracker.Detections in
    source-image pixels, frame rate) -> per-frame lists of ram_tracker.pipeline.TrackOutput;
    scored like the occlusion models (offline path only)."""
    run_started = time.perf_counter()
    extra_trackers = dict(extra_trackers or {})
    _check_arguments(path, methods, extra_trackers, max_frames)
    run = _prepare_run(data_root, model_path, out_dir, sequences, params_file, params_overrides,
                       max_frames, log)
    do_ros, do_offline = path in ('ros', 'both'), path in ('offline', 'both')
    if do_ros:
        _run_ros_path(run, ros_env, log)
    if do_offline:
        _run_offline_path(run, methods, extra_trackers, log)

    # scores and the summary: always recomputed from the files on disk
    scored = list(dict.fromkeys([*methods, *extra_trackers])) if do_offline else []
    scores = _score_methods(run, scored + ([ROS_METHOD] if do_ros else []))
    per_sequence, identical = _per_sequence(run, do_ros, do_offline)
    methods_out = {m: s for m, s in scores.items() if m != ROS_METHOD}
    if not do_offline and ROS_METHOD in scores:
        methods_out = {run.node_method: scores[ROS_METHOD]}
    summary = {
        'dataset': str(run.data_root), 'split': 'training', 'sequences': run.sequences,
        'git': provenance.git_state(), 'model': run.model_info, 'params': run.params,
        'path': path, 'max_frames': max_frames, 'max_out_age': MAX_OUT_AGE,
        'methods': methods_out,
        'ros': None if not do_ros else {'occlusion_model': run.node_method,
                                        'scores': scores.get(ROS_METHOD)},
        'ros_offline_identical': identical,
    }
    summary.update(_occlusion_summary(run.out, run.sequences, do_offline, run.params))
    summary['per_sequence'] = per_sequence
    summary['wall_s'] = round(time.perf_counter() - run_started, 2)
    _write_json(run.out / 'summary.json', summary)
    return summary


def _occlusion_summary(out: Path, names: Sequence[str], do_offline: bool, params: dict) -> dict:
    """Occluded-localisation errors summed over the sequences' offline records."""
    if not do_offline:
        return {'occluded_localization_px': {}, 'occluded_localization': None,
                'occlusion_errors': []}
    per_method: dict = {}
    records = []
    oracle = {'walker_sum': 0.0, 'last_seen_sum': 0.0, 'count': 0}
    for seq in names:
        timing = (_read_json(out / 'offline' / seq / 'done.json') or {}).get('timing', {})
        for method, sums in (timing.get('hidden_objects') or {}).items():
            acc = per_method.setdefault(method, {'hidden_frames': 0, 'kept': 0, 'error_sum': 0.0})
            for key in acc:
                acc[key] += sums[key]
            records += [{'sequence': seq, 'method': method, 'object': obj, 'first_frame': first,
                         'occlusion_length': length, 'error_px': error}
                        for obj, first, length, error in sums.get('occlusions', [])]
        for key in oracle:
            oracle[key] += ((timing.get('oracle_walk') or {}).get(key) or 0)
    details = {}
    for method, acc in per_method.items():
        details[method] = {
            'hidden_frames': acc['hidden_frames'],
            'kept_percent': round(100.0 * acc['kept'] / acc['hidden_frames'], 2)
            if acc['hidden_frames'] else None,
            'error_px': round(acc['error_sum'] / acc['kept'], 2) if acc['kept'] else None}
    n = oracle['count']
    return {
        'occluded_localization_px': {m: d['error_px'] for m, d in details.items()},
        'occlusion_errors': records,
        'occluded_localization': {
            'tracks': details,
            'tracks_note': 'per method: hidden_02 frames of objects a track had matched '
                           '(IoU >= 0.5) while labelled; kept = that track still alive; error = '
                           "its box centre to the true centre, source pixels",
            'oracle_walk': {
                'frames': n,
                'walker_px': round(oracle['walker_sum'] / n, 2) if n else None,
                'last_seen_px': round(oracle['last_seen_sum'] / n, 2) if n else None,
                'unit': f"model-input pixels ({params['input_width']}x{params['input_height']})",
                'note': 'occlusion_metric.occluded_localisation: the walk started at the true '
                        'last visible centre (no detector or tracker in the loop)'}}}


# ---------------------------------------------------------------------------------------
# CLI (`ram-eval`, `python -m ram_training.evaluation.kitti_eval`): arguments in, one call of
# evaluate_dataset, its summary printed. Everything above is the library and knows no CLI.

def _table(summary: dict) -> str:
    lines = [f"{'method':20s} {'class':11s} " + ' '.join(f'{k:>7s}' for k in (*HEADLINE, 'TrackAP'))]
    rows = dict(summary['methods'])
    if summary.get('ros') and summary['ros'].get('scores') and summary['path'] == 'both':
        rows[f"ros ({summary['ros']['occlusion_model']})"] = summary['ros']['scores']
    for method, per_class in rows.items():
        for c in CLASSES:
            values = per_class[c]
            lines.append(f'{method:20s} {c:11s} ' + ' '.join(
                f'{values[k]:7.2f}' if values[k] is not None else f'{"n/a":>7s}'
                for k in (*HEADLINE, 'TrackAP')))
    return '\n'.join(lines)


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='ram-eval', description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', required=True, help='KITTI-format dataset root (<root>/training/...)')
    parser.add_argument('--model', required=True,
                        help="weights (.safetensors); '' = the seeded untrained model")
    parser.add_argument('--out', required=True, help='output folder (re-runs resume in it)')
    parser.add_argument('--sequences', nargs='+', default=None, help='default: all')
    parser.add_argument('--path', choices=PATHS, default='both')
    parser.add_argument('--params', default=None, help='ROS 2 parameters YAML (e.g. config/tracker.yaml)')
    parser.add_argument('-p', '--param', action='append', default=[], metavar='KEY=VALUE',
                        help='override one node parameter (repeatable)')
    parser.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS,
                        help='occlusion models of the offline path')
    parser.add_argument('--max-frames', type=int, default=None, help='first N frames of each sequence')
    parser.add_argument('--peers', action='store_true',
                        help='also run SORT, ByteTrack and OC-SORT on the same detections (offline path)')
    return parser


def _report(summary: dict, out_dir) -> str:
    lines = [_table(summary)]
    if summary['ros_offline_identical'] is not None:
        lines.append(f"ROS and offline tracks identical: {summary['ros_offline_identical']}")
    lines.append(f"occluded localisation (px): {summary['occluded_localization_px']}")
    lines.append(f"summary: {Path(out_dir) / 'summary.json'}")
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = _argument_parser().parse_args(argv)
    from ram_training.evaluation.peers import peers_for
    from ram_training.node_process import sigterm_exits
    try:
        with sigterm_exits():             # a killed run stops its tracker_node on the way out
            summary = evaluate_dataset(args.data, args.model, args.out, args.sequences, args.path,
                                       parse_overrides(args.param), tuple(args.methods),
                                       extra_trackers=peers_for(args.model) if args.peers else None,
                                       params_file=args.params, max_frames=args.max_frames)
    except EvalError as error:
        print(f'ram-eval: error: {error}', file=sys.stderr)
        return 2
    print(_report(summary, args.out))
    return 0 if summary['ros_offline_identical'] is not False else 1


if __name__ == '__main__':
    sys.exit(main())

"""World 1 (LA-CATER-like) evaluation: mean IoU of the target's box per target state.

Protocol (paper Table 1; docs/METHOD.md#evaluation-protocols): in every frame the method
reports the highest-scoring box of the target class, walker boxes of occluded tracks included;
its IoU with the target's true box (known even when hidden) is averaged over the frames of each
state (visible / occluded / contained / carried) within a video, then over the videos that have
frames in that state. No frame is skipped: a frame without a target box scores IoU 0.

One model pass per frame feeds every occlusion model (walker, last seen, constant velocity,
none) and the nearest-occluder heuristic, so the comparison is on identical detections.

Nearest-occluder heuristic (`nearest_occluder`; the "Heuristic" row of the paper's Table 1,
from OPNet, Shamsian et al. 2020): while the target is hidden it is assumed to be inside or
behind the object nearest to where it was last seen, and its box (last seen size) is centred on
that object, following it. The objects are the tracker's own tracks (CenterTrack association,
occlusion model 'none') of the non-target classes, never the ground truth; see
`NearestOccluderHeuristic`.

    python -m ram_training.evaluation.world1 --model models/world1_ram.safetensors \
        --data data/world1 --split test --out eval/world1.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ram_tracker.checkpoint import load_weights, trained_input_size
from ram_tracker.pipeline import FrameResult, StreamingModel
from ram_tracker.tracker import PAPER_WALK, TrackerConfig
from ram_training.data import world_lacater
from ram_training.data.atomic import atomic_write_text
from ram_training.data.clips import world1_videos
from ram_training.evaluation.one_pass import OnePassTrackers

STATES = world_lacater.STATE_NAMES
# LA-CATER settings of Algorithm 1 (paper appendix B): long occlusions (max_age 300); the authors'
# re-match radius of 25 px in LA-CATER's 320-px-wide frames (their disocl_match_thresh is in
# original image pixels; the default's is 25 px at 1280 px; section 23). Beyond the paper, chosen
# on World 1 val (40 videos): a walker confidence floor of 0.02 (the authors' LA-CATER 0.005 lets a
# walker that lost its object wander on for hundreds of frames, its track keeping its last score,
# so under the paper's highest-score rule it outranks the object's fresh track; section 23),
# a prior on the walker's step (walker_step_sigma: 0.035 of the width,
# 1.4 nodes at 160 px, for the shipped model of models/world1_ram.md section 16; the previous
# model's was 0.0177, section 14), a tighter one for a track's first 60 hidden frames
# (walker_hold_frames / walker_hold_sigma, section 17: a just-hidden object has rarely moved yet)
# that ends early once a track that stood still over the hidden one for 10 frames moves off with
# it (walker_release_still_frames / walker_release_distance, section 22: a container carrying
# it) and boxes that keep the last observation's sub-node offset (walker_keeps_offset). The step
# prior stays centred on zero (walker_step_velocity 0; the node's 0.25, chosen on World 2's
# moving cars, lowers World 1 val's hidden-state sum, section 21). 'ram_paper_walk' is the walk
# as published, with the authors' LA-CATER confidence floor (0.005).
LACATER_TRACKER = TrackerConfig(max_age=300, walker_min_confidence=0.02,
                                rematch_radius=25.0 / 320.0, walker_step_sigma=0.035,
                                walker_hold_frames=60, walker_hold_sigma=0.005,
                                walker_release_still_frames=10, walker_release_distance=0.025,
                                walker_keeps_offset=True, walker_step_velocity=0.0)
# Not an occlusion model of the tracker: the heuristic runs on a CenterTrack tracker ('none').
NEAREST_OCCLUDER = 'nearest_occluder'
# 'ram_refined': the same walker with the paper's Appendix C box refinement (the paper's Table 1
# RAM numbers include it); 'ram' is the raw walker (Algorithm 1), always reported beside it.
OCCLUSION_MODELS = {'ram': 'walker',
                    'ram_refined': {'occlusion_model': 'walker', 'refine_hidden_boxes': True},
                    'ram_paper_walk': {**PAPER_WALK, 'walker_min_confidence': 0.005},
                    'last_seen': 'static',
                    'constant_velocity': 'constant_velocity', 'no_permanence': 'none',
                    'nearest_occluder': NEAREST_OCCLUDER}


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two x1, y1, x2, y2 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# How the one target box of a frame is chosen among the live target-class tracks:
#   score     the highest score, walker boxes included (the paper's LA-CATER protocol; a hidden
#             track keeps the score of its last detection)
#   fresh_first  a visible track first (highest score), else the most recently seen hidden one:
#             a fresh detection of the class outranks every hidden hypothesis, so stale tracks
#             from older occlusions never win (visible frames then measure the detector)
#   oracle    the track whose box best overlaps the truth: an upper bound of what the method's
#             hypotheses contain (diagnostic only; it reads the answer)
SELECTION_RULES = ('score', 'fresh_first', 'oracle')
# Bumped when the scoring protocol changes, so cached results of the old protocol are not reused.
# 2: a frame without a target item repeats the previous box; of equal scores the later item wins.
PROTOCOL_VERSION = 2


def target_box(result: FrameResult, class_name: str = 'target', rule: str = 'score',
               truth: np.ndarray | None = None) -> np.ndarray | None:
    """The target's box x1, y1, x2, y2 under a selection rule (SELECTION_RULES); None without a
    live track of the class. `truth` (x1, y1, x2, y2) is read by the oracle rule only."""
    live = [t for t in result.tracks if t.class_name == class_name and t.state != 'lost']
    if not live:
        return None
    if rule == 'score':
        best = max(reversed(live), key=lambda t: t.score)   # of equals the later item (authors' rule)
    elif rule == 'fresh_first':
        best = max(live, key=lambda t: (t.state == 'visible', -t.frames_since_seen, t.score))
    elif rule == 'oracle':
        best = max(live, key=lambda t: box_iou(cxcywh_to_xyxy(t.box_cxcywh), truth))
    else:
        raise ValueError(f'unknown selection rule {rule!r} (one of {", ".join(SELECTION_RULES)})')
    return cxcywh_to_xyxy(best.box_cxcywh)


def cxcywh_to_xyxy(box) -> np.ndarray:
    cx, cy, w, h = box[:4]
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


class NearestOccluderHeuristic:
    """The target's box from one tracker's frame results (source pixels), attached to its
    nearest occluder while hidden. Per frame (`update`):

    * a visible target track (class `target_class`; the highest-scoring one): its box is the
      answer, and it is remembered (centre and size); any attachment is dropped;
    * no visible target, but one was seen before: the target follows the object it is attached
      to: the box keeps the target's last seen size, centred on that object's box. The
      attachment is made on the first hidden frame to the visible non-target track whose centre
      is nearest to the target's last seen centre, and kept (by track id) while that track is
      visible, even if another object comes nearer. When the attached track is not visible
      (its track ended), the target attaches again, to the visible non-target track nearest to
      its current estimate; with no such track the estimate stays where it is;
    * never seen yet: None.

    Fed with a tracker whose occlusion model is 'none', every live track is a detection of this
    frame: the heuristic sees only what the detector sees."""

    def __init__(self, target_class: str = 'target'):
        self.target_class = target_class
        self.reset()

    def reset(self) -> None:
        self.estimate: np.ndarray | None = None     # cx, cy, w, h
        self.occluder_id: int | None = None

    def update(self, result: FrameResult) -> np.ndarray | None:
        """The target box (x1, y1, x2, y2) for this frame, or None."""
        visible = [t for t in result.tracks if t.state == 'visible']
        targets = [t for t in visible if t.class_name == self.target_class]
        if targets:
            best = max(targets, key=lambda t: t.score)
            self.estimate = np.asarray(best.box_cxcywh, np.float64).copy()
            self.occluder_id = None
        elif self.estimate is not None:
            others = [t for t in visible if t.class_name != self.target_class]
            occluder = next((t for t in others if t.track_id == self.occluder_id), None)
            if occluder is None and others:
                occluder = min(others, key=lambda t: float(np.hypot(
                    *(np.asarray(t.box_cxcywh[:2]) - self.estimate[:2]))))
                self.occluder_id = occluder.track_id
            if occluder is not None:
                self.estimate[:2] = occluder.box_cxcywh[:2]
        if self.estimate is None:
            return None
        return cxcywh_to_xyxy(self.estimate)


def occlusion_runs(status: Sequence[int]) -> list[tuple[int, int]]:
    """The occlusions of one object: (first, length) of each maximal run of hidden frames
    (status 2) that starts right after a frame in which the object was visible / labelled
    (status 1; 0 = not in view). Runs that start hidden (never seen before) are not
    occlusions a tracker could bridge; a run cut by the end of the frames keeps its length."""
    status = np.asarray(status)
    runs, t = [], 1
    while t < len(status):
        if status[t] == 2 and status[t - 1] == 1:
            end = t
            while end < len(status) and status[end] == 2:
                end += 1
            runs.append((t, end - t))
            t = end
        else:
            t += 1
    return runs


def occlusion_errors(status: Sequence[int],
                     errors: Sequence[float | None]) -> list[tuple[int, int, float | None]]:
    """Per occlusion (`occlusion_runs`): (first, length, mean of `errors` over the run's frames
    that have one, or None when no frame of the run has one). errors[t]: the distance of the
    method's box centre to the true centre in frame t (None: no box)."""
    out = []
    for first, length in occlusion_runs(status):
        values = [e for e in errors[first:first + length] if e is not None]
        out.append((first, length, float(np.mean(values)) if values else None))
    return out


def _centre_error(box, truth) -> float | None:
    if box is None:
        return None
    return float(np.hypot((box[0] + box[2] - truth[0] - truth[2]) / 2,
                          (box[1] + box[3] - truth[1] - truth[3]) / 2))


def summarize(per_video: list[dict[str, list[float]]]) -> dict:
    """Per-state mean IoU: frames averaged within a video, then videos averaged."""
    out = {}
    for state in STATES:
        means = [float(np.mean(v[state])) for v in per_video if v[state]]
        out[f'miou_{state}'] = float(np.mean(means)) if means else None
        out[f'videos_{state}'] = len(means)
        out[f'frames_{state}'] = int(sum(len(v[state]) for v in per_video))
    return out


def evaluate_models(models: dict[str, tuple], root, split: str,
                    input_size: tuple[int, int], max_videos: int | None = None,
                    tracker_config: TrackerConfig = LACATER_TRACKER, log=print,
                    occlusion_records: list | None = None,
                    selection: str | Sequence[str] = 'score', workers: int = 1) -> dict:
    """models: label -> (RAMModel, {method: occlusion model or TrackerConfig fields}). Returns
    {label/method: metrics} under the first selection rule, and {label/method@rule: metrics} under
    each further one: how the frame's target box is chosen among target tracks (SELECTION_RULES),
    all from the same model pass and tracks. Occlusion records use the first rule.

    Each model runs once per frame; all of its methods track from that one inference. The
    occlusion model NEAREST_OCCLUDER is the heuristic on a tracker with occlusion model 'none'.
    `workers` > 1 splits the videos over that many processes (one torch thread each; the
    tracking loops are Python, so threads alone leave cores idle). The results are those of one
    process with one torch thread; against more threads they differ by float rounding only
    (World 1's make eval numbers by < 1e-7).

    `occlusion_records`: if a list, one record per occlusion of the target (`occlusion_runs`:
    a run of not-visible frames after a visible one) and method is appended: {'method':
    'label/method', 'video', 'first_frame', 'occlusion_length', 'error_px'}, error_px = the mean
    distance (source pixels) between the method's box centre and the true centre over the run's
    frames with a box, None without any (the report's `occlusion_errors` format).
    """
    rules = (selection,) if isinstance(selection, str) else tuple(selection)
    videos = world1_videos(root, split)[:max_videos]
    started = time.perf_counter()
    if workers > 1 and len(videos) > 1:
        import multiprocessing
        import os

        from ram_training.node_process import end_with_parent
        chunks = [list(range(len(videos)))[w::workers] for w in range(workers)]
        jobs = [(models, str(root), split, chunk, input_size, tracker_config, rules)
                for chunk in chunks]
        # Children die with their parent: the pool is terminated on the way out of the block
        # (an exception, Ctrl-C, SIGTERM's exit), and the kernel ends a worker whose parent was
        # killed outright (end_with_parent).
        with multiprocessing.get_context('spawn').Pool(
                workers, initializer=end_with_parent, initargs=(os.getpid(),)) as pool:
            outputs = dict(item for part in pool.map(_evaluate_chunk, jobs) for item in part)
        outputs = [outputs[i] for i in range(len(videos))]
        frames = sum(video.num_frames for video in videos)
        log(f'[world1 eval] {len(videos)} videos in {workers} processes: '
            f'{frames / (time.perf_counter() - started):.1f} frames/s')
    else:
        outputs, frames = [], 0
        for vi, video in enumerate(videos):
            outputs.append(_evaluate_video(video, models, input_size, tracker_config, rules))
            frames += video.num_frames
            log(f'[world1 eval] video {vi + 1}/{len(videos)} {video.name}: '
                f'{frames / (time.perf_counter() - started):.1f} frames/s')
    per_video: dict[str, list] = {}
    for ious, records in outputs:
        for key, values in ious.items():
            per_video.setdefault(key, []).append(values)
        if occlusion_records is not None:
            occlusion_records.extend(records)
    return {name: summarize(v) for name, v in per_video.items()}


def _evaluate_chunk(job) -> list[tuple[int, tuple]]:
    """A worker process's share of evaluate_models: [(video index, _evaluate_video's output)]."""
    models, root, split, indices, input_size, tracker_config, rules = job
    torch.set_num_threads(1)
    videos = world1_videos(root, split)
    return [(i, _evaluate_video(videos[i], models, input_size, tracker_config, rules))
            for i in indices]


def _evaluate_video(video, models: dict[str, tuple], input_size: tuple[int, int],
                    tracker_config: TrackerConfig, rules: tuple) -> tuple[dict, list]:
    """One video, every model and method: ({label/method[@rule]: {state: [IoU per frame]}},
    occlusion records of the first rule)."""
    target = int(np.flatnonzero(video.annotations.classes == 0)[0])
    truth = video.annotations.boxes[:, target]
    states = video.ann.states
    out, records = {}, []
    for label, (model, methods) in models.items():
        stream = StreamingModel(model, input_size, torch.device('cpu'),
                                tracker_config.det_threshold)
        heuristics = {m: NearestOccluderHeuristic() for m, occ in methods.items()
                      if occ == NEAREST_OCCLUDER}
        trackers = OnePassTrackers(stream, tracker_config, {
            m: 'none' if m in heuristics else occ for m, occ in methods.items()})
        keys = {(m, r): f'{label}/{m}' + (f'@{r}' if i else '')
                for m in methods for i, r in enumerate(rules)}
        ious = {key: {s: [] for s in STATES} for key in keys.values()}
        previous = {}                 # the last box each (method, rule) gave, in source pixels
        errors = {m: [] for m in methods}
        for t in range(video.num_frames):
            _, results = trackers.step(video.image(t))
            for method, result in results.items():
                heuristic_box = heuristics[method].update(result) if method in heuristics else None
                for i, rule in enumerate(rules):
                    box = (heuristic_box if method in heuristics
                           else target_box(result, rule=rule, truth=truth[t]))
                    # the authors' protocol: a frame without a target item repeats the
                    # previous frame's box (IoU 0 only before the method's first box)
                    box = previous.get((method, rule)) if box is None else box
                    previous[method, rule] = box
                    iou = 0.0 if box is None else box_iou(box, truth[t])
                    ious[keys[method, rule]][STATES[states[t]]].append(iou)
                    if i == 0:
                        errors[method].append(_centre_error(box, truth[t]))
        out.update(ious)
        status = np.where(np.asarray(states) == 0, 1, 2)
        for method in methods:
            records.extend(
                {'method': f'{label}/{method}', 'video': video.name, 'first_frame': first,
                 'occlusion_length': length, 'error_px': error}
                for first, length, error in occlusion_errors(status, errors[method]))
    return out, records


def method_table(results: dict, suffix: str = '') -> dict:
    """evaluate_models' results -> {method: metrics} for the RAM model's methods and, if
    evaluated, the no-walk-loss model's walker, under one selection rule (suffix '@rule')."""
    table = {m: results[f'ram_model/{m}{suffix}'] for m in OCCLUSION_MODELS
             if f'ram_model/{m}{suffix}' in results}
    if f'no_walk_loss/walker{suffix}' in results:
        table['no_walk_loss'] = results[f'no_walk_loss/walker{suffix}']
    return table


def tracker_overrides(base: TrackerConfig, pairs: Sequence[str]) -> TrackerConfig:
    """`base` with node parameters NAME=VALUE for Algorithm 1's settings applied (read as ram-eval's
    -p, checked against the node's schema); ValueError naming an unknown or a bad one."""
    from ram_tracker.parameters import ParameterError, tracker_config_fields, validate
    from ram_training.evaluation.kitti_eval import EvalError, parse_overrides
    fields = tracker_config_fields()
    try:
        given = parse_overrides(pairs)
        unknown = sorted(set(given) - set(fields))
        if unknown:
            raise ValueError(f"--tracker {', '.join(unknown)}: not one of Algorithm 1's parameters "
                             f"({', '.join(sorted(fields))})")
        checked = validate(given)
    except (EvalError, ParameterError) as error:
        raise ValueError(f'--tracker: {error}') from None
    return dataclasses.replace(base, **{fields[name]: checked[name] for name in given})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True, help='RAM weights (.safetensors)')
    parser.add_argument('--baseline-model', help='a second model (e.g. the no-walk-loss variant) '
                        'evaluated with the walker under the label "no_walk_loss"')
    parser.add_argument('--data', required=True, help='World 1 dataset root')
    parser.add_argument('--split', default='test')
    parser.add_argument('--input-size', default=None,
                        help='WxH model input (default: the model file\'s training size)')
    parser.add_argument('--max-videos', type=int, default=None)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--selection', choices=SELECTION_RULES, default='score',
                        help='target box among target tracks for the main table: score (the '
                             'paper\'s protocol), fresh_first or oracle (see SELECTION_RULES); '
                             'fresh_first is always reported beside it')
    parser.add_argument('--tracker', action='append', default=[], metavar='NAME=VALUE',
                        help="one of Algorithm 1's node parameters over the LA-CATER settings for "
                             'every method (repeatable; e.g. walker_step_sigma=0.02): model '
                             'selection on val')
    parser.add_argument('--out', required=True, help='results JSON (written atomically)')
    args = parser.parse_args(argv)
    try:
        tracker_config = tracker_overrides(LACATER_TRACKER, args.tracker)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    model, info = load_weights(args.model)
    size = args.input_size.split('x') if args.input_size else trained_input_size(info)
    if size is None:
        parser.error('--input-size is needed (the model file does not record its input size)')
    width, height = (int(v) for v in size)
    models = {'ram_model': (model, {m: occ for m, occ in OCCLUSION_MODELS.items()})}
    if args.baseline_model:
        baseline, _ = load_weights(args.baseline_model)
        models['no_walk_loss'] = (baseline, {'walker': 'walker'})
    rules = (args.selection,) + (('fresh_first',) if args.selection != 'fresh_first' else ())
    results = evaluate_models(models, args.data, args.split, (width, height), args.max_videos,
                              tracker_config=tracker_config, selection=rules)
    report = method_table(results)
    if len(rules) > 1:
        report['fresh_first'] = method_table(results, '@fresh_first')
    report['_protocol'] = {'split': args.split, 'model': args.model,
                           'baseline_model': args.baseline_model,
                           'input_size': [width, height], 'max_videos': args.max_videos,
                           'selection': args.selection,
                           'tracker': vars(tracker_config)}
    atomic_write_text(Path(args.out), json.dumps(report, indent=2) + '\n')
    for method, metrics in list(report.items()) + [(f'{k} (fresh_first)', v) for k, v in
                                                   report.get('fresh_first', {}).items()]:
        if method.startswith('_') or method == 'fresh_first':
            continue
        print(f'{method:18s} ' + '  '.join(
            f'{s} {metrics[f"miou_{s}"]:.3f}' if metrics[f'miou_{s}'] is not None else f'{s} n/a'
            for s in STATES))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

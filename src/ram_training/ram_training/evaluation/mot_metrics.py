"""HOTA / CLEAR (MOTA) / Identity (IDF1) through PyPI `trackeval` (1.3.0), run in-process.

KITTI: trackeval's Kitti2DBox dataset class, i.e. the official KITTI tracking protocol
(classes car and pedestrian, Van / a sitting person as distractors, DontCare ignore regions,
ground truth with truncation > 0 or occlusion > 2 treated as distractors, unmatched predictions
<= 25 px tall dropped). The ground truth and the tracker output are laid out in a temporary
folder the way that class reads them:

  <tmp>/gt/label_02/<seq>.txt  <tmp>/gt/evaluate_tracking.seqmap.<split>
  <tmp>/trackers/<name>/data/<seq>.txt

MOT (MOT15-style files, e.g. motmetrics' TUD sequences): trackeval's MotChallenge2DBox with
BENCHMARK MOT15 (no distractor preprocessing).

Results come back as {class: {metric: value}}: every trackeval float field in percent (as its
own summaries print them; FP_per_frame excepted, which stays per frame), integer fields as
ints, all rounded to 2 decimals. HOTA-family values are the mean over trackeval's 19 alpha
thresholds (0.05 ... 0.95), as in its summaries.

Quiet: no config / result printing, no timing, no plots, no files besides the temporary ones,
one process (USE_PARALLEL False).

    python -m ram_training.evaluation.mot_metrics --gt <kitti>/training/label_02 \
        --results eval/kitti_val/results --out eval/kitti_val/mot.json
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ram_training.data.atomic import atomic_write_text
from ram_training.data.kitti import SITTING_PERSON_TYPES, KittiObject, read_labels, write_labels
from ram_training.evaluation.kitti_results import to_kitti_objects

KITTI_CLASSES = ("car", "pedestrian")
# CLEAR's FP_per_frame is a count per frame, not a fraction: kept as is.
_NOT_PERCENT = {"FP_per_frame"}
_DROPPED = {"MOTP_sum"}


def _trackeval():
    """Import trackeval without its import-time chatter (it prints a line when the optional
    pycocotools for BURST is missing)."""
    with contextlib.redirect_stdout(io.StringIO()):
        import trackeval
    return trackeval


def _metrics(trackeval):
    quiet = {"PRINT_CONFIG": False}
    return [trackeval.metrics.HOTA(quiet), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]


def _run(trackeval, dataset, metrics) -> dict:
    config = {"USE_PARALLEL": False, "BREAK_ON_ERROR": True, "RETURN_ON_ERROR": False, "LOG_ON_ERROR": None,
              "PRINT_RESULTS": False, "PRINT_ONLY_COMBINED": True, "PRINT_CONFIG": False,
              "TIME_PROGRESS": False, "DISPLAY_LESS_PROGRESS": True, "OUTPUT_SUMMARY": False,
              "OUTPUT_EMPTY_CLASSES": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False}
    # trackeval prints progress to stdout and, on an error, a traceback to stderr before
    # raising: both are captured; the exception itself carries the message.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        evaluator = trackeval.Evaluator(config)
        try:
            output, messages = evaluator.evaluate([dataset], metrics)
        except trackeval.utils.TrackEvalException as err:
            raise ValueError(f"trackeval: {err}") from err
    name = dataset.get_name()
    (tracker, res), = output[name].items()
    if res is None:
        raise RuntimeError(f"trackeval failed: {messages[name][tracker]}")
    combined = res["COMBINED_SEQ"]
    all_metrics = metrics + [trackeval.metrics.Count()]
    return {cls: summarize(all_metrics, combined[cls]) for cls in dataset.get_eval_info()[2]}


def summarize(metrics, class_result: Mapping) -> dict:
    """trackeval's per-class result -> flat {field: number} (see the module doc for units)."""
    out = {}
    for metric in metrics:
        values = class_result[metric.get_name()]
        for field in getattr(metric, "float_array_fields", []):
            out[field] = round(100.0 * float(np.mean(values[field])), 2)
        for field in getattr(metric, "float_fields", []):
            if field in _DROPPED:
                continue
            scale = 1.0 if field in _NOT_PERCENT else 100.0
            out[field] = round(scale * float(values[field]), 2)
        for field in getattr(metric, "integer_fields", []):
            out[field] = int(values[field])
    return out


# ---------------------------------------------------------------------------------------
# KITTI


def _gt_rows(source) -> list[KittiObject]:
    return read_labels(source) if isinstance(source, (str, Path)) else list(source)


def _prediction_rows(source) -> list[KittiObject]:
    return read_labels(source) if isinstance(source, (str, Path)) else to_kitti_objects(source)


def _trackeval_spelling(rows: Iterable[KittiObject]) -> list[KittiObject]:
    """Rows as trackeval's Kitti2DBox reads them: it knows a sitting person only as `Person`
    (the tracking benchmark's label) and fails on a file with `Person_sitting`, the object
    benchmark's spelling that other tools write."""
    sitting = {t.lower() for t in SITTING_PERSON_TYPES}
    return [KittiObject(**{**r.__dict__, "type": "Person"}) if r.type.lower() in sitting else r for r in rows]


def evaluate_kitti(gt: Mapping[str, object], predictions: Mapping[str, object],
                   num_frames: Mapping[str, int] | None = None,
                   classes: Iterable[str] = KITTI_CLASSES, split: str = "val") -> dict:
    """HOTA / CLEAR / Identity on KITTI tracking data.

    gt: {sequence: KittiObject rows, or the path of a label_02 file}.
    predictions: {sequence: per-frame predictions (list indexed by frame or {frame: list} of
        (track_id, class_name, x1, y1, x2, y2, score)), or the path of a result file}.
    num_frames: frames per sequence (default: 1 + the last frame with a label or a prediction).
        trackeval rejects predictions at frames >= the sequence length.
    Returns {class: {HOTA, DetA, AssA, LocA, ..., MOTA, MOTP, IDSW, ..., IDF1, IDP, IDR, ...}}.
    """
    trackeval = _trackeval()
    classes = [c.lower() for c in classes]
    with tempfile.TemporaryDirectory(prefix="ram_trackeval_") as tmp:
        tmp = Path(tmp)
        gt_dir, tracker_dir = tmp / "gt", tmp / "trackers" / "ram" / "data"
        tracker_dir.mkdir(parents=True)
        seqmap = []
        for seq, source in gt.items():
            rows = _gt_rows(source)
            pred_rows = _prediction_rows(predictions.get(seq, []))
            last_pred = max((r.frame for r in pred_rows), default=-1)
            write_labels(tracker_dir / f"{seq}.txt", _trackeval_spelling(pred_rows))
            write_labels(gt_dir / "label_02" / f"{seq}.txt", _trackeval_spelling(rows))
            length = (num_frames or {}).get(seq)
            if length is None:
                length = max([r.frame for r in rows] + [last_pred]) + 1
            elif max([r.frame for r in rows] + [last_pred]) >= length:
                raise ValueError(f"sequence {seq}: labels or predictions at frames >= its length {length}")
            seqmap.append(f"{seq} empty 000000 {int(length):06d}\n")
        unknown = set(predictions) - set(gt)
        if unknown:
            raise ValueError(f"predictions for sequences without ground truth: {sorted(unknown)}")
        atomic_write_text(gt_dir / f"evaluate_tracking.seqmap.{split}", "".join(seqmap))
        dataset = trackeval.datasets.Kitti2DBox({
            "GT_FOLDER": str(gt_dir), "TRACKERS_FOLDER": str(tmp / "trackers"),
            "OUTPUT_FOLDER": str(tmp / "out"), "TRACKERS_TO_EVAL": ["ram"], "CLASSES_TO_EVAL": classes,
            "SPLIT_TO_EVAL": split, "PRINT_CONFIG": False})
        return _run(trackeval, dataset, _metrics(trackeval))


def evaluate_kitti_dirs(label_dir, results_dir, sequences: Iterable[str] | None = None,
                        num_frames: Mapping[str, int] | None = None,
                        classes: Iterable[str] = KITTI_CLASSES) -> dict:
    """Folder form: label_dir/<seq>.txt (KITTI label_02) against results_dir/<seq>.txt
    (KITTI result files; a missing one counts as an empty tracker output)."""
    label_dir, results_dir = Path(label_dir), Path(results_dir)
    if sequences is None:
        sequences = sorted(p.stem for p in label_dir.glob("*.txt"))
    sequences = list(sequences)
    if not sequences:
        raise ValueError(f"no label files in {label_dir}")
    gt = {s: label_dir / f"{s}.txt" for s in sequences}
    preds = {s: results_dir / f"{s}.txt" if (results_dir / f"{s}.txt").is_file() else [] for s in sequences}
    return evaluate_kitti(gt, preds, num_frames, classes)


# ---------------------------------------------------------------------------------------
# MOT Challenge files (generic check)


def evaluate_mot_files(gt_files: Mapping[str, object], result_files: Mapping[str, object],
                       num_frames: Mapping[str, int] | None = None) -> dict:
    """Score MOT-format files (frame, id, x, y, w, h, conf, ...; comma separated, frames from
    1) with trackeval's MotChallenge2DBox as MOT15 (class pedestrian, no distractor
    preprocessing). gt_files / result_files: {sequence: path}. num_frames default: the last
    frame in either file. Returns {"pedestrian": {...}} like evaluate_kitti."""
    trackeval = _trackeval()
    with tempfile.TemporaryDirectory(prefix="ram_trackeval_mot_") as tmp:
        tmp = Path(tmp)
        seq_info = {}
        for seq, gt_path in gt_files.items():
            if seq not in result_files:
                raise ValueError(f"no result file for sequence {seq}")
            (tmp / "gt" / seq / "gt").mkdir(parents=True)
            (tmp / "trackers" / "ram" / "data").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(gt_path, tmp / "gt" / seq / "gt" / "gt.txt")
            shutil.copyfile(result_files[seq], tmp / "trackers" / "ram" / "data" / f"{seq}.txt")
            length = (num_frames or {}).get(seq)
            if length is None:
                length = max(_last_mot_frame(gt_path), _last_mot_frame(result_files[seq]))
            seq_info[seq] = int(length)
        dataset = trackeval.datasets.MotChallenge2DBox({
            "GT_FOLDER": str(tmp / "gt"), "TRACKERS_FOLDER": str(tmp / "trackers"),
            "OUTPUT_FOLDER": str(tmp / "out"), "TRACKERS_TO_EVAL": ["ram"], "CLASSES_TO_EVAL": ["pedestrian"],
            "BENCHMARK": "MOT15", "SKIP_SPLIT_FOL": True, "SEQ_INFO": seq_info, "DO_PREPROC": False,
            "PRINT_CONFIG": False})
        return _run(trackeval, dataset, _metrics(trackeval))


def _last_mot_frame(path) -> int:
    last = 0
    with open(path) as f:
        for line in f:
            if line.strip():
                last = max(last, int(float(line.replace(",", " ").split()[0])))
    return last


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True, help="folder of KITTI label_02 files (<seq>.txt)")
    parser.add_argument("--results", required=True, help="folder of KITTI result files (<seq>.txt)")
    parser.add_argument("--classes", default=",".join(KITTI_CLASSES))
    parser.add_argument("--out", help="results JSON (written atomically)")
    args = parser.parse_args(argv)
    result = evaluate_kitti_dirs(args.gt, args.results, classes=args.classes.split(","))
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

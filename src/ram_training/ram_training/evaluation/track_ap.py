"""Track AP (TAO-style), the paper's Table 2 metric for PD and KITTI, implemented in numpy.

Definitions (docs/METRICS.md has the reasoning and the reference checks):
- A track is the set of (frame, box) of one id and class within one sequence; its score is the
  mean of its frame scores.
- Spatio-temporal IoU of two tracks: sum over frames of intersection / sum over frames of
  union; a frame where only one of them has a box adds that box's area to the union.
- Per class, within each sequence, predictions are taken by descending score and each is
  matched to the not yet matched ground-truth track with the highest spatio-temporal IoU
  >= iou_threshold (0.5), COCO/TAO greedy matching.
- All classes' predictions of all sequences are pooled by score; precision (made
  monotone) is sampled at 101 recall points 0, 0.01, ..., 1 (0 past the last recall
  reached) and averaged: AP. mAP: mean AP of the classes that have ground truth.
- KITTI ignore filtering: a predicted track whose boxes lie in ignore regions (DontCare boxes
  and the class's neighbour types, Van for car, a sitting person (`Person` or `Person_sitting`)
  for pedestrian) by more than ignore_threshold (0.2) -- intersection over the predicted
  box's area, max over the regions of a frame, averaged over the track's frames -- is
  ignored: neither TP nor FP.
  ignore_mode "unmatched" (default) ignores such a prediction only if it matched no
  ground-truth track, as TAO does for not-exhaustively-labelled classes and TrackEval's
  KITTI reader does per frame (a correct track is never thrown away); "before_matching"
  removes it before matching.

Ground truth: every labelled row of the class (any truncation / occlusion level; KITTI labels
no fully hidden objects anyway). Nothing is filtered by box height.

track_ap_trackeval() runs trackeval's own TrackMAP on the same tracks (no ignore filtering, all
areas and lengths, IoU 0.5): the cross-check the tests assert equality with.

    python -m ram_training.evaluation.track_ap --gt <kitti>/training/label_02 \
        --results eval/kitti_val/results --out eval/kitti_val/track_ap.json
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ram_training.data.atomic import atomic_write_text
from ram_training.data.kitti import KittiObject, read_labels, type_keys
from ram_training.evaluation.kitti_results import frame_items, read_results
from ram_training.evaluation.world1 import box_iou

KITTI_CLASSES = ("car", "pedestrian")
# Lowercase KITTI types whose boxes are ignore regions for each evaluated class. A sitting
# person is `Person` in KITTI tracking labels and `Person_sitting` elsewhere: both.
KITTI_IGNORE_TYPES = {"car": ("dontcare", "van"), "pedestrian": ("dontcare", "person", "person_sitting")}
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


@dataclass
class Track:
    track_id: int
    frames: np.ndarray      # (n,) int, ascending
    boxes: np.ndarray       # (n, 4) x1, y1, x2, y2
    scores: np.ndarray      # (n,)

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))


def _area(box) -> float:
    return max(0.0, float(box[2] - box[0])) * max(0.0, float(box[3] - box[1]))


def box_intersection(a, b) -> float:
    """Intersection area of two x1, y1, x2, y2 boxes, from world1.box_iou:
    iou = I / (A + B - I)  =>  I = iou (A + B) / (1 + iou)."""
    iou = box_iou(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    return iou * (_area(a) + _area(b)) / (1.0 + iou)


def spatio_temporal_iou(a: Track, b: Track) -> float:
    """sum_t intersection / sum_t union over the frames of either track."""
    common, ia, ib = np.intersect1d(a.frames, b.frames, assume_unique=True, return_indices=True)
    inter = sum(box_intersection(a.boxes[i], b.boxes[j]) for i, j in zip(ia, ib))
    union = sum(_area(x) for x in a.boxes) + sum(_area(x) for x in b.boxes) - inter
    return float(inter / union) if union > 0 else 0.0


def iou_matrix(preds: list[Track], gts: list[Track]) -> np.ndarray:
    out = np.zeros((len(preds), len(gts)))
    for i, p in enumerate(preds):
        for j, g in enumerate(gts):
            if p.frames[0] <= g.frames[-1] and g.frames[0] <= p.frames[-1]:  # else disjoint in time: 0
                out[i, j] = spatio_temporal_iou(p, g)
    return out


def ignore_overlap(track: Track, regions: Mapping[int, np.ndarray]) -> float:
    """Mean over the track's frames of max over that frame's ignore regions of
    intersection / predicted box area (0 in frames without regions)."""
    values = []
    for t, box in zip(track.frames, track.boxes):
        area = _area(box)
        best = 0.0
        if area > 0:
            for r in regions.get(int(t), ()):
                best = max(best, box_intersection(box, r) / area)
        values.append(best)
    return float(np.mean(values)) if values else 0.0


# ---------------------------------------------------------------------------------------
# Building tracks


def _build(entries: dict) -> list[Track]:
    tracks = []
    for tid, rows in sorted(entries.items()):
        rows.sort(key=lambda r: r[0])
        frames = np.array([r[0] for r in rows], dtype=np.int64)
        if np.any(np.diff(frames) == 0):
            raise ValueError(f"track {tid} has two boxes in frame {frames[np.flatnonzero(np.diff(frames) == 0)[0]]}")
        tracks.append(Track(track_id=tid, frames=frames, boxes=np.array([r[1] for r in rows], dtype=float).reshape(-1, 4),
                            scores=np.array([r[2] for r in rows], dtype=float)))
    return tracks


def prediction_tracks(frames, classes: Iterable[str] = KITTI_CLASSES) -> dict[str, list[Track]]:
    """Per-frame predictions (list or {frame: list} of (track_id, class_name, x1, y1, x2, y2,
    score)) -> {class: [Track]}. A track id must keep one class."""
    classes = [c.lower() for c in classes]
    entries: dict[str, dict] = {c: {} for c in classes}
    class_of: dict[int, str] = {}
    for t, preds in frame_items(frames):
        for track_id, name, x1, y1, x2, y2, score in preds:
            name = name.lower()
            if class_of.setdefault(int(track_id), name) != name:
                raise ValueError(f"track {track_id} changes class ({class_of[int(track_id)]} -> {name})")
            if name in entries:
                entries[name].setdefault(int(track_id), []).append((int(t), (x1, y1, x2, y2), float(score)))
    return {c: _build(e) for c, e in entries.items()}


def ground_truth_tracks(rows: Iterable[KittiObject], classes: Iterable[str] = KITTI_CLASSES,
                        ignore_types: Mapping[str, Iterable[str]] = KITTI_IGNORE_TYPES
                        ) -> tuple[dict[str, list[Track]], dict[str, dict[int, np.ndarray]]]:
    """KITTI label rows -> ({class: [Track]}, {class: {frame: ignore boxes (k, 4)}})."""
    classes = [c.lower() for c in classes]
    entries: dict[str, dict] = {c: {} for c in classes}
    regions: dict[str, dict[int, list]] = {c: {} for c in classes}
    ignored = {c: type_keys(ignore_types.get(c, ())) for c in classes}
    for r in rows:
        kind = r.type.lower()
        if kind in entries and r.track_id >= 0:
            entries[kind].setdefault(r.track_id, []).append((r.frame, r.box, 1.0))
        for c in classes:
            if kind in ignored[c]:
                regions[c].setdefault(r.frame, []).append(r.box)
    return ({c: _build(e) for c, e in entries.items()},
            {c: {t: np.array(b, dtype=float).reshape(-1, 4) for t, b in reg.items()} for c, reg in regions.items()})


# ---------------------------------------------------------------------------------------
# Matching and AP


def match_sequence(preds: list[Track], gts: list[Track], iou_threshold: float = 0.5,
                   ignored: np.ndarray | None = None, ignore_mode: str = "unmatched") -> dict:
    """Greedy matching of one sequence and class. Returns scores, tp flags and ignore flags of
    the predictions (in descending score order) and the number of ground-truth tracks."""
    if ignore_mode not in ("unmatched", "before_matching"):
        raise ValueError(f"ignore_mode must be 'unmatched' or 'before_matching', got {ignore_mode!r}")
    scores = np.array([p.score for p in preds], dtype=float)
    order = np.argsort(-scores, kind="mergesort")
    ignored = np.zeros(len(preds), bool) if ignored is None else np.asarray(ignored, bool)
    ious = iou_matrix([preds[i] for i in order], gts)
    ignored = ignored[order]
    tp = np.zeros(len(preds), bool)
    gt_taken = np.zeros(len(gts), bool)
    eps = np.finfo(float).eps
    for k in range(len(order)):
        if ignore_mode == "before_matching" and ignored[k]:
            continue
        candidates = np.where(~gt_taken & (ious[k] >= iou_threshold - eps), ious[k], -1.0) if len(gts) else np.array([])
        if candidates.size and candidates.max() >= 0:
            j = int(np.argmax(candidates))
            gt_taken[j] = True
            tp[k] = True
    drop = ignored & ~tp
    return {"scores": scores[order], "tp": tp, "ignored": drop, "num_gt": len(gts),
            "ids": [preds[i].track_id for i in order]}


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int,
                      recall_points: np.ndarray = RECALL_POINTS) -> tuple[float | None, float]:
    """AP (fraction) and final recall of pooled predictions; AP None when num_gt is 0.
    COCO/TAO: precision made monotone from the right, sampled at the first prediction that
    reaches each recall point, 0 where a recall point is never reached."""
    if num_gt == 0:
        return None, 0.0
    order = np.argsort(-np.asarray(scores, float), kind="mergesort")
    tp = np.asarray(tp, bool)[order]
    tp_sum = np.cumsum(tp).astype(float)
    fp_sum = np.cumsum(~tp).astype(float)
    recall = tp_sum / num_gt
    precision = tp_sum / (tp_sum + fp_sum + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
    idx = np.searchsorted(recall, recall_points, side="left")
    sampled = np.array([precision[i] if i < precision.size else 0.0 for i in idx])
    return float(sampled.mean()), float(recall[-1]) if recall.size else 0.0


def _as_rows(source) -> list[KittiObject]:
    return read_labels(source) if isinstance(source, (str, Path)) else list(source)


def _as_frames(source):
    return read_results(source) if isinstance(source, (str, Path)) else source


def track_ap(gt: Mapping[str, object], predictions: Mapping[str, object],
             classes: Iterable[str] = KITTI_CLASSES, iou_threshold: float = 0.5,
             ignore_threshold: float | None = 0.2,
             ignore_types: Mapping[str, Iterable[str]] = KITTI_IGNORE_TYPES,
             ignore_mode: str = "unmatched") -> dict:
    """Track AP per class and mAP, in percent.

    gt: {sequence: KittiObject rows or a label_02 file path}; predictions: {sequence:
    per-frame predictions or a result file path} (a sequence missing here has no predictions).
    ignore_threshold None turns ignore filtering off. Returns
    {class: {"AP", "recall", "num_gt", "num_pred", "num_ignored", "num_tp"}, "mAP": ...};
    AP is None for a class without ground truth (left out of mAP).
    """
    classes = [c.lower() for c in classes]
    unknown = set(predictions) - set(gt)
    if unknown:
        raise ValueError(f"predictions for sequences without ground truth: {sorted(unknown)}")
    pooled = {c: {"scores": [], "tp": [], "num_gt": 0, "num_ignored": 0, "num_pred": 0} for c in classes}
    for seq, source in gt.items():
        gt_tracks, regions = ground_truth_tracks(_as_rows(source), classes, ignore_types)
        pred_tracks = prediction_tracks(_as_frames(predictions.get(seq, [])), classes)
        for c in classes:
            preds = pred_tracks[c]
            if ignore_threshold is not None:
                ignored = np.array([ignore_overlap(p, regions[c]) > ignore_threshold for p in preds], bool)
            else:
                ignored = np.zeros(len(preds), bool)
            m = match_sequence(preds, gt_tracks[c], iou_threshold, ignored, ignore_mode)
            keep = ~m["ignored"]
            pc = pooled[c]
            pc["scores"].append(m["scores"][keep])
            pc["tp"].append(m["tp"][keep])
            pc["num_gt"] += m["num_gt"]
            pc["num_ignored"] += int(m["ignored"].sum())
            pc["num_pred"] += len(preds)
    out: dict = {}
    aps = []
    for c in classes:
        pc = pooled[c]
        scores = np.concatenate(pc["scores"]) if pc["scores"] else np.zeros(0)
        tp = np.concatenate(pc["tp"]) if pc["tp"] else np.zeros(0, bool)
        ap, recall = average_precision(scores, tp, pc["num_gt"])
        out[c] = {"AP": None if ap is None else 100.0 * ap, "recall": 100.0 * recall, "num_gt": pc["num_gt"],
                  "num_pred": pc["num_pred"], "num_ignored": pc["num_ignored"], "num_tp": int(tp.sum())}
        if ap is not None:
            aps.append(100.0 * ap)
    out["mAP"] = float(np.mean(aps)) if aps else None
    return out


def track_ap_trackeval(gt: Mapping[str, object], predictions: Mapping[str, object],
                       classes: Iterable[str] = KITTI_CLASSES, iou_threshold: float = 0.5) -> dict:
    """The same Track AP from trackeval's TrackMAP metric (TAO's code): no ignore filtering,
    all areas and lengths. Returns {class: AP percent or None, "mAP": ...}. For the
    cross-check; needs trackeval."""
    from ram_training.evaluation.mot_metrics import _trackeval
    trackeval = _trackeval()
    metric = trackeval.metrics.TrackMAP({"USE_AREA_RANGES": False, "USE_TIME_RANGES": False,
                                         "IOU_THRESHOLDS": np.array([iou_threshold]),
                                         "PRINT_CONFIG": False})
    classes = [c.lower() for c in classes]
    out: dict = {}
    aps = []
    for c in classes:
        per_seq = {}
        for seq, source in gt.items():
            gt_tracks, _ = ground_truth_tracks(_as_rows(source), [c], {})
            pred_tracks = prediction_tracks(_as_frames(predictions.get(seq, [])), [c])
            g, p = gt_tracks[c], pred_tracks[c]
            p = sorted(p, key=lambda tr: -tr.score)  # TAO's reader sorts by score
            data = {
                # ids from 1: TAO's matcher tests `gt_m > 0` for "already matched", so a
                # prediction id 0 would leave its ground truth open to a second match
                "gt_track_ids": list(range(1, len(g) + 1)), "dt_track_ids": list(range(1, len(p) + 1)),
                "gt_tracks": [{int(t): b for t, b in zip(tr.frames, tr.boxes)} for tr in g],
                "dt_tracks": [{int(t): b for t, b in zip(tr.frames, tr.boxes)} for tr in p],
                "dt_track_scores": np.array([tr.score for tr in p], dtype=float),
                "iou_type": "bbox", "boxformat": "x0y0x1y1",
            }
            per_seq[seq] = metric.eval_sequence(data)
        res = metric.combine_sequences(per_seq)
        ap = float(res["AP_all"][0])
        out[c] = None if ap < 0 else 100.0 * ap
        if ap >= 0:
            aps.append(100.0 * ap)
    out["mAP"] = float(np.mean(aps)) if aps else None
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", required=True, help="folder of KITTI label_02 files (<seq>.txt)")
    parser.add_argument("--results", required=True, help="folder of KITTI result files (<seq>.txt)")
    parser.add_argument("--classes", default=",".join(KITTI_CLASSES))
    parser.add_argument("--ignore-threshold", type=float, default=0.2, help="negative: no ignore filtering")
    parser.add_argument("--ignore-mode", default="unmatched", choices=("unmatched", "before_matching"))
    parser.add_argument("--out", help="results JSON (written atomically)")
    args = parser.parse_args(argv)
    gt_dir, res_dir = Path(args.gt), Path(args.results)
    names = sorted(p.stem for p in gt_dir.glob("*.txt"))
    if not names:
        parser.error(f"no label files in {gt_dir}")
    preds = {n: res_dir / f"{n}.txt" for n in names if (res_dir / f"{n}.txt").is_file()}
    result = track_ap({n: gt_dir / f"{n}.txt" for n in names}, preds, args.classes.split(","),
                      ignore_threshold=None if args.ignore_threshold < 0 else args.ignore_threshold,
                      ignore_mode=args.ignore_mode)
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

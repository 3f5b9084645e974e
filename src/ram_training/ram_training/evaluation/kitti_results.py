"""Tracker output in the KITTI tracking *result* format, written atomically and read back.

One text file per sequence, one line per box (the devkit's label line plus a score):

  frame track_id type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y score
  0 7 Car -1 -1 -10.000000 100.0 50.0 180.0 110.0 -1 -1 -1 -1000 -1000 -1000 -10 0.93

truncated / occluded are -1, alpha and rotation_y -10 and the 3D fields -1 (size) / -1000
(location): the values CenterTrack / PermaTrack write for 2D trackers. Lines are formatted by
data/kitti.py's KittiObject, so anything written here also passes its reader's checks.

A prediction is (track_id, class_name, x1, y1, x2, y2, score) with the box in pixels;
class_name is matched to a KITTI type case-insensitively ("car" -> "Car", "pedestrian" ->
"Pedestrian"). read_results gives the names back lowercase, the spelling TrackEval and the
metric modules here use.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ram_training.data.atomic import atomic_write_text
from ram_training.data.kitti import KITTI_TYPES, KittiObject, read_labels

# (track_id, class_name, x1, y1, x2, y2, score)
Prediction = tuple

_TYPE_OF = {t.lower(): t for t in KITTI_TYPES if t != "DontCare"}


def kitti_type(class_name: str) -> str:
    """The KITTI type spelling of a class name ("car" -> "Car"); ValueError for others."""
    try:
        return _TYPE_OF[class_name.lower()]
    except KeyError:
        raise ValueError(f"class {class_name!r} is not a KITTI object type "
                         f"({', '.join(_TYPE_OF.values())})") from None


def frame_items(frames) -> Iterable[tuple[int, Sequence[Prediction]]]:
    """(frame, predictions) pairs of either form of per-frame input: a list indexed by frame
    or a {frame: predictions} mapping."""
    if isinstance(frames, Mapping):
        return sorted((int(t), preds) for t, preds in frames.items())
    return enumerate(frames)


def to_kitti_objects(frames) -> list[KittiObject]:
    """Per-frame predictions -> KittiObject rows (result format: with scores)."""
    rows = []
    for t, preds in frame_items(frames):
        seen = set()
        for pred in preds:
            if len(pred) != 7:
                raise ValueError(f"frame {t}: a prediction is (track_id, class_name, x1, y1, x2, y2, score), "
                                 f"got {pred!r}")
            track_id, name, x1, y1, x2, y2, score = pred
            track_id = int(track_id)
            if track_id < 0:
                raise ValueError(f"frame {t}: track id must be >= 0, got {track_id}")
            if track_id in seen:
                raise ValueError(f"frame {t}: track id {track_id} appears twice")
            seen.add(track_id)
            box = tuple(float(v) for v in (x1, y1, x2, y2))
            if box[2] < box[0] or box[3] < box[1]:
                raise ValueError(f"frame {t} track {track_id}: box has x2 < x1 or y2 < y1: {box}")
            rows.append(KittiObject(frame=int(t), track_id=track_id, type=kitti_type(name), truncated=-1,
                                    occluded=-1, alpha=-10.0, box=box, score=float(score)))
    return rows


def results_text(frames) -> str:
    rows = sorted(to_kitti_objects(frames), key=lambda o: (o.frame, o.track_id))
    return "".join(o.to_line() + "\n" for o in rows)


def write_results(path, frames) -> Path:
    """One sequence's predictions to `path` (atomically: temp file + rename)."""
    path = Path(path)
    atomic_write_text(path, results_text(frames))
    return path


def write_results_dir(out_dir, sequences: Mapping[str, object]) -> list[Path]:
    """{sequence name: per-frame predictions} -> out_dir/<name>.txt, one file per sequence
    (an empty file for a sequence without predictions: evaluators need every file)."""
    return [write_results(Path(out_dir) / f"{name}.txt", frames) for name, frames in sequences.items()]


def read_results(path) -> dict[int, list[Prediction]]:
    """A result file -> {frame: [(track_id, class_name (lowercase), x1, y1, x2, y2, score)]}.
    Rows without a score (a label file) get score 1.0; DontCare rows are skipped."""
    out: dict[int, list[Prediction]] = {}
    for o in read_labels(path):
        if o.type == "DontCare":
            continue
        score = 1.0 if o.score is None else float(o.score)
        out.setdefault(o.frame, []).append((o.track_id, o.type.lower(), *(float(v) for v in o.box), score))
    return out


def read_results_dir(directory, names: Iterable[str] | None = None) -> dict[str, dict[int, list[Prediction]]]:
    directory = Path(directory)
    if names is None:
        names = sorted(p.stem for p in directory.glob("*.txt"))
    return {name: read_results(directory / f"{name}.txt") for name in names}

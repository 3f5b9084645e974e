"""The KITTI tracking format: label / result lines, read and written (no ROS).

Label line (space separated; tracking devkit): frame track_id type truncated occluded alpha
x1 y1 x2 y2 h w l x y z rotation_y [score]. truncated is an integer level 0/1/2 in tracking
(the object benchmark's float is accepted too); occluded: 0 fully visible, 1 partly occluded,
2 largely occluded, 3 unknown. DontCare rows have track_id -1 and mark regions to ignore.
Bad input raises KittiFormatError("path:line: what is wrong").

Tracker output is the *result* form: one text file per sequence, one line per box (the label
line plus a score):

  frame track_id type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y score
  0 7 Car -1 -1 -10.000000 100.0 50.0 180.0 110.0 -1 -1 -1 -1000 -1000 -1000 -10 0.93

truncated / occluded are -1, alpha and rotation_y -10 and the 3D fields -1 (size) / -1000
(location): the values CenterTrack / PermaTrack write for 2D trackers. Files are written
atomically.

A prediction is (track_id, class_name, x1, y1, x2, y2, score) with the box in pixels;
class_name is matched to a KITTI type case-insensitively ("car" -> "Car", "pedestrian" ->
"Pedestrian"). read_results gives the names back lowercase, the spelling TrackEval and the
metric modules use.

One implementation for the whole workspace: ram-track (ram_tracker.track_cli) writes its tracks
with it, and ram_training's KITTI data readers and evaluation import it from here.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ram_tracker.atomic_write import atomic_write_text

KITTI_TYPES = ("Car", "Van", "Truck", "Pedestrian", "Person", "Person_sitting", "Cyclist", "Tram", "Misc",
               "DontCare")
# The devkit and trackeval lowercase the type column, so the reader accepts any case and
# stores the spelling above.
_TYPE_SPELLING = {t.lower(): t for t in KITTI_TYPES}

# The types a tracker result may name (DontCare marks regions, never a track).
_RESULT_TYPES = {t.lower(): t for t in KITTI_TYPES if t != "DontCare"}


class KittiFormatError(ValueError):
    def __init__(self, path, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line


@dataclass
class KittiObject:
    frame: int
    track_id: int
    type: str
    truncated: float
    occluded: int
    alpha: float
    box: tuple                 # x1, y1, x2, y2 (pixels)
    dimensions: tuple = (-1.0, -1.0, -1.0)          # h, w, l (metres)
    location: tuple = (-1000.0, -1000.0, -1000.0)   # x, y, z camera coordinates (metres)
    rotation_y: float = -10.0
    score: float | None = None

    @classmethod
    def dont_care(cls, frame: int, box) -> "KittiObject":
        return cls(frame=frame, track_id=-1, type="DontCare", truncated=-1, occluded=-1, alpha=-10.0,
                   box=tuple(float(b) for b in box))

    def to_line(self) -> str:
        trunc = self.truncated
        trunc_text = str(int(trunc)) if float(trunc).is_integer() else f"{trunc:.6f}"
        values = [str(self.frame), str(self.track_id), self.type, trunc_text, str(int(self.occluded)),
                  f"{self.alpha:.6f}", *(f"{v:.6f}" for v in self.box),
                  *(f"{v:.6f}" for v in self.dimensions), *(f"{v:.6f}" for v in self.location),
                  f"{self.rotation_y:.6f}"]
        if self.score is not None:
            values.append(f"{self.score:.6f}")
        return " ".join(values)

    @classmethod
    def from_line(cls, text: str, path="<string>", line: int | None = None) -> "KittiObject":
        fields = text.split()
        if len(fields) not in (17, 18):
            raise KittiFormatError(path, line, f"expected 17 or 18 fields (18 with score), got {len(fields)}")
        try:
            frame, track_id = int(fields[0]), int(fields[1])
        except ValueError:
            raise KittiFormatError(path, line, f"frame and track id must be integers, got {fields[0]!r} {fields[1]!r}") from None
        kind = _TYPE_SPELLING.get(fields[2].lower())
        if kind is None:
            raise KittiFormatError(path, line, f"unknown object type {fields[2]!r}")
        try:
            numbers = [float(v) for v in fields[3:]]
        except ValueError as err:
            raise KittiFormatError(path, line, f"non-numeric value ({err})") from None
        if not all(np.isfinite(numbers)):
            raise KittiFormatError(path, line, "non-finite value")
        if frame < 0:
            raise KittiFormatError(path, line, f"negative frame {frame}")
        occluded = numbers[1]
        if not occluded.is_integer() or int(occluded) not in (-1, 0, 1, 2, 3):
            raise KittiFormatError(path, line, f"occluded must be -1, 0, 1, 2 or 3, got {fields[4]}")
        x1, y1, x2, y2 = numbers[3:7]
        if x2 < x1 or y2 < y1:
            raise KittiFormatError(path, line, f"box has x2 < x1 or y2 < y1: {x1} {y1} {x2} {y2}")
        if kind != "DontCare" and track_id < 0:
            raise KittiFormatError(path, line, f"{kind} row needs a track id >= 0, got {track_id}")
        return cls(frame=frame, track_id=track_id, type=kind, truncated=numbers[0], occluded=int(occluded),
                   alpha=numbers[2], box=(x1, y1, x2, y2), dimensions=tuple(numbers[7:10]),
                   location=tuple(numbers[10:13]), rotation_y=numbers[13],
                   score=numbers[14] if len(numbers) == 15 else None)


def read_labels(path) -> list[KittiObject]:
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(path, None, "label file not found")
    objects = []
    with open(path) as f:
        for number, text in enumerate(f, start=1):
            if text.strip():
                objects.append(KittiObject.from_line(text, path, number))
    return objects


# (track_id, class_name, x1, y1, x2, y2, score)
Prediction = tuple

def kitti_type(class_name: str) -> str:
    """The KITTI type spelling of a class name ("car" -> "Car"); ValueError for others."""
    try:
        return _RESULT_TYPES[class_name.lower()]
    except KeyError:
        raise ValueError(f"class {class_name!r} is not a KITTI object type "
                         f"({', '.join(_RESULT_TYPES.values())})") from None


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

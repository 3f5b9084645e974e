"""KITTI tracking format: labels, calibration, sequences, the half-split protocol.

Layout (real KITTI after unpacking, and what World 2 writes):
  <root>/training/image_02/SSSS/FFFFFF.png
  <root>/training/label_02/SSSS.txt
  <root>/training/calib/SSSS.txt
The KITTI downloads keep these in separate archives (data_tracking_image_2/training/...,
data_tracking_label_2/training/..., data_tracking_calib/training/...); both forms are found.

Label line (space separated; tracking devkit): frame track_id type truncated occluded alpha
x1 y1 x2 y2 h w l x y z rotation_y [score]. truncated is an integer level 0/1/2 in tracking
(the object benchmark's float is accepted too); occluded: 0 fully visible, 1 partly occluded,
2 largely occluded, 3 unknown. DontCare rows have track_id -1 and mark regions to ignore.

Bad input raises KittiFormatError("path:line: what is wrong"). The line format itself (KittiObject,
read_labels) is ram_tracker.kitti_format, which ram-track writes its tracks with.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ram_tracker.kitti_format import KITTI_TYPES, KittiFormatError, KittiObject, read_labels  # noqa: F401

from .annotations import TrackAnnotations
from .atomic import atomic_write_text

# A sitting person: the tracking benchmark's label_02 files say `Person` (trackeval's KITTI
# reader knows only that), the object benchmark and tools that follow it `Person_sitting`.
# Both are the same distractor of Pedestrian, so every ignore list names both.
SITTING_PERSON_TYPES = ("Person", "Person_sitting")
# The occluded level of real KITTI mapped to a visible fraction for the clip's `visibility`.
# Levels are coarse; these are the middles of the ranges World 2 uses to write them
# (0: >= 80% visible -> 1.0 since "fully visible", 1: 40-80% -> 0.6, 2: > 0-40% -> 0.25) and
# 0.5 for 3 "unknown". RAM's label hygiene thresholds (0.05 / 0.15) keep every labelled KITTI
# object a detection target, which is what KITTI's annotators meant by labelling it.
OCCLUSION_TO_VISIBILITY = {0: 1.0, 1: 0.6, 2: 0.25, 3: 0.5}

# Default training classes (the paper evaluates cars and pedestrians) and the types whose
# boxes become ignore regions (KITTI's evaluation treats Van / a sitting person as neighbours
# of Car / Pedestrian, and DontCare as don't-care). Other types are dropped. Matched
# case-insensitively.
DEFAULT_CLASSES = ("Car", "Pedestrian")
DEFAULT_IGNORE_TYPES = ("Van", *SITTING_PERSON_TYPES, "DontCare")


def type_keys(types) -> set[str]:
    """Lowercase type names for case-insensitive matching; naming either spelling of a sitting
    person stands for both (an ignore list written for one benchmark must not miss the other)."""
    keys = {t.lower() for t in types}
    sitting = {t.lower() for t in SITTING_PERSON_TYPES}
    return keys | sitting if keys & sitting else keys


def wrap_angle(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def write_labels(path, objects) -> None:
    rows = sorted(objects, key=lambda o: (o.frame, o.track_id < 0, o.track_id))
    atomic_write_text(Path(path), "".join(o.to_line() + "\n" for o in rows))


@dataclass
class KittiCalib:
    P: list                    # P0..P3, each (3,4)
    R_rect: np.ndarray         # (3,3)
    Tr_velo_cam: np.ndarray    # (3,4)
    Tr_imu_velo: np.ndarray    # (3,4)

    @property
    def P2(self) -> np.ndarray:
        return self.P[2]


_CALIB_KEYS = {"P0": (3, 4), "P1": (3, 4), "P2": (3, 4), "P3": (3, 4), "R_rect": (3, 3),
               "Tr_velo_cam": (3, 4), "Tr_imu_velo": (3, 4)}
_CALIB_ALIASES = {"R0_rect": "R_rect", "Tr_velo_to_cam": "Tr_velo_cam", "Tr_imu_to_velo": "Tr_imu_velo"}


def read_calib(path) -> KittiCalib:
    """Tracking calib files use `P0: ...` and `R_rect ...` (no colon); both forms are accepted,
    as are the object benchmark's names (R0_rect, Tr_velo_to_cam, Tr_imu_to_velo)."""
    path = Path(path)
    if not path.is_file():
        raise KittiFormatError(path, None, "calib file not found")
    values = {}
    with open(path) as f:
        for number, text in enumerate(f, start=1):
            fields = text.split()
            if not fields:
                continue
            key = _CALIB_ALIASES.get(fields[0].rstrip(":"), fields[0].rstrip(":"))
            if key not in _CALIB_KEYS:
                continue
            shape = _CALIB_KEYS[key]
            try:
                numbers = np.array([float(v) for v in fields[1:]])
            except ValueError as err:
                raise KittiFormatError(path, number, f"{key}: non-numeric value ({err})") from None
            if numbers.size != shape[0] * shape[1]:
                raise KittiFormatError(path, number, f"{key}: expected {shape[0] * shape[1]} numbers, got {numbers.size}")
            values[key] = numbers.reshape(shape)
    if "P2" not in values:
        raise KittiFormatError(path, None, "no P2 line")
    eye34 = np.hstack([np.eye(3), np.zeros((3, 1))])
    return KittiCalib(P=[values.get(f"P{i}", values["P2"]) for i in range(4)], R_rect=values.get("R_rect", np.eye(3)),
                      Tr_velo_cam=values.get("Tr_velo_cam", eye34), Tr_imu_velo=values.get("Tr_imu_velo", eye34))


def write_calib(path, calib: KittiCalib) -> None:
    def row(name, m, colon=True):
        return f"{name}{':' if colon else ''} " + " ".join(f"{v:.12e}" for v in np.asarray(m).ravel()) + "\n"
    text = "".join(row(f"P{i}", calib.P[i]) for i in range(4))
    # the tracking benchmark's own spelling (no colon after these three)
    text += row("R_rect", calib.R_rect, False) + row("Tr_velo_cam", calib.Tr_velo_cam, False)
    text += row("Tr_imu_velo", calib.Tr_imu_velo, False)
    atomic_write_text(Path(path), text)


# ---------------------------------------------------------------------------------------
# Sequences


def _find_dir(root: Path, split: str, sub: str, archive: str) -> Path | None:
    for candidate in (root / split / sub, root / sub, root / archive / split / sub):
        if candidate.is_dir():
            return candidate
    return None


@dataclass
class KittiSequence:
    name: str
    image_dir: Path | None
    image_paths: list
    labels: list                       # KittiObject rows of label_02
    calib: KittiCalib | None
    hidden: list = field(default_factory=list)  # rows of hidden_02 (synthetic data, evaluation only)
    frame_range: tuple = (0, 0)        # [start, stop) of the frames this view covers

    @property
    def num_frames(self) -> int:
        return self.frame_range[1] - self.frame_range[0]

    def image(self, t: int) -> np.ndarray:
        """Frame t of this view (0-based within frame_range) as RGB uint8."""
        import cv2
        path = self.image_paths[self.frame_range[0] + t]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise KittiFormatError(path, None, "cannot read image")
        return bgr[..., ::-1].copy()

    def rows_in_view(self, rows) -> list:
        start, stop = self.frame_range
        return [r for r in rows if start <= r.frame < stop]

    def track_annotations(self, class_names=DEFAULT_CLASSES, ignore_types=DEFAULT_IGNORE_TYPES,
                          include_hidden: bool = False) -> TrackAnnotations:
        """Frame-major arrays for clip sampling. Frames are renumbered from 0 within frame_range.
        include_hidden adds hidden_02 rows (present, visibility 0): only for the supervised-
        invisible baseline and for evaluation; RAM itself never uses them."""
        start, stop = self.frame_range
        T = stop - start
        rows = self.rows_in_view(self.labels)
        hidden = self.rows_in_view(self.hidden) if include_hidden else []
        class_of = {c.lower(): k for k, c in enumerate(class_names)}
        ignored = type_keys(ignore_types)
        tracks = sorted({(r.track_id, r.type) for r in rows + hidden if r.type.lower() in class_of})
        index = {}
        for k, (tid, kind) in enumerate(tracks):
            if tid in index:
                raise KittiFormatError(self.name, None, f"track {tid} has more than one type")
            index[tid] = k
        K = len(tracks)
        boxes = np.zeros((T, K, 4), dtype=np.float32)
        present = np.zeros((T, K), dtype=bool)
        visibility = np.zeros((T, K), dtype=np.float32)
        ignore = [[] for _ in range(T)]
        for r in rows:
            t = r.frame - start
            if r.type.lower() in class_of:
                k = index[r.track_id]
                boxes[t, k] = r.box
                present[t, k] = True
                visibility[t, k] = OCCLUSION_TO_VISIBILITY.get(r.occluded, 0.5)
            elif r.type.lower() in ignored:
                ignore[t].append(r.box)
        for r in hidden:
            t = r.frame - start
            if r.type.lower() in class_of and not present[t, index[r.track_id]]:
                boxes[t, index[r.track_id]] = r.box
                present[t, index[r.track_id]] = True
                visibility[t, index[r.track_id]] = 0.0
        return TrackAnnotations(
            track_ids=np.array([tid for tid, _ in tracks], dtype=np.int64),
            classes=np.array([class_of[kind.lower()] for _, kind in tracks], dtype=np.int64),
            boxes=boxes, present=present, visibility=visibility,
            ignore_boxes=[np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in ignore])


def list_sequences(root, split: str = "training") -> list[str]:
    root = Path(root)
    label_dir = _find_dir(root, split, "label_02", "data_tracking_label_2")
    image_dir = _find_dir(root, split, "image_02", "data_tracking_image_2")
    names = set()
    if label_dir is not None:
        names |= {p.stem for p in label_dir.glob("*.txt")}
    if image_dir is not None:
        names |= {p.name for p in image_dir.iterdir() if p.is_dir()}
    if not names:
        raise KittiFormatError(root, None, f"no KITTI tracking sequences under {root} (split {split!r})")
    return sorted(names)


def load_sequence(root, name: str, split: str = "training", half: str | None = None) -> KittiSequence:
    """One sequence. half: None (all frames), "train_half" or "val_half" (half_split_range)."""
    root = Path(root)
    image_dir = _find_dir(root, split, "image_02", "data_tracking_image_2")
    label_dir = _find_dir(root, split, "label_02", "data_tracking_label_2")
    calib_dir = _find_dir(root, split, "calib", "data_tracking_calib")
    hidden_dir = _find_dir(root, split, "hidden_02", "hidden_02")
    image_paths = []
    if image_dir is not None and (image_dir / name).is_dir():
        image_paths = sorted(p for p in (image_dir / name).iterdir() if p.suffix.lower() in (".png", ".jpg"))
    labels = read_labels(label_dir / f"{name}.txt") if label_dir is not None and (label_dir / f"{name}.txt").exists() else []
    hidden = read_labels(hidden_dir / f"{name}.txt") if hidden_dir is not None and (hidden_dir / f"{name}.txt").exists() else []
    calib = read_calib(calib_dir / f"{name}.txt") if calib_dir is not None and (calib_dir / f"{name}.txt").exists() else None
    if image_paths:
        num_frames = len(image_paths)
        for i, p in enumerate(image_paths):
            if p.stem != f"{i:06d}":
                raise KittiFormatError(p, None, f"expected frame file {i:06d}{p.suffix}: frames must be numbered 0..N-1 without gaps")
        for r in labels:
            if r.frame >= num_frames:
                raise KittiFormatError(label_dir / f"{name}.txt", None,
                                       f"label for frame {r.frame} but the sequence has {num_frames} images")
    elif labels:
        num_frames = max(r.frame for r in labels) + 1
    else:
        raise KittiFormatError(root, None, f"sequence {name}: neither images nor labels found")
    frame_range = half_split_range(num_frames, half) if half else (0, num_frames)
    return KittiSequence(name=name, image_dir=(image_dir / name) if image_dir else None,
                         image_paths=image_paths, labels=labels, calib=calib, hidden=hidden,
                         frame_range=frame_range)


def half_split_range(num_frames: int, half: str) -> tuple[int, int]:
    """The half-split validation protocol of CenterTrack / PermaTrack / RAM on KITTI tracking:
    every training sequence's first half [0, n//2) trains, its second half [n//2, n) validates
    (frames renumbered from 0 in the val_half label files)."""
    if half == "train_half":
        return 0, num_frames // 2
    if half == "val_half":
        return num_frames // 2, num_frames
    if half in (None, "train", "full"):
        return 0, num_frames
    raise ValueError(f"unknown half {half!r}: use 'train_half' or 'val_half'")


def write_half_split_labels(root, out_dir, half: str = "val_half", split: str = "training") -> list[str]:
    """Write label_02 files for one half (frames renumbered from 0) plus a seqmap, the ground
    truth an evaluator such as TrackEval's KITTI 2D box reader needs for the val_half protocol."""
    out_dir = Path(out_dir)
    names = list_sequences(root, split)
    seqmap = []
    for name in names:
        seq = load_sequence(root, name, split, half=half)
        start = seq.frame_range[0]
        rows = [KittiObject(**{**r.__dict__, "frame": r.frame - start}) for r in seq.rows_in_view(seq.labels)]
        write_labels(out_dir / "label_02" / f"{name}.txt", rows)
        seqmap.append(f"{name} empty 000000 {seq.num_frames:06d}\n")
    atomic_write_text(out_dir / f"evaluate_tracking.seqmap.{half}", "".join(seqmap))
    return names


def label_gap_lengths(rows) -> list[int]:
    """Lengths of the gaps inside each track's labelled frames (frames where a track that was
    labelled before and is labelled again later has no row): KITTI's full occlusions, as far
    as labels show them (objects leaving and re-entering the view count too)."""
    frames_of: dict[int, list] = {}
    for r in rows:
        if r.track_id >= 0 and r.type != "DontCare":
            frames_of.setdefault(r.track_id, []).append(r.frame)
    gaps = []
    for frames in frames_of.values():
        f = np.unique(frames)
        d = np.diff(f)
        gaps += [int(x - 1) for x in d[d > 1]]
    return gaps


def dataset_statistics(root, split: str = "training") -> dict:
    """Counts per type and occlusion level, and the label-gap (occlusion) length distribution."""
    names = list_sequences(root, split)
    types: dict[str, int] = {}
    occluded = {str(k): 0 for k in range(4)}
    gaps: list[int] = []
    frames = 0
    tracks = 0
    for name in names:
        seq = load_sequence(root, name, split)
        frames += seq.num_frames
        tracks += len({r.track_id for r in seq.labels if r.track_id >= 0})
        for r in seq.labels:
            types[r.type] = types.get(r.type, 0) + 1
            if r.type != "DontCare" and str(r.occluded) in occluded:
                occluded[str(r.occluded)] += 1
        gaps += label_gap_lengths(seq.labels)
    g = np.asarray(gaps, dtype=np.int64)
    edges = [1, 2, 4, 6, 11, 21, 51, 10 ** 9]
    labels = ["1", "2-3", "4-5", "6-10", "11-20", "21-50", ">50"]
    return {"sequences": len(names), "frames": frames, "tracks": tracks, "rows_per_type": types,
            "rows_per_occluded_level": occluded,
            "label_gaps": {"count": int(g.size),
                           "histogram_frames": {lab: int(((g >= lo) & (g < hi)).sum())
                                                for lab, lo, hi in zip(labels, edges[:-1], edges[1:])},
                           "mean_frames": float(g.mean()) if g.size else 0.0,
                           "max_frames": int(g.max()) if g.size else 0}}

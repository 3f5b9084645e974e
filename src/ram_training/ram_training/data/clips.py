"""Training clips: sampling, the torch Dataset and collate (docs/INTERFACES.md, "Training clips").

A clip is T frames of one video, taken with a frame stride of 1 or 2 (chosen at random per
clip, like the official recipe). A video shorter than the clip is padded by playing it back
in reverse (ping-pong: 0 1 2 3 2 1 0 1 ...), so every clip has exactly T frames.

One clip (unbatched; `collate_clips` stacks and pads to the batch):
  images      float32 (T,3,H,W)  RGB in [0,1]
  boxes       float32 (T,K,4)    x1,y1,x2,y2 in pixels of `images` (true box when the dataset knows it)
  present     bool    (T,K)      annotation exists in this frame
  visibility  float32 (T,K)      visible fraction (0 when fully hidden)
  classes     int64   (K,)       index into the dataset's class list, -1 padding
  track_ids   int64   (K,)       dataset track id, -1 padding
  ignore_boxes float32 (T,R,4)   regions to ignore (KITTI DontCare, ignored classes)
  ignore_valid bool   (T,R)      which ignore_boxes rows are real (False = padding)
  frame_index int64   (T,)       source frame of each clip frame (shows the reverse padding)
  video_index int64   ()         index of the source video in the dataset's video list
  target_state int64  (T,)       World 1 only: target state (world_lacater.STATE_NAMES)
K = tracks present somewhere in the clip (the K of the batch is the largest K, padded).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import kitti, world_lacater
from .annotations import TrackAnnotations


SAMPLERS = ("uniform", "occlusion")


@dataclass
class ClipConfig:
    clip_length: int = 12          # paper: 12 KITTI, 16 PD, 70 / 120 LA-CATER
    strides: tuple = (1, 2)        # frame stride drawn uniformly per clip
    image_size: tuple | None = None  # (width, height) to resize to; None keeps the source size
    require_occlusion: bool = False  # resample until the clip holds an occlusion (LA-CATER recipe)
    occlusion_tries: int = 20
    # "uniform": start drawn uniformly (with require_occlusion: any object's gap will do).
    # "occlusion": draw one hidden run of one object (every hidden frame equally likely, so long
    # runs are drawn in proportion to their length), then a stride and start such that the clip
    # holds the object's last visible frame before the run and a visible frame after it: the
    # walk loss is supervised by the run's end. Strides beyond `strides` (up to max_stride) are
    # used only for runs too long for the largest of them.
    sampler: str = "uniform"
    max_stride: int = 4
    visible_threshold: float = 0.15  # visibility above which a frame counts as visible (= LossConfig.vis_ignore)


def pingpong_indices(num_frames: int, start: int, length: int, stride: int) -> np.ndarray:
    """Frame indices start, start+stride, ... reflected at both ends of the video, so a short
    video is padded by playing it backwards (and forwards again if needed)."""
    if num_frames <= 0:
        raise ValueError("empty video")
    positions = start + stride * np.arange(length)
    if num_frames == 1:
        return np.zeros(length, dtype=np.int64)
    period = 2 * (num_frames - 1)
    p = positions % period
    return np.where(p < num_frames, p, period - p).astype(np.int64)


def clip_has_occlusion(present: np.ndarray, visibility: np.ndarray, min_visibility: float = 0.0) -> bool:
    """True when some track is visible, then not (hidden or unannotated), then visible again."""
    visible = present & (visibility > min_visibility)
    for column in visible.T:
        idx = np.flatnonzero(column)
        if idx.size >= 2 and (np.diff(idx) > 1).any():
            return True
    return False


@dataclass(frozen=True)
class HiddenRun:
    """Frames first..last (inclusive) of one track are not visible; frames first-1 and last+1 are."""
    video: int
    track: int           # column in the video's annotations
    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def hidden_runs(present: np.ndarray, visibility: np.ndarray, visible_threshold: float, video: int = 0) -> list:
    """Every run of not-visible frames of every track that has a visible frame on both sides."""
    visible = present & (visibility > visible_threshold)
    runs = []
    for k, column in enumerate(visible.T):
        idx = np.flatnonzero(column)
        for before, after in zip(idx[:-1], idx[1:]):
            if after - before > 1:
                runs.append(HiddenRun(video, k, int(before) + 1, int(after) - 1))
    return runs


def occlusion_clip(run: HiddenRun, num_frames: int, visible: np.ndarray, length: int, strides, max_stride: int,
                   rng: np.random.Generator):
    """(stride, frames) of a clip of `length` frames in which run's track is visible, then hidden
    for the whole run, then visible again; None if no stride up to max_stride fits it."""
    gap = run.last - run.first + 2                       # frames from the last visible to the next visible
    fitting = [s for s in strides if s * (length - 1) >= gap]
    if not fitting:
        fitting = [s for s in range(max(strides) + 1, max_stride + 1) if s * (length - 1) >= gap][:1]
    if not fitting:
        return None
    stride = int(rng.choice(fitting))
    span = stride * (length - 1)
    before = run.first - 1
    # the clip must sample `before` (the walker starts there) and a visible frame after the run
    low = max(0, run.last + 1 - span)
    high = min(before, num_frames - 1 - span)
    candidates = [s for s in range(low, high + 1) if (before - s) % stride == 0]
    rng.shuffle(candidates)
    for start in candidates[:8]:
        frames = start + stride * np.arange(length)
        after = frames[frames > run.last]
        if after.size and visible[after[0], run.track]:
            return stride, frames.astype(np.int64)
    return None


class VideoSource:
    """A video with track annotations; subclasses provide frames."""

    name: str
    class_names: tuple
    annotations: TrackAnnotations

    @property
    def num_frames(self) -> int:
        return self.annotations.num_frames

    def image(self, t: int) -> np.ndarray:  # RGB uint8 (H,W,3)
        raise NotImplementedError

    def extras(self, frames: np.ndarray) -> dict:
        return {}


class KittiVideo(VideoSource):
    """A KITTI tracking sequence (real or World 2), optionally one half of it."""

    def __init__(self, sequence: kitti.KittiSequence, class_names=kitti.DEFAULT_CLASSES,
                 ignore_types=kitti.DEFAULT_IGNORE_TYPES, include_hidden: bool = False):
        self.sequence = sequence
        self.name = sequence.name
        self.class_names = tuple(class_names)
        self.annotations = sequence.track_annotations(class_names, ignore_types, include_hidden)

    def image(self, t: int) -> np.ndarray:
        return self.sequence.image(t)


class World1VideoSource(VideoSource):
    """A World 1 video; frames are re-rendered from its scene script (bit-identical)."""

    class_names = world_lacater.CLASS_NAMES

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = self.path.stem
        self.video, self.ann = world_lacater.load_video(self.path)
        boxes = self.ann.boxes
        present = self.ann.full_pixels > 0
        self.annotations = TrackAnnotations(
            track_ids=self.ann.track_ids, classes=self.ann.classes,
            boxes=np.nan_to_num(boxes, nan=0.0).astype(np.float32), present=present,
            visibility=self.ann.visibility.astype(np.float32),
            ignore_boxes=[np.zeros((0, 4), np.float32)] * self.video.num_frames)

    def image(self, t: int) -> np.ndarray:
        return world_lacater.render_frame(self.video, t).image

    def extras(self, frames: np.ndarray) -> dict:
        return {"target_state": torch.from_numpy(self.ann.states[frames].astype(np.int64))}


def kitti_videos(root, split: str = "training", half: str | None = None, sequences=None,
                 class_names=kitti.DEFAULT_CLASSES, ignore_types=kitti.DEFAULT_IGNORE_TYPES,
                 include_hidden: bool = False) -> list[KittiVideo]:
    names = sequences if sequences is not None else kitti.list_sequences(root, split)
    return [KittiVideo(kitti.load_sequence(root, n, split, half=half), class_names, ignore_types, include_hidden)
            for n in names]


def world1_videos(root, split: str) -> list[World1VideoSource]:
    paths = world_lacater.list_videos(root, split)
    if not paths:
        raise FileNotFoundError(f"no World 1 videos in {Path(root) / split} (run `ram-data world1`)")
    return [World1VideoSource(p) for p in paths]


def make_clip(video: VideoSource, frames: np.ndarray, image_size=None, video_index: int = 0) -> dict:
    """Cut the clip of the given source frames out of `video` (see the module docstring)."""
    frames = np.asarray(frames, dtype=np.int64)
    ann = video.annotations
    present = ann.present[frames]
    keep = np.flatnonzero(present.any(axis=0))
    boxes = ann.boxes[frames][:, keep].astype(np.float32).copy()
    images = []
    scale_x = scale_y = 1.0
    for t in frames:
        image = video.image(int(t))
        if image_size is not None:
            import cv2
            h, w = image.shape[:2]
            width, height = image_size
            if (w, h) != (width, height):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
                scale_x, scale_y = width / w, height / h
        images.append(image)
    boxes[..., [0, 2]] *= scale_x
    boxes[..., [1, 3]] *= scale_y
    ignore = [ann.ignore_boxes[t] * np.array([scale_x, scale_y, scale_x, scale_y], np.float32) for t in frames]
    max_ignore = max((len(b) for b in ignore), default=0)
    ignore_boxes = np.zeros((len(frames), max_ignore, 4), np.float32)
    ignore_valid = np.zeros((len(frames), max_ignore), bool)
    for i, b in enumerate(ignore):
        ignore_boxes[i, :len(b)] = b
        ignore_valid[i, :len(b)] = True
    stacked = np.stack(images).astype(np.float32) / 255.0
    clip = {
        "images": torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous(),
        "boxes": torch.from_numpy(boxes),
        "present": torch.from_numpy(present[:, keep].copy()),
        "visibility": torch.from_numpy(ann.visibility[frames][:, keep].astype(np.float32)),
        "classes": torch.from_numpy(ann.classes[keep].astype(np.int64)),
        "track_ids": torch.from_numpy(ann.track_ids[keep].astype(np.int64)),
        "ignore_boxes": torch.from_numpy(ignore_boxes),
        "ignore_valid": torch.from_numpy(ignore_valid),
        "frame_index": torch.from_numpy(frames.copy()),
        "video_index": torch.tensor(video_index, dtype=torch.int64),
    }
    clip.update(video.extras(frames))
    return clip


def collate_clips(clips: list[dict]) -> dict:
    """Stack clips into a batch, padding K (tracks) and R (ignore regions). Padding: classes and
    track_ids -1, present / ignore_valid False, boxes and visibility 0. Keys missing from any
    clip are dropped."""
    B = len(clips)
    T = clips[0]["images"].shape[0]
    K = max(int(c["classes"].shape[0]) for c in clips)
    R = max(int(c["ignore_boxes"].shape[1]) for c in clips)
    batch = {
        "images": torch.stack([c["images"] for c in clips]),
        "boxes": torch.zeros(B, T, K, 4),
        "present": torch.zeros(B, T, K, dtype=torch.bool),
        "visibility": torch.zeros(B, T, K),
        "classes": torch.full((B, K), -1, dtype=torch.int64),
        "track_ids": torch.full((B, K), -1, dtype=torch.int64),
        "ignore_boxes": torch.zeros(B, T, R, 4),
        "ignore_valid": torch.zeros(B, T, R, dtype=torch.bool),
    }
    for b, c in enumerate(clips):
        k = c["classes"].shape[0]
        r = c["ignore_boxes"].shape[1]
        batch["boxes"][b, :, :k] = c["boxes"]
        batch["present"][b, :, :k] = c["present"]
        batch["visibility"][b, :, :k] = c["visibility"]
        batch["classes"][b, :k] = c["classes"]
        batch["track_ids"][b, :k] = c["track_ids"]
        batch["ignore_boxes"][b, :, :r] = c["ignore_boxes"]
        batch["ignore_valid"][b, :, :r] = c["ignore_valid"]
    for key in set(clips[0]) - set(batch):
        if all(key in c for c in clips):
            batch[key] = torch.stack([c[key] for c in clips])
    return batch


class ClipDataset(torch.utils.data.Dataset):
    """Clips over a list of videos.

    mode "random": item i of epoch e is drawn from a generator seeded by (seed, e, i), so the
    sampling is reproducible and independent of DataLoader workers; videos are chosen in
    proportion to their length, the stride from config.strides, the start uniformly.
    mode "sequential": consecutive non-overlapping stride-1 windows covering every video (the
    last window of a video is shifted back to end at its last frame; videos shorter than the
    clip are reverse padded), for validation."""

    def __init__(self, videos: list[VideoSource], config: ClipConfig = ClipConfig(), mode: str = "random",
                 samples_per_epoch: int | None = None, seed: int = 0):
        if not videos:
            raise ValueError("ClipDataset needs at least one video")
        if mode not in ("random", "sequential"):
            raise ValueError(f"mode must be 'random' or 'sequential', got {mode!r}")
        self.videos, self.config, self.mode, self.seed = list(videos), config, mode, seed
        self.epoch = 0
        lengths = np.array([v.num_frames for v in self.videos], dtype=np.float64)
        self.video_weights = lengths / lengths.sum()
        T = config.clip_length
        self.windows = []
        if mode == "sequential":
            for vi, v in enumerate(self.videos):
                starts = list(range(0, max(v.num_frames - T, 0) + 1, T))
                if v.num_frames > T and starts[-1] + T < v.num_frames:
                    starts.append(v.num_frames - T)
                self.windows += [(vi, s) for s in starts]
        default = int(np.ceil(lengths / T).sum())
        self.samples_per_epoch = samples_per_epoch or default
        if config.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {config.sampler!r}")
        self.runs, self.run_weights, self.visible = [], None, []
        if config.sampler == "occlusion" and mode == "random":
            limit = config.max_stride * (T - 1) - 1        # longest run a clip can hold
            for vi, v in enumerate(self.videos):
                ann = v.annotations
                self.visible.append(ann.present & (ann.visibility > config.visible_threshold))
                self.runs += [r for r in hidden_runs(ann.present, ann.visibility, config.visible_threshold, vi)
                              if r.length <= limit]
            if not self.runs:
                raise ValueError(f"sampler 'occlusion': no hidden run of at most {limit} frames with a visible "
                                 f"frame on both sides in {len(self.videos)} videos")
            lengths_of_runs = np.array([r.length for r in self.runs], dtype=np.float64)
            self.run_weights = lengths_of_runs / lengths_of_runs.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.windows) if self.mode == "sequential" else self.samples_per_epoch

    def sample_frames(self, index: int) -> tuple[int, np.ndarray]:
        """(video index, source frames) of item `index`."""
        T = self.config.clip_length
        if self.mode == "sequential":
            vi, start = self.windows[index]
            return vi, pingpong_indices(self.videos[vi].num_frames, start, T, 1)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.runs:
            for _ in range(max(self.config.occlusion_tries, 1)):
                run = self.runs[int(rng.choice(len(self.runs), p=self.run_weights))]
                picked = occlusion_clip(run, self.videos[run.video].num_frames, self.visible[run.video], T,
                                        self.config.strides, self.config.max_stride, rng)
                if picked is not None:
                    return run.video, picked[1]
        for _ in range(max(self.config.occlusion_tries, 1)):
            vi = int(rng.choice(len(self.videos), p=self.video_weights))
            n = self.videos[vi].num_frames
            stride = int(rng.choice(self.config.strides))
            span = stride * (T - 1) + 1
            start = int(rng.integers(0, max(n - span, 0) + 1))
            frames = pingpong_indices(n, start, T, stride)
            if not self.config.require_occlusion:
                break
            ann = self.videos[vi].annotations
            if clip_has_occlusion(ann.present[frames], ann.visibility[frames]):
                break
        return vi, frames

    def __getitem__(self, index: int) -> dict:
        if index < 0 or index >= len(self):
            raise IndexError(index)
        vi, frames = self.sample_frames(index)
        return make_clip(self.videos[vi], frames, self.config.image_size, video_index=vi)

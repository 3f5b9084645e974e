"""Tracking core: paper Algorithm 1 (appendix B) on top of CenterTrack's greedy association.

Per frame the tracker receives the detections of the current frame and the transition A from
the previous frame's node embeddings to the current ones (ram_tracker.walk), and:

1. matches detections (score > det_threshold) to tracks greedily in score order, comparing the
   detection's centre displaced by its tracking offset (its predicted previous centre) with each
   track's centre; a pair is invalid if the squared distance exceeds either box's area or the
   classes differ (CenterTrack);
2. for every unmatched track younger than max_age, handles the occlusion with the chosen
   `occlusion_model`:
     walker  (RAM): first miss: walker = row of A at the last centre; later: walker = walker A.
             confidence = max(walker) (< walker_min_confidence: lost); location = argmax after
             bilinear upsampling to the stride-4 feature grid; within border_margin of the image
             border: lost (left the view); re-match to the nearest unmatched same-class detection
             within rematch_radius; else keep the last box size centred at the argmax;
     none    (CenterTrack): the track ends at its first miss;
     static  (last seen): the box stays where it was last seen;
     constant_velocity: the box keeps moving with its last velocity;
3. starts new tracks from unmatched detections with score > new_track_threshold.

Coordinates are model-input pixels (the pipeline maps to the source image). Bounded: tracks end
after max_age missed frames, walkers live only on occluded tracks, so memory per frame is
O(tracks * nodes). No ROS imports.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ram_tracker import walk
from ram_tracker.walk import NodeGrid, Transition

OCCLUSION_MODELS = ('walker', 'none', 'static', 'constant_velocity')


# The fields of TrackerConfig that give Algorithm 1's walk as published (the paper's RAM row).
PAPER_WALK = {'occlusion_model': 'walker', 'walker_step_sigma': 0.0, 'walker_hold_frames': 0,
              'walker_keeps_offset': False, 'walker_step_velocity': 0.0}


@dataclass
class TrackerConfig:
    """Thresholds of Algorithm 1; defaults are the paper's KITTI/PD values, except three settings
    beyond the paper chosen on World 2 val (walker_step_sigma, walker_keeps_offset,
    walker_step_velocity; PAPER_WALK undoes them)."""
    det_threshold: float = 0.4          # detections used for association
    new_track_threshold: float = 0.5    # detections that may start a track
    max_age: int = 16                   # missed frames before an occluded track ends (LA-CATER: 300)
    walker_min_confidence: float = 0.05  # LA-CATER: 0.005
    border_margin: float = 0.05         # fraction of the image size
    rematch_radius: float = 25.0 / 1280.0  # fraction of the width (official: 25 px, at 1280 px)
    occlusion_model: str = 'walker'
    # Not in the paper: place the walker's box at (last seen centre + how far the walker's peak
    # moved from its start node) instead of at the peak node itself. Same walk, same argmax; it
    # only keeps the sub-node part of the last observation (nodes are 4-8 px apart), so a walker
    # that stays put gives exactly the last seen box. False: Algorithm 1 as published.
    walker_keeps_offset: bool = True
    # Paper Appendix C (Algorithms 2-3), the LA-CATER box refinement (not part of Algorithm 1;
    # the paper's Table 1 RAM numbers include it), as the authors' post-processing script does it
    # (src/lib/utils/post_process_lacter.py). Only the reported box of a hidden walker track
    # changes, never its walker or centre. On the first hidden frame the track was static if its
    # last (up to 3) reported centres average within refine_static_threshold of the last one; a
    # track that was moving keeps the walker's box. A static one keeps its last visible box while
    # the walker's peak stays within refine_move_threshold of where it was on the first hidden
    # frame (so the first step itself is not motion); in a frame where it is farther, the object
    # is taken to be carried by its container: the box (last size) is centred under the centre
    # of the visible track nearest the peak, a sixth of that track's height below it.
    refine_hidden_boxes: bool = False
    refine_static_threshold: float = 3.0 / 320.0   # fraction of the image width (3 px on LA-CATER)
    refine_move_threshold: float = 1.0 / 320.0     # fraction of the image width (1 px on LA-CATER)
    # Score of a hidden track, per frame hidden: last detection score * hidden_score_decay ** age.
    # 1.0 is the authors' tracker (a hidden track keeps its last detection score, so under
    # "highest score wins" a stale hypothesis can outrank a fresh detection); below 1, fresh
    # detections win sooner.
    hidden_score_decay: float = 1.0
    # Not in the paper: a Gaussian prior on a hidden object's motion per frame, as a fraction of
    # the image width (walk.with_step_prior: each walk step's transition is multiplied by
    # exp(-d^2 / (2 sigma^2)), d the step's length). Where the embeddings of a hidden object's
    # surroundings look alike, the paper's walker spreads and its peak jitters by a node or more;
    # with the prior it stays, and a clearly better match farther away still draws it. Only the
    # tracker's walk changes (training never sees it). 0: Algorithm 1 as published. The default
    # and walker_keeps_offset were chosen on World 2 val (15 sequences; models/world2_ram.md).
    walker_step_sigma: float = 0.005
    # Not in the paper: for a hidden track's first walker_hold_frames frames its walker steps
    # with walker_hold_sigma instead of walker_step_sigma. A hidden object's chance of having
    # moved grows with the time it has been hidden: on World 1 val an occluded or contained
    # target stays where it was for its first ~30 hidden frames in 99% of frames, while carried
    # ones move later (models/world1_ram.md section 17). 0 frames: one sigma for every age.
    walker_hold_frames: int = 0
    walker_hold_sigma: float = 0.0
    # Not in the paper: the hold ends early when what covers the hidden object carries it off.
    # A visible track whose box holds a held track's centre and that has stayed within
    # walker_release_distance (fraction of the image width) of one spot for
    # walker_release_still_frames frames is taken to be standing over it; if it then moves
    # farther than walker_release_distance from that spot while still covering the track, the
    # track's hold ends (walker_step_sigma from then on). An occluder that passes over a hidden
    # object never stands still on it, so the hold keeps the walker where the object stays; a
    # container stands still over its object before it carries it (World 1 val: a median of
    # ~25-40 frames; models/world1_ram.md sections 19 and 22). Only when the walker steps is
    # decided here, never where it goes. 0 frames: off (the hold lasts walker_hold_frames).
    walker_release_still_frames: int = 0
    walker_release_distance: float = 0.025
    # Not in the paper: the step prior is centred on this fraction of the track's velocity at its
    # last detection (CenterTrack's tracking offset) instead of on staying put: a hidden car keeps
    # moving, so where the embeddings do not tell nodes apart its walker goes on with it rather
    # than parking where the next car passes. 0: centred on zero. 0.25 chosen on World 2 val (15
    # sequences, models/world2_ram.md); World 1 keeps 0 (evaluation.world1.LACATER_TRACKER).
    walker_step_velocity: float = 0.25

    def __post_init__(self):
        if self.occlusion_model not in OCCLUSION_MODELS:
            raise ValueError(f"occlusion_model '{self.occlusion_model}' is not one of "
                             f"{', '.join(OCCLUSION_MODELS)}")
        if not 0.0 < self.det_threshold <= self.new_track_threshold <= 1.0:
            raise ValueError('need 0 < det_threshold <= new_track_threshold <= 1, got '
                             f'{self.det_threshold} and {self.new_track_threshold}')
        if self.max_age < 0:
            raise ValueError(f'max_age must be >= 0, got {self.max_age}')
        if not 0.0 < self.hidden_score_decay <= 1.0:
            raise ValueError(f'hidden_score_decay must be in (0, 1], got {self.hidden_score_decay}')
        if self.walker_step_sigma < 0.0:
            raise ValueError(f'walker_step_sigma must be >= 0, got {self.walker_step_sigma}')
        if self.walker_hold_frames < 0:
            raise ValueError(f'walker_hold_frames must be >= 0, got {self.walker_hold_frames}')
        if self.walker_hold_sigma < 0.0:
            raise ValueError(f'walker_hold_sigma must be >= 0, got {self.walker_hold_sigma}')
        if self.walker_release_still_frames < 0:
            raise ValueError('walker_release_still_frames must be >= 0, got '
                             f'{self.walker_release_still_frames}')
        if not 0.0 < self.walker_release_distance <= 1.0:
            raise ValueError('walker_release_distance must be in (0, 1], got '
                             f'{self.walker_release_distance}')
        if not 0.0 <= self.walker_step_velocity <= 2.0:
            raise ValueError(f'walker_step_velocity must be in [0, 2], got {self.walker_step_velocity}')


@dataclass
class Detections:
    """Detections of one frame in model-input pixels (numpy arrays, D rows)."""
    centers: np.ndarray      # (D, 2) x, y
    sizes: np.ndarray        # (D, 2) w, h
    scores: np.ndarray       # (D,)
    classes: np.ndarray      # (D,) int
    tracking: np.ndarray     # (D, 2) displacement to the centre in the previous frame
    visibility: np.ndarray   # (D,)

    @classmethod
    def empty(cls) -> 'Detections':
        z2 = np.zeros((0, 2), np.float32)
        z1 = np.zeros((0,), np.float32)
        return cls(z2, z2.copy(), z1, np.zeros((0,), np.int64), z2.copy(), z1.copy())

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep) -> 'Detections':
        return Detections(self.centers[keep], self.sizes[keep], self.scores[keep],
                          self.classes[keep], self.tracking[keep], self.visibility[keep])


@dataclass
class Track:
    track_id: int
    class_id: int
    score: float
    center: np.ndarray        # (2,) x, y
    size: np.ndarray          # (2,) w, h
    velocity: np.ndarray      # (2,) pixels per frame
    visibility: float = 1.0
    age: int = 1              # frames since the track started
    frames_since_seen: int = 0
    state: str = 'visible'    # visible | occluded | lost
    box_source: str = 'detection'  # detection | walker
    walker_confidence: float = 1.0
    walker: Optional[torch.Tensor] = field(default=None, repr=False)  # (N,) on occluded tracks
    walker_offset: np.ndarray = field(default_factory=lambda: np.zeros(2), repr=False)  # see walker_keeps_offset
    hidden_velocity: np.ndarray = field(default_factory=lambda: np.zeros(2), repr=False)  # at the first miss
    # walker_release_still_frames: the visible tracks covering this hidden one (track id ->
    # (the spot it stands on, frames it has stayed there)), and whether one carried it off
    coverers: dict = field(default_factory=dict, repr=False)
    hold_released: bool = False
    detection_score: float = 0.0   # score of the last detection (score decays from it while hidden)
    # Appendix C state (refine_hidden_boxes): the last reported centres (newest last), the last
    # visible centre, whether the track was static when it disappeared, the walker's peak on the
    # first hidden frame, and the refined box centre (None: `center`)
    recent_centers: collections.deque = field(default_factory=lambda: collections.deque(maxlen=3),
                                              repr=False)
    last_seen_center: np.ndarray = field(default_factory=lambda: np.zeros(2), repr=False)
    was_static: bool = True
    first_hidden_center: Optional[np.ndarray] = field(default=None, repr=False)
    box_center: Optional[np.ndarray] = None

    @property
    def box_cxcywh(self) -> np.ndarray:
        return np.concatenate([self.center if self.box_center is None else self.box_center, self.size])

    @property
    def box_xyxy(self) -> np.ndarray:
        cx, cy, w, h = self.box_cxcywh
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


class Tracker:
    """Stateful multi-object tracker; one instance per video stream."""

    def __init__(self, config: TrackerConfig, image_size: tuple[int, int]):
        self.config = config
        self.image_width, self.image_height = image_size
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks = []
        self._next_id = 1

    def update(self, detections: Detections,
               transition: Optional[Transition | Callable[[], Transition]] = None,
               grid: Optional[NodeGrid] = None) -> list[Track]:
        """Advance one frame. Returns the live tracks plus those that ended in this frame
        (state 'lost', reported once). `transition` (batch 1) maps the previous frame's nodes to
        this frame's, or is a function that computes it (called only if a track walks); None on
        the first frame (occluded tracks then keep their box)."""
        cfg = self.config
        dets = detections.select(detections.scores > cfg.det_threshold)
        dets = dets.select(np.argsort(-dets.scores, kind='stable'))
        det_used = np.zeros(len(dets), bool)
        for track in self.tracks:
            track.age += 1
        track_matched = np.zeros(len(self.tracks), bool)

        # 1. CenterTrack greedy association.
        for det_index, track_index in self._greedy_match(dets):
            det_used[det_index] = True
            track_matched[track_index] = True
            self._observe(self.tracks[track_index], dets, det_index)

        # 2. Unmatched tracks: occlusion handling.
        ended: list[Track] = []
        survivors = [t for t, matched in zip(self.tracks, track_matched) if matched]
        occluded: list[Track] = []
        for track, matched in zip(self.tracks, track_matched):
            if matched:
                continue
            track.frames_since_seen += 1
            track.state = 'occluded'
            track.score = track.detection_score * cfg.hidden_score_decay ** track.frames_since_seen
            if cfg.occlusion_model == 'none' or track.frames_since_seen >= cfg.max_age:
                ended.append(self._end(track))
            else:
                occluded.append(track)
        if cfg.occlusion_model == 'walker' and occluded and transition is not None:
            if cfg.walker_release_still_frames > 0:
                self._watch_coverers(occluded, survivors)
            self._advance_walkers(occluded, transition() if callable(transition) else transition,
                                  grid)
        for track in occluded:
            if self._follow_occluded(track, dets, det_used):
                survivors.append(track)
            else:
                ended.append(self._end(track))

        # 3. New tracks from confident unmatched detections.
        for det_index in np.flatnonzero(~det_used):
            if dets.scores[det_index] > cfg.new_track_threshold:
                track = Track(track_id=self._next_id, class_id=int(dets.classes[det_index]),
                              score=0.0, center=np.zeros(2), size=np.zeros(2),
                              velocity=np.zeros(2))
                self._next_id += 1
                self._observe(track, dets, det_index)
                survivors.append(track)

        self.tracks = survivors
        if cfg.refine_hidden_boxes:      # per-frame bookkeeping only for the option that reads it
            self._refine_hidden_boxes()
            for track in survivors:
                track.recent_centers.append(track.box_cxcywh[:2])
        return survivors + ended

    # -- steps --------------------------------------------------------------------------
    def _greedy_match(self, dets: Detections) -> list[tuple[int, int]]:
        if len(dets) == 0 or not self.tracks:
            return []
        track_centers = np.stack([t.center for t in self.tracks])
        track_areas = np.array([t.size[0] * t.size[1] for t in self.tracks])
        track_classes = np.array([t.class_id for t in self.tracks])
        predicted_previous = dets.centers + dets.tracking
        dist = ((predicted_previous[:, None, :] - track_centers[None, :, :]) ** 2).sum(-1)
        det_areas = dets.sizes[:, 0] * dets.sizes[:, 1]
        invalid = ((dist > track_areas[None, :]) | (dist > det_areas[:, None])
                   | (dets.classes[:, None] != track_classes[None, :]))
        dist = np.where(invalid, np.inf, dist)
        matches = []
        for det_index in range(len(dets)):  # dets are sorted by score
            track_index = int(np.argmin(dist[det_index]))
            if np.isfinite(dist[det_index, track_index]):
                dist[:, track_index] = np.inf
                matches.append((det_index, track_index))
        return matches

    def _observe(self, track: Track, dets: Detections, i: int) -> None:
        """The track is seen in detection i: take its box, clear the walker."""
        track.center = dets.centers[i].astype(np.float64)
        track.size = dets.sizes[i].astype(np.float64)
        track.velocity = -dets.tracking[i].astype(np.float64)
        track.score = track.detection_score = float(dets.scores[i])
        track.last_seen_center = track.center.copy()
        track.first_hidden_center = None
        track.box_center = None
        track.visibility = float(dets.visibility[i])
        track.frames_since_seen = 0
        track.state = 'visible'
        track.box_source = 'detection'
        track.walker_confidence = 1.0
        track.walker = None
        track.coverers = {}
        track.hold_released = False

    def _advance_walkers(self, tracks: list[Track], transition: Transition,
                         grid: NodeGrid) -> None:
        """One walk step for all occluded tracks at once (one sparse propagation for M walkers).
        A track's first miss starts its walker one-hot at its last centre, so after the step it
        is that node's transition row (Algorithm 1, init_walk then walk * A)."""
        starting = torch.tensor([track.walker is None for track in tracks])
        start_nodes = torch.stack([grid.pixel_to_node(torch.as_tensor(track.center, dtype=torch.float32))
                                   for track in tracks])
        walkers = torch.stack([torch.zeros(grid.num_nodes) if track.walker is None else track.walker
                               for track in tracks])
        for track, node in zip(tracks, start_nodes):
            if track.walker is None:
                track.hidden_velocity = track.velocity.copy()     # the last detection's motion
                if self.config.walker_keeps_offset:
                    start = walk.one_hot_walker(node[None], grid.num_nodes)
                    track.walker_offset = track.center - walker_peaks(start, grid)[1][0]
        # The step prior of each track: its sigma (by hidden age, walker_hold_frames) and its
        # expected step (walker_step_velocity). Per sigma, the tracks that expect the same step
        # share one penalised transition; tracks that expect different steps get one each, built
        # and walked in one batch (batch index = track).
        priors = [self._step_prior(track, grid) for track in tracks]
        stepped = torch.empty_like(walkers)
        for sigma in set(sigma for sigma, _ in priors):
            rows = torch.tensor([s == sigma for s, _ in priors])
            means = [mean for s, mean in priors if s == sigma]
            scale = sigma * self.image_width / grid.stride
            if len(set(means)) == 1:
                prior = walk.with_step_prior(transition, scale, (grid.height, grid.width), means[0])
                stepped[rows] = walk.step_walkers(walkers[rows][None], starting[rows][None],
                                                  start_nodes[rows][None], prior)[0]
            else:
                prior = walk.with_step_prior(transition, scale, (grid.height, grid.width), means)
                stepped[rows] = walk.step_walkers(walkers[rows][:, None], starting[rows][:, None],
                                                  start_nodes[rows][:, None], prior)[:, 0]
        confidences, locations = walker_peaks(stepped, grid)
        for track, walker, confidence, location in zip(tracks, stepped, confidences, locations):
            if self.config.walker_keeps_offset:
                location = location + track.walker_offset
            track.walker = walker
            track.walker_confidence = float(confidence)
            track.velocity = location - track.center
            track.center = location
            track.box_source = 'walker'

    def _watch_coverers(self, hidden: list[Track], visible: list[Track]) -> None:
        """walker_release_still_frames: end the hold of a hidden track whose coverer, after
        standing still over it, moves off with it (see TrackerConfig)."""
        cfg = self.config
        reach = cfg.walker_release_distance * self.image_width
        for track in hidden:
            if not self._held(track):
                continue
            covering = {}
            for other in visible:
                if np.any(np.abs(track.center - other.center) > other.size / 2):
                    continue
                spot, frames = track.coverers.get(other.track_id, (other.center.copy(), 0))
                if np.linalg.norm(other.center - spot) <= reach:
                    frames += 1
                elif frames >= cfg.walker_release_still_frames:
                    track.hold_released = True
                    break
                else:                                  # still passing: measure from here
                    spot, frames = other.center.copy(), 1
                covering[other.track_id] = (spot, frames)
            track.coverers = covering

    def _held(self, track: Track) -> bool:
        """Whether the track's walker steps under the hold (walker_hold_frames, ended early by
        walker_release_still_frames)."""
        return track.frames_since_seen <= self.config.walker_hold_frames and not track.hold_released

    def _step_prior(self, track: Track, grid: NodeGrid) -> tuple[float, tuple[float, float]]:
        """The step prior for this track's walk step now: sigma (fraction of the width) and the
        expected step (dy, dx) in nodes."""
        cfg = self.config
        sigma = cfg.walker_hold_sigma if self._held(track) else cfg.walker_step_sigma
        vx, vy = cfg.walker_step_velocity * track.hidden_velocity / grid.stride
        return sigma, (float(vy), float(vx))

    def _refine_hidden_boxes(self) -> None:
        """Appendix C (see TrackerConfig.refine_hidden_boxes) for every hidden walker track."""
        cfg = self.config
        visible = [t for t in self.tracks if t.state == 'visible']
        for track in self.tracks:
            if track.state != 'occluded' or track.box_source != 'walker':
                continue
            if track.first_hidden_center is None:      # the first hidden frame with a walker
                track.first_hidden_center = track.center.copy()
                history = track.recent_centers
                track.was_static = len(history) < 2 or bool(
                    np.abs(np.mean(history, axis=0) - history[-1]).max()
                    < cfg.refine_static_threshold * self.image_width)
            if not track.was_static:
                track.box_center = None                # it was moving: the walker's box
                continue
            moving = bool(np.abs(track.center - track.first_hidden_center).max()
                          > cfg.refine_move_threshold * self.image_width)
            if not moving:
                track.box_center = track.last_seen_center.copy()
                continue
            others = [t for t in visible if t.track_id != track.track_id]
            if not others:
                track.box_center = None
                continue
            container = min(others, key=lambda t: float(np.linalg.norm(t.center - track.center)))
            track.box_center = container.center + np.array([0.0, container.size[1] / 6.0])

    def _follow_occluded(self, track: Track, dets: Detections, det_used: np.ndarray) -> bool:
        """Decide the fate of an unmatched track after its motion step; False if it ends."""
        cfg = self.config
        if cfg.occlusion_model == 'constant_velocity':
            track.center = track.center + track.velocity
        if cfg.occlusion_model != 'walker':
            return self._inside(track.center)
        if track.walker is None:
            return True  # no motion evidence yet (first frame after a reset): keep the box
        if track.walker_confidence < cfg.walker_min_confidence or not self._inside(track.center):
            return False
        rematch = self._nearest_unused(track.center, track.class_id, dets, det_used)
        if rematch is not None:
            det_used[rematch] = True
            self._observe(track, dets, rematch)
        return True

    def _nearest_unused(self, location, class_id, dets, det_used) -> Optional[int]:
        candidates = np.flatnonzero(~det_used & (dets.classes == class_id))
        if candidates.size == 0:
            return None
        dist = np.linalg.norm(dets.centers[candidates] - location[None], axis=1)
        best = int(np.argmin(dist))
        if dist[best] <= self.config.rematch_radius * self.image_width:
            return int(candidates[best])
        return None

    def _inside(self, xy: np.ndarray) -> bool:
        mx = self.config.border_margin * self.image_width
        my = self.config.border_margin * self.image_height
        return bool(mx <= xy[0] <= self.image_width - mx and my <= xy[1] <= self.image_height - my)

    @staticmethod
    def _end(track: Track) -> Track:
        track.state = 'lost'
        track.walker = None
        return track


def walker_peaks(walkers: torch.Tensor, grid: NodeGrid) -> tuple[np.ndarray, np.ndarray]:
    """walk.walker_peaks as float64 numpy: confidences (M,), pixel locations (M, 2)."""
    confidences, xy = walk.walker_peaks(walkers, grid)
    return confidences.numpy().astype(np.float64), xy.numpy().astype(np.float64)

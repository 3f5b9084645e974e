"""World 1: a LA-CATER-like object permanence benchmark.

Shapes (cube, sphere, cylinder, cone) move on a table; one golden sphere is the target. Cones
land on the target (containment), sometimes slide away with it underneath (carried) and later
lift off. Other objects slide between the camera and the target (occlusion). The camera is
static (LA-CATER) or orbits smoothly (LA-CATER-Moving).

A video is stored as its scene script (object positions and camera per frame) plus the
annotations measured while rendering it; frames are re-rendered bit-identically on demand
(`render_frame`), which is faster than decoding stored images and keeps datasets small.

Target state per frame, decided from the rendering:
- visible:   the target's visible fraction (id-buffer pixels / own mask pixels) > threshold;
- contained: not visible and a cone is resting over it (the scene's containment relation);
- carried:   contained and the containing cone moved across the table since the previous frame;
- occluded:  not visible otherwise (hidden behind other objects, or under a lifting cone).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .atomic import atomic_write_bytes
from .jobs import run_jobs
from .render import Camera, Primitive, Sprite, box_primitive, composite, draw_ground, vertical_gradient

CLASS_NAMES = ("target", "cube", "sphere", "cylinder", "cone")
STATE_NAMES = ("visible", "occluded", "contained", "carried")
VISIBLE, OCCLUDED, CONTAINED, CARRIED = range(4)
SPLITS = ("train", "val", "test")
_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}

TARGET_RADIUS = 0.3
TABLE_HALF = 3.0  # objects stay within |x|, |z| <= TABLE_HALF
_GOLD = (0.95, 0.72, 0.18)
_PALETTE = [(0.78, 0.12, 0.12), (0.15, 0.32, 0.85), (0.12, 0.62, 0.25), (0.55, 0.2, 0.7),
            (0.1, 0.65, 0.7), (0.5, 0.5, 0.52), (0.45, 0.28, 0.12), (0.85, 0.85, 0.82),
            (0.9, 0.45, 0.1), (0.2, 0.2, 0.22)]


@dataclass
class World1Config:
    """Generation parameters of World 1 (plain data, YAML/JSON-able)."""

    width: int = 320
    height: int = 240
    num_frames: int = 300          # 10 s at 30 fps, like LA-CATER's 10-second videos
    fps: int = 30
    min_distractors: int = 5       # objects besides the target
    max_distractors: int = 8
    min_cones: int = 1
    max_containments: int = 2      # containment episodes per video
    carry_probability: float = 0.65
    occlusion_pass_probability: float = 0.8
    moving_camera: bool = False    # LA-CATER-Moving
    visible_min_fraction: float = 0.0  # target is visible iff its visible fraction is above this
    focal_factor: float = 1.3      # focal length in units of image width


@dataclass
class World1Video:
    """Scene script of one video: enough to render every frame."""

    config: World1Config
    seed: list[int]
    shapes: list[str]              # index 0 is the target
    colors: np.ndarray             # (N,3) RGB 0..1
    sizes: np.ndarray              # (N,) half width in metres (cone: base radius)
    heights: np.ndarray            # (N,) metres
    specular: np.ndarray           # (N,)
    yaws: np.ndarray               # (N,) rotation of cubes about the vertical axis
    positions: np.ndarray          # (T,N,3) x, lift (height above the table), z
    camera: np.ndarray             # (T,5) camera x, y, z, yaw, pitch
    contained_by: np.ndarray       # (T,) index of the cone resting over the target, -1 none

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    def camera_at(self, t: int) -> Camera:
        c = self.camera[t]
        cfg = self.config
        return Camera(position=c[:3].copy(), yaw=float(c[3]), pitch=float(c[4]),
                      focal=cfg.focal_factor * cfg.width, cx=cfg.width / 2.0, cy=cfg.height / 2.0,
                      width=cfg.width, height=cfg.height)


@dataclass
class World1Annotations:
    """Per-frame ground truth measured from the rendering (N objects, object 0 = target)."""

    boxes: np.ndarray              # (T,N,4) float32 true boxes x1,y1,x2,y2 (NaN outside image)
    visibility: np.ndarray         # (T,N) float32 visible fraction
    visible_pixels: np.ndarray     # (T,N) int32
    full_pixels: np.ndarray        # (T,N) int32 pixels of the unoccluded mask in the image
    states: np.ndarray             # (T,) uint8 target state index into STATE_NAMES
    classes: np.ndarray            # (N,) int64 index into CLASS_NAMES
    track_ids: np.ndarray          # (N,) int64


# ---------------------------------------------------------------------------------------
# Simulation


def video_seed(base_seed: int, split: str, index: int) -> list[int]:
    """Seed of one video: fixed by (base seed, split, index), independent of worker count."""
    return [int(base_seed), _SPLIT_CODES[split], int(index)]


class _Trajectory:
    """Fills one object's (T,3) positions in chronological order of its actions."""

    def __init__(self, num_frames: int, start: np.ndarray):
        self.pos = np.zeros((num_frames, 3))
        self.pos[0] = start
        self.cursor = 1  # next frame not yet written

    def current(self) -> np.ndarray:
        return self.pos[self.cursor - 1].copy()

    def hold_until(self, t: int) -> None:
        t = min(t, len(self.pos))
        if t > self.cursor:
            self.pos[self.cursor:t] = self.pos[self.cursor - 1]
            self.cursor = t

    def move(self, t0: int, t1: int, dest, lift: float = 0.0) -> None:
        """Move from the current position (held until t0) to dest, arriving at frame t1.
        With lift > 0 it is a pick-and-place: up in the first third, across, down in the last."""
        self.hold_until(t0)
        t0 = self.cursor - 1
        start = self.current()
        dest = np.array([dest[0], 0.0, dest[2]], dtype=np.float64)
        for t in range(t0 + 1, min(t1, len(self.pos) - 1) + 1):
            s = (t - t0) / max(t1 - t0, 1)
            if lift > 0:
                horizontal = np.clip((s - 1 / 3) * 3, 0.0, 1.0)
                height = lift * np.clip(min(s * 3, (1 - s) * 3), 0.0, 1.0)
            else:
                horizontal, height = s, 0.0
            ease = 0.5 - 0.5 * np.cos(np.pi * horizontal)  # smooth start and stop
            p = start + (dest - start) * ease
            p[1] = height
            self.pos[t] = p
        if t1 <= len(self.pos) - 1:
            self.pos[t1] = dest  # exact arrival, so objects that meet share identical positions
        self.cursor = max(self.cursor, min(t1, len(self.pos) - 1) + 1)

    def copy_from(self, other: "_Trajectory", t0: int, t1: int) -> None:
        """Follow another object's positions over [t0, t1] (the target under a carried cone)."""
        self.hold_until(t0)
        t1 = min(t1, len(self.pos) - 1)
        self.pos[t0:t1 + 1] = other.pos[t0:t1 + 1]
        self.pos[t0:t1 + 1, 1] = 0.0
        self.cursor = max(self.cursor, t1 + 1)


def _random_spot(rng: np.random.Generator, margin: float = 0.4) -> np.ndarray:
    x, z = rng.uniform(-TABLE_HALF + margin, TABLE_HALF - margin, size=2)
    return np.array([x, 0.0, z])


def _camera_track(cfg: World1Config, rng: np.random.Generator) -> np.ndarray:
    """(T,5) camera poses looking at the table centre; orbiting smoothly when moving."""
    t = np.arange(cfg.num_frames) / cfg.fps
    distance = np.full_like(t, 10.0)
    height = np.full_like(t, 6.5)
    azimuth = np.zeros_like(t)
    if cfg.moving_camera:
        def wave(amplitude):
            freq = rng.uniform(0.05, 0.2, size=2)
            phase = rng.uniform(0, 2 * np.pi, size=2)
            return amplitude * (np.sin(2 * np.pi * freq[0] * t + phase[0]) * 0.6
                                + np.sin(2 * np.pi * freq[1] * t + phase[1]) * 0.4)
        azimuth = rng.uniform(-0.4, 0.4) + wave(0.6)
        distance = distance + wave(0.8)
        height = height + wave(0.8)
    position = np.stack([-distance * np.sin(azimuth), height, -distance * np.cos(azimuth)], axis=1)
    pitch = np.arctan2(height, distance)
    return np.concatenate([position, azimuth[:, None], pitch[:, None]], axis=1)


def _script_pass(traj: _Trajectory, rng: np.random.Generator, camera: np.ndarray,
                 target_pos: np.ndarray, p0: int, p1: int) -> None:
    """Occluder pass over [p0, p1]: approach a point beside the target on the camera side,
    slide in front of it, maybe pause there (a long static occlusion), slide out the other way."""
    cam = camera[(p0 + p1) // 2, [0, 2]]
    goal = target_pos[[0, 2]]
    toward = (cam - goal) / max(float(np.linalg.norm(cam - goal)), 1e-9)
    across = np.array([-toward[1], toward[0]])
    middle = goal + toward * rng.uniform(0.9, 1.6)
    side = 1.0 if rng.random() < 0.5 else -1.0

    def spot(p):
        q = np.clip(p, -TABLE_HALF, TABLE_HALF)
        return np.array([q[0], 0.0, q[1]])

    span = p1 - p0
    approach = span // 4
    pause = int(rng.integers(0, max(span // 3, 1)))
    cross = max((span - approach - pause) // 2, 5)
    traj.move(p0, p0 + approach, spot(middle + across * 1.6 * side))
    traj.move(p0 + approach, p0 + approach + cross, spot(middle))
    traj.move(p0 + approach + cross + pause, p1, spot(middle - across * 1.6 * side))


class _Episode(NamedTuple):
    """A cone lands on the target, maybe carries it across the table, and lifts off again."""

    cone: int
    land0: int                 # landing over [land0, land1]
    land1: int
    carries: list              # [(t0, t1, destination)]
    release0: int              # lifting off over [release0, release1]
    release1: int


class _Pass(NamedTuple):
    """An occluder slides between camera and target over [start, end]; the target holds still."""

    occluder: int
    start: int
    end: int


def _object_set(cfg: World1Config, rng: np.random.Generator) -> dict:
    """Shapes (index 0 the golden target sphere), colours, sizes, heights, specularity, yaws."""
    n_distractors = int(rng.integers(cfg.min_distractors, cfg.max_distractors + 1))
    shapes = ["sphere"]
    others = ["cone"] * cfg.min_cones + list(
        rng.choice(["cube", "sphere", "cylinder", "cone"], size=n_distractors - cfg.min_cones))
    rng.shuffle(others)
    shapes += [str(s) for s in others]
    n = len(shapes)
    colors = np.zeros((n, 3))
    colors[0] = _GOLD
    colors[1:] = np.asarray(_PALETTE)[rng.integers(0, len(_PALETTE), size=n - 1)]
    sizes, heights = np.zeros(n), np.zeros(n)
    specular = np.where(rng.random(n) < 0.4, 0.5, 0.0)
    specular[0] = 0.7
    sizes[0], heights[0] = TARGET_RADIUS, 2 * TARGET_RADIUS
    for i in range(1, n):
        if shapes[i] == "cone":  # wide and tall enough to swallow the target completely
            sizes[i] = rng.uniform(0.72, 0.88)
            heights[i] = rng.uniform(1.35, 1.65)
        elif shapes[i] == "sphere":
            sizes[i] = rng.uniform(0.3, 0.55)
            heights[i] = 2 * sizes[i]
        else:
            sizes[i] = rng.uniform(0.3, 0.55)
            heights[i] = sizes[i] * 2 * rng.uniform(0.8, 1.4)
    yaws = rng.uniform(0, np.pi / 2, size=n)
    return {"shapes": shapes, "colors": colors, "sizes": sizes, "heights": heights,
            "specular": specular, "yaws": yaws}


def _containment_episodes(cfg: World1Config, rng: np.random.Generator,
                          cones: list[int]) -> list[_Episode]:
    """Up to cfg.max_containments episodes, in time order, separated by random gaps."""
    T = cfg.num_frames
    episodes = []
    t = int(rng.integers(5, 50))
    while len(episodes) < cfg.max_containments and t < T - 60:
        cone = int(rng.choice(cones))
        land = int(rng.integers(24, 37))
        cursor = t + land + int(rng.integers(8, 40))
        carries = []
        while rng.random() < cfg.carry_probability and len(carries) < 2:
            duration = int(rng.integers(30, 71))
            carries.append((cursor, cursor + duration, _random_spot(rng, 0.9)))
            cursor += duration + int(rng.integers(5, 40))
        release = int(rng.integers(24, 37))
        episodes.append(_Episode(cone, t, t + land, carries, cursor, cursor + release))
        t = cursor + release + int(rng.integers(20, 90))
    return episodes


def _occlusion_passes(cfg: World1Config, rng: np.random.Generator, num_objects: int,
                      episodes: list[_Episode]) -> list[_Pass]:
    """Up to 3 occluder passes in the gaps the containment episodes leave."""
    T = cfg.num_frames
    busy = np.zeros(T, dtype=bool)
    for e in episodes:
        busy[e.land0:e.release1 + 1] = True
    passes = []
    free_starts = [s for s in range(0, T - 70, 10) if not busy[s:s + 70].any()]
    rng.shuffle(free_starts)
    for s in free_starts:
        if rng.random() > cfg.occlusion_pass_probability or len(passes) >= 3:
            continue
        duration = int(rng.integers(40, 70)) + int(rng.integers(0, 60))
        if s + duration >= T or busy[s:s + duration + 1].any():
            continue
        passes.append(_Pass(int(rng.integers(1, num_objects)), s, s + duration))
        busy[s:s + duration + 1] = True
    return passes


def _random_moves(traj: _Trajectory, rng: np.random.Generator, until: int) -> None:
    """Random slides / pick-and-places of one object while it is free, ending before `until`."""
    while True:
        start = traj.cursor + int(rng.integers(5, 60))
        duration = int(rng.integers(20, 45))
        if start + duration + 2 >= until:
            return
        lift = float(rng.uniform(0.8, 1.4)) if rng.random() < 0.3 else 0.0
        traj.move(start, start + duration, _random_spot(rng), lift)


def _script_target(target: _Trajectory, rng: np.random.Generator, episodes: list[_Episode],
                   passes: list[_Pass], T: int) -> None:
    """The target: free moves between its reserved spans; during an episode it makes exactly
    the carrying cone's moves, during a pass it holds still."""
    reserved = sorted([(e.land0, e.release1, "episode", e) for e in episodes]
                      + [(p.start, p.end, "pass", p) for p in passes], key=lambda r: r[0])
    for r0, r1, kind, item in reserved:
        _random_moves(target, rng, r0)
        if kind == "episode":
            for c0, c1, dest in item.carries:
                # the carried target makes exactly the cone's move (same start, same easing)
                target.move(c0, c1, dest)
            target.hold_until(item.release1 + 1)
        else:
            target.hold_until(r1 + 1)
    _random_moves(target, rng, T)
    target.hold_until(T)


def _script_others(trajectories: list[_Trajectory], rng: np.random.Generator,
                   episodes: list[_Episode], passes: list[_Pass], camera: np.ndarray,
                   T: int) -> np.ndarray:
    """Every other object in chronological order of its own roles (containing cone, occluder),
    free moves in between. Returns contained_by: (T,) the cone resting over the target, -1."""
    target = trajectories[0]
    n = len(trajectories)
    contained_by = np.full(T, -1, dtype=np.int64)
    roles: dict[int, list] = {i: [] for i in range(1, n)}
    for e in episodes:
        roles[e.cone].append((e.land0, "episode", e))
    for p in passes:
        roles[p.occluder].append((p.start, "pass", p))
    for i in range(1, n):
        traj = trajectories[i]
        for _, kind, item in sorted(roles[i], key=lambda r: r[0]):
            if kind == "episode":
                _random_moves(traj, rng, item.land0)
                traj.move(item.land0, item.land1, target.pos[item.land0],
                          lift=float(rng.uniform(1.2, 1.5)))
                for c0, c1, dest in item.carries:
                    traj.move(c0, c1, dest)
                traj.move(item.release0, item.release1, _random_spot(rng),
                          lift=float(rng.uniform(1.3, 1.6)))
                # resting over the target from landing until the release starts lifting
                contained_by[item.land1:min(item.release0, T - 1) + 1] = i
            else:
                _random_moves(traj, rng, item.start)
                _script_pass(traj, rng, camera, target.pos[item.start], item.start, item.end)
        _random_moves(traj, rng, T)
        traj.hold_until(T)
    return contained_by


def simulate(cfg: World1Config, seed: list[int]) -> World1Video:
    """Script one video: object set, camera path, containment, carrying and occlusion passes.
    The random draws happen in this order; changing it changes every generated dataset."""
    rng = np.random.default_rng(seed)
    T = cfg.num_frames
    objects = _object_set(cfg, rng)
    camera = _camera_track(cfg, rng)
    n = len(objects["shapes"])
    cones = [i for i in range(1, n) if objects["shapes"][i] == "cone"]
    # 1. The target's schedule: containment episodes, occlusion passes in the gaps.
    episodes = _containment_episodes(cfg, rng, cones)
    passes = _occlusion_passes(cfg, rng, n, episodes)
    trajectories = [_Trajectory(T, _random_spot(rng)) for _ in range(n)]
    _script_target(trajectories[0], rng, episodes, passes, T)
    # 2. The other objects, each in chronological order of its own roles.
    contained_by = _script_others(trajectories, rng, episodes, passes, camera, T)
    positions = np.stack([tr.pos for tr in trajectories], axis=1)
    positions[:, 0, 1] = 0.0
    return World1Video(config=cfg, seed=list(seed), **objects, positions=positions,
                       camera=camera, contained_by=contained_by)


# ---------------------------------------------------------------------------------------
# Rendering and annotation


_TEXTURE_METRES_PER_PIXEL = 0.02
_TEXTURE_HALF = TABLE_HALF + 1.0  # texture covers the table and a 1 m margin
_FLOOR_COLOR = (140, 139, 136)


def _table_texture() -> np.ndarray:
    """Grey table with faint 1 m tiles (so camera motion is visible) and a darker margin."""
    n = int(round(2 * _TEXTURE_HALF / _TEXTURE_METRES_PER_PIXEL))
    coords = -_TEXTURE_HALF + (np.arange(n) + 0.5) * _TEXTURE_METRES_PER_PIXEL
    x, z = coords[None, :], coords[:, None]
    checker = ((np.floor(x) + np.floor(z)) % 2) * 0.05
    on_table = (np.abs(x) < TABLE_HALF + 0.5) & (np.abs(z) < TABLE_HALF + 0.5)
    shade = 0.66 + checker - 0.1 * ~on_table
    return np.clip(shade[..., None] * np.array([1.0, 0.99, 0.96]) * 255 + 0.5, 0, 255).astype(np.uint8)


_TEXTURE = _table_texture()
_SKY_CACHE: dict[tuple, np.ndarray] = {}
_STATIC_BACKGROUND: dict[bytes, np.ndarray] = {}


def _background(camera: Camera) -> np.ndarray:
    key = np.concatenate([camera.position, [camera.yaw, camera.pitch, camera.focal,
                                            camera.width, camera.height]]).tobytes()
    cached = _STATIC_BACKGROUND.get(key)
    if cached is not None:
        return cached
    size = (camera.height, camera.width)
    if size not in _SKY_CACHE:
        _SKY_CACHE[size] = vertical_gradient(*size, (0.50, 0.51, 0.54), (0.60, 0.61, 0.63))
    image = draw_ground(camera, _SKY_CACHE[size], _TEXTURE, -_TEXTURE_HALF, -_TEXTURE_HALF,
                        _TEXTURE_METRES_PER_PIXEL, _FLOOR_COLOR)
    if len(_STATIC_BACKGROUND) > 8:  # moving cameras: keep the cache small
        _STATIC_BACKGROUND.clear()
    _STATIC_BACKGROUND[key] = image
    return image


def frame_sprites(video: World1Video, t: int, camera: Camera) -> list[Sprite]:
    sprites = []
    container = int(video.contained_by[t])
    for i, shape in enumerate(video.shapes):
        a = camera.anchor(video.positions[t, i])
        width = 2 * video.sizes[i] * a.scale
        height = video.heights[i] * a.scale
        color = tuple(video.colors[i])
        if shape == "sphere":
            prim = Primitive("sphere", a.u, a.v, width, width, color, tilt=a.tilt,
                             specular=float(video.specular[i]))
        elif shape == "cube":
            x, lift, z = video.positions[t, i]
            prim = box_primitive(camera, (x, 0.0, z), (2 * video.sizes[i], video.heights[i], 2 * video.sizes[i]),
                                 float(video.yaws[i]), color, lift=lift)
        else:
            prim = Primitive(shape, a.u, a.v, width, height, color, tilt=a.tilt,
                             specular=float(video.specular[i]))
        # painter's order by ground distance to the nearest point of the footprint: correct for
        # objects standing side by side, where camera z alone misorders them
        x, _, z = video.positions[t, i]
        depth = float(np.hypot(x - camera.position[0], z - camera.position[2])) - video.sizes[i]
        sprites.append(Sprite(object_id=i + 1, depth=depth, primitives=[prim]))
    if container >= 0:
        # the target sits inside its container: always drawn before (behind) it
        sprites[0].depth = sprites[container].depth + 1e-6
    return sprites


def render_frame(video: World1Video, t: int):
    """Render frame t: a RenderedFrame (image RGB uint8, id buffer, pixel counts, boxes)."""
    camera = video.camera_at(t)
    return composite(_background(camera), frame_sprites(video, t, camera), len(video.shapes))


def target_state(video: World1Video, t: int, target_visibility: float) -> int:
    if target_visibility > video.config.visible_min_fraction:
        return VISIBLE
    container = int(video.contained_by[t])
    if container < 0:
        return OCCLUDED
    # carried: the container travels over the table (not just settling down onto the target)
    if t > 0 and not np.array_equal(video.positions[t, container, [0, 2]], video.positions[t - 1, container, [0, 2]]):
        return CARRIED
    return CONTAINED


def annotate(video: World1Video, keep_images: bool = False):
    """Render every frame and measure the ground truth. Returns (annotations, images or None)."""
    T, n = video.num_frames, len(video.shapes)
    boxes = np.zeros((T, n, 4), dtype=np.float32)
    visibility = np.zeros((T, n), dtype=np.float32)
    visible_px = np.zeros((T, n), dtype=np.int32)
    full_px = np.zeros((T, n), dtype=np.int32)
    states = np.zeros(T, dtype=np.uint8)
    images = [] if keep_images else None
    for t in range(T):
        frame = render_frame(video, t)
        boxes[t] = frame.boxes[1:]
        vis = frame.visibility()[1:]
        visibility[t] = vis
        visible_px[t] = frame.visible_pixels[1:]
        full_px[t] = frame.full_pixels[1:]
        states[t] = target_state(video, t, float(vis[0]))
        if keep_images:
            images.append(frame.image)
    classes = np.array([0] + [CLASS_NAMES.index(s) for s in video.shapes[1:]], dtype=np.int64)
    ann = World1Annotations(boxes=boxes, visibility=visibility, visible_pixels=visible_px,
                            full_pixels=full_px, states=states, classes=classes,
                            track_ids=np.arange(n, dtype=np.int64))
    return ann, images


def occlusion_runs(states: np.ndarray) -> list[int]:
    """Lengths (frames) of the maximal runs of frames in which the target is not visible."""
    hidden = np.concatenate([[0], (np.asarray(states) != VISIBLE).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(hidden))
    return [int(b - a) for a, b in zip(edges[::2], edges[1::2])]


# ---------------------------------------------------------------------------------------
# Storage


def save_video(path: Path, video: World1Video, ann: World1Annotations) -> None:
    import io
    meta = {"config": asdict(video.config), "seed": video.seed, "shapes": video.shapes,
            "class_names": list(CLASS_NAMES), "state_names": list(STATE_NAMES)}
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer, meta=np.array(json.dumps(meta, sort_keys=True)), colors=video.colors,
        sizes=video.sizes, heights=video.heights, specular=video.specular, yaws=video.yaws,
        positions=video.positions, camera=video.camera, contained_by=video.contained_by,
        boxes=ann.boxes, visibility=ann.visibility, visible_pixels=ann.visible_pixels,
        full_pixels=ann.full_pixels, states=ann.states, classes=ann.classes, track_ids=ann.track_ids)
    atomic_write_bytes(path, buffer.getvalue())


def load_video(path: Path) -> tuple[World1Video, World1Annotations]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        video = World1Video(config=World1Config(**meta["config"]), seed=meta["seed"],
                            shapes=meta["shapes"], colors=z["colors"], sizes=z["sizes"],
                            heights=z["heights"], specular=z["specular"], yaws=z["yaws"], positions=z["positions"],
                            camera=z["camera"], contained_by=z["contained_by"])
        ann = World1Annotations(boxes=z["boxes"], visibility=z["visibility"],
                                visible_pixels=z["visible_pixels"], full_pixels=z["full_pixels"],
                                states=z["states"], classes=z["classes"], track_ids=z["track_ids"])
    return video, ann


def _encode_image(image_rgb: np.ndarray, fmt: str) -> bytes:
    import cv2
    ext = ".png" if fmt == "png" else ".jpg"
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if fmt == "png" else [cv2.IMWRITE_JPEG_QUALITY, 92]
    ok, data = cv2.imencode(ext, image_rgb[..., ::-1], params)
    if not ok:
        raise RuntimeError("image encoding failed")
    return data.tobytes()


def generate_video(out_dir: Path, split: str, index: int, cfg: World1Config, base_seed: int,
                   frames: str = "none") -> dict:
    """Simulate, render, annotate and store one video; returns its summary statistics.
    frames: "none" (re-render on load), "png" or "jpg" (also write frames/VVVVV/FFFFFF.ext)."""
    import cv2
    cv2.setNumThreads(1)
    video = simulate(cfg, video_seed(base_seed, split, index))
    ann, images = annotate(video, keep_images=frames != "none")
    name = f"{index:05d}"
    if images is not None:
        for t, image in enumerate(images):
            atomic_write_bytes(Path(out_dir) / split / "frames" / name / f"{t:06d}.{frames}",
                               _encode_image(image, frames))
    save_video(Path(out_dir) / split / f"{name}.npz", video, ann)
    return {"split": split, "video": name, "frames": video.num_frames,
            "state_counts": np.bincount(ann.states, minlength=4).tolist(),
            "occlusion_runs": occlusion_runs(ann.states)}


def _generate_video_star(args):
    return generate_video(*args)


@dataclass
class World1DatasetSpec:
    """What `generate_dataset` produces: videos per split, one shared config and base seed."""

    config: World1Config = field(default_factory=World1Config)
    # about 4 minutes of 2 free cores for all splits (benchmarks/results/data.md)
    counts: dict = field(default_factory=lambda: {"train": 200, "val": 30, "test": 30})
    base_seed: int = 0


def summarize(records: list[dict], fps: int) -> dict:
    """Frames per state and the distribution of occlusion lengths over all videos."""
    counts = np.sum([r["state_counts"] for r in records], axis=0) if records else np.zeros(4)
    runs = np.array([x for r in records for x in r["occlusion_runs"]], dtype=np.int64)
    edges = [1, 6, 11, 26, 51, 101, 201, 10 ** 9]
    labels = ["1-5", "6-10", "11-25", "26-50", "51-100", "101-200", ">200"]
    hist = {lab: int(((runs >= lo) & (runs < hi)).sum()) for lab, lo, hi in zip(labels, edges[:-1], edges[1:])}
    return {
        "videos": len(records),
        "frames": int(sum(r["frames"] for r in records)),
        "frames_per_state": {name: int(c) for name, c in zip(STATE_NAMES, counts)},
        "occlusion_runs": {
            "count": int(runs.size),
            "histogram_frames": hist,
            "mean_frames": float(runs.mean()) if runs.size else 0.0,
            "median_frames": float(np.median(runs)) if runs.size else 0.0,
            "max_frames": int(runs.max()) if runs.size else 0,
            "longer_than_2s": int((runs > 2 * fps).sum()),
        },
    }


def generate_dataset(out_dir: Path, spec: World1DatasetSpec, workers: int = 2,
                     frames: str = "none", progress=None) -> dict:
    """Generate all splits (videos in parallel) and write <out_dir>/world1.json."""
    out_dir = Path(out_dir)
    jobs = [(out_dir, split, i, spec.config, spec.base_seed, frames)
            for split in SPLITS for i in range(int(spec.counts.get(split, 0)))]
    records = run_jobs(_generate_video_star, jobs, workers, progress)
    summary = {
        "world": "world1_lacater",
        "config": asdict(spec.config),
        "base_seed": spec.base_seed,
        "counts": {s: int(spec.counts.get(s, 0)) for s in SPLITS},
        "class_names": list(CLASS_NAMES),
        "state_names": list(STATE_NAMES),
        "frames_stored": frames,
        "splits": {s: summarize([r for r in records if r["split"] == s], spec.config.fps) for s in SPLITS},
        "all": summarize(records, spec.config.fps),
    }
    atomic_write_bytes(out_dir / "world1.json", json.dumps(summary, indent=2).encode())
    return summary


def list_videos(root: Path, split: str) -> list[Path]:
    return sorted((Path(root) / split).glob("*.npz"))

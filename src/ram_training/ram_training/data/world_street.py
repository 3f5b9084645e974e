"""World 2: a KITTI-like street benchmark written in the KITTI tracking layout.

A straight four-lane street seen from a car driving in the right lane (camera 1.65 m above
the road, KITTI intrinsics scaled to the image size, 10 FPS). Cars, vans and trucks drive in
the lanes (trucks and vans in the next lane are moving occluders), pedestrians walk on the
sidewalks or cross the street, vehicles are parked along both curbs, poles, signs and trees
stand on the sidewalks, buildings line the street.

Output (exactly KITTI tracking, readable by `kitti.py` and by KITTI tools):
  <root>/training/image_02/SSSS/FFFFFF.png
  <root>/training/label_02/SSSS.txt     objects with a visible part, DontCare for tiny/far ones
  <root>/training/calib/SSSS.txt
  <root>/training/hidden_02/SSSS.txt    evaluation only: objects in view but (almost) fully
                                         hidden, same columns, true (amodal) boxes
  <root>/evaluate_tracking.seqmap.training
  <root>/world2.json                    config, seeds and statistics
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import kitti
from .atomic import atomic_write_bytes
from .jobs import run_jobs
from .render import (NEAR_PLANE, Camera, Primitive, Sprite, box_primitive, composite, draw_ground,
                     fill_polygons, vertical_gradient)

KITTI_FOCAL, KITTI_CX, KITTI_CY = 721.5377, 609.5593, 172.854  # KITTI P2, 1242x375
LANES_ONCOMING = (-5.25, -1.75)
LANE_EGO, LANE_RIGHT = 1.75, 5.25
CURB = 7.0            # road is |x| < CURB
PARKING_X = 8.2       # parked vehicles
POLE_X = 9.9
SIDEWALK = (10.3, 12.6)
BUILDING_X = 13.5
MAX_DRAW_DEPTH = 100.0  # metres ahead; nothing farther is drawn (labels end at 70 m)

# KITTI type -> (width, height, length) ranges in metres
_DIMENSIONS = {
    "Car": ((1.65, 1.9), (1.4, 1.6), (3.9, 4.7)),
    "Van": ((1.9, 2.1), (1.9, 2.4), (4.6, 5.3)),
    "Truck": ((2.4, 2.6), (3.0, 3.8), (7.0, 11.0)),
    "Pedestrian": ((0.5, 0.7), (1.55, 1.92), (0.5, 0.8)),
}
_CAR_COLORS = [(0.75, 0.75, 0.78), (0.1, 0.1, 0.12), (0.6, 0.08, 0.08), (0.12, 0.22, 0.55),
               (0.92, 0.92, 0.9), (0.35, 0.36, 0.38), (0.55, 0.45, 0.3), (0.1, 0.35, 0.2)]
_BUILDING_COLORS = [(0.62, 0.55, 0.48), (0.5, 0.5, 0.52), (0.7, 0.66, 0.58), (0.45, 0.38, 0.33),
                    (0.58, 0.6, 0.62)]


@dataclass
class World2Config:
    """Generation parameters of World 2 (plain data)."""

    width: int = 1242
    height: int = 375
    fps: int = 10
    min_frames: int = 80           # sequence lengths vary like KITTI's (which are 78-1059)
    max_frames: int = 200
    moving_cars_per_100m: float = 5.0
    trucks_per_100m: float = 0.8
    pedestrians_per_100m: float = 6.0
    crossing_pedestrians: tuple = (1, 3)
    parked_probability: float = 0.55     # share of curb slots holding a parked vehicle
    max_depth: float = 120.0             # objects farther than this are not drawn
    label_min_visibility: float = 0.05   # below: not in label_02 (written to hidden_02)
    label_min_visible_pixels: int = 12   # at 1242x375; scaled with image area
    dontcare_min_height: float = 18.0    # px at 375 rows; smaller visible objects -> DontCare
    dontcare_max_distance: float = 70.0  # metres; farther visible objects -> DontCare


@dataclass
class StreetObject:
    kind: str                 # KITTI type, or scenery: pole, sign, tree, building
    dims: tuple               # (width, height, length) metres
    colors: list              # RGB tuples used by its parts
    x: np.ndarray             # (T,) world x of the bottom centre
    z: np.ndarray             # (T,) world z
    yaw: float                # heading about the vertical axis (0: driving along +z)

    @property
    def annotated(self) -> bool:
        return self.kind in _DIMENSIONS


@dataclass
class StreetSequence:
    config: World2Config
    seed: list
    ego_z: np.ndarray         # (T,) camera z (the ego drives along +z in lane LANE_EGO)
    objects: list             # StreetObject
    scenery: list             # StreetObject (not annotated)

    @property
    def num_frames(self) -> int:
        return len(self.ego_z)

    def camera_at(self, t: int) -> Camera:
        cfg = self.config
        scale = cfg.width / 1242.0
        return Camera(position=np.array([LANE_EGO, 1.65, self.ego_z[t]]), yaw=0.0, pitch=0.0,
                      focal=KITTI_FOCAL * scale, cx=KITTI_CX * scale,
                      cy=KITTI_CY * cfg.height / 375.0, width=cfg.width, height=cfg.height)


def sequence_seed(base_seed: int, index: int) -> list[int]:
    return [int(base_seed), 7, int(index)]


def _dims(rng, kind):
    return tuple(float(rng.uniform(*r)) for r in _DIMENSIONS[kind])


def _ego_track(rng: np.random.Generator, T: int, fps: int) -> np.ndarray:
    """Ego z per frame: stretches of driving, slowing and standing, with smooth speed changes."""
    speed = np.zeros(T)
    target = float(rng.choice([0.0, 4.0, 8.0, 11.0], p=[0.15, 0.25, 0.35, 0.25]))
    current = target
    for t in range(T):
        if rng.random() < 1.0 / 60:
            target = float(rng.choice([0.0, 4.0, 8.0, 11.0], p=[0.15, 0.25, 0.35, 0.25]))
        current += np.clip(target - current, -0.25, 0.25)  # <= 2.5 m/s^2
        speed[t] = current
    return np.concatenate([[0.0], np.cumsum(speed[:-1] / fps)])


def _constant(T: int, value) -> np.ndarray:
    return np.full(T, float(value))


def _car_colors(rng: np.random.Generator) -> list:
    body = _CAR_COLORS[int(rng.integers(len(_CAR_COLORS)))]
    return [body, (0.08, 0.08, 0.09), (0.16, 0.2, 0.25)]  # body, wheels band, glass


def _parked_vehicles(cfg: World2Config, rng: np.random.Generator, T: int, z_lo: float,
                     z_hi: float) -> list[StreetObject]:
    """Parked vehicles along both curbs (static occluders that are also annotated)."""
    parked = []
    for side in (-1.0, 1.0):
        z = z_lo + rng.uniform(0, 6)
        while z < z_hi:
            kind = "Van" if rng.random() < 0.25 else "Car"
            dims = _dims(rng, kind)
            if rng.random() < cfg.parked_probability:
                parked.append(StreetObject(kind, dims, _car_colors(rng),
                                           _constant(T, side * PARKING_X + rng.uniform(-0.2, 0.2)),
                                           _constant(T, z + dims[2] / 2),
                                           float(rng.choice([0.0, np.pi]) + rng.normal(0, 0.03))))
            z += dims[2] + rng.uniform(0.8, 9.0)
    return parked


def _moving_traffic(cfg: World2Config, rng: np.random.Generator, t_sec: np.ndarray,
                    ego_z: np.ndarray, z_lo: float, z_hi: float) -> list[StreetObject]:
    """Cars, vans and (in the right lane) trucks. Each lane has one speed so cars in a lane
    never run into each other; the ego lane's traffic starts ahead of the ego and is faster."""
    T = len(t_sec)
    traffic = []
    lanes = [(LANES_ONCOMING[0], -rng.uniform(8, 12)), (LANES_ONCOMING[1], -rng.uniform(10, 14)),
             (LANE_RIGHT, rng.uniform(6, 13)), (LANE_EGO, rng.uniform(12, 14))]
    for lane_x, speed in lanes:
        travel = speed * t_sec[-1]
        start_lo, start_hi = (z_lo, z_hi - travel) if speed > 0 else (z_lo - travel, z_hi)
        if lane_x == LANE_EGO:
            start_lo = ego_z[0] + 12.0  # ahead of the ego and faster, never behind it
        z = start_lo + rng.uniform(0, 10)
        density = cfg.moving_cars_per_100m + (cfg.trucks_per_100m if lane_x == LANE_RIGHT else 0.0)
        while z < start_hi:
            kind = "Car"
            if lane_x == LANE_RIGHT and rng.random() < cfg.trucks_per_100m / max(density, 1e-9):
                kind = "Truck"
            elif rng.random() < 0.15:
                kind = "Van"
            dims = _dims(rng, kind)
            colors = _car_colors(rng)
            if kind == "Truck":
                colors = [(0.85, 0.85, 0.82) if rng.random() < 0.5 else (0.7, 0.2, 0.1), colors[1], colors[2],
                          _CAR_COLORS[int(rng.integers(len(_CAR_COLORS)))]]
            if rng.random() < density / 100.0 * 8.0:
                traffic.append(StreetObject(kind, dims, colors, _constant(T, lane_x + rng.normal(0, 0.15)),
                                            z + speed * t_sec, 0.0 if speed > 0 else np.pi))
            z += dims[2] + rng.uniform(4.0, 12.0)
    return traffic


def _sidewalk_pedestrians(cfg: World2Config, rng: np.random.Generator, t_sec: np.ndarray,
                          z_lo: float, z_hi: float) -> list[StreetObject]:
    """Pedestrians walking along the sidewalks (some standing)."""
    T = len(t_sec)
    walkers = []
    for _ in range(rng.poisson(cfg.pedestrians_per_100m * (z_hi - z_lo) / 100.0)):
        side = rng.choice([-1.0, 1.0])
        speed = 0.0 if rng.random() < 0.2 else rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.7)
        z0 = rng.uniform(z_lo, z_hi)
        walkers.append(StreetObject("Pedestrian", _dims(rng, "Pedestrian"), _person_colors(rng),
                                    _constant(T, side * rng.uniform(*SIDEWALK)), z0 + speed * t_sec,
                                    0.0 if speed >= 0 else np.pi))
    return walkers


def _crossing_pedestrians(cfg: World2Config, rng: np.random.Generator, t_sec: np.ndarray,
                          ego_z: np.ndarray) -> list[StreetObject]:
    """Pedestrians crossing the street in front of the ego: behind parked cars, past traffic."""
    T = len(t_sec)
    crossing = []
    for _ in range(int(rng.integers(cfg.crossing_pedestrians[0], cfg.crossing_pedestrians[1] + 1))):
        t0 = int(rng.integers(0, max(T // 2, 1)))
        z0 = ego_z[t0] + rng.uniform(12, 35)
        side = rng.choice([-1.0, 1.0])
        speed = rng.uniform(1.1, 1.6)
        x0 = side * SIDEWALK[1]
        dt = np.clip(t_sec - t_sec[t0], 0.0, None)
        x = x0 - side * np.minimum(speed * dt, 2 * SIDEWALK[1])
        crossing.append(StreetObject("Pedestrian", _dims(rng, "Pedestrian"), _person_colors(rng), x,
                                     _constant(T, z0), -side * np.pi / 2))
    return crossing


def _scenery(rng: np.random.Generator, T: int, z_lo: float, z_hi: float) -> list[StreetObject]:
    """Poles, signs, trees, buildings on both sides (unannotated occluders and backdrop)."""
    scenery = []
    for side in (-1.0, 1.0):
        z = z_lo + rng.uniform(0, 10)
        while z < z_hi:
            height = rng.uniform(3.5, 6.0)
            kind = "sign" if rng.random() < 0.35 else "pole"
            scenery.append(StreetObject(kind, (0.14, height, 0.14), [(0.45, 0.46, 0.48), (0.1, 0.3, 0.75)],
                                        _constant(T, side * POLE_X), _constant(T, z), 0.0))
            z += rng.uniform(12, 35)
        z = z_lo + rng.uniform(0, 10)
        while z < z_hi:
            crown = rng.uniform(2.2, 3.6)
            scenery.append(StreetObject("tree", (0.35, rng.uniform(2.0, 3.0), crown),
                                        [(0.35, 0.25, 0.15), (0.16, 0.42 + 0.15 * rng.random(), 0.14)],
                                        _constant(T, side * rng.uniform(11.6, 12.4)), _constant(T, z), 0.0))
            z += rng.uniform(9, 30)
        z = z_lo - 20
        while z < z_hi + 40:
            blen = rng.uniform(10, 30)
            scenery.append(StreetObject("building", (12.0, rng.uniform(6, 18), blen),
                                        [_BUILDING_COLORS[int(rng.integers(len(_BUILDING_COLORS)))]],
                                        _constant(T, side * (BUILDING_X + 6.0)),
                                        _constant(T, z + blen / 2), 0.0))
            z += blen + rng.uniform(0, 3)
    return scenery


def simulate(cfg: World2Config, seed: list) -> StreetSequence:
    """Script one sequence: the ego's drive, then the street's objects along the stretch of road
    it sees. The random draws happen in this order; changing it changes every generated dataset."""
    rng = np.random.default_rng(seed)
    T = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    t_sec = np.arange(T) / cfg.fps
    ego_z = _ego_track(rng, T, cfg.fps)
    z_lo, z_hi = ego_z[0] - 40.0, ego_z[-1] + cfg.max_depth + 20.0
    objects = (_parked_vehicles(cfg, rng, T, z_lo, z_hi)
               + _moving_traffic(cfg, rng, t_sec, ego_z, z_lo, z_hi)
               + _sidewalk_pedestrians(cfg, rng, t_sec, z_lo, z_hi)
               + _crossing_pedestrians(cfg, rng, t_sec, ego_z))
    return StreetSequence(config=cfg, seed=list(seed), ego_z=ego_z, objects=objects,
                          scenery=_scenery(rng, T, z_lo, z_hi))


def _person_colors(rng) -> list:
    shirt = tuple(float(c) for c in rng.uniform(0.1, 0.9, size=3))
    pants = tuple(float(c) for c in rng.uniform(0.05, 0.4, size=3))
    skin = (0.85, 0.66, 0.52) if rng.random() < 0.6 else (0.45, 0.3, 0.22)
    return [shirt, pants, skin]


# ---------------------------------------------------------------------------------------
# Rendering


_TEXEL = 0.05  # metres per ground-texture pixel
_ROAD_TEXTURE: dict = {}


def _road_texture() -> np.ndarray:
    """One 40 m period of the street (x from -20 to 20 m): asphalt, dashed lane lines, curbs,
    sidewalks; it repeats along z, so the warp source is indexed modulo its length."""
    if "tex" in _ROAD_TEXTURE:
        return _ROAD_TEXTURE["tex"]
    nx, nz = int(40 / _TEXEL), int(40 / _TEXEL)
    x = -20 + (np.arange(nx) + 0.5) * _TEXEL
    z = (np.arange(nz) + 0.5) * _TEXEL
    X, Z = np.meshgrid(x, z)
    rng = np.random.default_rng(1234)
    noise = rng.normal(0, 0.025, size=X.shape)
    color = np.zeros(X.shape + (3,))
    color[:] = (0.33, 0.33, 0.34)
    color += noise[..., None]
    dashed = ((Z % 10.0) < 4.0)
    for lx in (-3.5, 3.5):
        color[(np.abs(X - lx) < 0.08) & dashed] = (0.85, 0.85, 0.82)
    color[np.abs(X) < 0.12] = (0.85, 0.75, 0.3)  # centre line
    for side in (-1, 1):
        color[(np.abs(X - side * (CURB - 0.25)) < 0.08)] = (0.85, 0.85, 0.82)
        walk = (np.abs(X) >= CURB) & (np.abs(X) < BUILDING_X)
        tiles = ((np.floor(X / 1.5) + np.floor(Z / 1.5)) % 2) * 0.03
        color[walk] = (0.6, 0.58, 0.55) + (tiles + noise)[walk][:, None]
        color[(np.abs(X) >= CURB) & (np.abs(X) < CURB + 0.25)] = (0.72, 0.72, 0.7)
    tex = np.clip(color * 255 + 0.5, 0, 255).astype(np.uint8)
    _ROAD_TEXTURE["tex"] = tex
    return tex


def _sky(height: int, width: int) -> np.ndarray:
    key = ("sky", height, width)
    if key not in _ROAD_TEXTURE:
        _ROAD_TEXTURE[key] = vertical_gradient(height, width, (0.55, 0.7, 0.9), (0.82, 0.86, 0.9))
    return _ROAD_TEXTURE[key]


def _background(camera: Camera) -> np.ndarray:
    tex = _road_texture()
    period = tex.shape[0] * _TEXEL
    # the texture repeats every `period` metres; start it at the period boundary behind the camera
    z0 = np.floor((camera.position[2] - 5.0) / period) * period
    # three periods cover 120 m ahead; tile vertically (cheap: views, one concatenate)
    if "tiled" not in _ROAD_TEXTURE:
        _ROAD_TEXTURE["tiled"] = np.concatenate([tex] * 5, axis=0)
    return draw_ground(camera, _sky(camera.height, camera.width), _ROAD_TEXTURE["tiled"], -20.0, z0,
                       _TEXEL, (150, 150, 145))


def _footprint_distance(camera: Camera, x: float, z: float, half_w: float, half_l: float) -> float:
    dx = max(abs(camera.position[0] - x) - half_w, 0.0)
    dz = max(abs(camera.position[2] - z) - half_l, 0.0)
    return float(np.hypot(dx, dz))


def object_sprite(obj: StreetObject, t: int, camera: Camera, object_id: int) -> Sprite | None:
    x, z = float(obj.x[t]), float(obj.z[t])
    rel_z = z - camera.position[2]
    w, h, l = obj.dims
    reach = max(w, l)
    if rel_z + reach < NEAR_PLANE or rel_z - reach > MAX_DRAW_DEPTH:
        return None
    # outside the horizontal field of view (with the object's extent as margin)
    half_fov = (camera.width / 2.0) / camera.focal
    if abs(x - camera.position[0]) - reach > max(rel_z + reach, 0.0) * half_fov + 0.5:
        return None
    yaw = obj.yaw
    parts: list[Primitive] = []
    kind = obj.kind
    if kind in ("Car", "Van"):
        body, dark, glass = obj.colors[:3]
        base = 0.32 * h
        parts.append(box_primitive(camera, (x, 0, z), (w * 0.96, base, l * 0.94), yaw, dark))
        if kind == "Car":
            parts.append(box_primitive(camera, (x, 0, z), (w, 0.3 * h, l), yaw, body, lift=base))
            # cabin set back from the front (the front is +z of the box frame)
            back = -0.08 * l
            cx, cz = x + np.sin(yaw) * back, z + np.cos(yaw) * back
            parts.append(box_primitive(camera, (cx, 0, cz), (w * 0.86, h - 0.62 * h, l * 0.52), yaw,
                                       tuple(0.5 * np.asarray(body) + 0.5 * np.asarray(glass)), lift=0.62 * h))
        else:
            parts.append(box_primitive(camera, (x, 0, z), (w, h - base, l), yaw, body, lift=base))
    elif kind == "Truck":
        body, dark, _, cab = obj.colors[:4]
        parts.append(box_primitive(camera, (x, 0, z), (w * 0.95, 0.9, l * 0.95), yaw, dark))
        cab_len = 2.2
        front = l / 2 - cab_len / 2
        parts.append(box_primitive(camera, (x + np.sin(yaw) * front, 0, z + np.cos(yaw) * front),
                                   (w, 0.75 * h - 0.9, cab_len), yaw, cab, lift=0.9))
        rear = -cab_len / 2 - 0.1
        parts.append(box_primitive(camera, (x + np.sin(yaw) * rear, 0, z + np.cos(yaw) * rear),
                                   (w, h - 0.9, l - cab_len - 0.2), yaw, body, lift=0.9))
    elif kind == "Pedestrian":
        shirt, pants, skin = obj.colors
        for shape, lift, height, width, color in (("cylinder", 0.0, 0.47 * h, 0.55 * w, pants),
                                                  ("cylinder", 0.47 * h, 0.38 * h, 0.75 * w, shirt),
                                                  ("sphere", 0.86 * h, 0.14 * h, 0.14 * h, skin)):
            a = camera.anchor((x, lift, z))
            parts.append(Primitive(shape, a.u, a.v, width * a.scale, height * a.scale, color, tilt=a.tilt))
    elif kind in ("pole", "sign"):
        a = camera.anchor((x, 0.0, z))
        parts.append(Primitive("cylinder", a.u, a.v, w * a.scale, h * a.scale, obj.colors[0], tilt=a.tilt))
        if kind == "sign":
            parts.append(box_primitive(camera, (x, 0, z), (0.05, 0.7, 0.7), np.pi / 2, obj.colors[1], lift=h - 0.8))
    elif kind == "tree":
        a = camera.anchor((x, 0.0, z))
        parts.append(Primitive("cylinder", a.u, a.v, w * a.scale, h * a.scale, obj.colors[0], tilt=a.tilt))
        crown = camera.anchor((x, h - 0.3, z))
        parts.append(Primitive("sphere", crown.u, crown.v, l * crown.scale, l * crown.scale, obj.colors[1]))
    elif kind == "building":
        parts.append(box_primitive(camera, (x, 0, z), (w, h, l), 0.0, obj.colors[0]))
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    if kind == "building":
        depth = 1e9  # the backdrop: nothing stands behind a building
    elif kind in _DIMENSIONS:
        along_z = abs(np.cos(yaw)) > 0.7
        half_w, half_l = (w / 2, l / 2) if along_z else (l / 2, w / 2)
        depth = _footprint_distance(camera, x, z, half_w, half_l)
    else:
        depth = _footprint_distance(camera, x, z, w / 2, w / 2)
    return Sprite(object_id=object_id, depth=depth, primitives=parts)


def render_frame(seq: StreetSequence, t: int):
    """RenderedFrame of frame t; object ids are 1 + index into seq.objects."""
    camera = seq.camera_at(t)
    background = _background(camera)
    sprites = []
    for i, obj in enumerate(seq.objects):
        s = object_sprite(obj, t, camera, i + 1)
        if s is not None:
            sprites.append(s)
    buildings = []
    for obj in seq.scenery:
        s = object_sprite(obj, t, camera, 0)
        if s is None:
            continue
        if obj.kind == "building":
            buildings.append((float(np.hypot(obj.x[t] - camera.position[0], obj.z[t] - camera.position[2])), s))
        else:
            sprites.append(s)
    # buildings are the backdrop (nothing stands behind them): paint them far to near directly
    for _, s in sorted(buildings, key=lambda b: -b[0]):
        fill_polygons(background, s.primitives[0])
    return composite(background, sprites, len(seq.objects))


# ---------------------------------------------------------------------------------------
# Annotation and output


def _levels(visibility: float, truncation: float) -> tuple[int, int]:
    """KITTI tracking levels. occluded: 0 fully visible (>= 80% of the in-image silhouette
    shows), 1 partly (>= 40%), 2 largely. truncated: 0 (< 10% outside), 1 (< 50%), 2."""
    occluded = 0 if visibility >= 0.8 else (1 if visibility >= 0.4 else 2)
    truncated = 0 if truncation < 0.1 else (1 if truncation < 0.5 else 2)
    return truncated, occluded


def annotate(seq: StreetSequence, image_sink=None):
    """Render all frames; returns (label rows, hidden rows, statistics). image_sink(t, image) is
    called with every RGB frame."""
    cfg = seq.config
    area_scale = cfg.width * cfg.height / (1242.0 * 375.0)
    min_pixels = max(1, int(round(cfg.label_min_visible_pixels * area_scale)))
    min_height = cfg.dontcare_min_height * cfg.height / 375.0
    track_of: dict[int, int] = {}
    labels: list[kitti.KittiObject] = []
    hidden: list[kitti.KittiObject] = []
    # per object and frame: 0 out of view (or DontCare-sized), 1 labelled, 2 in view but hidden
    status = np.zeros((seq.num_frames, len(seq.objects)), dtype=np.int8)
    for t in range(seq.num_frames):
        frame = render_frame(seq, t)
        if image_sink is not None:
            image_sink(t, frame.image)
        camera = seq.camera_at(t)
        vis = frame.visibility()
        for i, obj in enumerate(seq.objects):
            oid = i + 1
            if frame.full_pixels[oid] == 0:
                continue
            box = frame.boxes[oid]
            x, z = float(obj.x[t]), float(obj.z[t])
            loc = (x - camera.position[0], camera.position[1], z - camera.position[2])
            distance = float(np.hypot(loc[0], loc[2]))
            labelled = (frame.visible_pixels[oid] >= min_pixels and vis[oid] >= cfg.label_min_visibility)
            too_small = (box[3] - box[1]) < min_height or distance > cfg.dontcare_max_distance
            if too_small:
                if labelled:
                    labels.append(kitti.KittiObject.dont_care(t, box))
                continue
            if oid not in track_of:
                track_of[oid] = len(track_of)
            truncated, occluded = _levels(float(vis[oid]), float(frame.truncation[oid]))
            ry = kitti.wrap_angle(obj.yaw - np.pi / 2)
            w, h, l = obj.dims
            row = kitti.KittiObject(frame=t, track_id=track_of[oid], type=obj.kind, truncated=truncated,
                                    occluded=occluded if labelled else 3,
                                    alpha=kitti.wrap_angle(ry - np.arctan2(loc[0], loc[2])),
                                    box=tuple(float(b) for b in box), dimensions=(h, w, l),
                                    location=loc, rotation_y=ry)
            (labels if labelled else hidden).append(row)
            status[t, i] = 1 if labelled else 2
    stats = {"frames": seq.num_frames, "tracks": len(track_of), "labels": sum(r.type != "DontCare" for r in labels),
             "dontcare": sum(r.type == "DontCare" for r in labels), "hidden_rows": len(hidden),
             "occlusion_runs": hidden_runs(status),
             "track_objects": {track: oid - 1 for oid, track in track_of.items()}}
    return labels, hidden, stats


def hidden_runs(status: np.ndarray) -> list[int]:
    """Lengths of full occlusions: runs of hidden frames (status 2) that start after the object
    was labelled and end with it labelled again (the re-identification case RAM targets)."""
    runs = []
    for column in status.T:
        t, T = 0, len(column)
        while t < T:
            if column[t] == 2 and t > 0 and column[t - 1] == 1:
                end = t
                while end < T and column[end] == 2:
                    end += 1
                if end < T and column[end] == 1:
                    runs.append(end - t)
                t = end
            else:
                t += 1
    return runs


def calib_for(camera: Camera) -> kitti.KittiCalib:
    P = camera.intrinsics_P()
    P_right = P.copy()
    P_right[0, 3] = -0.54 * camera.focal  # 0.54 m stereo baseline, like KITTI
    velo_to_cam = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
    return kitti.KittiCalib(P=[P, P_right, P, P_right], R_rect=np.eye(3), Tr_velo_cam=velo_to_cam,
                            Tr_imu_velo=np.hstack([np.eye(3), np.zeros((3, 1))]))


def generate_sequence(root: Path, index: int, cfg: World2Config, base_seed: int) -> dict:
    import cv2
    cv2.setNumThreads(1)
    seq = simulate(cfg, sequence_seed(base_seed, index))
    name = f"{index:04d}"
    training = Path(root) / "training"

    def sink(t, image):
        ok, data = cv2.imencode(".png", image[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
        atomic_write_bytes(training / "image_02" / name / f"{t:06d}.png", data.tobytes())

    labels, hidden, stats = annotate(seq, sink)
    kitti.write_labels(training / "label_02" / f"{name}.txt", labels)
    kitti.write_labels(training / "hidden_02" / f"{name}.txt", hidden)
    kitti.write_calib(training / "calib" / f"{name}.txt", calib_for(seq.camera_at(0)))
    stats["sequence"] = name
    return stats


def _generate_star(args):
    return generate_sequence(*args)


@dataclass
class World2DatasetSpec:
    config: World2Config = field(default_factory=World2Config)
    num_sequences: int = 21  # like KITTI tracking's 21 training sequences
    base_seed: int = 0


def summarize_runs(runs: list[int]) -> dict:
    runs = np.asarray(runs, dtype=np.int64)
    edges = [1, 2, 4, 6, 11, 21, 51, 10 ** 9]
    labels = ["1", "2-3", "4-5", "6-10", "11-20", "21-50", ">50"]
    return {"count": int(runs.size),
            "histogram_frames": {lab: int(((runs >= lo) & (runs < hi)).sum())
                                 for lab, lo, hi in zip(labels, edges[:-1], edges[1:])},
            "mean_frames": float(runs.mean()) if runs.size else 0.0,
            "max_frames": int(runs.max()) if runs.size else 0}


def generate_dataset(root: Path, spec: World2DatasetSpec, workers: int = 2, progress=None) -> dict:
    root = Path(root)
    jobs = [(root, i, spec.config, spec.base_seed) for i in range(spec.num_sequences)]
    records = run_jobs(_generate_star, jobs, workers, progress)
    records.sort(key=lambda r: r["sequence"])
    seqmap = "".join(f"{r['sequence']} empty 000000 {r['frames']:06d}\n" for r in records)
    atomic_write_bytes(root / "evaluate_tracking.seqmap.training", seqmap.encode())
    summary = {
        "world": "world2_street",
        "config": asdict(spec.config),
        "base_seed": spec.base_seed,
        "sequences": len(records),
        "frames": int(sum(r["frames"] for r in records)),
        "tracks": int(sum(r["tracks"] for r in records)),
        "labels": int(sum(r["labels"] for r in records)),
        "dontcare": int(sum(r["dontcare"] for r in records)),
        "hidden_rows": int(sum(r["hidden_rows"] for r in records)),
        "occlusion_runs": summarize_runs([n for r in records for n in r["occlusion_runs"]]),
        "per_sequence": [{k: v for k, v in r.items() if k not in ("occlusion_runs", "track_objects")}
                         for r in records],
    }
    atomic_write_bytes(root / "world2.json", json.dumps(summary, indent=2).encode())
    return summary

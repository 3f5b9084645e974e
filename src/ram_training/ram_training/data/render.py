"""Shared 2.5D renderer for the synthetic worlds: a pinhole camera over a ground plane and
shaded shapes (sphere, box, cylinder, cone) composited back to front.

Why 2.5D: every object is a flat, shaded sprite whose size and position come from a real
perspective projection of its 3D position; depth decides the drawing order. That is enough
to create everything the RAM paper evaluates (partial / full occlusion, containment,
carrying, ego-motion) at thousands of frames per second with numpy and OpenCV.

Visibility is measured, not guessed: each object is also drawn into an id buffer, and its
visible fraction is (pixels that still carry its id at the end) / (pixels of its own,
unoccluded mask inside the image).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# Light direction in image-space normal coordinates (x right, y down, z towards the viewer):
# from the upper left, in front of the scene.
_LIGHT = np.array([-0.45, -0.65, 0.62])
_LIGHT = _LIGHT / np.linalg.norm(_LIGHT)
_HALF = _LIGHT + np.array([0.0, 0.0, 1.0])
_HALF = _HALF / np.linalg.norm(_HALF)
AMBIENT = 0.38
DIFFUSE = 0.62


@dataclass
class Camera:
    """Pinhole camera. World frame: x right, y up, z forward (ground plane y = 0).

    Camera frame (KITTI convention): x right, y down, z forward. `yaw` turns the camera about
    the world's vertical axis (0 looks along +z, positive turns towards +x); `pitch` tilts it
    down (positive looks down)."""

    position: np.ndarray
    yaw: float
    pitch: float
    focal: float
    cx: float
    cy: float
    width: int
    height: int

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vectors (right, down, forward) of the camera frame in world coordinates."""
        sy, cyaw = np.sin(self.yaw), np.cos(self.yaw)
        sp, cp = np.sin(self.pitch), np.cos(self.pitch)
        forward = np.array([sy * cp, -sp, cyaw * cp])
        right = np.array([cyaw, 0.0, -sy])
        # down = right x forward, written out (np.cross is slow for single vectors)
        down = np.array([right[1] * forward[2] - right[2] * forward[1],
                         right[2] * forward[0] - right[0] * forward[2],
                         right[0] * forward[1] - right[1] * forward[0]])
        return right, down, forward

    def rotation(self) -> np.ndarray:
        """3x3 world -> camera rotation (rows: camera axes); computed once per camera."""
        cached = self.__dict__.get("_rotation")
        if cached is None:
            cached = np.stack(self.axes())
            self.__dict__["_rotation"] = cached
        return cached

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (N,3) -> camera coordinates (N,3) (x right, y down, z forward)."""
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation().T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N,3) -> pixel coordinates (N,2) and camera depth z (N,)."""
        cam = self.to_camera(points)
        z = cam[:, 2]
        safe_z = np.where(z > 1e-6, z, 1e-6)
        uv = np.stack([self.focal * cam[:, 0] / safe_z + self.cx,
                       self.focal * cam[:, 1] / safe_z + self.cy], axis=1)
        return uv, z

    def anchor(self, point) -> "Anchor":
        """Where a world point lands in the image and how an object standing there is seen."""
        offset = self.position - np.asarray(point, dtype=np.float64)
        cam = self.rotation() @ -offset
        depth = max(float(cam[2]), 1e-3)
        tilt = min(max(float(offset[1]) / max(float(np.sqrt(offset @ offset)), 1e-9), 0.0), 1.0)
        return Anchor(u=self.focal * float(cam[0]) / depth + self.cx,
                      v=self.focal * float(cam[1]) / depth + self.cy,
                      scale=self.focal / depth, depth=depth, tilt=tilt, lateral=float(cam[0]) / depth)

    def intrinsics_P(self) -> np.ndarray:
        """3x4 projection matrix of the rectified camera (KITTI P2 layout: K [I | 0])."""
        return np.array([[self.focal, 0.0, self.cx, 0.0],
                         [0.0, self.focal, self.cy, 0.0],
                         [0.0, 0.0, 1.0, 0.0]])

    def horizon_row(self) -> float:
        """Image row of the horizon (the camera never rolls, so it is a horizontal line)."""
        right, down, forward = self.axes()
        if abs(down[1]) < 1e-9:
            return -1e9
        return self.cy + self.focal * (-forward[1] / down[1])

    def ground_homography(self, x0: float, z0: float, metres_per_pixel: float) -> np.ndarray:
        """3x3 homography from ground-texture pixels (col i, row j) <-> world (x0 + i*m, 0,
        z0 + j*m) to image pixels."""
        K = self.intrinsics_P()[:, :3]
        R = self.rotation()
        world_to_image = K @ np.stack([R[:, 0], R[:, 2], -R @ self.position], axis=1)
        texture_to_world = np.array([[metres_per_pixel, 0, x0], [0, metres_per_pixel, z0], [0, 0, 1.0]])
        # cv2 pixel centres are integers; ours are at +0.5
        shift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])
        return shift @ world_to_image @ texture_to_world

    def ground_coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every pixel centre, where its ray hits the ground plane y = 0.

        Returns (x, z, hit): float arrays (H,W) of world x and z and a bool mask of pixels whose
        ray goes down (below the horizon) and reaches the plane."""
        right, down, forward = self.axes()
        us = (np.arange(self.width) + 0.5 - self.cx) / self.focal
        vs = (np.arange(self.height) + 0.5 - self.cy) / self.focal
        # Ray direction per pixel: forward + u * right + v * down (only the y and x/z parts).
        dir_y = forward[1] + vs[:, None] * down[1] + us[None, :] * right[1]
        dir_x = forward[0] + vs[:, None] * down[0] + us[None, :] * right[0]
        dir_z = forward[2] + vs[:, None] * down[2] + us[None, :] * right[2]
        hit = dir_y < -1e-6
        t = np.where(hit, -self.position[1] / np.where(hit, dir_y, -1.0), 0.0)
        return self.position[0] + t * dir_x, self.position[2] + t * dir_z, hit


@dataclass
class Anchor:
    """Projection of an object's bottom-centre point: pixel (u, v), pixels per metre at that
    depth (`scale`), camera depth, sin(elevation) of the viewing ray (`tilt`) and the ray's
    horizontal slope x/z (`lateral`, > 0 right of the optical axis)."""

    u: float
    v: float
    scale: float
    depth: float
    tilt: float
    lateral: float


@dataclass
class Primitive:
    """One shaded shape in pixel space.

    Round shapes ("sphere", "cylinder", "cone"): (u, v) is the bottom centre of the
    silhouette, `width` / `height` its size in pixels and `tilt` sin(elevation) of the viewing
    ray, i.e. how much of a top face or base ellipse is seen (0 = eye level, 1 = from above).
    "polygons": flat faces already projected to pixels, each (corners (k,2), intensity); see
    `box_primitive`, which builds a correctly foreshortened box this way."""

    shape: str
    u: float
    v: float
    width: float
    height: float
    color: tuple[float, float, float]
    tilt: float = 0.3
    specular: float = 0.0
    polygons: list = field(default_factory=list)

    def bounds(self) -> tuple[float, float, float, float]:
        """Unclipped pixel bounds (x1, y1, x2, y2) of the silhouette."""
        half = self.width / 2.0
        if self.shape == "polygons":
            pts = np.concatenate([np.asarray(c) for c, _ in self.polygons])
            return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())
        if self.shape == "sphere":
            return self.u - half, self.v - self.width, self.u + half, self.v
        # cylinder and cone: bottom ellipse below v, top ellipse (cylinder) above v - height
        base = half * self.tilt
        top = base if self.shape == "cylinder" else 0.0
        return self.u - half, self.v - self.height - top, self.u + half, self.v + base


@dataclass
class Sprite:
    """A scene object made of primitives, drawn in the given order (later = in front).
    `object_id` >= 1 goes to the id buffer; 0 means unannotated background scenery."""

    object_id: int
    depth: float
    primitives: list[Primitive] = field(default_factory=list)

    def bounds(self) -> tuple[float, float, float, float]:
        b = np.array([p.bounds() for p in self.primitives])
        return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


# Light for flat faces of boxes, in world coordinates (y up): high, from the left and behind
# the usual camera position, so tops are bright, sides and fronts differ.
_WORLD_LIGHT = np.array([-0.45, 0.8, -0.4])
_WORLD_LIGHT = _WORLD_LIGHT / np.linalg.norm(_WORLD_LIGHT)
# The 6 faces of a box as corner indices (corners: bottom 0-3, top 4-7, counter-clockwise
# from above starting at (-x, -z)) with their outward normals in the box frame.
_BOX_FACES = [((0, 1, 2, 3), (0.0, -1.0, 0.0)), ((4, 5, 6, 7), (0.0, 1.0, 0.0)),
              ((0, 1, 5, 4), (0.0, 0.0, -1.0)), ((1, 2, 6, 5), (1.0, 0.0, 0.0)),
              ((2, 3, 7, 6), (0.0, 0.0, 1.0)), ((3, 0, 4, 7), (-1.0, 0.0, 0.0))]
NEAR_PLANE = 0.3  # metres; faces are clipped against it so boxes beside the camera still draw


_FACE_INDEX = np.array([f for f, _ in _BOX_FACES])
_FACE_NORMALS = np.array([n for _, n in _BOX_FACES])


def box_primitive(camera: "Camera", bottom_center, size, yaw: float, color,
                  lift: float = 0.0) -> Primitive | None:
    """An upright box in world space, projected with true perspective.

    bottom_center: world (x, y, z) of the bottom face centre; size: (width along the box's x,
    height, length along its z); yaw: rotation about the vertical axis. Faces turned away from
    the camera are culled; the rest are clipped at the near plane and flat shaded. Returns None
    when nothing is in front of the camera."""
    w, h, l = size
    c, s_ = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0.0, s_], [0.0, 1.0, 0.0], [-s_, 0.0, c]])  # yaw about +y (x towards z)
    half = np.array([w / 2, 0.0, l / 2])
    local = np.array([[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]] * 2, dtype=np.float64) * half
    local[4:, 1] = h
    corners = local @ rot.T + (np.asarray(bottom_center, dtype=np.float64) + [0.0, lift, 0.0])
    normals = _FACE_NORMALS @ rot.T
    face_centers = corners[_FACE_INDEX].mean(axis=1)
    facing = np.einsum("ij,ij->i", normals, camera.position - face_centers) > 1e-9
    if not facing.any():
        return None
    cam_corners = camera.to_camera(corners)
    intensities = AMBIENT + DIFFUSE * np.clip(normals @ _WORLD_LIGHT, 0.0, None)
    polygons = []
    for f in np.flatnonzero(facing):
        poly = cam_corners[_FACE_INDEX[f]]
        if poly[:, 2].min() < NEAR_PLANE:
            poly = _clip_near(poly)
            if len(poly) < 3:
                continue
        uv = np.empty((len(poly), 2))
        uv[:, 0] = camera.focal * poly[:, 0] / poly[:, 2] + camera.cx
        uv[:, 1] = camera.focal * poly[:, 1] / poly[:, 2] + camera.cy
        polygons.append((uv, float(intensities[f])))
    if not polygons:
        return None
    return Primitive("polygons", 0.0, 0.0, 0.0, 0.0, tuple(color), polygons=polygons)


def _clip_near(poly: np.ndarray) -> np.ndarray:
    """Clip a convex polygon in camera coordinates to z >= NEAR_PLANE (Sutherland-Hodgman)."""
    if (poly[:, 2] >= NEAR_PLANE).all():
        return poly
    out = []
    for i in range(len(poly)):
        a, b = poly[i], poly[(i + 1) % len(poly)]
        a_in, b_in = a[2] >= NEAR_PLANE, b[2] >= NEAR_PLANE
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (NEAR_PLANE - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out) if out else np.zeros((0, 3))


def _shade(nx: np.ndarray, ny: np.ndarray, nz: np.ndarray, specular: float) -> np.ndarray:
    """Blinn-Phong intensity for unit normals (image-space)."""
    lambert = np.clip(nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2], 0.0, 1.0)
    intensity = AMBIENT + DIFFUSE * lambert
    if specular > 0.0:
        spec = np.clip(nx * _HALF[0] + ny * _HALF[1] + nz * _HALF[2], 0.0, 1.0) ** 24
        intensity = intensity + specular * spec
    return intensity


def _flat(n: tuple[float, float, float]) -> float:
    """Intensity of a flat face with (unnormalised) normal n."""
    x, y, z = n
    norm = (x * x + y * y + z * z) ** 0.5
    lambert = (x * _LIGHT[0] + y * _LIGHT[1] + z * _LIGHT[2]) / norm
    return AMBIENT + DIFFUSE * min(max(float(lambert), 0.0), 1.0)


_SHADE_LEVELS = 256
_SHADE_MAX = AMBIENT + DIFFUSE + 0.8  # brightest intensity a shaded pixel can reach (specular)


class _Palette:
    """Colours of one sprite patch: pixels hold uint16 labels, a lookup table turns them into
    RGB. Flat faces take one entry each; a shaded round primitive takes _SHADE_LEVELS entries
    (its intensity quantised to 1/255 of the range, invisible after 8-bit output anyway)."""

    _shaded_cache: dict = {}  # colour -> (_SHADE_LEVELS, 3) uint8; objects keep their colours

    def __init__(self):
        self.rows = [np.zeros((1, 3), np.uint8)]  # label 0: empty
        self.size = 1

    def flat(self, color: np.ndarray, intensity: float) -> int:
        self.rows.append(np.array([[min(max(int(c * intensity * 255 + 0.5), 0), 255) for c in color]], np.uint8))
        self.size += 1
        return self.size - 1

    def shaded(self, color: np.ndarray) -> int:
        key = tuple(float(c) for c in color)
        table = self._shaded_cache.get(key)
        if table is None:
            levels = np.arange(_SHADE_LEVELS, dtype=np.float64)[:, None] * (_SHADE_MAX / (_SHADE_LEVELS - 1))
            table = np.clip(np.asarray(key) * levels * 255 + 0.5, 0, 255).astype(np.uint8)
            if len(self._shaded_cache) > 4096:
                self._shaded_cache.clear()
            self._shaded_cache[key] = table
        self.rows.append(table)
        self.size += _SHADE_LEVELS
        return self.size - _SHADE_LEVELS

    def table(self) -> np.ndarray:
        return np.concatenate(self.rows)


def _quantise(intensity: np.ndarray) -> np.ndarray:
    scaled = intensity * ((_SHADE_LEVELS - 1) / _SHADE_MAX) + 0.5
    return np.clip(scaled, 0, _SHADE_LEVELS - 1).astype(np.uint16)


def _draw_primitive(prim: Primitive, xs: np.ndarray, ys: np.ndarray, x0: int, y0: int,
                    labels: np.ndarray, palette: _Palette) -> None:
    """Draw `prim` into the label patch (uint16 (h,w), top-left pixel (x0, y0)); later
    primitives overwrite earlier ones. xs / ys: pixel-centre coordinates of columns / rows."""
    color = np.asarray(prim.color, dtype=np.float64)
    half = np.float32(max(prim.width / 2.0, 0.5))
    X = xs[None, :]
    Y = ys[:, None]
    if prim.shape == "sphere":
        cyp = np.float32(prim.v) - half
        dx, dy = (X - np.float32(prim.u)) / half, (Y - cyp) / half
        d2 = dx * dx + dy * dy
        inside = d2 <= 1.0
        nz = np.sqrt(np.maximum(1.0 - d2[inside], 0.0))
        rows, cols = np.nonzero(inside)
        intensity = _shade(dx[0, cols], dy[rows, 0], nz, prim.specular)
        labels[inside] = palette.shaded(color) + _quantise(intensity)
        return
    if prim.shape in ("cylinder", "cone"):
        tilt = np.float32(max(prim.tilt, 0.02))
        v, height = np.float32(prim.v), np.float32(prim.height)
        dx = (X - np.float32(prim.u)) / half                       # (1,w)
        below = (Y >= v) & (dx * dx + ((Y - v) / (half * tilt)) ** 2 <= 1.0)
        if prim.shape == "cylinder":
            body = (np.abs(dx) <= 1.0) & (Y >= v - height) & (Y < v)
            side = body | below
            nx = np.clip(dx, -1.0, 1.0)
            column_shade = _quantise(_shade(nx, 0.0 * nx, np.sqrt(1.0 - nx * nx), prim.specular))  # (1,w)
            base = palette.shaded(color)
            labels[side] = (base + np.broadcast_to(column_shade, side.shape))[side]
            top_y = v - height
            top = (dx * dx + ((Y - top_y) / (half * tilt)) ** 2 <= 1.0) & (Y < top_y + half * tilt)
            labels[top] = palette.flat(color, _flat((0.0, -float(np.sqrt(1.0 - tilt * tilt)), float(tilt))))
            return
        # cone: apex at (u, v - height), base ellipse at v
        frac = np.clip((v - Y) / max(height, 1e-6), 0.0, 1.0)  # 0 at base, 1 at apex
        halfwidth = half * (1.0 - frac)                         # (h,1)
        body = (Y <= v) & (Y >= v - height) & (np.abs(X - np.float32(prim.u)) <= halfwidth)
        side = body | below
        rows, cols = np.nonzero(side)
        nx = np.clip((xs[cols] - np.float32(prim.u)) / np.maximum(halfwidth[rows, 0], 1e-3), -1.0, 1.0)
        nx = np.where(below[rows, cols], np.clip(dx[0, cols], -1.0, 1.0), nx)
        slope = np.float32(half / max(height, 1e-6))  # the surface leans back: normal points up a bit
        nz = np.sqrt(np.clip(1.0 - nx * nx, 0.0, 1.0))
        norm = np.sqrt(nx * nx + slope * slope + nz * nz)
        intensity = _shade(nx / norm, -slope / norm, nz / norm, prim.specular)
        labels[rows, cols] = palette.shaded(color) + _quantise(intensity)
        return
    if prim.shape == "polygons":
        for corners, intensity in prim.polygons:
            # cv2 rasterises integer coordinates; 4 fractional bits keep sub-pixel accuracy
            pts = np.round((corners - (x0 + 0.5, y0 + 0.5)) * 16).astype(np.int32)
            cv2.fillPoly(labels, [pts], palette.flat(color, intensity), lineType=cv2.LINE_8, shift=4)
        return
    raise ValueError(f"unknown primitive shape {prim.shape!r}")


def render_sprite(sprite: Sprite, width: int, height: int):
    """Rasterise a sprite alone (no occluders).

    Returns (x0, y0, mask, rgb_uint8, unclipped_bounds) with the patch clipped to the image, or
    None when the sprite lies completely outside the image."""
    bx1, by1, bx2, by2 = sprite.bounds()
    x0, y0 = max(int(np.floor(bx1)), 0), max(int(np.floor(by1)), 0)
    x1, y1 = min(int(np.ceil(bx2)) + 1, width), min(int(np.ceil(by2)) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5
    labels = np.zeros((y1 - y0, x1 - x0), dtype=np.uint16)
    palette = _Palette()
    for prim in sprite.primitives:
        _draw_primitive(prim, xs, ys, x0, y0, labels, palette)
    mask = labels > 0
    if not mask.any():
        return None
    patch = palette.table()[labels]
    return x0, y0, mask, patch, (bx1, by1, bx2, by2)


@dataclass
class RenderedFrame:
    """Result of compositing sprites.

    For object ids 1..max_id (index = id): `full_pixels` (unoccluded mask area inside the image),
    `visible_pixels` (pixels still showing the object), `boxes` (tight x1,y1,x2,y2 of the full
    mask inside the image, in pixel-edge coordinates; NaN when not in the image) and
    `truncation` (1 - in-image share of the unclipped silhouette bounds)."""

    image: np.ndarray
    id_buffer: np.ndarray
    full_pixels: np.ndarray
    visible_pixels: np.ndarray
    boxes: np.ndarray
    truncation: np.ndarray

    def visibility(self) -> np.ndarray:
        """Visible fraction per id (0 where the object is not in the image)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = self.visible_pixels / self.full_pixels
        return np.where(self.full_pixels > 0, frac, 0.0)


def composite(background: np.ndarray, sprites: list[Sprite], max_id: int) -> RenderedFrame:
    """Draw sprites far to near (largest depth first; ties keep list order) over a copy of
    `background` (uint8 H,W,3) and measure every annotated object's visibility."""
    image = background.copy()
    height, width = image.shape[:2]
    id_buffer = np.zeros((height, width), dtype=np.int32)
    full = np.zeros(max_id + 1, dtype=np.int64)
    boxes = np.full((max_id + 1, 4), np.nan)
    truncation = np.zeros(max_id + 1)
    order = sorted(range(len(sprites)), key=lambda i: -sprites[i].depth)
    for i in order:
        sprite = sprites[i]
        drawn = render_sprite(sprite, width, height)
        if drawn is None:
            continue
        x0, y0, mask, patch, (bx1, by1, bx2, by2) = drawn
        h, w = mask.shape
        np.copyto(image[y0:y0 + h, x0:x0 + w], patch, where=mask[..., None])
        np.copyto(id_buffer[y0:y0 + h, x0:x0 + w], sprite.object_id, where=mask)
        oid = sprite.object_id
        if oid <= 0:
            continue
        full[oid] = int(mask.sum())
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        boxes[oid] = [x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1]
        area_all = max((bx2 - bx1) * (by2 - by1), 1e-9)
        area_in = max(0.0, min(bx2, width) - max(bx1, 0)) * max(0.0, min(by2, height) - max(by1, 0))
        truncation[oid] = float(np.clip(1.0 - area_in / area_all, 0.0, 1.0))
    visible = np.bincount(id_buffer.ravel(), minlength=max_id + 1)[: max_id + 1].astype(np.int64)
    visible[0] = 0
    return RenderedFrame(image, id_buffer, full, visible, boxes, truncation)


def fill_polygons(image: np.ndarray, primitive: Primitive) -> None:
    """Paint a "polygons" primitive straight into an image (for backdrop scenery that nothing
    stands behind, so it needs no mask, id or depth sorting)."""
    color = np.asarray(primitive.color, dtype=np.float64)
    for corners, intensity in primitive.polygons:
        pts = np.round((np.asarray(corners) - 0.5) * 16).astype(np.int32)
        rgb = tuple(int(c) for c in np.clip(intensity * color * 255 + 0.5, 0, 255))
        cv2.fillPoly(image, [pts], rgb, lineType=cv2.LINE_8, shift=4)


def draw_ground(camera: Camera, sky: np.ndarray, texture: np.ndarray, x0: float, z0: float,
                metres_per_pixel: float, border_color) -> np.ndarray:
    """Background image: the ground texture (uint8 (h,w,3), texel (i,j) at world
    (x0 + i*m, z0 + j*m)) warped into the image below the horizon, `sky` (uint8 (H,W,3)) above.
    A homography warp costs about a millisecond, so moving cameras stay cheap."""
    H = camera.ground_homography(x0, z0, metres_per_pixel)
    border = tuple(int(c) for c in border_color)
    ground = cv2.warpPerspective(texture, H, (camera.width, camera.height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    # rows at and above the horizon map to points behind the camera: show the sky there
    first_ground_row = int(np.clip(np.floor(camera.horizon_row()) + 2, 0, camera.height))
    ground[:first_ground_row] = sky[:first_ground_row]
    return ground


def vertical_gradient(height: int, width: int, top: tuple, bottom: tuple) -> np.ndarray:
    """uint8 (H,W,3) image blending from `top` to `bottom` RGB (0..1)."""
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    rows = (1 - t) * np.asarray(top) + t * np.asarray(bottom)
    return np.broadcast_to(np.clip(rows * 255 + 0.5, 0, 255).astype(np.uint8), (height, width, 3)).copy()

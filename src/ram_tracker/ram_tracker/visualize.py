"""Pictures of what the tracker believes (no ROS): the node's debug_image, the demo filmstrip
and the evaluation report all draw with these functions.

Visible tracks: solid box with id. Occluded tracks: dashed box at the walker's argmax, id with
'?', and the walker's belief as a heatmap (normalised to its peak, so a diffuse belief is as
visible as a sharp one; the confidence is printed). Lost: nothing.
"""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

from ram_tracker.pipeline import Belief, TrackOutput


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, distinct RGB colour per id (golden-ratio hue steps)."""
    hue = (track_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def belief_image(belief: Belief, width: int, height: int) -> np.ndarray:
    """The belief resampled onto the source image: (height, width) float32, peak 1."""
    prob = belief.probability.astype(np.float32)
    peak = float(prob.max())
    if peak <= 0:
        return np.zeros((height, width), np.float32)
    grid_h, grid_w = prob.shape
    # Affine map from grid cells to pixels: cell (c, r) covers [origin + c * cell, ...).
    matrix = np.array([[belief.cell_width, 0, belief.origin_x + belief.cell_width / 2 - 0.5],
                       [0, belief.cell_height, belief.origin_y + belief.cell_height / 2 - 0.5]],
                      np.float32)
    out = cv2.warpAffine(prob / peak, matrix, (width, height), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def draw_tracks(rgb: np.ndarray, tracks: list[TrackOutput], beliefs: list[Belief]) -> np.ndarray:
    """A copy of `rgb` with beliefs, boxes and ids drawn on it."""
    canvas = rgb.copy()
    height, width = canvas.shape[:2]
    if beliefs:
        heat = np.zeros((height, width), np.float32)
        for belief in beliefs:
            heat = np.maximum(heat, belief_image(belief, width, height))
        coloured = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
        alpha = (np.clip(heat, 0, 1) * 0.6)[:, :, None]
        canvas = (canvas * (1 - alpha) + coloured * alpha).astype(np.uint8)
    thickness = max(1, round(width / 640))
    for track in tracks:
        if track.state == 'lost':
            continue
        cx, cy, w, h = track.box_cxcywh
        p1 = (int(round(cx - w / 2)), int(round(cy - h / 2)))
        p2 = (int(round(cx + w / 2)), int(round(cy + h / 2)))
        colour = track_colour(track.track_id)
        if track.state == 'visible':
            cv2.rectangle(canvas, p1, p2, colour, thickness)
            label = f'{track.track_id} {track.class_name}'
        else:
            _dashed_rectangle(canvas, p1, p2, colour, thickness)
            cv2.drawMarker(canvas, (int(cx), int(cy)), colour, cv2.MARKER_CROSS,
                           max(6, int(min(w, h) / 3)), thickness)
            label = f'{track.track_id}? {track.walker_confidence:.2f}'
        scale = 0.4 * thickness
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(p1[1], th + 2)
        cv2.rectangle(canvas, (p1[0], top - th - 2), (p1[0] + tw + 2, top), colour, -1)
        cv2.putText(canvas, label, (p1[0] + 1, top - 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def _dashed_rectangle(img, p1, p2, colour, thickness, dash=6):
    (x1, y1), (x2, y2) = p1, p2
    for start, end in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)),
                       ((x1, y2), (x1, y1))):
        length = int(np.hypot(end[0] - start[0], end[1] - start[1]))
        for s in range(0, max(length, 1), dash * 2):
            e = min(s + dash, length)
            a = (int(start[0] + (end[0] - start[0]) * s / max(length, 1)),
                 int(start[1] + (end[1] - start[1]) * s / max(length, 1)))
            b = (int(start[0] + (end[0] - start[0]) * e / max(length, 1)),
                 int(start[1] + (end[1] - start[1]) * e / max(length, 1)))
            cv2.line(img, a, b, colour, thickness)


def filmstrip(frames: list[np.ndarray], columns: int = 4, width: int = 320) -> np.ndarray:
    """Tile frames (RGB) into one image, each resized to `width` pixels wide."""
    if not frames:
        raise ValueError('filmstrip needs at least one frame')
    h0, w0 = frames[0].shape[:2]
    height = max(1, round(h0 * width / w0))
    tiles = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)

"""sensor_msgs/Image bytes -> numpy RGB, without cv_bridge.

Why not cv_bridge: there is no ROS 2 cv_bridge on PyPI, and PyPI `cv-bridge` is a ROS-1-era port
that breaks with numpy 2. The conversion is small: respect `step` (rows may be padded), the
channel order of the encoding, and reject anything inconsistent with a message that names the
problem. This module imports no ROS: the node passes the message fields in.
"""
from __future__ import annotations

import numpy as np

# encoding -> (channels, index order that turns the stored channels into R, G, B)
_ENCODINGS = {
    'rgb8': (3, (0, 1, 2)),
    'bgr8': (3, (2, 1, 0)),
    'rgba8': (4, (0, 1, 2)),
    'bgra8': (4, (2, 1, 0)),
    'mono8': (1, (0, 0, 0)),
}

SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


class ImageConversionError(ValueError):
    """The image message cannot be interpreted; the message says why."""


def image_to_rgb(encoding: str, height: int, width: int, step: int, data,
                 is_bigendian: int = 0) -> np.ndarray:
    """Return a contiguous (height, width, 3) uint8 RGB array.

    `data` is the message's byte buffer (bytes, bytearray, memoryview, array.array or a
    uint8 numpy array). Only 8-bit encodings exist in SUPPORTED_ENCODINGS, so `is_bigendian`
    does not matter; it is accepted to mirror the message.
    """
    del is_bigendian  # 8-bit channels have no byte order
    if encoding not in _ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'empty image: {width}x{height}')
    channels, order = _ENCODINGS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than width*channels = {width}*{channels} = {row_bytes} '
            f'for {encoding}')
    buffer = np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8) \
        if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    # The last row may be unpadded, but every row before it occupies a full `step`.
    needed = step * (height - 1) + row_bytes
    if buffer.size < needed:
        raise ImageConversionError(
            f'data has {buffer.size} bytes, {encoding} {width}x{height} with step {step} '
            f'needs {step * height}')
    if buffer.size > step * height:
        raise ImageConversionError(
            f'data has {buffer.size} bytes, more than step*height = {step}*{height} = '
            f'{step * height}')
    rows = np.lib.stride_tricks.as_strided(
        buffer, shape=(height, width, channels), strides=(step, channels, 1), writeable=False)
    if channels == 1:
        return np.ascontiguousarray(np.repeat(rows, 3, axis=2))
    return np.ascontiguousarray(rows[:, :, list(order)])


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = 'rgb8') -> dict:
    """Inverse of image_to_rgb, for publishing: the fields of a sensor_msgs/Image holding `rgb`
    (H, W, 3) uint8 in `encoding` (mono8 uses ITU-R 601 luma; alpha is opaque)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f'expected (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}')
    if encoding not in _ENCODINGS:
        raise ImageConversionError(
            f"cannot encode to '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    channels, order = _ENCODINGS[encoding]
    if channels == 1:
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        pixels = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[:, :, None]
    else:
        pixels = rgb[:, :, list(order)]
        if channels == 4:
            alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
            pixels = np.concatenate([pixels, alpha], axis=2)
    height, width = rgb.shape[:2]
    return {'encoding': encoding, 'height': height, 'width': width, 'step': width * channels,
            'is_bigendian': 0, 'data': np.ascontiguousarray(pixels).tobytes()}

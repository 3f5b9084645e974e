"""sensor_msgs/Image (and CompressedImage) bytes -> numpy RGB, without cv_bridge.

Why not cv_bridge: there is no ROS 2 cv_bridge on PyPI, and PyPI `cv-bridge` is a ROS-1-era port
that breaks with numpy 2. The conversion is small: respect `step` (rows may be padded), the
channel order of the encoding, and reject anything inconsistent with a message that names the
problem. YUV 4:2:2 (what USB/V4L2 cameras send) and compressed images (jpeg/png, what most
bags hold) are converted by OpenCV. This module imports no ROS: the node passes the message
fields in.
"""
from __future__ import annotations

import cv2
import numpy as np

# encoding -> (channels, OpenCV conversion of the stored channels to RGB; None: already RGB,
# one copy). OpenCV does a channel swap in one SIMD pass: numpy's fancy-indexed swap of a full
# KITTI frame (1242x375) took 4.4 ms per frame on the node's hot path, cvtColor 0.1 ms.
_ENCODINGS = {
    'rgb8': (3, None),
    'bgr8': (3, cv2.COLOR_BGR2RGB),
    'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, cv2.COLOR_BGRA2RGB),
    'mono8': (1, cv2.COLOR_GRAY2RGB),
}
# The inverse, for publishing (mono8 is ITU-R 601 luma, computed in rgb_to_image_fields).
_FROM_RGB = {'rgb8': None, 'bgr8': cv2.COLOR_RGB2BGR, 'rgba8': cv2.COLOR_RGB2RGBA,
             'bgra8': cv2.COLOR_RGB2BGRA}

# YUV 4:2:2, 8 bits, two bytes a pixel, U and V shared by each pair of pixels (BT.601, as V4L2
# cameras send it). sensor_msgs/image_encodings: yuyv (deprecated name yuv422_yuy2) is
# Y0 U Y1 V; uyvy (deprecated name yuv422) is U Y0 V Y1. encoding -> OpenCV conversion.
_YUV422_ENCODINGS = {
    'yuyv': cv2.COLOR_YUV2RGB_YUYV,
    'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUYV,
    'uyvy': cv2.COLOR_YUV2RGB_UYVY,
    'yuv422': cv2.COLOR_YUV2RGB_UYVY,
}

SUPPORTED_ENCODINGS = tuple(_ENCODINGS) + tuple(_YUV422_ENCODINGS)


class ImageConversionError(ValueError):
    """The image message cannot be interpreted; the message says why."""


def image_to_rgb(encoding: str, height: int, width: int, step: int, data,
                 is_bigendian: int = 0) -> np.ndarray:
    """Return a contiguous (height, width, 3) uint8 RGB array.

    `data` is the message's byte buffer (bytes, bytearray, memoryview, array.array or a
    uint8 numpy array). Every encoding in SUPPORTED_ENCODINGS has 8-bit samples, so
    `is_bigendian` does not matter; it is accepted to mirror the message.
    """
    del is_bigendian  # 8-bit channels have no byte order
    if encoding not in _ENCODINGS and encoding not in _YUV422_ENCODINGS:
        raise ImageConversionError(
            f"unsupported encoding '{encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'empty image: {width}x{height}')
    if encoding in _YUV422_ENCODINGS:
        if width % 2:
            raise ImageConversionError(
                f'odd width {width} for {encoding}: 4:2:2 stores pixels in pairs')
        rows = _pixel_rows(encoding, height, width, step, data, 2)
        # cvtColor wants contiguous (H, W, 2) input; the result is a new (H, W, 3) array.
        return cv2.cvtColor(np.ascontiguousarray(rows), _YUV422_ENCODINGS[encoding])
    channels, to_rgb = _ENCODINGS[encoding]
    rows = _pixel_rows(encoding, height, width, step, data, channels)
    if to_rgb is None:
        return np.array(rows)                       # a copy: never an alias of the message
    # cvtColor reads the padded rows in place (their pixels are contiguous) and returns a new
    # contiguous (H, W, 3) array.
    return cv2.cvtColor(rows[:, :, 0] if channels == 1 else rows, to_rgb)


def _pixel_rows(encoding: str, height: int, width: int, step: int, data,
                channels: int) -> np.ndarray:
    """A read-only (height, width, channels) uint8 view of `data`, rows `step` bytes apart;
    ImageConversionError if step or the buffer size does not fit."""
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageConversionError(
            f'step {step} is smaller than width*channels = {width}*{channels} = {row_bytes} '
            f'for {encoding}')
    buffer = _as_bytes(data)
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
    return np.lib.stride_tricks.as_strided(
        buffer, shape=(height, width, channels), strides=(step, channels, 1), writeable=False)


def _as_bytes(data) -> np.ndarray:
    """A flat uint8 view of a message buffer (bytes, bytearray, memoryview, array.array, numpy)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast('B'), dtype=np.uint8)


def compressed_to_rgb(format: str, data) -> np.ndarray:   # noqa: A002 - the message's field
    """sensor_msgs/CompressedImage -> contiguous (height, width, 3) uint8 RGB.

    `format` is the message's (image_transport writes e.g. 'jpeg', 'png', 'rgb8; jpeg
    compressed bgr8'); the bytes say what they are, so OpenCV decodes any jpeg or png whatever
    the format string. ImageConversionError for an empty or undecodable buffer.
    """
    buffer = _as_bytes(data)
    if buffer.size == 0:
        raise ImageConversionError(f"empty compressed image (format '{format}')")
    # IMREAD_COLOR: grey and alpha images come back as 3-channel BGR.
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.size == 0:
        raise ImageConversionError(
            f"cannot decode compressed image (format '{format}', {buffer.size} bytes): "
            'not a complete jpeg or png')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image_fields(rgb: np.ndarray, encoding: str = 'rgb8') -> dict:
    """Inverse of image_to_rgb, for publishing: the fields of a sensor_msgs/Image holding `rgb`
    (H, W, 3) uint8 in `encoding` (mono8 uses ITU-R 601 luma; alpha is opaque)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageConversionError(f'expected (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}')
    if encoding not in _ENCODINGS:
        raise ImageConversionError(
            f"cannot encode to '{encoding}' (supported: {', '.join(_ENCODINGS)})")
    channels = _ENCODINGS[encoding][0]
    if channels == 1:
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        pixels = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[:, :, None]
    elif _FROM_RGB[encoding] is None:
        pixels = rgb
    else:
        pixels = cv2.cvtColor(np.ascontiguousarray(rgb), _FROM_RGB[encoding])   # alpha: 255
    height, width = rgb.shape[:2]
    return {'encoding': encoding, 'height': height, 'width': width, 'step': width * channels,
            'is_bigendian': 0, 'data': np.ascontiguousarray(pixels).tobytes()}

import array

import numpy as np
import pytest

from ram_tracker.image_conversion import (ImageConversionError, compressed_to_rgb,
                                          image_to_rgb, rgb_to_image_fields)


def _reference(h=5, w=7):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _pack(pixels: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Rows of `pixels` (H, W, C) with `pad` garbage bytes after each row."""
    h, w, c = pixels.shape
    step = w * c + pad
    buf = np.full((h, step), 0xAB, dtype=np.uint8)
    buf[:, :w * c] = pixels.reshape(h, w * c)
    return buf.tobytes(), step


@pytest.mark.parametrize('pad', [0, 3, 64])
@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_colour_encodings_with_row_padding(encoding, pad):
    rgb = _reference()
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    stored = {'rgb8': rgb, 'bgr8': rgb[:, :, ::-1],
              'rgba8': np.concatenate([rgb, alpha], 2),
              'bgra8': np.concatenate([rgb[:, :, ::-1], alpha], 2)}[encoding]
    data, step = _pack(np.ascontiguousarray(stored), pad)
    out = image_to_rgb(encoding, rgb.shape[0], rgb.shape[1], step, data)
    assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize('pad', [0, 1])
def test_mono8_replicates_grey(pad):
    grey = _reference()[:, :, :1]
    data, step = _pack(grey, pad)
    out = image_to_rgb('mono8', grey.shape[0], grey.shape[1], step, data)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey[:, :, 0])


def test_last_row_may_be_unpadded_and_buffer_types():
    rgb = _reference()
    data, step = _pack(rgb, 5)
    trimmed = data[:-5]
    for buf in (trimmed, bytearray(trimmed), memoryview(trimmed), array.array('B', trimmed),
                np.frombuffer(trimmed, np.uint8)):
        np.testing.assert_array_equal(image_to_rgb('rgb8', 5, 7, step, buf), rgb)


def test_output_does_not_alias_message_buffer():
    rgb = _reference()
    data = bytearray(rgb.tobytes())
    out = image_to_rgb('rgb8', 5, 7, 21, data)
    data[0] ^= 0xFF
    assert out[0, 0, 0] == rgb[0, 0, 0]


@pytest.mark.parametrize('kwargs, message', [
    (dict(encoding='nv12', height=2, width=2, step=2, data=b'\0' * 6), 'unsupported encoding'),
    (dict(encoding='16UC1', height=2, width=2, step=4, data=b'\0' * 8), 'unsupported encoding'),
    (dict(encoding='rgb8', height=0, width=4, step=12, data=b''), 'empty image'),
    (dict(encoding='rgb8', height=2, width=0, step=0, data=b''), 'empty image'),
    (dict(encoding='rgb8', height=2, width=4, step=10, data=b'\0' * 24), 'step 10 is smaller'),
    (dict(encoding='rgb8', height=2, width=4, step=12, data=b'\0' * 20), 'data has 20 bytes'),
    (dict(encoding='mono8', height=2, width=4, step=4, data=b'\0' * 9), r'more than step\*height'),
])
def test_bad_images_raise_clear_errors(kwargs, message):
    with pytest.raises(ImageConversionError, match=message):
        image_to_rgb(**kwargs)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_round_trip_for_publishing(encoding):
    rgb = _reference()
    fields = rgb_to_image_fields(rgb, encoding)
    back = image_to_rgb(fields['encoding'], fields['height'], fields['width'], fields['step'],
                        fields['data'])
    np.testing.assert_array_equal(back, rgb)


def test_mono8_publishing_uses_luma():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    fields = rgb_to_image_fields(rgb, 'mono8')
    assert fields['step'] == 4
    assert list(fields['data']) == [76, 150, 29, 255]


# -- YUV 4:2:2 (USB cameras: V4L2 YUYV / UYVY) ---------------------------------------------------
# Colours in pairs of pixels (4:2:2 shares U and V between two neighbours): red, green, blue,
# grey, white, black, and a mid orange.
_YUV_COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128],
                         [255, 255, 255], [0, 0, 0], [200, 120, 40]], np.float64)


def _bt601_video_range(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB 0..255 -> Y, U (Cb), V (Cr) bytes, ITU-R BT.601, video range (Y 16..235)."""
    r, g, b = (rgb[..., i] / 255.0 for i in range(3))
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return np.clip(np.rint(np.stack([y, u, v], -1)), 0, 255).astype(np.uint8)


def _yuv422_image(order: str, height: int = 3, pad: int = 0):
    """(expected RGB (H, 2*len(colours), 3), packed bytes, step): every row holds each colour
    in a pair of pixels; `order` 'yuyv' (Y0 U Y1 V) or 'uyvy' (U Y0 V Y1)."""
    width = 2 * len(_YUV_COLOURS)
    yuv = _bt601_video_range(_YUV_COLOURS)                    # (pairs, 3)
    y, u, v = yuv[:, 0], yuv[:, 1], yuv[:, 2]
    quads = np.stack([y, u, y, v] if order == 'yuyv' else [u, y, v, y], -1)   # (pairs, 4)
    row = quads.reshape(-1)
    step = width * 2 + pad
    buf = np.full((height, step), 0xAB, np.uint8)
    buf[:, :width * 2] = row
    rgb = np.repeat(np.repeat(_YUV_COLOURS[None], 2, axis=1), height, axis=0)
    return rgb, buf.tobytes(), step


@pytest.mark.parametrize('pad', [0, 4, 64])
@pytest.mark.parametrize('encoding, order', [('yuv422_yuy2', 'yuyv'), ('yuyv', 'yuyv'),
                                             ('uyvy', 'uyvy'), ('yuv422', 'uyvy')])
def test_yuv422_encodings_give_known_colours(encoding, order, pad):
    """sensor_msgs/image_encodings: yuyv (deprecated name yuv422_yuy2) stores Y0 U Y1 V, uyvy
    (deprecated name yuv422) U Y0 V Y1; both BT.601 video range, as V4L2 cameras send them."""
    expected, data, step = _yuv422_image(order, pad=pad)
    height, width = expected.shape[:2]
    out = image_to_rgb(encoding, height, width, step, data)
    assert out.dtype == np.uint8 and out.shape == (height, width, 3) and out.flags.c_contiguous
    np.testing.assert_allclose(out.astype(np.float64), expected, atol=3)
    # Pure red stays red (not swapped with blue, not luma only).
    assert out[0, 0, 0] > 250 and out[0, 0, 1] < 5 and out[0, 0, 2] < 5


def test_yuv422_last_row_may_be_unpadded_and_output_is_a_copy():
    expected, data, step = _yuv422_image('yuyv', pad=6)
    trimmed = bytearray(data[:-6])
    out = image_to_rgb('yuyv', expected.shape[0], expected.shape[1], step, trimmed)
    np.testing.assert_allclose(out.astype(np.float64), expected, atol=3)
    before = out.copy()
    trimmed[:] = bytes(len(trimmed))
    np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize('kwargs, message', [
    (dict(encoding='yuyv', height=2, width=3, step=6, data=b'\0' * 12), 'odd width 3'),
    (dict(encoding='uyvy', height=2, width=4, step=8, data=b'\0' * 12), 'data has 12 bytes'),
    (dict(encoding='yuv422', height=2, width=4, step=6, data=b'\0' * 16), 'step 6 is smaller'),
    (dict(encoding='yuv422_yuy2', height=2, width=4, step=8, data=b'\0' * 17),
     r'more than step\*height'),
])
def test_bad_yuv422_images_raise_clear_errors(kwargs, message):
    with pytest.raises(ImageConversionError, match=message):
        image_to_rgb(**kwargs)


# -- sensor_msgs/CompressedImage (jpeg, png) -------------------------------------------------------
def _smooth_reference(h=24, w=40):
    """A gradient (jpeg keeps smooth images close; random noise it would not)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 90)],
                    -1).astype(np.uint8)


@pytest.mark.parametrize('fmt, ext, atol', [('png', '.png', 0), ('jpeg', '.jpg', 12),
                                            ('rgb8; jpeg compressed bgr8', '.jpg', 12)])
def test_compressed_images_decode_to_rgb(fmt, ext, atol):
    import cv2
    rgb = _smooth_reference()
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    for buf in (encoded.tobytes(), array.array('B', encoded.tobytes()), encoded.reshape(-1)):
        out = compressed_to_rgb(fmt, buf)
        assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags.c_contiguous
        np.testing.assert_allclose(out.astype(int), rgb.astype(int), atol=atol)


def test_compressed_grey_png_becomes_rgb():
    import cv2
    grey = _smooth_reference()[:, :, 0]
    ok, encoded = cv2.imencode('.png', grey)
    out = compressed_to_rgb('png', encoded.tobytes())
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


@pytest.mark.parametrize('data, message', [
    (b'', 'empty compressed image'),
    (b'\xff\xd8\xff\xe0 not really a jpeg' * 3, 'cannot decode compressed image'),
    (b'\x89PNG\r\n\x1a\n' + b'\0' * 40, 'cannot decode compressed image'),
])
def test_corrupt_compressed_images_raise_clear_errors(data, message):
    with pytest.raises(ImageConversionError, match=message):
        compressed_to_rgb('jpeg', data)

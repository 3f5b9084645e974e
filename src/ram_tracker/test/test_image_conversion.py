import array

import numpy as np
import pytest

from ram_tracker.image_conversion import (ImageConversionError, image_to_rgb,
                                          rgb_to_image_fields)


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
    (dict(encoding='yuv422', height=2, width=2, step=4, data=b'\0' * 8), 'unsupported encoding'),
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

"""Image normalisation: the only defined conversions to RGB uint8, and errors for everything else."""
from __future__ import annotations

import numpy as np
import pytest

from gradtrack.io import ImageError, as_rgb_uint8


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)


def test_rgb_uint8_passes_through_unchanged(rgb):
    out = as_rgb_uint8(rgb)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, rgb)


def test_non_contiguous_input_gives_contiguous_output(rgb):
    view = rgb[:, ::-1]
    out = as_rgb_uint8(view)
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, view)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_grayscale_is_repeated(shape):
    gray = np.arange(35, dtype=np.uint8).reshape(shape)
    out = as_rgb_uint8(gray)
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray.reshape(5, 7))


def test_rgba_drops_alpha(rgb):
    alpha = np.full((5, 7, 1), 7, np.uint8)
    out = as_rgb_uint8(np.concatenate([rgb, alpha], axis=2))
    np.testing.assert_array_equal(out, rgb)  # not composited over anything


def test_uint16_is_scaled_down():
    img = np.array([[0, 255, 256, 257, 32768, 65535]], dtype=np.uint16)
    out = as_rgb_uint8(img)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 1, 1, 128, 255])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_bool_is_0_or_255():
    mask = np.array([[True, False], [False, True]])
    out = as_rgb_uint8(mask)
    np.testing.assert_array_equal(out[:, :, 1], [[255, 0], [0, 255]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_float_images_are_rejected_with_advice(dtype):
    with pytest.raises(ImageError, match=rf"dtype {np.dtype(dtype).name}.*Convert float images explicitly"):
        as_rgb_uint8(np.zeros((4, 4, 3), dtype=dtype))


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.int64, np.uint32])
def test_other_integer_types_are_rejected(dtype):
    with pytest.raises(ImageError, match="has dtype"):
        as_rgb_uint8(np.zeros((4, 4, 3), dtype=dtype))


@pytest.mark.parametrize("shape, fragment", [
    ((4, 4, 2), "2 channels"),
    ((4, 4, 5), "5 channels"),
    ((0, 4, 3), "H x W x C"),
    ((4, 0), "H x W x C"),
    ((4,), "H x W x C"),
    ((2, 4, 4, 3), "H x W x C"),
])
def test_bad_shapes_are_rejected(shape, fragment):
    with pytest.raises(ImageError, match=fragment):
        as_rgb_uint8(np.zeros(shape, dtype=np.uint8))


def test_non_arrays_are_rejected_with_the_name():
    with pytest.raises(ImageError, match="frame 3 must be a numpy array.*got list"):
        as_rgb_uint8([[1, 2], [3, 4]], name="frame 3")
    with pytest.raises(ImageError, match="got NoneType"):
        as_rgb_uint8(None)

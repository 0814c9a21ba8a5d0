"""Geometry: box conventions, IoU, polygons and the crop-and-resize (NumPy/OpenCV and torch)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradtrack.geometry import (BoxError, clip_box, crop_and_resize, crop_and_resize_torch, crop_pyramid,
                                cxcywh_to_xywh, iou, iou_matrix, parse_box, polygon_to_xywh, validate_box,
                                xywh_to_cxcywh, xywh_to_polygon, xywh_to_xyxy, xyxy_to_xywh)

coord = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
length = st.floats(1e-3, 1e4, allow_nan=False, allow_infinity=False)
boxes = st.tuples(coord, coord, length, length).map(lambda t: np.array(t, dtype=np.float64))


# ------------------------------------------------------------------------------------------ conversions


def _close(actual, desired):
    # absolute tolerance relative to the largest coordinate: x + w - x loses digits when |x| >> w
    desired = np.asarray(desired)
    np.testing.assert_allclose(actual, desired, rtol=0, atol=1e-8 * (1.0 + np.abs(desired).max()))


@settings(max_examples=60, deadline=None)
@given(boxes)
def test_conversions_round_trip(box):
    _close(cxcywh_to_xywh(xywh_to_cxcywh(box)), box)
    _close(xyxy_to_xywh(xywh_to_xyxy(box)), box)
    _close(polygon_to_xywh(xywh_to_polygon(box)), box)


@settings(max_examples=30, deadline=None)
@given(st.lists(boxes, min_size=1, max_size=5))
def test_conversions_are_vectorised(bs):
    arr = np.stack(bs)
    np.testing.assert_allclose(xywh_to_cxcywh(arr), np.stack([xywh_to_cxcywh(b) for b in bs]))
    np.testing.assert_allclose(xywh_to_xyxy(arr), np.stack([xywh_to_xyxy(b) for b in bs]))
    _close(polygon_to_xywh(xywh_to_polygon(arr)), arr)


def test_conversion_golden_values():
    b = np.array([10.0, 20.0, 30.0, 40.0])
    np.testing.assert_array_equal(xywh_to_cxcywh(b), [25, 40, 30, 40])
    np.testing.assert_array_equal(xywh_to_xyxy(b), [10, 20, 40, 60])  # exclusive corner x + w
    np.testing.assert_array_equal(xywh_to_polygon(b), [10, 20, 40, 20, 40, 60, 10, 60])


def test_conversions_reject_bad_shapes():
    with pytest.raises(BoxError, match="shape"):
        xywh_to_xyxy([1, 2, 3])
    with pytest.raises(BoxError, match="shape"):
        iou(np.zeros((2, 2, 4)), np.zeros((2, 2, 4)))
    with pytest.raises(BoxError, match="got 5"):
        polygon_to_xywh([1, 2, 3, 4, 5])


# ------------------------------------------------------------------------------------------ IoU


@pytest.mark.parametrize("a, b, expected", [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([0, 0, 10, 10], [5, 0, 10, 10], 50 / 150),
    ([0, 0, 10, 10], [5, 5, 10, 10], 25 / 175),
    ([0, 0, 10, 10], [2, 2, 4, 4], 16 / 100),
    ([0.5, 0.5, 1, 1], [1, 1, 1, 1], 0.25 / 1.75),
    ([0, 0, 10, 10], [10, 0, 10, 10], 0.0),  # touching edges: disjoint
    ([0, 0, 10, 10], [50, 50, 5, 5], 0.0),  # far apart
    ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # two empty boxes
])
def test_iou_golden(a, b, expected):
    assert iou(a, b) == pytest.approx(expected, abs=1e-12)
    assert iou(b, a) == pytest.approx(expected, abs=1e-12)


def test_iou_nan_and_vectorised():
    assert np.isnan(iou([np.nan, 0, 10, 10], [0, 0, 10, 10]))
    assert np.isnan(iou([0, 0, 10, 10], [0, 0, np.nan, 10]))
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4])
    b = np.array([[0, 0, 10, 10], [20, 20, 1, 1], [0, 0, 1, 1]])
    out = iou(a, b)
    assert out.shape == (3,)
    assert out[0] == 1.0 and out[1] == 0.0 and np.isnan(out[2])
    m = iou_matrix(a[:2], b)
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m[:, 0], [1.0, 1.0])
    assert m[0, 2] == pytest.approx(0.01)


@settings(max_examples=50, deadline=None)
@given(boxes, boxes)
def test_iou_bounds_and_symmetry(a, b):
    v = float(iou(a, b))
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(float(iou(b, a)), abs=1e-12)
    assert float(iou(a, a)) == 1.0  # exactly, also for tiny boxes far from the origin


# ------------------------------------------------------------------------------------------ polygons


def _rotated_rect(cx, cy, w, h, theta):
    c, s = math.cos(theta), math.sin(theta)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return np.array([v for dx, dy in corners for v in (cx + c * dx - s * dy, cy + s * dx + c * dy)])


@pytest.mark.parametrize("theta", [0.0, 0.3, math.pi / 4, 1.1, math.pi / 2])
def test_polygon_to_box_preserves_area_and_centre(theta):
    poly = _rotated_rect(100.0, 80.0, 40.0, 20.0, theta)
    x, y, w, h = polygon_to_xywh(poly)
    assert w * h == pytest.approx(800.0, rel=1e-9)
    assert (x + w / 2, y + h / 2) == pytest.approx((100.0, 80.0), abs=1e-9)
    xs, ys = poly[0::2], poly[1::2]
    assert w / h == pytest.approx((xs.max() - xs.min()) / (ys.max() - ys.min()), rel=1e-9)  # min-max aspect


def test_polygon_to_box_axis_aligned_is_exact():
    np.testing.assert_allclose(polygon_to_xywh(_rotated_rect(25, 40, 30, 40, 0.0)), [10, 20, 30, 40], atol=1e-12)
    np.testing.assert_array_equal(polygon_to_xywh([1, 2, 3, 4]), [1, 2, 3, 4])  # 4 values: a box, passed through


# ------------------------------------------------------------------------------------------ validation / parsing


def test_validate_and_parse_box():
    np.testing.assert_array_equal(parse_box("10,20,30,40"), [10, 20, 30, 40])
    np.testing.assert_array_equal(parse_box("10 20\t30, 40.5"), [10, 20, 30, 40.5])
    for bad, msg in [("10,20,30", "4 numbers"), ("a,b,c,d", "cannot parse"), ("1,2,3,4,5", "4 numbers"),
                     ("1,2,-3,4", "below"), ("nan,1,2,3", "NaN"), ("", "4 numbers")]:
        with pytest.raises(BoxError, match=msg):
            parse_box(bad)
    validate_box([0, 0, 5, 5], (10, 10))
    validate_box([-4, -4, 5, 5], (10, 10))  # overlaps by one pixel: accepted
    for outside in ([10, 0, 5, 5], [0, 10, 5, 5], [-5, 0, 5, 5], [100, 100, 5, 5]):
        with pytest.raises(BoxError, match="outside the 10x10 image"):
            validate_box(outside, (10, 10))


def test_clip_box():
    np.testing.assert_array_equal(clip_box([-5, -5, 10, 10], (20, 20)), [0, 0, 5, 5])
    np.testing.assert_array_equal(clip_box([15, 15, 10, 10], (20, 20)), [15, 15, 5, 5])
    np.testing.assert_array_equal(clip_box([30, 30, 10, 10], (20, 20))[2:], [0, 0])


# ------------------------------------------------------------------------------------------ crop_and_resize


def reference_crop(img, center, size, out, pad):
    """Independent bilinear resampling in float64: output pixel u samples continuous coordinate
    ``c + (u + 0.5 - out / 2) * size / out``, i.e. pixel index coordinate minus 0.5; outside = pad."""
    img = img.astype(np.float64)
    h, w, _ = img.shape
    pad = np.asarray(pad, np.float64)
    k = size / out
    xs = center[0] + (np.arange(out) + 0.5 - out / 2) * k - 0.5
    ys = center[1] + (np.arange(out) + 0.5 - out / 2) * k - 0.5
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = (xs - x0)[None, :, None], (ys - y0)[:, None, None]

    def px(yi, xi):
        yy, xx = np.meshgrid(yi, xi, indexing="ij")
        valid = ((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w))[..., None]
        return np.where(valid, img[yy.clip(0, h - 1), xx.clip(0, w - 1)], pad)

    top = (1 - fx) * px(y0, x0) + fx * px(y0, x0 + 1)
    bottom = (1 - fx) * px(y0 + 1, x0) + fx * px(y0 + 1, x0 + 1)
    return (1 - fy) * top + fy * bottom


@pytest.fixture
def image():
    return np.random.default_rng(7).integers(0, 256, (30, 40, 3), dtype=np.uint8)


def test_integer_aligned_crop_is_the_slice(image):
    # size == out and the window's left/top edge on an integer: every output pixel is one source pixel
    out = crop_and_resize(image, (10 + 4, 5 + 4), 8, 8)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out, image[5:13, 10:18])
    rect = crop_and_resize(image, (3 + 6, 2 + 5), (12, 10), (12, 10))  # rectangular window
    np.testing.assert_array_equal(rect, image[2:12, 3:15])


def test_2x_downscale_is_the_2x2_average(image):
    f = image.astype(np.float32)
    out = crop_and_resize(f, (10 + 8, 5 + 8), 16, 8)  # 16 source pixels -> 8
    ref = f[5:21, 10:26].reshape(8, 2, 8, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, ref, atol=1e-4)
    out8 = crop_and_resize(image, (10 + 8, 5 + 8), 16, 8)  # uint8: the same up to rounding
    assert np.abs(out8.astype(np.float64) - ref).max() <= 0.5 + 1e-6


def test_half_pixel_shift_is_the_neighbour_average(image):
    f = image.astype(np.float32)
    out = crop_and_resize(f, (10 + 4 + 0.5, 5 + 4), 8, 8)
    np.testing.assert_allclose(out, (f[5:13, 10:18] + f[5:13, 11:19]) / 2, atol=1e-4)
    out = crop_and_resize(f, (10 + 4, 5 + 4 + 0.5), 8, 8)
    np.testing.assert_allclose(out, (f[5:13, 10:18] + f[6:14, 10:18]) / 2, atol=1e-4)


def test_crop_outside_image_is_padded_exactly(image):
    pad = (11, 22, 33)
    out = crop_and_resize(image, (0, 0), 4, 4, pad_color=pad)  # window [-2, 2) x [-2, 2)
    np.testing.assert_array_equal(out[:2, :], np.broadcast_to(pad, (2, 4, 3)))
    np.testing.assert_array_equal(out[:, :2], np.broadcast_to(pad, (4, 2, 3)))
    np.testing.assert_array_equal(out[2:, 2:], image[0:2, 0:2])
    out = crop_and_resize(image, (40, 30), 4, 4, pad_color=pad)  # bottom-right corner
    np.testing.assert_array_equal(out[:2, :2], image[28:30, 38:40])
    np.testing.assert_array_equal(out[2:, :], np.broadcast_to(pad, (2, 4, 3)))
    np.testing.assert_array_equal(out[:, 2:], np.broadcast_to(pad, (4, 2, 3)))
    far = crop_and_resize(image, (-100, 500), 10, 6, pad_color=pad)  # fully outside
    np.testing.assert_array_equal(far, np.broadcast_to(pad, (6, 6, 3)))
    mean = crop_and_resize(image.astype(np.float32), (-100, -100), 10, 6)  # default pad: the image mean
    np.testing.assert_allclose(mean, np.broadcast_to(image.reshape(-1, 3).mean(0), (6, 6, 3)), atol=1e-3)


def test_crop_matches_reference_bilinear():
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        for _ in range(20):
            h, w = rng.integers(5, 50, 2)
            img = rng.uniform(0, 1, (h, w, 3)).astype(dtype)
            c = rng.uniform(-15, w + 15), rng.uniform(-15, h + 15)
            size, out, pad = rng.uniform(2, 70), int(rng.integers(1, 17)), rng.uniform(0, 1, 3)
            got = crop_and_resize(img, c, size, out, pad_color=pad)
            assert got.dtype == dtype
            np.testing.assert_allclose(got, reference_crop(img, c, size, out, pad), atol=1e-4,
                                       err_msg=f"{dtype.__name__} centre={c} size={size} out={out}")


def _torch_crop(img, center, size, out, pad):
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].double()
    res = crop_and_resize_torch(t, torch.tensor([center], dtype=torch.float64), torch.tensor([size], dtype=torch.float64),
                                out, torch.tensor(np.asarray(pad, np.float64))[None])
    return res[0].permute(1, 2, 0).numpy()


@settings(max_examples=40, deadline=None)
@given(h=st.integers(4, 40), w=st.integers(4, 40), fx=st.floats(-0.5, 1.5), fy=st.floats(-0.5, 1.5),
       size=st.floats(1.5, 80), out=st.integers(1, 20), seed=st.integers(0, 2**16))
def test_torch_crop_matches_numpy_crop(h, w, fx, fy, size, out, seed):
    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    pad = rng.uniform(0, 1, 3)
    center = (fx * w, fy * h)  # centres up to half an image outside
    a = crop_and_resize(img, center, size, out, pad_color=pad)
    b = _torch_crop(img, center, size, out, pad)
    np.testing.assert_allclose(b, a, atol=1e-3)


def test_torch_crop_batch_rect_and_default_pad():
    rng = np.random.default_rng(5)
    imgs = rng.uniform(0, 1, (3, 20, 30, 3)).astype(np.float32)
    centers = np.array([[15.0, 10.0], [0.0, 3.5], [29.7, 25.0]])
    sizes = np.array([[12.0, 8.0], [20.0, 20.0], [7.5, 30.0]])
    t = torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()
    res = crop_and_resize_torch(t, torch.from_numpy(centers), torch.from_numpy(sizes), 9).permute(0, 2, 3, 1).numpy()
    assert res.shape == (3, 9, 9, 3)
    for i in range(3):
        a = crop_and_resize(imgs[i], centers[i], sizes[i], 9)  # default pad = mean colour in both
        np.testing.assert_allclose(res[i], a, atol=1e-3)


def test_crop_pyramid_shapes_and_content(image):
    sizes = [10.0, 20.0, 40.0]
    pyr = crop_pyramid(image, (20, 15), sizes, 16)
    assert pyr.shape == (3, 16, 16, 3) and pyr.dtype == np.uint8
    for s, crop in zip(sizes, pyr):
        np.testing.assert_array_equal(crop, crop_and_resize(image, (20, 15), s, 16, mean_pad(image)))


def mean_pad(image):
    return image.reshape(-1, image.shape[-1]).mean(0)


def test_crop_rejects_bad_arguments(image):
    with pytest.raises(ValueError, match="H x W x C"):
        crop_and_resize(image[:, :, 0], (5, 5), 4, 4)
    with pytest.raises(ValueError, match="positive sizes"):
        crop_and_resize(image, (5, 5), 0, 4)
    with pytest.raises(ValueError, match="finite centre"):
        crop_and_resize(image, (np.nan, 5), 4, 4)

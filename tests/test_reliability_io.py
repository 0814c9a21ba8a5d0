"""Issue 12, lower layers: frame normalisation (``as_rgb_uint8``) and box validation refuse bad input with a
clear error of a documented type, never crash or silently change the input; plus a seeded property-based
fuzz of both."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradtrack.geometry import BoxError, parse_box, validate_box
from gradtrack.geometry.boxes import MAX_BOX_COORD, MAX_BOX_IMAGE_RATIO
from gradtrack.io import ArrayFrames, FrameError, ImageError, VideoWriter, as_rgb_uint8
from gradtrack.trackers.base import Tracker, TrackResult

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix is tested on purpose


# ------------------------------------------------------------------------------------------ frames
def test_grayscale_matrix_frame_does_not_crash_the_interpreter():
    code = ("import numpy as np; from gradtrack.io import as_rgb_uint8; "
            "m = np.matrix(np.arange(20, dtype=np.uint8).reshape(4, 5)); out = as_rgb_uint8(m); "
            "assert type(out) is np.ndarray and out.shape == (4, 5, 3); "
            "assert (out[:, :, 2] == np.arange(20).reshape(4, 5)).all(); print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-2000:])


def test_array_subclasses_and_frame_sources_take_matrices():
    frames = ArrayFrames([np.matrix(np.full((3, 4), 7, np.uint8))] * 2)
    assert frames[1].shape == (3, 4, 3) and (frames[1] == 7).all()


def test_masked_frames_keep_or_refuse_their_mask():
    data = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(as_rgb_uint8(np.ma.masked_array(data, mask=False))[:, :, 0], data)
    with pytest.raises(ImageError, match=r"frame 2 is a masked array with 2 masked element\(s\).*filled"):
        as_rgb_uint8(np.ma.masked_array(data, mask=data < 2), name="frame 2")
    boolean = np.ma.masked_array(data > 5, mask=False)  # masked boolean frames: 0 / 255 like plain bool
    np.testing.assert_array_equal(as_rgb_uint8(boolean)[:, :, 1], np.where(data > 5, 255, 0))
    with pytest.raises(ImageError, match="masked element"):
        as_rgb_uint8(np.ma.masked_array(data > 5, mask=data == 3))
    with pytest.raises(FrameError, match="masked element"):
        VideoWriter("unused.mp4").write(np.ma.masked_array(np.zeros((4, 4, 3), np.uint8), mask=True))


def test_torch_tensors_are_refused_with_shape_dtype_and_advice():
    t = torch.zeros(4, 5, 3, requires_grad=True)
    with pytest.raises(ImageError, match=r"frame must be a numpy array.*shape \(4, 5, 3\).*requires_grad=True"
                                         r".*detach\(\)\.cpu\(\)\.numpy\(\)"):
        as_rgb_uint8(t, name="frame")
    with pytest.raises(ImageError, match="torch.uint8"):
        as_rgb_uint8(torch.zeros(4, 5, 3, dtype=torch.uint8))


@pytest.mark.parametrize("dtype", ["i1", "i2", "<i8", "u4", "f2", "c8", "O", "U1", "S2", "M8[s]", "V4",
                                   [("r", "u1"), ("g", "u1")]])
def test_odd_dtypes_are_refused_naming_dtype_and_shape(dtype):
    img = np.zeros((2, 3, 3), dtype=dtype)
    with pytest.raises(ImageError, match=rf"has dtype .*\(shape \(2, 3, 3\)\)"):
        as_rgb_uint8(img)


def test_big_endian_uint16_is_scaled_like_native():
    img = np.array([[0, 256, 65535]], dtype=">u2")
    np.testing.assert_array_equal(as_rgb_uint8(img)[0, :, 0], [0, 1, 255])


def test_shape_errors_name_the_shape_and_dtype():
    with pytest.raises(ImageError, match=r"shape \(2, 3, 4, 3\) \(dtype uint8\)"):
        as_rgb_uint8(np.zeros((2, 3, 4, 3), np.uint8))
    with pytest.raises(ImageError, match=r"2 channels \(shape \(2, 3, 2\)\)"):
        as_rgb_uint8(np.zeros((2, 3, 2), np.uint8))


# ------------------------------------------------------------------------------------------ boxes
@pytest.mark.parametrize("box", [[9.5, 0, 5, 5], [-4.5, 0, 5, 5], [0, 9.01, 5, 5], [0, -4.2, 5, 5]])
def test_boxes_overlapping_by_less_than_one_pixel_are_refused(box):
    with pytest.raises(BoxError, match=r"outside the 10x10 image \(overlap .*at least 1 px"):
        validate_box(box, (10, 10))


@pytest.mark.parametrize("box", [[9, 0, 5, 5], [-4, -4, 5, 5], [0, 0, 10, 10], [-50, -50, 60, 60]])
def test_boxes_overlapping_by_one_pixel_or_more_are_accepted(box):
    np.testing.assert_array_equal(validate_box(box, (10, 10)), box)


@pytest.mark.parametrize("box, fragment", [
    (np.ones((2, 2)), r"shape \(2, 2\)"),
    (np.ones((4, 1)), r"shape \(4, 1\)"),
    (np.ones((1, 4)), r"shape \(1, 4\)"),
    (np.matrix([1, 2, 3, 4]), r"shape \(1, 4\)"),
    ([[1, 2], [3, 4]], "4 numbers"),
    ([[1], 2, 3, 4], r"shape \(1,\) element"),
    ("1,2,3,4", "the string '1,2,3,4'.*parse_box"),
    (b"1234", "the string"),
    (["1", "2", "3", "4"], "got a str"),
    ([1 + 2j, 1, 5, 5], "got a complex"),
    ([1 + 0j, 1, 5, 5], "got a complex"),  # the imaginary part is not dropped, the value is refused
    (np.array([1, 1, 5, 5], dtype=complex), "dtype complex128"),
    ([True, 1, 5, 5], "got a bool"),
    ([np.bool_(True), 1, 5, 5], "got a bool"),
    (np.ones(4, dtype=bool), "dtype bool"),
    ([None, 1, 5, 5], "got a NoneType"),
    (np.ma.masked_array([1.0, 1, 5, 5], mask=[0, 1, 0, 0]), "masked"),
    ({1, 2, 3, 4}, r"shape \(\)"),
])
def test_malformed_boxes_are_refused_with_the_problem(box, fragment):
    with pytest.raises(BoxError, match=fragment):
        validate_box(box, (100, 100), name="initial box")


@pytest.mark.parametrize("box, fragment", [
    ((0, 0, 1e155, 1e155), "beyond 1e\\+06 pixels"),
    ([10, 10, 10**400, 10**400], "too large for a float"),
    ([10**5000, 1, 2, 3], "too large for a float"),
    ([-2e6, 0, 5, 5], "beyond 1e\\+06"),
    ([0, 0, 101, 5], f"more than {MAX_BOX_IMAGE_RATIO:g} times the size of the 10x10 image"),
])
def test_huge_boxes_are_refused_before_the_crop(box, fragment):
    with pytest.raises(BoxError, match=fragment):
        validate_box(box, (10, 10))


def test_torch_box_with_requires_grad_is_detached():
    b = validate_box(torch.tensor([1.0, 2.0, 5.0, 5.0], requires_grad=True), (10, 10))
    assert type(b) is np.ndarray and b.dtype == np.float64
    np.testing.assert_array_equal(b, [1, 2, 5, 5])
    with pytest.raises(BoxError, match=r"shape \(2, 2\)"):
        validate_box(torch.ones(2, 2, requires_grad=True))


def test_parse_box_accepts_semicolons_and_refuses_non_text_and_overflow():
    np.testing.assert_array_equal(parse_box("10;10;20;20"), [10, 10, 20, 20])
    with pytest.raises(BoxError, match="takes a string"):
        parse_box([1, 2, 3, 4])
    with pytest.raises(BoxError, match="NaN or infinity"):
        parse_box("10,10," + "9" * 400 + ",20")
    with pytest.raises(BoxError, match="beyond"):
        parse_box("0,0,1e155,1e155")


class _Constant(Tracker):
    def _init(self, image, box):
        self.box = box

    def _update(self, image):
        return TrackResult(box=self.box.copy(), score=1.0)


@pytest.mark.parametrize("box", [(0, 0, 1e155, 1e155), [10, 10, 10**400, 10**400], [19.5, 0, 5, 5],
                                 np.ones((2, 2)), "1,1,5,5", [1j, 1, 5, 5], [True, 1, 5, 5]])
def test_tracker_init_gets_the_box_errors(box):
    with pytest.raises(BoxError, match="initial box"):
        _Constant().init(np.zeros((20, 20, 3), np.uint8), box)


# ------------------------------------------------------------------------------------------ fuzz
FUZZ = settings(max_examples=400, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = ["u1", "u2", ">u2", "?", "i1", "i4", "f4", "f8", "c8", "U1"]


@st.composite
def frames(draw):
    arr = draw(hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
    kind = draw(st.sampled_from(["plain", "matrix", "masked", "tensor", "view", "list"]))
    if kind == "matrix" and arr.ndim == 2 and arr.dtype.kind in "uifc?":
        return np.asmatrix(arr)
    if kind == "masked":
        return np.ma.masked_array(arr, mask=draw(hnp.arrays(bool, arr.shape)))
    if kind == "tensor" and arr.dtype.kind in "uif" and arr.dtype.isnative and arr.dtype != np.uint16:
        return torch.from_numpy(arr.copy()).requires_grad_(arr.dtype.kind == "f")
    if kind == "view" and arr.ndim >= 2:
        return arr[::-1, ::2]
    return arr.tolist() if kind == "list" else arr


@seed(20240612)
@FUZZ
@given(frames())
def test_fuzz_as_rgb_uint8(img):
    try:
        out = as_rgb_uint8(img, name="fuzzed frame")
    except ImageError as exc:
        assert "fuzzed frame" in str(exc)
        return
    src = np.asarray(img.data if isinstance(img, np.ma.MaskedArray) else img)
    assert type(out) is np.ndarray and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    assert out.ndim == 3 and out.shape[2] == 3 and out.shape[:2] == src.shape[:2] and min(out.shape[:2]) >= 1
    assert not (isinstance(img, np.ma.MaskedArray) and np.ma.getmaskarray(img).any())
    gray = src if src.ndim == 2 else src[:, :, 0]
    expect = {"u": lambda a: (a.astype(np.uint16) >> 8) if a.dtype.itemsize == 2 else a,
              "b": lambda a: a.astype(np.uint8) * 255}[src.dtype.kind](gray)
    np.testing.assert_array_equal(out[:, :, 0], expect)


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**500, 10**500),
                    st.floats(-50, 150), st.integers(-20, 150), st.booleans(), st.complex_numbers(max_magnitude=100),
                    st.text(max_size=3), st.none(), st.just(np.float32(3.5)), st.just(np.int64(7)))
BOXES = st.one_of(
    st.lists(NUMBERS, min_size=0, max_size=6),
    st.lists(st.floats(-50, 150), min_size=4, max_size=4).map(tuple),
    st.tuples(hnp.arrays("f8", hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
                         elements=st.integers(0, 120).map(float)),
              st.sampled_from(["f8", "f4", "i8", "u1", "?", "c16", "O"])).map(lambda a: a[0].astype(a[1])),
    st.lists(st.floats(-50, 150, width=32), min_size=4, max_size=4).map(lambda v: torch.tensor(v, requires_grad=True)),
    st.text(max_size=12),
)


@seed(1207)
@FUZZ
@given(BOXES, st.tuples(st.integers(1, 120), st.integers(1, 120)), st.sampled_from([0.0, 0.5, 1.0, 3.0]))
def test_fuzz_validate_box(box, size, min_size):
    try:
        b = validate_box(box, size, min_size=min_size, name="fuzzed box")
    except BoxError as exc:
        assert "fuzzed box" in str(exc)
        return
    W, H = size
    assert type(b) is np.ndarray and b.shape == (4,) and b.dtype == np.float64 and np.isfinite(b).all()
    assert np.abs(b).max() <= MAX_BOX_COORD and b[2] >= min_size and b[3] >= min_size
    assert b[2] <= MAX_BOX_IMAGE_RATIO * W and b[3] <= MAX_BOX_IMAGE_RATIO * H
    assert min(b[0] + b[2], W) - max(b[0], 0) >= min(1, b[2]) and min(b[1] + b[3], H) - max(b[1], 0) >= min(1, b[3])
    values = box.detach().numpy() if isinstance(box, torch.Tensor) else box
    assert not isinstance(values, str) and np.ndim(values) == 1
    assert all(not isinstance(v, (bool, np.bool_, complex, str)) for v in (values.tolist() if isinstance(values, np.ndarray) else values))
    np.testing.assert_array_equal(b, np.asarray(values, dtype=np.float64))


@seed(5)
@FUZZ
@given(st.text(alphabet="0123456789.,; -+eEnaif\t", max_size=30))
def test_fuzz_parse_box(text):
    try:
        b = parse_box(text)
    except BoxError:
        return
    assert b.shape == (4,) and np.isfinite(b).all() and (b[2:] >= 1).all()

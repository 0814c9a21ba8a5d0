"""Boxes: the one convention of gradtrack.

A box is ``(x, y, w, h)`` as floats in **0-based continuous pixel coordinates**: pixel column ``i``
covers ``[i, i + 1)``, so the image ``W x H`` covers ``[0, W) x [0, H)``, a box's top-left corner is
``(x, y)`` and its centre is ``(x + w / 2, y + h / 2)``.  Benchmark files in 1-based MATLAB coordinates
are converted by their readers (subtract 1 from x and y), never here.

All functions accept a single box of shape ``(4,)`` or an array ``(N, 4)`` and are vectorised.
"""
from __future__ import annotations

import numbers
import re

import numpy as np


class BoxError(ValueError):
    """A box is malformed (NaN, non-positive size, wrong shape) or does not overlap the image."""


def _as_boxes(boxes) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.shape[-1:] != (4,) or arr.ndim > 2:
        raise BoxError(f"expected box(es) of shape (4,) or (N, 4), got shape {arr.shape}")
    return arr


def xywh_to_cxcywh(boxes) -> np.ndarray:
    b = _as_boxes(boxes)
    return np.concatenate([b[..., :2] + b[..., 2:] / 2.0, b[..., 2:]], axis=-1)


def cxcywh_to_xywh(boxes) -> np.ndarray:
    b = _as_boxes(boxes)
    return np.concatenate([b[..., :2] - b[..., 2:] / 2.0, b[..., 2:]], axis=-1)


def xywh_to_xyxy(boxes) -> np.ndarray:
    """Top-left and bottom-right corners (the bottom-right corner is exclusive: ``x + w``)."""
    b = _as_boxes(boxes)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_xywh(boxes) -> np.ndarray:
    b = _as_boxes(boxes)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def polygon_to_xywh(polys) -> np.ndarray:
    """VOT 8-value polygons ``(x1, y1, ..., x4, y4)`` to area-preserving axis-aligned boxes.

    The box has the polygon's centroid (mean of the corners) and the aspect of its min-max box,
    scaled so that its area equals the polygon's area (the convention of the VOT toolkits: for a
    rotated rectangle ``s = sqrt(A_poly / A_minmax)``).  4-value regions are passed through.  Polygons
    with other numbers of values are rejected.  Coordinates are taken as they are (convert 1-based
    files before calling).
    """
    p = np.asarray(polys, dtype=np.float64)
    single = p.ndim == 1
    p = np.atleast_2d(p)
    if p.shape[1] == 4:
        out = p.copy()
    elif p.shape[1] >= 6 and p.shape[1] % 2 == 0:
        xs, ys = p[:, 0::2], p[:, 1::2]
        x1, x2 = xs.min(1), xs.max(1)
        y1, y2 = ys.min(1), ys.max(1)
        cx, cy = xs.mean(1), ys.mean(1)
        # shoelace area of the polygon
        area_poly = 0.5 * np.abs(np.sum(xs * np.roll(ys, -1, 1) - np.roll(xs, -1, 1) * ys, axis=1))
        area_box = (x2 - x1) * (y2 - y1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.sqrt(np.where(area_box > 0, area_poly / area_box, 1.0))
        w, h = s * (x2 - x1), s * (y2 - y1)
        out = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    else:
        raise BoxError(f"a VOT region has 4 (box) or an even number >= 6 (polygon) of values, got {p.shape[1]}")
    return out[0] if single else out


def xywh_to_polygon(boxes) -> np.ndarray:
    """Axis-aligned boxes as 8-value polygons (clockwise from the top-left corner)."""
    b = _as_boxes(boxes)
    x1, y1 = b[..., 0], b[..., 1]
    x2, y2 = x1 + b[..., 2], y1 + b[..., 3]
    return np.stack([x1, y1, x2, y1, x2, y2, x1, y2], axis=-1)


def iou(a, b) -> np.ndarray:
    """Intersection over union of boxes ``a`` and ``b`` (broadcast row by row, continuous areas).

    Boxes with NaN give NaN; two empty boxes give 0.
    """
    a, b = _as_boxes(a), _as_boxes(b)
    ax1, ay1, ax2, ay2 = np.moveaxis(xywh_to_xyxy(a), -1, 0)
    bx1, by1, bx2, by2 = np.moveaxis(xywh_to_xyxy(b), -1, 0)
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    # areas from the same corner differences as the intersection, so identical boxes give exactly 1
    area_a = np.clip(ax2 - ax1, 0, None) * np.clip(ay2 - ay1, 0, None)
    area_b = np.clip(bx2 - bx1, 0, None) * np.clip(by2 - by1, 0, None)
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.minimum(np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0), 1.0)
    nan = np.isnan(a).any(-1) | np.isnan(b).any(-1)
    return np.where(nan, np.nan, out)


def iou_matrix(a, b) -> np.ndarray:
    """Pairwise IoU, ``(N, M)``."""
    a, b = np.atleast_2d(_as_boxes(a)), np.atleast_2d(_as_boxes(b))
    return iou(np.repeat(a, len(b), 0), np.tile(b, (len(a), 1))).reshape(len(a), len(b))


def clip_box(box, image_size) -> np.ndarray:
    """Clip a box to the image ``(width, height)``; may return a zero-size box."""
    w_img, h_img = image_size
    x1, y1, x2, y2 = np.moveaxis(xywh_to_xyxy(box), -1, 0)
    x1, x2 = np.clip(x1, 0, w_img), np.clip(x2, 0, w_img)
    y1, y2 = np.clip(y1, 0, h_img), np.clip(y2, 0, h_img)
    return xyxy_to_xywh(np.stack([x1, y1, x2, y2], -1))


#: No box coordinate or side may exceed this many pixels (larger finite values are refused, not cropped).
MAX_BOX_COORD = 1e6
#: With an image size, no box side may exceed this multiple of the image's width / height.
MAX_BOX_IMAGE_RATIO = 10.0


def _short(x) -> str:
    try:
        r = repr(x)
    except Exception:  # noqa: BLE001 - e.g. an int too long for str()
        r = f"<{type(x).__name__}>"
    return r if len(r) <= 80 else r[:77] + "..."


def _box_values(box, name: str) -> list:
    """The four elements of ``box`` (a sequence, 1-D array or tensor), or :class:`BoxError` for any other shape."""
    if hasattr(box, "detach") and hasattr(box, "cpu"):  # a torch tensor (requires_grad or not): a detached copy
        box = box.detach().cpu().numpy()
    if isinstance(box, (str, bytes)):
        raise BoxError(f"{name} must be 4 numbers x,y,w,h, got the string {_short(box)} (use parse_box for text)")
    if isinstance(box, np.ma.MaskedArray) and np.ma.getmaskarray(box).any():
        raise BoxError(f"{name} is a masked array with masked values: {_short(box)}")
    if isinstance(box, (list, tuple)):
        values = list(box)
    else:
        arr = np.asarray(box)
        if arr.ndim != 1:
            raise BoxError(f"{name} must be 4 numbers x,y,w,h (shape (4,)), got an array of shape {arr.shape}")
        if arr.dtype.kind not in "iufO":
            raise BoxError(f"{name} must be 4 real numbers x,y,w,h, got dtype {arr.dtype}: {_short(box)}")
        values = list(arr)
    if len(values) != 4:
        raise BoxError(f"{name} must be 4 numbers x,y,w,h, got {len(values)} value(s)")
    return values


def _box_number(v, name: str, box) -> float:
    if isinstance(v, np.ndarray) and v.ndim == 0 or hasattr(v, "detach") and getattr(v, "ndim", 1) == 0:
        v = v.item()
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        what = f"shape {np.shape(v)} element" if np.ndim(v) else type(v).__name__
        raise BoxError(f"{name} must be 4 real numbers x,y,w,h, got a {what} ({_short(v)}) in {_short(box)}")
    try:
        return float(v)
    except OverflowError:
        raise BoxError(f"{name}: value {_short(v)} is too large for a float (limit {MAX_BOX_COORD:g} pixels)") from None


def validate_box(box, image_size=None, *, min_size: float = 1.0, name: str = "box") -> np.ndarray:
    """Check one box and return it as a float array of shape ``(4,)``, or raise :class:`BoxError` naming the
    problem.

    Rules: exactly four real numbers as a list/tuple, a 1-D array or a 1-D torch tensor (detached) -- not a
    2x2 / 4x1 / 1x4 array, strings, complex numbers or bools; all finite and at most ``MAX_BOX_COORD``
    (1e6) pixels in absolute value; width and height >= ``min_size``; if ``image_size=(W, H)`` is given,
    width <= ``MAX_BOX_IMAGE_RATIO`` (10) x W and height <= 10 x H, and the box overlaps the image by at
    least one pixel in each direction (a box narrower than one pixel must lie inside the image).
    """
    b = np.array([_box_number(v, name, box) for v in _box_values(box, name)], dtype=np.float64)
    if not np.all(np.isfinite(b)):
        raise BoxError(f"{name} {b.tolist()} contains NaN or infinity")
    if np.abs(b).max() > MAX_BOX_COORD:
        raise BoxError(f"{name} {b.tolist()} has a value beyond {MAX_BOX_COORD:g} pixels")
    if b[2] < min_size or b[3] < min_size:
        raise BoxError(f"{name} {b.tolist()} has width/height below {min_size} pixel(s)")
    if image_size is not None:
        w_img, h_img = (float(v) for v in image_size)
        if b[2] > MAX_BOX_IMAGE_RATIO * w_img or b[3] > MAX_BOX_IMAGE_RATIO * h_img:
            raise BoxError(f"{name} {b.tolist()} is more than {MAX_BOX_IMAGE_RATIO:g} times the size of the "
                           f"{w_img:g}x{h_img:g} image")
        ox = min(b[0] + b[2], w_img) - max(b[0], 0.0)
        oy = min(b[1] + b[3], h_img) - max(b[1], 0.0)
        if ox < min(1.0, b[2]) or oy < min(1.0, b[3]):
            raise BoxError(f"{name} {b.tolist()} lies outside the {w_img:g}x{h_img:g} image "
                           f"(overlap {max(ox, 0):g} x {max(oy, 0):g} px; at least 1 px needed in each direction)")
    return b


def parse_box(text: str) -> np.ndarray:
    """Parse ``"x,y,w,h"`` (commas, semicolons, spaces or tabs) into a float box; raises :class:`BoxError`."""
    if not isinstance(text, str):
        raise BoxError(f"parse_box takes a string 'x,y,w,h', got {type(text).__name__}")
    parts = [p for p in re.split(r"[,;\s]+", text) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise BoxError(f"cannot parse box {text!r}: expected x,y,w,h numbers") from None
    return validate_box(values, name=f"box {text!r}")

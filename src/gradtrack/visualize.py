"""Drawing tracking results on frames: boxes, polygons, masks and text labels.

Everything here takes and returns RGB uint8 ``H x W x 3`` frames (the input is never modified) and boxes
in the gradtrack convention, 0-based continuous ``(x, y, w, h)`` (see :mod:`gradtrack.geometry.boxes`).
A continuous coordinate ``c`` lies ``0.5`` to the left of the centre of pixel ``c``, so outlines are drawn
through the pixel centres at ``c - 0.5`` with sub-pixel precision (OpenCV's ``shift``).

Colours are RGB triples.  This module sits beside :mod:`gradtrack.io` (it depends only on geometry and
image normalisation), so the CLI, the evaluation reports and notebooks can all use it.
"""
from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from .geometry import validate_box
from .io import as_rgb_uint8

PRED_COLOR = (255, 220, 0)  # prediction: yellow
GT_COLOR = (0, 230, 255)  # ground truth: cyan
POLY_COLOR = (255, 0, 255)  # rotated box / polygon: magenta
MASK_COLOR = (0, 140, 255)  # mask overlay: blue
TEXT_COLOR = (255, 255, 255)

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT


class DrawError(ValueError):
    """Something to draw has the wrong shape or type for the frame."""


def _color(color: Sequence[float], name: str = "color") -> tuple[int, int, int]:
    try:
        c = tuple(int(round(float(v))) for v in color)
    except (TypeError, ValueError):
        raise DrawError(f"{name} must be an RGB triple of numbers, got {color!r}") from None
    if len(c) != 3 or any(v < 0 or v > 255 for v in c):
        raise DrawError(f"{name} must be an RGB triple with values in 0..255, got {color!r}")
    return c  # type: ignore[return-value]


def _fixed(points: np.ndarray) -> np.ndarray:
    """Continuous coordinates -> cv2 fixed-point pixel-centre coordinates."""
    return np.round((points - 0.5) * _ONE).astype(np.int32)


def _canvas(image, copy: bool) -> np.ndarray:
    img = as_rgb_uint8(image, name="frame")
    if copy and img is image:  # as_rgb_uint8 returns the input itself when it is already RGB uint8
        img = img.copy()
    return img


def draw_box(image, box, color: Sequence[float] = PRED_COLOR, thickness: int = 2, copy: bool = True) -> np.ndarray:
    """Outline of an axis-aligned box ``(x, y, w, h)``.  Boxes partly or fully outside the frame are
    clipped by the drawing (no error), but NaN or non-positive sizes raise :class:`DrawError`."""
    img = _canvas(image, copy)
    try:
        b = validate_box(box, min_size=0.0, name="box to draw")
    except ValueError as exc:
        raise DrawError(str(exc)) from None
    x, y, w, h = b
    p1 = _fixed(np.array([x, y]))
    p2 = _fixed(np.array([x + w, y + h]))
    cv2.rectangle(img, tuple(int(v) for v in p1), tuple(int(v) for v in p2), _color(color), int(thickness),
                  cv2.LINE_AA, _SHIFT)
    return img


def draw_polygon(image, polygon, color: Sequence[float] = POLY_COLOR, thickness: int = 2,
                 copy: bool = True) -> np.ndarray:
    """Closed outline of a polygon given as ``(x1, y1, x2, y2, ...)`` (at least 3 points) or ``N x 2``."""
    img = _canvas(image, copy)
    p = np.asarray(polygon, dtype=np.float64)
    if p.ndim == 1:
        if p.size % 2 or p.size < 6:
            raise DrawError(f"a polygon needs an even number >= 6 of values (x1, y1, ...), got {p.size}")
        p = p.reshape(-1, 2)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
        raise DrawError(f"a polygon must be (x1, y1, ...) or N x 2 with N >= 3, got shape {np.shape(polygon)}")
    if not np.isfinite(p).all():
        raise DrawError("polygon to draw contains NaN or infinity")
    cv2.polylines(img, [_fixed(p).reshape(-1, 1, 2)], True, _color(color), int(thickness), cv2.LINE_AA, _SHIFT)
    return img


def draw_mask(image, mask, color: Sequence[float] = MASK_COLOR, alpha: float = 0.45, contour: bool = True,
              copy: bool = True) -> np.ndarray:
    """Blend ``color`` into the pixels where ``mask`` (``H x W``, bool or 0/1) is set, and outline it."""
    img = _canvas(image, copy)
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.shape != img.shape[:2]:
        raise DrawError(f"mask has shape {m.shape} but the frame is {img.shape[0]} x {img.shape[1]}")
    if m.dtype != np.bool_:
        if not np.issubdtype(m.dtype, np.number) or not np.isin(m, (0, 1)).all():
            raise DrawError(f"mask must be bool (or 0/1 numbers), got dtype {m.dtype}")
        m = m.astype(bool)
    if not 0.0 <= alpha <= 1.0:
        raise DrawError(f"alpha must be in [0, 1], got {alpha}")
    c = np.array(_color(color), dtype=np.float32)
    if m.any():
        sel = img[m].astype(np.float32)
        img[m] = np.clip(np.round(sel * (1.0 - alpha) + c * alpha), 0, 255).astype(np.uint8)
        if contour:
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(img, contours, -1, tuple(int(v) for v in c), 1, cv2.LINE_AA)
    return img


def draw_text(image, text: str, origin: tuple[int, int] = (6, 6), color: Sequence[float] = TEXT_COLOR,
              scale: float | None = None, copy: bool = True) -> np.ndarray:
    """Text with a dark backing box; ``origin`` is the top-left corner of the box in pixels."""
    img = _canvas(image, copy)
    if scale is None:  # readable on small synthetic frames and on HD video alike
        scale = max(0.35, min(img.shape[:2]) / 600.0)
    font = cv2.FONT_HERSHEY_SIMPLEX
    th = max(1, int(round(scale * 2)))
    (tw, tht), base = cv2.getTextSize(text, font, scale, th)
    x0, y0 = int(origin[0]), int(origin[1])
    x1, y1 = min(img.shape[1] - 1, x0 + tw + 4), min(img.shape[0] - 1, y0 + tht + base + 4)
    if x1 > x0 and y1 > y0:
        region = img[y0:y1, x0:x1].astype(np.float32)
        img[y0:y1, x0:x1] = (region * 0.35).astype(np.uint8)
    cv2.putText(img, text, (x0 + 2, y0 + tht + 2), font, scale, _color(color), th, cv2.LINE_AA)
    return img


def _get(result: Any, key: str):
    if isinstance(result, dict):
        return result.get(key)
    return getattr(result, key, None)


def draw_result(image, result: Any = None, *, index: int | None = None, gt=None, fps: float | None = None,
                label: str | None = None, color: Sequence[float] = PRED_COLOR) -> np.ndarray:
    """One annotated frame: mask (if any), polygon (if any), box, optional ground truth and a text line
    ``#index  score  fps  label``.

    ``result`` is a :class:`gradtrack.trackers.base.TrackResult` (or anything with ``box``, ``score`` and
    optional ``polygon`` / ``mask``; a dict works too), or a bare box, or ``None`` (nothing but the text).
    """
    img = _canvas(image, copy=True)
    if gt is not None and np.isfinite(np.asarray(gt, dtype=np.float64)).all():
        img = draw_box(img, gt, GT_COLOR, 1, copy=False)
    score = None
    if result is not None:
        if isinstance(result, (np.ndarray, list, tuple)):
            box = result
        else:
            box = _get(result, "box")
            score = _get(result, "score")
            mask = _get(result, "mask")
            polygon = _get(result, "polygon")
            if mask is not None:
                img = draw_mask(img, mask, copy=False)
            if polygon is not None:
                img = draw_polygon(img, polygon, copy=False)
        if box is not None:
            img = draw_box(img, box, color, 2, copy=False)
    parts = []
    if index is not None:
        parts.append(f"#{int(index)}")
    if score is not None and np.isfinite(float(score)):
        parts.append(f"score {float(score):.3f}")
    if fps is not None and np.isfinite(fps):
        parts.append(f"{fps:.1f} fps")
    if label:
        parts.append(str(label))
    if parts:
        img = draw_text(img, "  ".join(parts), copy=False)
    return img

"""The one annotation parser of the benchmark readers.

Every benchmark stores ground truth as text, one frame per line, with small variations: commas, tabs
or spaces between values (OTB mixes them), ``nan``/``NaN`` rows where the target is absent, blank
trailing lines, a UTF-8 byte-order mark, Windows line ends.  :func:`read_table` handles all of these
and nothing else: a line it cannot read raises :class:`AnnotationError` naming ``file:line`` and what
was wrong, never a guess.  Conversions between box conventions are left to the readers.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..sequence import DatasetError

__all__ = [
    "AnnotationError",
    "iter_lines",
    "parse_values",
    "read_table",
    "read_boxes",
    "read_flags",
    "read_regions",
    "parse_region",
    "mask_rle_to_box",
]

_SPLIT = re.compile(r"[,\t ;]+")


class AnnotationError(DatasetError):
    """An annotation file is malformed; the message names the file and the 1-based line number."""


def _where(path, lineno: int | None) -> str:
    return f"{path}:{lineno}" if lineno is not None else str(path)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line number, stripped text)`` of every line of a text file, blank trailing lines dropped.

    A blank line followed by more data is an error (it would shift every following frame by one).
    """
    p = Path(path)
    if not p.is_file():
        raise AnnotationError(f"annotation file not found: {p}")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{p} is not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for i, line in enumerate(lines, start=1):
        s = line.strip()
        if not s:
            raise AnnotationError(f"{_where(p, i)}: blank line in the middle of the annotations")
        yield i, s


def parse_values(text: str, where: str = "") -> np.ndarray:
    """Numbers separated by commas, tabs, spaces or semicolons (any mix); ``nan`` in any case is NaN."""
    parts = [t for t in _SPLIT.split(text.strip()) if t]
    out = np.empty(len(parts), dtype=np.float64)
    for k, t in enumerate(parts):
        try:
            out[k] = float(t)
        except ValueError:
            raise AnnotationError(f"{where}: value {k + 1} {t!r} is not a number (line: {text!r})") from None
    if np.isinf(out).any():
        raise AnnotationError(f"{where}: infinite value in line {text!r}")
    return out


def read_table(path: str | os.PathLike, ncols: int | tuple[int, ...] = 4, *, allow_nan: bool = True,
               allow_empty: bool = False) -> np.ndarray:
    """Read a numeric table (one row per line) as float64 ``N x ncols``.

    ``ncols`` may be a tuple of accepted widths (e.g. ``(4, 8)``); all rows must then have the same
    width.  A row is either all numbers or all NaN (``allow_nan``); partial NaN rows, wrong widths and
    non-numbers raise :class:`AnnotationError` with ``file:line``.
    """
    accepted = (ncols,) if isinstance(ncols, int) else tuple(ncols)
    rows = []
    width = None
    first_line = None
    for lineno, s in iter_lines(path):
        where = _where(path, lineno)
        v = parse_values(s, where)
        if len(v) not in accepted:
            exp = " or ".join(map(str, accepted))
            raise AnnotationError(f"{where}: expected {exp} values, found {len(v)} (line: {s!r})")
        if width is None:
            width, first_line = len(v), lineno
        elif len(v) != width:
            raise AnnotationError(
                f"{where}: {len(v)} values but line {first_line} has {width}; a file must use one row width"
            )
        nan = np.isnan(v)
        if nan.any():
            if not allow_nan:
                raise AnnotationError(f"{where}: NaN is not allowed in this file (line: {s!r})")
            if not nan.all():
                raise AnnotationError(f"{where}: row is partly NaN (line: {s!r}); a row is all numbers or all NaN")
        rows.append(v)
    if not rows:
        if allow_empty:
            return np.zeros((0, accepted[0]), dtype=np.float64)
        raise AnnotationError(f"{path} holds no annotations (empty file)")
    return np.stack(rows)


def read_boxes(path: str | os.PathLike, *, one_based: bool = False, corners: str | None = None) -> np.ndarray:
    """Boxes ``N x 4`` in gradtrack's convention (0-based ``x, y, w, h``) from a box file.

    ``one_based``: the file uses 1-based MATLAB pixel coordinates (OTB, UAV123, LaSOT...): 1 is
    subtracted from x and y.  ``corners``: the file holds corner boxes ``x1, y1, x2, y2``;
    ``"exclusive"`` gives ``w = x2 - x1``, ``"inclusive"`` (MATLAB pixel indices, TLD) ``w = x2 - x1 + 1``.
    Non-positive sizes are kept (they are what the file says); NaN rows stay NaN.
    """
    b = read_table(path, 4)
    if corners is not None:
        if corners not in ("exclusive", "inclusive"):
            raise ValueError(f"corners must be 'exclusive', 'inclusive' or None, got {corners!r}")
        extra = 1.0 if corners == "inclusive" else 0.0
        b = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2] + extra], axis=1)
    if one_based:
        b[:, :2] -= 1.0
    return b


def read_flags(path: str | os.PathLike, n: int | None = None, *, what: str = "labels",
               integer: bool = True) -> np.ndarray:
    """Per-frame numbers: one per line (GOT-10k ``absence.label``, VOT ``*.tag``/``*.label``) or all on one
    line separated by commas (LaSOT ``full_occlusion.txt``).  Returns an int64 array (float64 if not
    ``integer``); ``n`` (if given) is the expected count.  An empty file is ``n`` zeros (VOT writes empty tag
    files for sequences without the tag) when ``n`` is given.
    """
    values = []
    lines = list(iter_lines(path)) if Path(path).is_file() else None
    if lines is None:
        raise AnnotationError(f"{what} file not found: {path}")
    if not lines:
        if n is None:
            raise AnnotationError(f"{path}: empty {what} file")
        return np.zeros(n, dtype=np.int64 if integer else np.float64)
    for lineno, s in lines:
        v = parse_values(s, _where(path, lineno))
        if len(lines) > 1 and len(v) != 1:
            raise AnnotationError(f"{_where(path, lineno)}: expected one value per line, found {len(v)}")
        if np.isnan(v).any():
            raise AnnotationError(f"{_where(path, lineno)}: NaN in {what}")
        if integer and (v != np.round(v)).any():
            raise AnnotationError(f"{_where(path, lineno)}: {what} must be integers (line: {s!r})")
        values.append(v)
    arr = np.concatenate(values)
    if n is not None and len(arr) != n:
        raise AnnotationError(f"{path}: {len(arr)} {what} but the sequence has {n} frames")
    return arr.astype(np.int64) if integer else arr


def mask_rle_to_box(text: str, where: str = "") -> np.ndarray:
    """The tight 0-based ``x, y, w, h`` box of a VOT2020 mask region ``m<x0>,<y0>,<w>,<h>,<rle...>``.

    The run-length code alternates runs of 0 and 1 pixels (starting with 0) in row-major order over the
    ``w x h`` patch whose top-left pixel is ``(x0, y0)``.  An empty mask gives a NaN box (target absent).
    """
    body = text.strip()
    if not body.startswith("m"):
        raise AnnotationError(f"{where}: not a mask region (no leading 'm'): {text[:40]!r}")
    parts = [t for t in _SPLIT.split(body[1:]) if t]
    try:
        vals = [int(t) for t in parts]
    except ValueError:
        raise AnnotationError(f"{where}: mask region values must be integers: {text[:60]!r}") from None
    if len(vals) < 4:
        raise AnnotationError(f"{where}: mask region needs x0,y0,width,height before the run lengths")
    x0, y0, w, h = vals[:4]
    runs = np.asarray(vals[4:], dtype=np.int64)
    if w <= 0 or h <= 0 or (runs < 0).any():
        raise AnnotationError(f"{where}: mask region has a non-positive size or a negative run length")
    total = int(runs.sum())
    if total > w * h:
        raise AnnotationError(f"{where}: mask run lengths cover {total} pixels but the patch has {w}x{h}={w * h}")
    ends = np.cumsum(runs)
    starts = ends - runs
    ones = [(int(s), int(e)) for k, (s, e) in enumerate(zip(starts, ends)) if k % 2 == 1 and e > s]
    if not ones:
        return np.full(4, np.nan)
    rows, cols = [], []
    for s, e in ones:
        r0, r1 = s // w, (e - 1) // w
        rows += [r0, r1]
        if r0 == r1:
            cols += [s % w, (e - 1) % w]
        else:  # the run wraps over full rows: every column is touched
            cols += [0, w - 1]
    c1, c2, r1, r2 = min(cols), max(cols), min(rows), max(rows)
    return np.array([x0 + c1, y0 + r1, c2 - c1 + 1, r2 - r1 + 1], dtype=np.float64)


def parse_region(text: str, where: str = "") -> tuple[np.ndarray, np.ndarray | None]:
    """One VOT region line -> ``(box xywh, polygon (8,) or None)``, 0-based as stored by VOT.

    4 values: a rectangle ``x, y, w, h``; 6 or more (even): a polygon, turned into the area-preserving
    axis-aligned box of :func:`gradtrack.geometry.polygon_to_xywh` (an 8-value polygon is also returned);
    a single ``0`` or NaN: no annotation; ``m...``: a VOT2020 mask, turned into its tight box.
    """
    from gradtrack.geometry.boxes import polygon_to_xywh, xywh_to_polygon

    s = text.strip()
    if s.startswith("m"):
        box = mask_rle_to_box(s, where)
        poly = None if np.isnan(box).any() else xywh_to_polygon(box)
        return box, poly
    v = parse_values(s, where)
    if np.isnan(v).any():
        if not np.isnan(v).all():
            raise AnnotationError(f"{where}: region is partly NaN (line: {s!r})")
        return np.full(4, np.nan), None
    if len(v) == 1 and v[0] == 0:  # a lone 0: frame without a region (target absent)
        return np.full(4, np.nan), None
    if len(v) == 4:
        return v.copy(), xywh_to_polygon(v)
    if len(v) >= 6 and len(v) % 2 == 0:
        box = polygon_to_xywh(v)
        poly = v.copy() if len(v) == 8 else xywh_to_polygon(box)
        return box, poly
    raise AnnotationError(
        f"{where}: a VOT region has 4 values (box), an even number >= 6 (polygon) or is a mask 'm...'; "
        f"found {len(v)} values (line: {s[:80]!r})"
    )


def read_regions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a VOT ``groundtruth.txt``: ``(boxes N x 4, polygons N x 8)``; see :func:`parse_region`."""
    boxes, polys = [], []
    for lineno, s in iter_lines(path):
        box, poly = parse_region(s, _where(path, lineno))
        boxes.append(box)
        polys.append(poly if poly is not None else np.full(8, np.nan))
    if not boxes:
        raise AnnotationError(f"{path} holds no annotations (empty file)")
    return np.stack(boxes), np.stack(polys)

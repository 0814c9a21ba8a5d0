"""Tracking metrics in pure NumPy, with every convention an explicit switch.

All boxes are gradtrack boxes: 0-based float ``(x, y, w, h)``, ``N x 4`` arrays (see
:mod:`gradtrack.geometry.boxes`).  Regions for VOT may also be ``N x 8`` polygons.  Nothing here reads
files; :mod:`gradtrack.evaluation.scoring` applies these functions to result folders.

Conventions (defaults mirror the ``got10k`` toolkit for OTB / UAV / LaSOT / GOT-10k and ``vot-toolkit``
for VOT; see the implementation notes §4):

``iou_convention``
    ``"continuous"`` (default; got10k ``rect_iou``): a box covers ``[x, x + w) x [y, y + h)``, areas are
    ``w * h``.  ``"pixel_inclusive"`` (pytracking ``calc_iou``): a box covers the pixels ``x .. x + w - 1``,
    the intersection of pixel ranges gets ``+ 1`` and the areas stay ``w * h``.  For ``x, y, w, h`` boxes
    the ``- 1`` and ``+ 1`` cancel, so both give the same IoU (a test pins this); the switch exists so that
    the convention is stated, and the conventions really differ for centres (below).
``center``
    ``"pixel_inclusive"`` (default; got10k ``center_error``): centre ``x + (w - 1) / 2``.
    ``"continuous"``: centre ``x + w / 2`` (gradtrack's geometric centre).  The two conventions differ
    only when the two boxes have different sizes.
``invalid_frames``
    What happens with frames whose ground truth is missing (NaN row, or ``valid`` False):
    ``"exclude"`` (default; got10k UAV123 / LaSOT: the frames leave numerator and denominator),
    ``"count_as_failure"`` (pysot success, pytracking: they stay in the denominator and never succeed),
    ``"count_as_success"`` (precision only; pysot / pytracking ``uav``: centre error -1 always passes).
    A NaN *prediction* on a valid frame is always a failure (IoU 0, centre error infinite).
``norm_prec_score``
    ``"auc_0_0.5"`` (default; got10k LaSOT): mean of the normalised-precision curve over
    ``linspace(0, 0.5, 51)``.  ``"at_0.2"`` (pysot / pytracking): the curve's value at threshold 0.20.
``eao_index_base``
    ``"vot_toolkit"`` (default): EAO = ``mean(curve[low : high + 1])``.  ``"pysot"``:
    ``mean(curve[low - 1 : high])`` (one index lower, eao_benchmark.py).

Thresholds: success uses ``IoU > thr`` (**strict**) over ``linspace(0, 1, 21)``, so a perfect tracker scores
20/21; precision uses ``error <= thr`` over ``0 .. 50`` px and the precision score is the value at 20 px.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence as Seq

import numpy as np

__all__ = [
    "SUCCESS_THRESHOLDS",
    "PRECISION_THRESHOLDS",
    "NORM_PRECISION_THRESHOLDS",
    "GOT10K_THRESHOLDS",
    "EAO_INTERVALS",
    "VOT_INIT",
    "VOT_FAILURE",
    "VOT_SKIPPED",
    "VOT_REGION",
    "box_iou",
    "clip_boxes",
    "centers",
    "center_error",
    "normalized_center_error",
    "success_curve",
    "precision_curve",
    "auc",
    "ope_sequence",
    "ope_summary",
    "attribute_breakdown",
    "got10k_ious",
    "got10k_summary",
    "polygon_area",
    "clip_polygon",
    "region_iou",
    "vot_overlaps",
    "vot_accuracy",
    "vot_failures",
    "vot_segments",
    "eao_curve",
    "eao_score",
    "vot_summary",
    "vot_tag_breakdown",
    "fps",
]

#: OTB success thresholds (got10k ``nbins_iou = 21``).
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
#: OTB precision thresholds in pixels (got10k ``nbins_ce = 51``).
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
#: LaSOT normalised precision thresholds.
NORM_PRECISION_THRESHOLDS = np.linspace(0.0, 0.5, 51)
#: GOT-10k success curve thresholds (101 bins).
GOT10K_THRESHOLDS = np.linspace(0.0, 1.0, 101)
#: EAO intervals ``(low, high)`` of the VOT stacks (vot-toolkit YAML, pysot eao_benchmark.py).
EAO_INTERVALS = {
    "vot2016": (108, 371),
    "vot2017": (100, 356),
    "vot2018": (100, 356),
    "vot2019": (46, 291),
}

# labels of the VOT result format (and of ``flags`` arrays): a special frame or a region
VOT_SKIPPED = 0  # "0": frame not tracked (after a failure, before re-initialisation) = vot-toolkit UNKNOWN
VOT_INIT = 1  # "1": (re-)initialisation frame
VOT_FAILURE = 2  # "2": failure frame
VOT_REGION = -1  # the tracker reported a region (never written as a label)

_IOU_CONVENTIONS = ("continuous", "pixel_inclusive")
_CENTERS = ("pixel_inclusive", "continuous")
_INVALID = ("exclude", "count_as_failure", "count_as_success")
_NORM_SCORES = ("auc_0_0.5", "at_0.2")
_EAO_BASES = ("vot_toolkit", "pysot")


def _check(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _boxes(a) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"expected N x 4 boxes (x, y, w, h), got shape {np.shape(a)}")
    return arr


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    p, g = _boxes(pred), _boxes(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction and ground truth differ in shape: {p.shape} vs {g.shape}")
    return p, g


# ----------------------------------------------------------------------------------------------------
# box overlap and centre error
# ----------------------------------------------------------------------------------------------------
def clip_boxes(boxes, bound, mode: str = "exact") -> np.ndarray:
    """Clip boxes to the image ``bound = (W, H)``.

    ``mode="exact"``: the geometric intersection with ``[0, W] x [0, H]`` (may give zero-size boxes).
    ``mode="got10k"``: got10k ``rect_iou(bound=...)``: ``x`` is clamped to ``[0, W]`` and then ``w`` to
    ``[0, W - x]``; a box sticking out on the left is *moved* right rather than cut (a quirk kept so AO
    matches the toolkit and the evaluation server).
    """
    _check(mode, ("exact", "got10k"), "clip mode")
    b = _boxes(boxes).copy()
    w_img, h_img = float(bound[0]), float(bound[1])
    if mode == "got10k":
        b[:, 0] = np.clip(b[:, 0], 0, w_img)
        b[:, 1] = np.clip(b[:, 1], 0, h_img)
        b[:, 2] = np.clip(b[:, 2], 0, w_img - b[:, 0])
        b[:, 3] = np.clip(b[:, 3], 0, h_img - b[:, 1])
        return b
    x1 = np.clip(b[:, 0], 0, w_img)
    y1 = np.clip(b[:, 1], 0, h_img)
    x2 = np.clip(b[:, 0] + b[:, 2], 0, w_img)
    y2 = np.clip(b[:, 1] + b[:, 3], 0, h_img)
    return np.stack([x1, y1, np.maximum(x2 - x1, 0), np.maximum(y2 - y1, 0)], axis=1)


def box_iou(pred, gt, *, convention: str = "continuous", bound=None, clip_mode: str = "exact") -> np.ndarray:
    """Row-wise IoU of two ``N x 4`` box arrays.

    Rows with a NaN in either box give NaN (the caller decides what that means).  Two empty boxes give 0.
    ``bound=(W, H)`` first clips both boxes to the image (``clip_mode`` as in :func:`clip_boxes`).
    """
    _check(convention, _IOU_CONVENTIONS, "iou_convention")
    p, g = _pair(pred, gt)
    if bound is not None:
        p, g = clip_boxes(p, bound, clip_mode), clip_boxes(g, bound, clip_mode)
    # continuous: a box spans [x, x + w); pixel_inclusive (pytracking): pixels x .. x + w - 1, so the
    # intersection of the pixel ranges gets + 1.  The areas are w * h in both conventions.
    one = 1.0 if convention == "pixel_inclusive" else 0.0
    iw = np.minimum(p[:, 0] + p[:, 2] - one, g[:, 0] + g[:, 2] - one) - np.maximum(p[:, 0], g[:, 0]) + one
    ih = np.minimum(p[:, 1] + p[:, 3] - one, g[:, 1] + g[:, 3] - one) - np.maximum(p[:, 1], g[:, 1]) + one
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_p = np.clip(p[:, 2], 0, None) * np.clip(p[:, 3], 0, None)
    area_g = np.clip(g[:, 2], 0, None) * np.clip(g[:, 3], 0, None)
    union = area_p + area_g - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    out = np.clip(out, 0.0, 1.0)
    nan = np.isnan(p).any(1) | np.isnan(g).any(1)
    return np.where(nan, np.nan, out)


def centers(boxes, center: str = "pixel_inclusive") -> np.ndarray:
    """Box centres ``N x 2`` under the ``center`` convention (see the module docstring)."""
    _check(center, _CENTERS, "center")
    b = _boxes(boxes)
    off = 1.0 if center == "pixel_inclusive" else 0.0
    return b[:, :2] + (b[:, 2:] - off) / 2.0


def center_error(pred, gt, *, center: str = "pixel_inclusive") -> np.ndarray:
    """Euclidean distance in pixels between box centres (NaN where either box has a NaN)."""
    p, g = _pair(pred, gt)
    d = centers(p, center) - centers(g, center)
    return np.sqrt(np.sum(d * d, axis=1))


def normalized_center_error(pred, gt, *, center: str = "pixel_inclusive") -> np.ndarray:
    """LaSOT normalised centre error: per-axis offset divided by ``max(1, gt size)``, then the norm."""
    p, g = _pair(pred, gt)
    d = (centers(p, center) - centers(g, center)) / np.maximum(1.0, g[:, 2:])
    return np.sqrt(np.sum(d * d, axis=1))


# ----------------------------------------------------------------------------------------------------
# curves
# ----------------------------------------------------------------------------------------------------
def _valid_mask(n: int, valid) -> np.ndarray:
    if valid is None:
        return np.ones(n, dtype=bool)
    v = np.asarray(valid, dtype=bool)
    if v.shape != (n,):
        raise ValueError(f"valid must have one flag per frame ({n}), got shape {v.shape}")
    return v


def success_curve(ious, thresholds=SUCCESS_THRESHOLDS, *, valid=None, invalid_frames: str = "exclude") -> np.ndarray:
    """Fraction of frames with ``IoU > thr`` (strict) for each threshold.

    ``valid``: frames with ground truth (default: all).  Invalid frames are dropped (``"exclude"``) or
    counted as failures (``"count_as_failure"``).  A NaN IoU on a valid frame is a failure.  With no frame
    left the curve is NaN.
    """
    _check(invalid_frames, _INVALID[:2], "invalid_frames (success)")
    ious = np.asarray(ious, dtype=np.float64).reshape(-1)
    v = _valid_mask(len(ious), valid)
    thr = np.asarray(thresholds, dtype=np.float64)
    passed = np.greater(np.where(np.isnan(ious), -np.inf, ious)[:, None], thr[None, :]) & v[:, None]
    denom = v.sum() if invalid_frames == "exclude" else len(ious)
    if denom == 0:
        return np.full(len(thr), np.nan)
    return passed.sum(0) / denom


def precision_curve(
    errors, thresholds=PRECISION_THRESHOLDS, *, valid=None, invalid_frames: str = "exclude"
) -> np.ndarray:
    """Fraction of frames with ``error <= thr`` for each threshold (NaN error on a valid frame = failure).

    ``invalid_frames``: ``"exclude"``, ``"count_as_failure"`` or ``"count_as_success"`` (pysot).
    """
    _check(invalid_frames, _INVALID, "invalid_frames (precision)")
    err = np.asarray(errors, dtype=np.float64).reshape(-1)
    v = _valid_mask(len(err), valid)
    thr = np.asarray(thresholds, dtype=np.float64)
    passed = np.less_equal(np.where(np.isnan(err), np.inf, err)[:, None], thr[None, :]) & v[:, None]
    if invalid_frames == "count_as_success":
        passed |= ~v[:, None]
    denom = v.sum() if invalid_frames == "exclude" else len(err)
    if denom == 0:
        return np.full(len(thr), np.nan)
    return passed.sum(0) / denom


def auc(curve) -> float:
    """The OTB "AUC": the plain mean of the success curve (got10k / pysot)."""
    return float(np.mean(np.asarray(curve, dtype=np.float64)))


def ope_sequence(
    pred,
    gt,
    *,
    valid=None,
    iou_convention: str = "continuous",
    center: str = "pixel_inclusive",
    invalid_frames: str = "exclude",
    force_first_frame_gt: bool = True,
) -> dict:
    """Per-sequence OPE curves: ``success``, ``precision``, ``norm_precision`` (+ ``ious``, ``errors``).

    ``invalid_frames``: ``"exclude"`` (got10k), ``"count_as_failure"`` (pytracking) or ``"count_as_success"``
    (pysot: invalid frames fail the success curve but pass the precision curves; denominators = all frames).
    ``valid`` defaults to the frames whose GT row has no NaN.  ``force_first_frame_gt`` replaces the
    first prediction by the GT (got10k ``boxes[0] = anno[0]``; gradtrack's OPE already writes the GT).
    """
    p, g = _pair(pred, gt)
    if force_first_frame_gt:
        p = p.copy()
        p[0] = g[0]
    gt_ok = ~np.isnan(g).any(1)
    v = gt_ok if valid is None else (np.asarray(valid, dtype=bool) & gt_ok)
    ious = box_iou(p, g, convention=iou_convention)
    errs = center_error(p, g, center=center)
    nerrs = normalized_center_error(p, g, center=center)
    # "count_as_success" is pysot's mix: invalid frames fail the success curve (IoU -1) but pass the
    # precision curves (centre error -1)
    succ_invalid = "count_as_failure" if invalid_frames == "count_as_success" else invalid_frames
    prec_invalid = invalid_frames
    return {
        "success": success_curve(ious, valid=v, invalid_frames=succ_invalid),
        "precision": precision_curve(errs, valid=v, invalid_frames=prec_invalid),
        "norm_precision": precision_curve(nerrs, NORM_PRECISION_THRESHOLDS, valid=v, invalid_frames=prec_invalid),
        "ious": ious,
        "errors": errs,
        "n_frames": int(len(p)),
        "n_valid": int(v.sum()),
    }


def _norm_prec_value(curve: np.ndarray, norm_prec_score: str) -> float:
    _check(norm_prec_score, _NORM_SCORES, "norm_prec_score")
    if norm_prec_score == "auc_0_0.5":
        return float(np.mean(curve))
    return float(curve[20])  # NORM_PRECISION_THRESHOLDS[20] == 0.20


def ope_summary(per_sequence: Iterable[Mapping], *, norm_prec_score: str = "auc_0_0.5") -> dict:
    """Average per-sequence curves over sequences (got10k) and read off the scores.

    ``success_auc`` = mean of the averaged success curve; ``success_rate`` = its value at IoU 0.5;
    ``precision`` = averaged precision curve at 20 px; ``norm_precision`` per ``norm_prec_score``.
    Sequences with no valid frame (NaN curves) are left out of the average (got10k would make the whole
    average NaN; the only case where the two differ).
    """
    seqs = list(per_sequence)
    if not seqs:
        raise ValueError("no sequences to summarise")
    out = {}
    for key in ("success", "precision", "norm_precision"):
        curves = np.stack([np.asarray(s[key], dtype=np.float64) for s in seqs])
        keep = ~np.isnan(curves).any(1)
        out[key + "_curve"] = curves[keep].mean(0) if keep.any() else np.full(curves.shape[1], np.nan)
    out["success_auc"] = auc(out["success_curve"])
    out["success_rate"] = float(out["success_curve"][10])
    out["precision"] = float(out["precision_curve"][20])
    out["norm_precision"] = _norm_prec_value(out["norm_precision_curve"], norm_prec_score)
    out["norm_prec_score"] = norm_prec_score
    out["n_sequences"] = len(seqs)
    return out


def attribute_breakdown(
    per_sequence: Mapping[str, Mapping], attributes: Mapping[str, Iterable[str]], *, norm_prec_score: str = "auc_0_0.5"
) -> dict:
    """OTB-style per-attribute scores: :func:`ope_summary` over the sequences carrying each attribute.

    ``per_sequence``: name -> :func:`ope_sequence` output; ``attributes``: name -> attribute list.
    """
    by_attr: dict[str, list] = {}
    for name, attrs in attributes.items():
        if name not in per_sequence:
            continue
        for a in attrs:
            by_attr.setdefault(str(a), []).append(per_sequence[name])
    return {a: ope_summary(v, norm_prec_score=norm_prec_score) for a, v in sorted(by_attr.items())}


# ----------------------------------------------------------------------------------------------------
# GOT-10k
# ----------------------------------------------------------------------------------------------------
def got10k_ious(pred, gt, image_size, cover=None, *, clip_mode: str = "got10k") -> np.ndarray:
    """IoUs GOT-10k counts for one run: frame 0 dropped, both boxes clipped to the image
    (``clip_mode="got10k"`` reproduces ``rect_iou(bound=resolution)``), frames with ``cover == 0`` dropped.

    Differences from the toolkit, deliberate: frames whose GT has a NaN are dropped too (GOT-10k GT has
    none; other datasets do), and a NaN prediction gives IoU 0 (the toolkit would turn the AO into NaN).
    """
    p, g = _pair(pred, gt)
    ious = box_iou(p[1:], g[1:], bound=image_size, clip_mode=clip_mode)
    keep = ~np.isnan(g[1:]).any(1)
    if cover is not None:
        c = np.asarray(cover).reshape(-1)
        if len(c) != len(g):
            raise ValueError(f"cover has {len(c)} labels for {len(g)} frames")
        keep &= c[1:] > 0
    ious = np.where(np.isnan(ious), 0.0, ious)
    return ious[keep]


def got10k_summary(ious_per_run: Iterable) -> dict:
    """Frame-pooled GOT-10k scores over all runs / sequences: ``ao``, ``sr50``, ``sr75`` (``IoU > t``,
    strict) and the 101-bin success curve."""
    runs = [np.asarray(r, dtype=np.float64).reshape(-1) for r in ious_per_run]
    pooled = np.concatenate(runs) if runs else np.zeros(0)
    if len(pooled) == 0:
        nan = float("nan")
        return {"ao": nan, "sr50": nan, "sr75": nan, "success_curve": np.full(101, np.nan), "n_frames": 0}
    return {
        "ao": float(pooled.mean()),
        "sr50": float(np.mean(pooled > 0.5)),
        "sr75": float(np.mean(pooled > 0.75)),
        "success_curve": np.mean(pooled[:, None] > GOT10K_THRESHOLDS[None, :], axis=0),
        "n_frames": int(len(pooled)),
    }


# ----------------------------------------------------------------------------------------------------
# polygon overlap (VOT)
# ----------------------------------------------------------------------------------------------------
def _as_points(region) -> np.ndarray:
    r = np.asarray(region, dtype=np.float64).reshape(-1)
    if r.size == 4:
        x, y, w, h = r
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    if r.size >= 6 and r.size % 2 == 0:
        return r.reshape(-1, 2)
    raise ValueError(f"a region has 4 (box) or an even number >= 6 (polygon) of values, got {r.size}")


def polygon_area(points) -> float:
    """Absolute shoelace area of a polygon given as ``K x 2`` points."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0)


def _ccw(p: np.ndarray) -> np.ndarray:
    x, y = p[:, 0], p[:, 1]
    signed = np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)
    return p[::-1] if signed < 0 else p


def clip_polygon(subject, clip) -> np.ndarray:
    """Sutherland-Hodgman: the part of polygon ``subject`` inside the **convex** polygon ``clip``.

    Both are ``K x 2`` point arrays in any orientation; returns the (possibly empty) ``M x 2`` result.
    """
    out = np.asarray(subject, dtype=np.float64).reshape(-1, 2)
    c = _ccw(np.asarray(clip, dtype=np.float64).reshape(-1, 2))
    if len(out) < 3 or len(c) < 3 or polygon_area(c) == 0.0:
        return np.zeros((0, 2))
    for i in range(len(c)):
        a, b = c[i], c[(i + 1) % len(c)]
        if len(out) == 0:
            break
        ex, ey = b - a
        # > 0: left of the edge a->b, i.e. inside a counter-clockwise polygon
        side = ex * (out[:, 1] - a[1]) - ey * (out[:, 0] - a[0])
        inside = side >= 0
        nxt = np.roll(out, -1, axis=0)
        side_n = np.roll(side, -1)
        inside_n = np.roll(inside, -1)
        pts = []
        for k in range(len(out)):
            if inside[k]:
                pts.append(out[k])
            if inside[k] != inside_n[k]:
                t = side[k] / (side[k] - side_n[k])
                pts.append(out[k] + t * (nxt[k] - out[k]))
        out = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return out


def _is_axis_box(pts: np.ndarray) -> bool:
    xs, ys = np.unique(pts[:, 0]), np.unique(pts[:, 1])
    return len(pts) == 4 and len(xs) <= 2 and len(ys) <= 2


def region_iou(a, b, bound=None) -> float:
    """Overlap of two regions (4-value boxes or polygons), optionally bounded by the image ``(W, H)``:
    both regions are first intersected with ``[0, W] x [0, H]``.  Continuous geometry, float64 (the
    VOT toolkits rasterise instead; see :func:`vot_overlaps`).  Polygons must be convex (VOT's rotated
    rectangles are); the first may be any simple polygon.  NaN in either region gives NaN.
    """
    pa, pb = _as_points(a), _as_points(b)
    if np.isnan(pa).any() or np.isnan(pb).any():
        return float("nan")
    for r in (a, b):  # a box with a non-positive width or height is empty (as in box_iou)
        r = np.asarray(r, dtype=np.float64).reshape(-1)
        if r.size == 4 and (r[2] <= 0 or r[3] <= 0):
            return 0.0
    if bound is not None:
        w, h = float(bound[0]), float(bound[1])
        frame = np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])
        pa, pb = clip_polygon(pa, frame), clip_polygon(pb, frame)
    area_a, area_b = polygon_area(pa), polygon_area(pb)
    if area_a == 0.0 or area_b == 0.0:
        return 0.0
    if _is_axis_box(pa) and _is_axis_box(pb):
        ax1, ay1 = pa.min(0)
        ax2, ay2 = pa.max(0)
        bx1, by1 = pb.min(0)
        bx2, by2 = pb.max(0)
        inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    else:
        inter = polygon_area(clip_polygon(pa, pb))
    union = area_a + area_b - inter
    return float(min(1.0, max(0.0, inter / union))) if union > 0 else 0.0


def vot_overlaps(regions, flags, gt, image_size=None) -> np.ndarray:
    """Per-frame overlaps of a VOT run with the ground truth (bounded by the image when ``image_size``).

    ``regions``: ``N x 4`` or ``N x 8`` (or a list of per-frame arrays); ``flags``: ``N`` ints, ``VOT_REGION``
    (-1) where the region counts, else the special label (1 init / 2 failure / 0 skipped) whose overlap is
    0 (as in vot-toolkit, where special regions rasterise to nothing).  ``gt``: ``N x 4`` / ``N x 8``.
    A GT with NaN gives NaN; a NaN region gives 0.  When every region and the GT are ``x, y, w, h`` boxes
    the computation is vectorised (same numbers).
    """
    flags = np.asarray(flags).reshape(-1)
    n = len(flags)
    if len(regions) != n or len(gt) != n:
        raise ValueError(f"regions ({len(regions)}), flags ({n}) and ground truth ({len(gt)}) differ in length")
    out = np.zeros(n, dtype=np.float64)
    tracked = np.flatnonzero(flags == VOT_REGION)
    gt_arr = np.asarray(gt, dtype=np.float64) if not isinstance(gt, list) else None
    if gt_arr is not None and gt_arr.ndim == 2 and gt_arr.shape[1] == 4 and all(
            np.asarray(regions[i]).size == 4 for i in tracked):
        # all axis-aligned: vectorised (same numbers as region_iou: exact clipping to the image)
        out[:] = 0.0
        if len(tracked):
            reg = np.stack([np.asarray(regions[i], dtype=np.float64).reshape(4) for i in tracked])
            ious = box_iou(reg, gt_arr[tracked], bound=image_size, clip_mode="exact")
            out[tracked] = np.where(np.isnan(gt_arr[tracked]).any(1), np.nan, np.nan_to_num(ious, nan=0.0))
        out[np.isnan(gt_arr).any(1)] = np.nan
        return out
    for i in range(n):
        g = np.asarray(gt[i], dtype=np.float64)
        if np.isnan(g).any():
            out[i] = np.nan
        elif flags[i] == VOT_REGION:
            ov = region_iou(regions[i], g, image_size)
            out[i] = 0.0 if np.isnan(ov) else ov  # a NaN region on a tracked frame overlaps nothing
    return out


# ----------------------------------------------------------------------------------------------------
# VOT accuracy / robustness / EAO
# ----------------------------------------------------------------------------------------------------
def vot_accuracy(overlaps, flags, *, burnin: int = 10, ignore_unknown: bool = True) -> tuple[float, int]:
    """vot-toolkit ``compute_accuracy``: mean overlap over frames that are not skipped (label 0, when
    ``ignore_unknown``), not failures, and not within ``burnin`` frames from an initialisation (the
    init frame plus the following ``burnin - 1``).  NaN overlaps (no GT) are left out as well.
    Returns ``(accuracy, n_frames_used)``; ``(0.0, 0)`` when nothing is left (as the toolkit).
    """
    o = np.asarray(overlaps, dtype=np.float64).reshape(-1)
    f = np.asarray(flags).reshape(-1)
    mask = np.ones(len(o), dtype=bool)
    if ignore_unknown:
        mask &= f != VOT_SKIPPED
    mask &= f != VOT_FAILURE
    for i in np.flatnonzero(f == VOT_INIT):
        mask[i : i + max(int(burnin), 1)] = False
    mask &= ~np.isnan(o)
    if not mask.any():
        return 0.0, 0
    return float(o[mask].mean()), int(mask.sum())


def vot_failures(flags) -> int:
    """Number of failure frames (label 2) in a run."""
    return int(np.sum(np.asarray(flags).reshape(-1) == VOT_FAILURE))


def vot_segments(overlaps, flags) -> list[tuple[np.ndarray, bool]]:
    """Split a run into EAO segments as vot-toolkit ``EAOCurve``: the k-th initialisation up to (not
    including) the k-th failure is a failed segment; the last initialisation to the end of the sequence,
    if the tracker did not fail after it, is a successful one.  Segments start with the init frame
    (overlap 0).  NaN overlaps (no GT) count as 0.
    """
    o = np.nan_to_num(np.asarray(overlaps, dtype=np.float64).reshape(-1), nan=0.0)
    f = np.asarray(flags).reshape(-1)
    fails = np.flatnonzero(f == VOT_FAILURE)
    inits = np.flatnonzero(f == VOT_INIT)
    if len(fails) == 0:
        return [(o, True)]
    segs = [(o[inits[k] : fails[k]], False) for k in range(len(fails))]
    if len(inits) > len(fails):
        segs.append((o[inits[-1] :], True))
    return segs


def eao_curve(segments: Seq[tuple[np.ndarray, bool]], weights=None) -> np.ndarray:
    """Expected average overlap curve (vot-toolkit ``compute_eao_curve``).

    Every segment is zero-padded to the longest one.  A failed segment counts at every length; a
    successful one only up to its own length.  The value at length ``L`` (index ``L``) is the weighted mean,
    over the segments that count, of ``mean(overlaps[1 : L + 1])`` (the init frame, index 0, is skipped;
    index 0 of the curve is the mean of the init overlaps, i.e. 0).
    """
    if not segments:
        raise ValueError("no segments")
    n = max(len(s) for s, _ in segments)
    k = len(segments)
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    ov = np.zeros((k, n))
    mask = np.zeros((k, n))
    for i, (s, ok) in enumerate(segments):
        ov[i, : len(s)] = s
        mask[i, :] = 1.0 if not ok else 0.0
        if ok:
            mask[i, : len(s)] = 1.0
    running = ov.copy()
    if n > 1:
        csum = np.cumsum(ov[:, 1:], axis=1)
        running[:, 1:] = csum / np.arange(1, n)[None, :]
    num = np.sum(w[:, None] * running * mask, axis=0)
    den = np.sum(w[:, None] * mask, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def eao_score(curve, low: int, high: int, *, index_base: str = "vot_toolkit") -> float:
    """EAO = mean of the curve over the interval (see ``eao_index_base`` in the module docstring).
    ``EAO_INTERVALS`` has the VOT stacks' ``(low, high)``.  NaN entries (lengths no segment reaches) are
    ignored, as pysot does; vot-toolkit would propagate them."""
    _check(index_base, _EAO_BASES, "eao_index_base")
    c = np.asarray(curve, dtype=np.float64)
    part = c[low : high + 1] if index_base == "vot_toolkit" else c[max(low - 1, 0) : high]
    part = part[~np.isnan(part)]
    return float(part.mean()) if len(part) else float("nan")


def vot_summary(
    runs_per_sequence: Mapping[str, Seq[Mapping]],
    *,
    burnin: int = 10,
    sensitivity: float = 30.0,
    eao_interval: tuple[int, int] | str = "vot2016",
    eao_index_base: str = "vot_toolkit",
) -> dict:
    """VOT supervised (reset) scores over sequences, as vot-toolkit's AR and EAO analyses.

    ``runs_per_sequence``: name -> list of runs (repetitions); a run is a mapping with ``overlaps`` (N) and
    ``flags`` (N).  Per sequence, accuracy and failures are averaged over runs; overall accuracy and
    failures are weighted by sequence length (``AverageAccuracyRobustness``).  Also reported:
    ``failures_total`` (sum over sequences of the per-sequence mean failures), ``failures_per_100_frames``
    (pysot-style: 100 x total failures / total frames) and ``ar_robustness = exp(-S * F / length)`` with
    ``S = sensitivity``.  EAO pools the segments of every run of every sequence, weight 1 each.
    """
    low, high = EAO_INTERVALS[eao_interval] if isinstance(eao_interval, str) else eao_interval
    per_seq = {}
    segments = []
    acc_w = fail_w = total_len = 0.0
    fail_total = 0.0
    for name, runs in runs_per_sequence.items():
        runs = list(runs)
        if not runs:
            raise ValueError(f"sequence {name!r} has no runs")
        n = len(np.asarray(runs[0]["flags"]).reshape(-1))
        accs = [vot_accuracy(r["overlaps"], r["flags"], burnin=burnin)[0] for r in runs]
        fails = [vot_failures(r["flags"]) for r in runs]
        a, f = float(np.mean(accs)), float(np.mean(fails))
        per_seq[name] = {
            "accuracy": a,
            "failures": f,
            "ar_robustness": float(np.exp(-sensitivity * f / n)),
            "length": n,
            "repetitions": len(runs),
        }
        acc_w += a * n
        fail_w += f * n
        total_len += n
        fail_total += f
        for r in runs:
            segments.extend(vot_segments(r["overlaps"], r["flags"]))
    if not per_seq:
        raise ValueError("no sequences to summarise")
    accuracy, failures = acc_w / total_len, fail_w / total_len
    mean_len = total_len / len(per_seq)
    curve = eao_curve(segments)
    return {
        "accuracy": accuracy,
        "failures": failures,
        "ar_robustness": float(np.exp(-sensitivity * failures / mean_len)),
        "failures_total": fail_total,
        "failures_per_100_frames": 100.0 * fail_total / total_len,
        "eao": eao_score(curve, low, high, index_base=eao_index_base),
        "eao_curve": curve,
        "eao_interval": [int(low), int(high)],
        "eao_index_base": eao_index_base,
        "per_sequence": per_seq,
    }


def vot_tag_breakdown(runs_per_sequence: Mapping[str, Seq[Mapping]], tags: Mapping[str, Mapping[str, np.ndarray]],
                      *, burnin: int = 10) -> dict:
    """Per-tag accuracy and failures (VOT per-frame attributes such as ``occlusion``).

    For tag ``t``: accuracy = mean overlap over the frames that count for accuracy (as
    :func:`vot_accuracy`) *and* carry ``t``, pooled over runs and sequences; failures = number of failure
    frames carrying ``t``, averaged over runs, summed over sequences; ``frames`` = tagged frames.
    ``tags``: sequence name -> {tag -> N bool}.
    """
    out: dict[str, dict] = {}
    for name, runs in runs_per_sequence.items():
        for tag, mask in tags.get(name, {}).items():
            m = np.asarray(mask, dtype=bool).reshape(-1)
            rec = out.setdefault(tag, {"overlap_sum": 0.0, "overlap_n": 0, "failures": 0.0, "frames": 0})
            rec["frames"] += int(m.sum())
            fails = []
            for r in runs:
                o = np.asarray(r["overlaps"], dtype=np.float64).reshape(-1)
                f = np.asarray(r["flags"]).reshape(-1)
                use = (f != VOT_SKIPPED) & (f != VOT_FAILURE) & ~np.isnan(o)
                for i in np.flatnonzero(f == VOT_INIT):
                    use[i : i + max(int(burnin), 1)] = False
                use &= m
                rec["overlap_sum"] += float(o[use].sum()) / len(runs)
                rec["overlap_n"] += float(use.sum()) / len(runs)
                fails.append(int(np.sum((f == VOT_FAILURE) & m)))
            rec["failures"] += float(np.mean(fails)) if fails else 0.0
    result = {}
    for tag, rec in sorted(out.items()):
        acc = rec["overlap_sum"] / rec["overlap_n"] if rec["overlap_n"] > 0 else float("nan")
        result[tag] = {"accuracy": acc, "failures": rec["failures"], "frames": rec["frames"]}
    return result


# ----------------------------------------------------------------------------------------------------
# speed
# ----------------------------------------------------------------------------------------------------
def fps(times, mode: str = "mean_of_inverse") -> float:
    """Frames per second from per-frame seconds; non-positive and NaN times are dropped (got10k).

    ``"mean_of_inverse"`` (got10k): ``mean(1 / t)``.  ``"frames_over_time"``: ``len(t) / sum(t)``.
    NaN when no usable time is left.
    """
    _check(mode, ("mean_of_inverse", "frames_over_time"), "fps mode")
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    t = t[~np.isnan(t) & (t > 0)]
    if len(t) == 0:
        return float("nan")
    return float(np.mean(1.0 / t)) if mode == "mean_of_inverse" else float(len(t) / t.sum())

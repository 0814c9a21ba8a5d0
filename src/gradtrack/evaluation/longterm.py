"""Confidence and long-term evaluation: per-frame confidence collection, and the VOT long-term
tracking precision / recall / F-score (Lukezic et al., "Now you see me", 2018/2020).

VOT long-term measures, per sequence and confidence threshold ``tau`` (frame 0 excluded):

* precision ``Pr(tau)`` = mean IoU over frames whose confidence is ``>= tau`` (the tracker says "here");
  IoU is 0 on frames where the target is absent;
* recall ``Re(tau)`` = sum of IoU over frames with the target present and confidence ``>= tau``, divided
  by the number of frames with the target present.

``Pr`` and ``Re`` are averaged over sequences (a sequence with no frame above ``tau`` has no precision at
that ``tau`` and is left out of the average; one without present frames is left out of recall), then
``F(tau) = 2 Pr Re / (Pr + Re)``; the F-score is ``max_tau F(tau)``.
"""
from __future__ import annotations

import numpy as np

from ..trackers.base import track_frames
from .metrics import box_iou

__all__ = ["absence_window", "collect_confidence", "longterm_curves", "longterm_fscore"]


def absence_window(sequence, max_frames: int) -> int:
    """A start frame for a capped run that covers the first absence of ``sequence``: about half of the
    ``max_frames`` before it, on a frame with a box (0 when the sequence has no absent frame)."""
    gt = np.asarray(sequence.boxes, dtype=np.float64)
    absent = np.isnan(gt).any(1)
    if sequence.absent is not None:
        absent |= np.asarray(sequence.absent, dtype=bool)
    if not absent.any():
        return 0
    start = max(0, int(np.argmax(absent)) - max_frames // 2)
    while start > 0 and absent[start]:
        start -= 1
    return start


def collect_confidence(tracker, sequence, max_frames: int | None = None, start: int = 0) -> dict:
    """Run ``tracker`` on ``sequence`` from frame ``start`` (initialised on its box; at most ``max_frames``
    frames, init included) and return per-frame arrays for the frames after the init: ``raw`` score,
    ``score`` (calibrated when the tracker is), ``lost``, ``iou`` (0 where the target is absent), ``absent``,
    ``calibrated``, ``search_scale`` (the long-term search enlargement, 1 otherwise)."""
    total = len(sequence.frames)
    if not 0 <= start < total:
        raise ValueError(f"{sequence.name}: start frame {start} outside 0..{total - 1}")
    stop = total if max_frames is None else min(total, start + int(max_frames))
    n = stop - start
    if n < 2:
        raise ValueError(f"{sequence.name}: needs at least 2 frames from {start}, has {n}")
    gt = np.asarray(sequence.boxes[start:stop], dtype=np.float64)
    if np.isnan(gt[0]).any():
        raise ValueError(f"{sequence.name}: the target is absent in frame {start}, cannot initialise")
    absent = np.isnan(gt).any(1)
    if sequence.absent is not None:
        absent |= np.asarray(sequence.absent[start:stop], dtype=bool)
    raw, score, lost, calibrated, boxes, gain = [], [], [], [], [], []
    for step in track_frames(tracker, (sequence.frames[i] for i in range(start, stop)), gt[0]):
        if step.result is None:
            continue
        r = step.result
        raw.append(float(r.extra.get("raw_score", r.score)))
        score.append(float(r.score))
        lost.append(bool(r.lost))
        calibrated.append(bool(r.extra.get("calibrated", False)))
        gain.append(float(r.extra.get("search_scale", 1.0)))
        boxes.append(np.asarray(r.box, dtype=np.float64))
    boxes = np.asarray(boxes).reshape(-1, 4)
    g = gt[1:]
    ab = absent[1:]
    iou = np.zeros(len(g))
    ok = ~ab
    if ok.any():
        iou[ok] = box_iou(boxes[ok], g[ok])
    return {"name": sequence.name, "raw": np.array(raw), "score": np.array(score), "lost": np.array(lost, bool),
            "iou": np.nan_to_num(iou), "absent": ab, "calibrated": bool(all(calibrated)), "frames": n,
            "start": start, "search_scale": np.array(gain)}


def longterm_curves(per_sequence, thresholds=None) -> dict:
    """Precision, recall and F over ``thresholds`` (default: the pooled confidences' quantiles, 0 and 1).
    ``per_sequence``: iterable of dicts with ``iou``, ``score`` and ``absent`` arrays (see
    :func:`collect_confidence`)."""
    seqs = [dict(iou=np.asarray(s["iou"], float), score=np.asarray(s["score"], float),
                 absent=np.asarray(s["absent"], bool)) for s in per_sequence]
    if not seqs:
        raise ValueError("longterm_curves needs at least one sequence")
    for s in seqs:
        if not (s["iou"].shape == s["score"].shape == s["absent"].shape):
            raise ValueError("iou, score and absent must have the same length per sequence")
        s["iou"] = np.where(s["absent"], 0.0, np.nan_to_num(s["iou"]))
    if thresholds is None:
        allsc = np.concatenate([s["score"] for s in seqs])
        thresholds = np.unique(np.concatenate([[0.0], np.quantile(allsc, np.linspace(0, 1, 101)) if allsc.size else []]))
    thresholds = np.asarray(thresholds, dtype=np.float64)
    pr, re = np.full(len(thresholds), np.nan), np.full(len(thresholds), np.nan)
    for k, t in enumerate(thresholds):
        ps, rs = [], []
        for s in seqs:
            on = s["score"] >= t
            if on.any():
                ps.append(s["iou"][on].mean())
            present = ~s["absent"]
            if present.any():
                rs.append(s["iou"][on & present].sum() / present.sum())
        if ps:
            pr[k] = float(np.mean(ps))
        if rs:
            re[k] = float(np.mean(rs))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where((pr + re) > 0, 2 * pr * re / (pr + re), 0.0)
    f = np.where(np.isnan(f), 0.0, f)
    return {"thresholds": thresholds, "precision": pr, "recall": re, "f": f}


def longterm_fscore(per_sequence, thresholds=None) -> dict:
    """``{"f", "precision", "recall", "threshold"}`` at the threshold of the best F (VOT-LT F-score)."""
    c = longterm_curves(per_sequence, thresholds)
    k = int(np.argmax(c["f"]))
    return {"f": float(c["f"][k]), "precision": float(np.nan_to_num(c["precision"][k])),
            "recall": float(np.nan_to_num(c["recall"][k])), "threshold": float(c["thresholds"][k])}

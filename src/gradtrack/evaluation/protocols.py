"""Evaluation protocols on one sequence: OPE, VOT supervised (reset-based) and GOT-10k.

A tracker follows :class:`gradtrack.trackers.base.Tracker`: ``init(rgb, box)`` then
``update(rgb) -> TrackResult``.  A sequence follows :class:`gradtrack.data.sequence.Sequence` (``frames``
lazy RGB uint8, ``boxes`` 0-based ``N x 4`` with NaN rows, optional ``polygons``, ``image_size``).

Times are wall-clock seconds per frame (``time.perf_counter``) around ``init`` / ``update`` only (frame
decoding excluded); frames that are not tracked get NaN.  OPE and GOT-10k run the frame loop of
:func:`gradtrack.trackers.base.track_frames`; the VOT protocol runs it once per (re-)initialisation.
"""
from __future__ import annotations

import numpy as np

from ..trackers.base import track_frames
from .metrics import VOT_FAILURE, VOT_INIT, VOT_REGION, VOT_SKIPPED, region_iou

__all__ = [
    "VOT_REPETITIONS",
    "GOT10K_REPETITIONS",
    "VOT_SKIP_INITIALIZE",
    "run_ope",
    "run_got10k",
    "run_vot_supervised",
    "repetitions_for",
]

#: vot-toolkit stacks: ``repetitions: 15`` (1 for a deterministic tracker).
VOT_REPETITIONS = 15
#: got10k ``ExperimentGOT10k``: 3 repetitions unless the tracker is deterministic.
GOT10K_REPETITIONS = 3
#: frames skipped after a failure before re-initialising (``skip_initialize: 5``).
VOT_SKIP_INITIALIZE = 5


def repetitions_for(tracker, protocol: str) -> int:
    """Repetitions a protocol asks of ``tracker``: 1 if ``tracker.is_deterministic`` (or for OPE), else 15
    (VOT) or 3 (GOT-10k)."""
    if protocol == "ope" or getattr(tracker, "is_deterministic", True):
        return 1
    if protocol == "vot":
        return VOT_REPETITIONS
    if protocol == "got10k":
        return GOT10K_REPETITIONS
    raise ValueError(f"unknown protocol {protocol!r}")


def run_ope(tracker, sequence) -> tuple[np.ndarray, np.ndarray]:
    """One-pass evaluation: initialise on frame 0 with the GT box; frame 0's output is that GT box.

    Returns ``(boxes N x 4, seconds N)``.  Raises if frame 0 has no GT (``Sequence.init_box``).
    """
    init_box = np.asarray(sequence.init_box if hasattr(sequence, "init_box") else sequence.boxes[0], dtype=np.float64)
    if np.isnan(init_box).any():
        raise ValueError(f"sequence {getattr(sequence, 'name', '?')!r}: frame 0 has no ground truth")
    n = len(sequence.boxes)
    boxes = np.full((n, 4), np.nan)
    times = np.full(n, np.nan)
    for step in track_frames(tracker, (sequence.frames[i] for i in range(n)), init_box):
        boxes[step.index], times[step.index] = step.box, step.seconds
    return boxes, times


def run_got10k(tracker, sequence) -> tuple[np.ndarray, np.ndarray]:
    """GOT-10k: the same single pass as OPE (one repetition; the runner repeats)."""
    return run_ope(tracker, sequence)


def _gt_region(sequence, i: int) -> np.ndarray:
    polys = getattr(sequence, "polygons", None)
    if polys is not None and not np.isnan(polys[i]).any():
        return np.asarray(polys[i], dtype=np.float64)
    return np.asarray(sequence.boxes[i], dtype=np.float64)


def run_vot_supervised(
    tracker,
    sequence,
    *,
    skip_initialize: int = VOT_SKIP_INITIALIZE,
    failure_overlap: float = 0.0,
    bounded: bool = True,
) -> tuple[list, np.ndarray, np.ndarray]:
    """VOT reset-based (supervised) run, as vot-toolkit ``SupervisedExperiment`` / got10k / pysot.

    The tracker is initialised on frame 0 from the GT box (the area-preserving axis-aligned box of the VOT
    polygon, as the readers store it).  On each later frame its region (``TrackResult.polygon`` when given,
    else the box) is compared with the GT region (the polygon when the sequence has one) bounded by the image
    (``[0, W] x [0, H]``); an overlap ``<= failure_overlap`` (0) is a failure: the frame is labelled 2, the next
    ``skip_initialize - 1`` frames 0 (skipped), and the tracker is re-initialised on frame
    ``failure + skip_initialize`` (labelled 1) -- or on the first later frame with a GT box.  Frames without
    GT never cause a failure.

    Returns ``(regions, flags, seconds)``: ``regions[i]`` the region array where ``flags[i] == VOT_REGION``
    (else ``None``), ``flags`` the per-frame labels, ``seconds`` NaN on frames not run.
    """
    n = len(sequence.boxes)
    size = tuple(sequence.image_size) if bounded else None
    boxes = np.asarray(sequence.boxes, dtype=np.float64)
    flags = np.full(n, VOT_SKIPPED, dtype=np.int64)
    regions: list = [None] * n
    times = np.full(n, np.nan)

    def next_init(start: int) -> int:
        j = start
        while j < n and np.isnan(boxes[j]).any():
            j += 1
        return j

    if next_init(0) != 0:
        raise ValueError(f"sequence {getattr(sequence, 'name', '?')!r}: frame 0 has no ground truth")
    start = 0
    while start < n:  # one run of the frame loop per (re-)initialisation
        segment = (sequence.frames[j] for j in range(start, n))
        for step in track_frames(tracker, segment, boxes[start]):
            i = start + step.index
            times[i] = step.seconds
            if step.result is None:
                flags[i] = VOT_INIT
                continue
            res = step.result
            region = res.polygon if getattr(res, "polygon", None) is not None else res.box
            region = np.asarray(region, dtype=np.float64).reshape(-1)
            gt = _gt_region(sequence, i)
            ov = float("nan") if np.isnan(gt).any() else region_iou(region, gt, size)
            if not np.isnan(gt).any() and not (ov > failure_overlap):
                flags[i] = VOT_FAILURE
                start = next_init(i + max(int(skip_initialize), 1))
                break
            flags[i] = VOT_REGION
            regions[i] = region
        else:
            break
    return regions, flags, times

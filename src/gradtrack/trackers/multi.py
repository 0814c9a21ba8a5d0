"""Several targets in one video: :class:`MultiTracker` (``gradtrack.MultiTracker``).

    mt = gradtrack.MultiTracker("siamfc", device="cpu")
    mt.init(frame0, [(x, y, w, h), (x2, y2, w2, h2)])
    results = mt.update(frame)        # list of TrackResult, in the order of the boxes

Each target is one slot of a :class:`gradtrack.trackers.batched.BatchedTracker`: one backbone call per
frame for the search crops of all targets (SiamFC, ``siamfc_effnet``, GradNet); other trackers run the
targets one after another (``MultiTracker.batched`` is ``False``, ``fallback_reason`` says why).  Target
``k`` gets exactly the boxes a single tracker started on box ``k`` would give (to float rounding).
"""
from __future__ import annotations

import numpy as np

from ..geometry import validate_box
from ..io import as_rgb_uint8
from .base import Tracker, TrackResult
from .batched import BatchedTracker

__all__ = ["MultiTracker"]


class MultiTracker:
    """Track several targets of one video.  ``name``/``weights``/``device``/``overrides``: as for
    :func:`gradtrack.build_tracker`; or pass a built ``tracker=`` (its network is shared)."""

    def __init__(self, name: str | None = None, weights=None, device=None, *, tracker: Tracker | None = None,
                 batched: bool = True, **overrides):
        if tracker is None:
            if name is None:
                raise TypeError("MultiTracker needs a tracker name (or tracker=a built tracker)")
            from .registry import build_tracker

            tracker = build_tracker(name, weights=weights, device=device, **overrides)
        elif name is not None or overrides or weights is not None:
            raise TypeError("pass either a tracker name (with weights/device/overrides) or tracker=, not both")
        self._bt = BatchedTracker(tracker, batched=batched)
        self._n = 0

    @property
    def batched(self) -> bool:
        return self._bt.batched

    @property
    def fallback_reason(self) -> str:
        return self._bt.fallback_reason

    @property
    def name(self) -> str:
        return self._bt.name

    def __len__(self) -> int:
        return self._n

    def init(self, image, boxes) -> None:
        """Start tracking ``boxes`` (a list of ``(x, y, w, h)``, at least one) in ``image``.  All boxes are
        checked before any target starts; a bad one raises :class:`gradtrack.geometry.BoxError` naming it."""
        img = as_rgb_uint8(image, name="init frame")
        h, w = img.shape[:2]
        boxes = list(boxes) if not isinstance(boxes, np.ndarray) else list(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
        if not boxes:
            raise ValueError("MultiTracker.init needs at least one box")
        checked = [validate_box(b, (w, h), name=f"box {k}") for k, b in enumerate(boxes)]
        for slot in list(self._bt.slots):
            self._bt.release(slot)
        self._n = 0
        try:
            for k, b in enumerate(checked):
                self._bt.init(k, img, b)
        except BaseException:
            for slot in list(self._bt.slots):
                self._bt.release(slot)
            raise
        self._n = len(checked)

    def update(self, image) -> list[TrackResult]:
        """One frame for every target: ``[TrackResult of target 0, 1, ...]``."""
        if not self._n:
            raise RuntimeError("MultiTracker.update() called before init() (or after an init() that failed)")
        img = as_rgb_uint8(image, name="frame")
        res = self._bt.update({k: img for k in range(self._n)})
        return [res[k] for k in range(self._n)]

"""The tracker contract.

``tracker.init(image, box)`` starts a sequence, then ``tracker.update(image) -> TrackResult`` for each
following frame.  Images are RGB uint8 ``H x W x 3`` numpy arrays (grayscale, RGBA and 16-bit frames are
converted as documented in :func:`gradtrack.io.as_rgb_uint8`; anything else is an error).  Boxes are 0-based
float ``(x, y, w, h)`` (see :mod:`gradtrack.geometry.boxes`).  All per-sequence state lives in the tracker
object and ``init`` resets it completely, so one tracker object can run many sequences in turn.
"""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..geometry import validate_box
from ..io import as_rgb_uint8


@dataclass
class TrackResult:
    box: np.ndarray  # (4,) float x, y, w, h
    score: float
    polygon: np.ndarray | None = None  # (8,) rotated rectangle / polygon, optional
    mask: np.ndarray | None = None  # H x W bool in image coordinates, optional
    extra: dict = field(default_factory=dict)


class Tracker(abc.ABC):
    """Base class: validates input, keeps ``name`` and ``is_deterministic`` for the evaluation protocols."""

    name: str = "tracker"
    is_deterministic: bool = True

    def __init__(self) -> None:
        self._initialized = False
        self._image_size: tuple[int, int] | None = None

    def init(self, image, box) -> None:
        img = as_rgb_uint8(image)
        h, w = img.shape[:2]
        b = validate_box(box, (w, h), name="initial box")
        self._image_size = (w, h)
        self._init(img, b)
        self._initialized = True

    def update(self, image) -> TrackResult:
        if not self._initialized:
            raise RuntimeError(f"{type(self).__name__}.update() called before init()")
        img = as_rgb_uint8(image)
        return self._update(img)

    @abc.abstractmethod
    def _init(self, image: np.ndarray, box: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _update(self, image: np.ndarray) -> TrackResult: ...

    def track(self, frames: Iterable[np.ndarray], box) -> tuple[np.ndarray, np.ndarray]:
        """Run a whole sequence: returns ``(boxes N x 4, seconds per frame N)``; frame 0 gets ``box``."""
        boxes, times = [], []
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            if i == 0:
                self.init(frame, box)
                out = np.asarray(box, dtype=np.float64)
            else:
                out = self.update(frame).box
            times.append(time.perf_counter() - t0)
            boxes.append(out)
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(times)

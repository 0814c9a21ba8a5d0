"""The tracker contract.

``tracker.init(image, box)`` starts a sequence, then ``tracker.update(image) -> TrackResult`` for each
following frame.  Images are RGB uint8 ``H x W x 3`` numpy arrays (grayscale, RGBA and 16-bit frames are
converted as documented in :func:`gradtrack.io.as_rgb_uint8`; anything else is an error).  Boxes are 0-based
float ``(x, y, w, h)`` (see :mod:`gradtrack.geometry.boxes`).  All per-sequence state lives in the tracker
object and ``init`` resets it completely, so one tracker object can run many sequences in turn.

:func:`track_frames` is the one frame loop (used by :meth:`Tracker.track`, the evaluation protocols and the
command line); each caller keeps its own output handling.
"""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

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
        steps = list(track_frames(self, frames, box))
        return (np.asarray([s.box for s in steps], dtype=np.float64).reshape(-1, 4),
                np.asarray([s.seconds for s in steps]))


@dataclass
class FrameStep:
    """One frame of :func:`track_frames`."""

    index: int
    frame: np.ndarray  # the frame as given
    box: np.ndarray  # (4,) float64: the initial box on frame 0, else ``result.box``
    result: TrackResult | None  # None on frame 0
    seconds: float  # wall-clock time of ``init`` (frame 0) or ``update``, frame decoding excluded


def track_frames(tracker, frames: Iterable[np.ndarray], box) -> Iterator[FrameStep]:
    """The frame loop: ``tracker.init(frames[0], box)``, then ``tracker.update`` on each later frame,
    yielding a :class:`FrameStep` per frame (lazily, so frames may come from a camera).  ``tracker`` is
    anything with the contract's ``init`` and ``update``."""
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        if i == 0:
            tracker.init(frame, box)
            result, out = None, np.asarray(box, dtype=np.float64).reshape(4)
        else:
            result = tracker.update(frame)
            out = np.asarray(result.box, dtype=np.float64).reshape(4)
        yield FrameStep(i, frame, out, result, time.perf_counter() - t0)

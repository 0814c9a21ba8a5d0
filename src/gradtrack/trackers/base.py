"""The tracker contract.

``tracker.init(image, box)`` starts a sequence, then ``tracker.update(image) -> TrackResult`` for each
following frame.  Images are RGB uint8 ``H x W x 3`` numpy arrays (grayscale, RGBA and 16-bit frames are
converted as documented in :func:`gradtrack.io.as_rgb_uint8`; anything else is an error).  Boxes are 0-based
float ``(x, y, w, h)`` (see :mod:`gradtrack.geometry.boxes`).  All per-sequence state lives in the tracker
object and ``init`` resets it completely, so one tracker object can run many sequences in turn.

:func:`track_frames` is the one frame loop (used by :meth:`Tracker.track`, the evaluation protocols and the
command line); each caller keeps its own output handling.

Confidence: ``TrackResult.score`` is a calibrated probability that the box overlaps the target with
IoU > 0.5 when the tracker's weights carry a calibrator (:mod:`gradtrack.trackers.calibration`), and
``TrackResult.lost`` is ``score < calibrator.lost_threshold``; ``extra["raw_score"]`` keeps the tracker's
own score and ``extra["calibrated"]`` says which case applies.  Without a calibrator ``score`` is the raw
score and ``lost`` is ``raw < UNCALIBRATED_LOST_THRESHOLD`` (0.5), or OpenCV's own failure flag.
"""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from ..geometry import validate_box
from ..io import ImageError, as_rgb_uint8


@dataclass
class TrackResult:
    box: np.ndarray  # (4,) float x, y, w, h
    score: float  # calibrated P(IoU > 0.5) when extra["calibrated"], else the raw score (module docstring)
    polygon: np.ndarray | None = None  # (8,) rotated rectangle / polygon, optional
    mask: np.ndarray | None = None  # H x W bool in image coordinates, optional
    extra: dict = field(default_factory=dict)
    lost: bool = False  # the tracker believes it has lost the target (set by Tracker.update)


class Tracker(abc.ABC):
    """Base class of every tracker: it checks the input, enforces the contract below and keeps ``name`` and
    ``is_deterministic`` for the evaluation protocols.  Subclasses implement ``_init`` / ``_update`` (which
    get checked RGB uint8 frames and a validated box) and ``reset`` (calling ``super().reset()``).

    * ``init(image, box)`` first forgets the previous sequence (:meth:`reset`), then checks the frame and the
      box.  If it raises, the tracker is left uninitialised: a following ``update`` raises ``RuntimeError``
      until an ``init`` succeeds (it never continues the previous sequence).
    * ``update(image)`` needs a frame of the init frame's size: tracking across a resolution change is not
      meaningful without rescaling the state, so another size raises :class:`gradtrack.io.ImageError` naming
      both sizes (the tracker state is untouched; a rejected frame may be followed by a valid one).
    * The returned ``TrackResult.box`` is finite with positive width and height and is the tracker's own
      box, never moved: it may extend past the border.  ``extra["outside"]`` (always set) is ``True`` when
      the box does not overlap the frame ``[0, W) x [0, H)`` at all -- a lost target; only the OpenCV trackers
      can report that, the Siamese ones keep the box centre inside the frame.  Callers that need a box in the
      frame clip it (:func:`gradtrack.geometry.clip_box`); the evaluation protocols score it as it is.

    Errors (the only documented ones): :class:`gradtrack.io.ImageError` for a frame that is not an image or
    has the wrong size, :class:`gradtrack.geometry.BoxError` for a bad initial box -- or one a tracker cannot
    start on, which only the OpenCV trackers do, for targets or frames of a few pixels -- (both
    ``ValueError``; the message names the problem) and ``RuntimeError`` for ``update`` without a successful
    ``init``.
    """

    name: str = "tracker"
    is_deterministic: bool = True

    def __init__(self) -> None:
        self._initialized = False
        self._image_size: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget the current sequence (``init`` does this first); subclasses drop their own state too."""
        self._initialized = False
        self._image_size = None

    def init(self, image, box) -> None:
        self.reset()
        img = as_rgb_uint8(image, name="init frame")
        h, w = img.shape[:2]
        b = validate_box(box, (w, h), name="initial box")
        try:
            self._init(img, b)
        except BaseException:
            self.reset()
            raise
        self._image_size = (w, h)
        self._initialized = True

    def update(self, image) -> TrackResult:
        img = self._checked_frame(image)
        return self._confidence(self._checked(self._update(img), self._image_size))

    def _checked_frame(self, image) -> np.ndarray:
        """``image`` as the RGB uint8 frame ``_update`` gets, after the checks of ``update`` (initialised, the
        init frame's size); also used by :class:`gradtrack.trackers.batched.BatchedTracker` for each slot."""
        if not self._initialized:
            raise RuntimeError(f"{type(self).__name__}.update() called before init() (or after an init() that failed)")
        img = as_rgb_uint8(image, name="frame")
        size = (img.shape[1], img.shape[0])
        if size != self._image_size:
            raise ImageError(f"frame is {size[0]}x{size[1]} but the sequence was initialised on a "
                             f"{self._image_size[0]}x{self._image_size[1]} frame; every frame of a sequence must "
                             "have the init frame's size (resize the frames, or init() again)")
        return img

    # -- confidence (see the module docstring) ------------------------------------------------------
    _calibrator_loaded = False

    @property
    def calibrator(self):
        """The :class:`~gradtrack.trackers.calibration.Calibrator` of this tracker's weights (``None`` if
        none); read once from ``weights_source``.  Assign to override (``None`` = uncalibrated)."""
        if not self._calibrator_loaded:
            from .calibration import for_source

            self._calibrator = for_source(getattr(self, "weights_source", None))
            self._calibrator_loaded = True
        return self._calibrator

    @calibrator.setter
    def calibrator(self, cal) -> None:
        self._calibrator, self._calibrator_loaded = cal, True

    def _uncalibrated_lost(self, result: TrackResult) -> bool:
        from .calibration import UNCALIBRATED_LOST_THRESHOLD

        return bool(result.score < UNCALIBRATED_LOST_THRESHOLD)

    def _confidence(self, result: TrackResult) -> TrackResult:
        raw = float(result.score)
        result.extra["raw_score"] = raw
        cal = self.calibrator
        if cal is None:
            result.extra["calibrated"] = False
            result.lost = self._uncalibrated_lost(result)
        else:
            result.score = float(cal.predict(raw))
            result.extra["calibrated"] = True
            result.lost = bool(result.score < cal.lost_threshold)
        hook = getattr(self, "_after_confidence", None)
        if hook is not None:
            hook(result)
        return result

    def _checked(self, result: TrackResult, size: tuple[int, int]) -> TrackResult:
        box = np.asarray(result.box, dtype=np.float64).reshape(4)
        if not (np.isfinite(box).all() and box[2] > 0 and box[3] > 0):
            raise RuntimeError(f"{type(self).__name__} produced an invalid box {box.tolist()} (a tracker bug)")
        result.box = box
        result.extra["outside"] = not (box[0] < size[0] and box[1] < size[1] and box[0] + box[2] > 0
                                       and box[1] + box[3] > 0)
        return result

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
    box: np.ndarray  # (4,) float64: the initial box on frame 0 (as validated), else ``result.box``
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
            result, out = None, validate_box(box, name="initial box")
        else:
            result = tracker.update(frame)
            out = np.asarray(result.box, dtype=np.float64).reshape(4)
        yield FrameStep(i, frame, out, result, time.perf_counter() - t0)

"""OpenCV's trackers behind gradtrack's :class:`~gradtrack.trackers.base.Tracker` contract, for comparisons.

Registered names: ``opencv_csrt``, ``opencv_kcf``, ``opencv_mil`` and ``nanotrack`` (``cv2.TrackerNano``,
NanoTrack v2 ONNX models).  Needs ``opencv-contrib-python(-headless)``; the API used is the one of OpenCV
>= 4.5.1 / 5.x (``cv2.TrackerCSRT_create`` ...), with the ``cv2.legacy`` constructors as a fallback.

Conversions: input frames are RGB uint8 (the gradtrack contract) and are turned into BGR for OpenCV.
OpenCV rectangles are integer pixel ``(x, y, w, h)`` with pixel ``i`` covering ``[i, i + 1)``, i.e. already
gradtrack's 0-based convention: the initial float box is rounded to the nearest integers and cut to the
frame (OpenCV needs the rectangle inside it), the reported box is returned as floats.  An initial box OpenCV
cannot start on (a target or frame of a few pixels for MIL / CSRT; for MIL any rectangle thinner than
2 px, on which OpenCV's MIL never returns) raises
:class:`~gradtrack.geometry.BoxError` naming the box, the rectangle and OpenCV's reason.  ``score`` is ``getTrackingScore()`` for NanoTrack, else 1.0 when OpenCV reports
success and 0.0 when it reports a loss or an empty rectangle (the previous box is then kept).  These scores
are not calibrated (``extra["calibrated"]`` is False); ``TrackResult.lost`` is ``not ok`` (OpenCV's own flag).

``overrides`` set fields of the OpenCV ``*_Params`` object (``build_tracker("opencv_csrt", use_hog=False)``);
unknown names are an error.  NanoTrack's ONNX files: ``weights`` = a folder holding ``backbone.onnx`` and
``head.onnx`` (or give ``backbone=`` / ``neckhead=`` paths); default: ``$GRADTRACK_NANOTRACK_DIR``, else
``../shared/peers/nanotrack/v2`` relative to the current directory or to the repository.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..geometry import BoxError
from .registry import TRACKERS
from .base import Tracker, TrackResult

__all__ = ["OpenCVTracker", "nanotrack_dir", "OPENCV_TRACKERS"]

#: registered name -> OpenCV class name
OPENCV_TRACKERS = {"opencv_csrt": "TrackerCSRT", "opencv_kcf": "TrackerKCF", "opencv_mil": "TrackerMIL",
                   "nanotrack": "TrackerNano"}


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - opencv is a dependency
        raise ImportError(f"the OpenCV trackers need opencv-contrib-python-headless ({exc})") from None
    return cv2


def nanotrack_dir(weights=None) -> Path:
    """The folder with NanoTrack's ``backbone.onnx`` and ``head.onnx``; raises FileNotFoundError naming the
    places searched."""
    if weights not in (None, "random"):
        candidates = [Path(weights).expanduser()]
    else:
        candidates = []
        env = os.environ.get("GRADTRACK_NANOTRACK_DIR")
        if env:
            candidates.append(Path(env).expanduser())
        candidates.append(Path.cwd().parent / "shared" / "peers" / "nanotrack" / "v2")
        candidates.append(Path(__file__).resolve().parents[3].parent / "shared" / "peers" / "nanotrack" / "v2")
    for c in candidates:
        if (c / "backbone.onnx").is_file() and (c / "head.onnx").is_file():
            return c
    raise FileNotFoundError(
        "NanoTrack ONNX models (backbone.onnx, head.onnx) not found in: "
        + ", ".join(str(c) for c in candidates)
        + ". Set GRADTRACK_NANOTRACK_DIR or pass weights=FOLDER (NanoTrack v2 models: HonglinChu/SiamTrackers, "
        "NanoTrack/models/nanotrackv2)."
    )


class OpenCVTracker(Tracker):
    """One of OpenCV's single-object trackers (see the module docstring)."""

    is_deterministic = True

    def __init__(self, kind: str, params: dict | None = None, name: str | None = None):
        super().__init__()
        cv2 = _cv2()
        if kind not in OPENCV_TRACKERS.values():
            raise ValueError(f"unknown OpenCV tracker {kind!r}; choose from {', '.join(OPENCV_TRACKERS.values())}")
        self.kind = kind
        self.name = name or kind
        self._params = dict(params or {})
        self.reset()
        params_cls = getattr(cv2, f"{kind}_Params", None)
        if params_cls is None and self._params:
            raise ValueError(f"this OpenCV build has no {kind}_Params to apply {sorted(self._params)}")
        if params_cls is not None:  # validate the overrides now, not on the first init()
            p = params_cls()
            for key in self._params:
                if not hasattr(p, key):
                    fields = sorted(a for a in dir(p) if not a.startswith("_"))
                    raise ValueError(f"{kind} has no parameter {key!r}; available: {', '.join(fields)}")

    def reset(self) -> None:
        super().reset()
        self._cv = None
        self._box = None

    def _create(self):
        cv2 = _cv2()
        create = getattr(cv2, f"{self.kind}_create", None)
        params_cls = getattr(cv2, f"{self.kind}_Params", None)
        if create is None:
            legacy = getattr(getattr(cv2, "legacy", None), f"{self.kind}_create", None)
            if legacy is None:
                raise RuntimeError(f"this OpenCV ({cv2.__version__}) has no {self.kind}; install opencv-contrib")
            create = legacy
        if params_cls is not None and (self._params or self.kind == "TrackerNano"):
            p = params_cls()
            for key, value in self._params.items():
                setattr(p, key, value)
            return create(p)
        return create()

    def _init(self, image: np.ndarray, box: np.ndarray) -> None:
        cv2 = _cv2()
        tracker = self._create()
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        hi, wi = image.shape[:2]
        x, y = min(max(int(round(box[0])), 0), wi - 1), min(max(int(round(box[1])), 0), hi - 1)
        w = min(max(int(round(box[2])), 1), wi - x, max(int(round(box[0] + box[2])) - x, 1))
        h = min(max(int(round(box[3])), 1), hi - y, max(int(round(box[1] + box[3])) - y, 1))
        where = f"initial box {box.tolist()} (OpenCV rectangle {x},{y},{w},{h} in the {wi}x{hi} frame): {self.name}"
        if self.kind == "TrackerMIL" and min(w, h) < 2:
            raise BoxError(f"{where} cannot start on it: OpenCV's MIL never returns on a rectangle thinner than 2 px")
        try:
            tracker.init(bgr, (x, y, w, h))
        except cv2.error as exc:  # e.g. MIL/CSRT on a target or frame of a few pixels
            reason = str(exc).strip().splitlines()[-1]
            raise BoxError(f"{where} cannot start on it, OpenCV says: {reason}") from None
        self._cv = tracker
        self._box = np.asarray(box, dtype=np.float64).copy()

    def _uncalibrated_lost(self, result: TrackResult) -> bool:
        return not result.extra.get("opencv_ok", True)

    def _update(self, image: np.ndarray) -> TrackResult:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        ok, rect = self._cv.update(bgr)
        rect = np.asarray(rect, dtype=np.float64).reshape(4)
        ok = bool(ok) and bool(np.isfinite(rect).all() and rect[2] > 0 and rect[3] > 0)  # an empty rect is a loss
        if ok:
            self._box = rect
        if self.kind == "TrackerNano":
            score = float(self._cv.getTrackingScore())
        else:
            score = 1.0 if ok else 0.0
        return TrackResult(box=self._box.copy(), score=score, extra={"opencv_ok": bool(ok)})


def _factory(reg_name: str, kind: str):
    def build(weights=None, device=None, **overrides) -> OpenCVTracker:
        if kind == "TrackerNano":
            params = dict(overrides)
            if "backbone" not in params or "neckhead" not in params:
                d = nanotrack_dir(weights)
                params.setdefault("backbone", str(d / "backbone.onnx"))
                params.setdefault("neckhead", str(d / "head.onnx"))
            for key in ("backbone", "neckhead"):
                if not Path(params[key]).is_file():
                    raise FileNotFoundError(f"NanoTrack {key} model not found: {params[key]}")
            return OpenCVTracker(kind, params, name=reg_name)
        if weights not in (None, "random"):
            raise ValueError(f"{reg_name} has no weights (got weights={weights!r})")
        return OpenCVTracker(kind, overrides, name=reg_name)

    build.__name__ = f"build_{reg_name}"
    build.__doc__ = f"``{reg_name}``: OpenCV {kind} (device is ignored: OpenCV runs on the CPU)."
    return build


for _name, _kind in OPENCV_TRACKERS.items():
    TRACKERS.register(_name)(_factory(_name, _kind))

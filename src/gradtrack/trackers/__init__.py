"""Tracker registry and :func:`build_tracker`.

Register a tracker with a factory ``(weights, device, **overrides) -> Tracker``::

    from gradtrack.trackers import TRACKERS

    @TRACKERS.register("mytracker")
    def build_mytracker(weights=None, device=None, **overrides):
        ...

``overrides`` are the fields of the tracker's config dataclass (plus ``backend="torch"|"onnxruntime"`` and
``onnx_dir`` for the trackers that have an ONNX export, see :func:`model_backend`); factories build it with
:func:`gradtrack.config.from_dict`, so unknown keys and wrong types are errors.

SiamFC and GradNet are registered on import.  Every other module in this package (e.g. ``siammlg``,
``opencv``) is discovered and imported lazily, the first time the registry is queried through
:func:`build_tracker` or :func:`list_trackers`; a module that fails to import (say, a missing optional
dependency) does not break the others: its error is kept and reported with the unknown-name error.
"""
from __future__ import annotations

from .base import FrameStep, Tracker, TrackResult, track_frames
from .registry import BACKENDS, TRACKERS, build_tracker, list_trackers, model_backend

# core trackers (they register themselves in .registry)
from . import siamfc as _siamfc  # noqa: F401
from . import gradnet as _gradnet  # noqa: F401

__all__ = ["BACKENDS", "TRACKERS", "FrameStep", "Tracker", "TrackResult", "build_tracker", "list_trackers",
           "model_backend", "track_frames"]

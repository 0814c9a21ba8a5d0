"""The tracker registry (``TRACKERS``), :func:`build_tracker`, :func:`list_trackers` and
:func:`model_backend`.  The tracker modules of this package register themselves here; the package
``__init__`` re-exports these names (see its docstring for how to register a tracker)."""
from __future__ import annotations

import importlib
import pkgutil
import warnings
from pathlib import Path

from ..registry import Registry
from .base import Tracker

TRACKERS: Registry = Registry("tracker")
BACKENDS = ("torch", "onnxruntime")


def model_backend(tracker_name: str, model, source: str, backend: str = "torch", onnx_dir=None, device=None,
                  tracker_config=None):
    """The network a tracker runs: ``model`` itself for ``backend="torch"``; for ``"onnxruntime"`` its
    ONNX Runtime stand-in (:func:`gradtrack.deploy.load_backend`: graphs from ``onnx_dir``, ``None`` = the
    user's cache folder, exported there on first use), which has the methods the tracker calls."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        if onnx_dir is not None:
            raise ValueError("onnx_dir is only used with backend='onnxruntime'")
        return model
    from ..deploy.onnx import load_backend

    weights_file = source if source not in ("random", "module") else None
    return load_backend(tracker_name, model, onnx_dir, device=device, weights_source=source,
                        weights_file=weights_file, tracker_config=tracker_config)


_NOT_TRACKERS = {"base", "common", "update", "registry", "siamfc", "gradnet"}
_discovered = False
_import_errors: dict[str, str] = {}


def _discover() -> None:
    """Import the optional tracker modules of this package once (guarded)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name in _NOT_TRACKERS or info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__package__}.{info.name}")
        except Exception as exc:  # an optional tracker must never break the others
            _import_errors[info.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"gradtrack: tracker module {info.name!r} could not be imported ({_import_errors[info.name]})",
                          RuntimeWarning, stacklevel=3)


def list_trackers() -> list[str]:
    """Names accepted by :func:`build_tracker`, sorted."""
    _discover()
    return TRACKERS.names()


def build_tracker(name: str, weights=None, device=None, **overrides) -> Tracker:
    """Build a ready-to-use tracker.

    ``weights``: ``None`` = the weights shipped in ``gradtrack/weights/<name>.pt`` (an error that says so
    if there are none yet), ``"random"`` = an untrained network (for demos and tests; its boxes are
    meaningless), or a checkpoint path (:func:`gradtrack.checkpoint.save_model` format).  ``device``:
    ``None`` = ``"cuda"`` when available, else ``"cpu"``.  ``overrides``: config fields of that tracker.
    """
    _discover()
    if name not in TRACKERS:
        msg = f"unknown tracker {name!r}; available: {', '.join(TRACKERS.names())}"
        if _import_errors:
            msg += "; modules that failed to import: " + "; ".join(f"{k} ({v})" for k, v in _import_errors.items())
        raise KeyError(msg)
    return TRACKERS.get(name)(weights=weights, device=device, **overrides)



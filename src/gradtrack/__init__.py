"""gradtrack: gradient-guided Siamese visual object tracking (SiamFC, GradNet, SiamMLG) in PyTorch.

Public API::

    import gradtrack
    tracker = gradtrack.build_tracker("gradnet", weights=None, device=None, fusion="official")
    tracker.init(rgb_uint8_image, (x, y, w, h))      # 0-based float box
    result = tracker.update(next_image)              # TrackResult(box, score, ...)
    gradtrack.list_trackers()

The tracker machinery (and torch) is imported on first use, so ``import gradtrack`` stays light.
"""
from __future__ import annotations

__version__ = "0.1.0"


def build_tracker(name: str, weights=None, device=None, **overrides):
    """Build tracker ``name``; see :func:`gradtrack.trackers.build_tracker`."""
    from .trackers import build_tracker as _build

    return _build(name, weights=weights, device=device, **overrides)


def list_trackers() -> list[str]:
    """Names of the registered trackers; see :func:`gradtrack.trackers.list_trackers`."""
    from .trackers import list_trackers as _list

    return _list()


__all__ = ["__version__", "build_tracker", "list_trackers"]

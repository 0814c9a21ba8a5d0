"""gradtrack: gradient-guided Siamese visual object tracking (SiamFC, GradNet, SiamMLG) in PyTorch.

Public API::

    import gradtrack
    tracker = gradtrack.build_tracker("gradnet", weights=None, device=None, fusion="official")
    tracker.init(rgb_uint8_image, (x, y, w, h))      # 0-based float box
    result = tracker.update(next_image)              # TrackResult(box, score, ...)
    gradtrack.list_trackers()
    mt = gradtrack.MultiTracker("siamfc")            # several targets, one backbone call per frame
    mt.init(rgb_uint8_image, [box_a, box_b]); results = mt.update(next_image)   # [TrackResult, ...]

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


def __getattr__(name: str):
    if name == "MultiTracker":  # imported on first use (torch), see gradtrack.trackers.multi
        from .trackers.multi import MultiTracker

        return MultiTracker
    raise AttributeError(f"module 'gradtrack' has no attribute {name!r}")


__all__ = ["__version__", "MultiTracker", "build_tracker", "list_trackers"]

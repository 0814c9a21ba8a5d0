"""Run a gradtrack tracker unchanged under other toolkits.

``Got10kTracker(tracker)`` is a ``got10k.trackers.Tracker`` (the ``got10k`` PyPI toolkit), so a gradtrack
tracker runs in ``ExperimentOTB / GOT10k / VOT / UAV123 ...``::

    from got10k.experiments import ExperimentGOT10k
    from gradtrack import build_tracker
    from gradtrack.evaluation.adapters import Got10kTracker
    ExperimentGOT10k("data/GOT-10k", subset="val").run(Got10kTracker(build_tracker("gradnet")))

got10k hands PIL images (RGB) and 0-based ``[x, y, w, h]`` boxes in the same continuous convention as
gradtrack; the adapter converts the image to an RGB uint8 numpy array (grayscale and RGBA via
:func:`gradtrack.io.as_rgb_uint8`) and returns the box as a float array.  ``is_deterministic`` and ``name``
are taken from the wrapped tracker (got10k then runs 1 instead of 3 / 15 repetitions).
"""
from __future__ import annotations

import numpy as np

try:
    from got10k.trackers import Tracker as _Got10kBase
except ImportError as _exc:  # got10k is an optional, test-time dependency
    _Got10kBase = None
    _IMPORT_ERROR = _exc
else:
    _IMPORT_ERROR = None

__all__ = ["Got10kTracker", "pil_to_rgb"]


def pil_to_rgb(image) -> np.ndarray:
    """A PIL image (any mode) or array -> RGB uint8 ``H x W x 3``."""
    from gradtrack.io import as_rgb_uint8

    mode = getattr(image, "mode", None)
    if mode is not None and mode not in ("RGB", "L", "RGBA", "I;16"):
        image = image.convert("RGB")
    return as_rgb_uint8(np.asarray(image))


if _Got10kBase is not None:

    class Got10kTracker(_Got10kBase):
        """A got10k-toolkit tracker wrapping a gradtrack :class:`~gradtrack.trackers.base.Tracker`."""

        def __init__(self, tracker, name: str | None = None):
            super().__init__(name=name or getattr(tracker, "name", type(tracker).__name__),
                             is_deterministic=bool(getattr(tracker, "is_deterministic", True)))
            self.tracker = tracker

        def init(self, image, box):
            self.tracker.init(pil_to_rgb(image), np.asarray(box, dtype=np.float64))

        def update(self, image):
            return np.asarray(self.tracker.update(pil_to_rgb(image)).box, dtype=np.float64).reshape(4)

else:

    class Got10kTracker:  # type: ignore[no-redef]
        """Placeholder raising a clear error: the got10k toolkit is not installed."""

        def __init__(self, *args, **kwargs):
            raise ImportError(f"Got10kTracker needs the got10k toolkit: pip install got10k ({_IMPORT_ERROR})")

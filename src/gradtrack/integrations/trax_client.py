"""A TraX server for every gradtrack tracker (the protocol ``vot evaluate`` speaks to ``protocol = trax``).

``gradtrack vot-client --tracker NAME`` (or :func:`serve`) builds the tracker, then answers the toolkit's
requests on stdin/stdout until it quits:

* regions in: ``rectangle`` (``x, y, w, h``) or ``polygon`` (VOT rotated rectangles; any polygon of >= 3
  points).  A polygon initialises the tracker with its area-preserving axis-aligned box
  (:func:`gradtrack.geometry.polygon_to_xywh`, the convention of the VOT toolkits and of gradtrack's VOT
  reader, so ``gradtrack eval --protocol vot`` initialises from the same box).  Masks are refused (the
  handshake does not offer them, so the toolkit converts or declines before starting).
* regions out: always a rectangle, the tracker's ``TrackResult.box``; the initialisation frame answers the
  box it was initialised with.  ``confidence`` (the tracker's score) is sent as an object property.
* images in: ``path`` (what the toolkit sends), ``memory`` (raw RGB / gray8 / gray16 arrays) and ``buffer``
  (encoded JPEG / PNG bytes); every image becomes RGB uint8 through :mod:`gradtrack.io`.  Only the
  ``color`` channel is used.

Time-outs: the toolkit's watchdog runs from process start to the end of the handshake and then per
request, so the model is built (weights loaded, one warm-up forward pass) *before* the handshake and the
per-frame requests only track.  Threads: ``threads=`` / ``--threads`` or the environment variable
``GRADTRACK_THREADS`` (else ``OMP_NUM_THREADS``) sets ``torch.set_num_threads`` before the model is built.

Anything the process prints to stdout would corrupt the protocol, so Python's ``sys.stdout`` is pointed at
stderr for the whole session (libtrax writes to the file descriptor itself).
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Mapping

import numpy as np

from gradtrack.errors import UsageError

__all__ = ["THREADS_ENV", "TraxSession", "region_to_box", "trax_image_to_rgb", "resolve_threads", "serve"]

#: environment variable read for the torch thread count (``trackers.ini`` written by vot-workspace sets it)
THREADS_ENV = "GRADTRACK_THREADS"


def _import_trax():
    try:
        import trax  # noqa: F401  (the vot-trax wheel: python bindings + libtrax)
        from trax import TraxStatus
        from trax.image import Image
        from trax.region import Region
        from trax.server import Server
    except ImportError as exc:
        raise UsageError(f"the TraX client needs the vot-trax package (pip install 'gradtrack[vot]'): {exc}") from None
    return TraxStatus, Image, Region, Server


def resolve_threads(threads: int | None = None, environ: Mapping[str, str] | None = None) -> int | None:
    """The torch thread count: ``threads`` if given, else ``$GRADTRACK_THREADS``, else ``$OMP_NUM_THREADS``,
    else ``None`` (torch's default).  A value that is not a positive integer raises :class:`UsageError`."""
    env = os.environ if environ is None else environ
    for value, source in ((threads, "threads"), (env.get(THREADS_ENV), THREADS_ENV), (env.get("OMP_NUM_THREADS"), "OMP_NUM_THREADS")):
        if value is None or value == "":
            continue
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"{source} must be a positive integer, got {value!r}") from None
        if n < 1:
            raise UsageError(f"{source} must be a positive integer, got {value!r}")
        return n
    return None


def region_to_box(region) -> np.ndarray:
    """A TraX region (or a plain sequence of 4 / 2k numbers) -> 0-based ``x, y, w, h`` float64.

    Rectangles pass through; polygons become the area-preserving axis-aligned box.  Masks and special
    regions raise :class:`ValueError` naming the type."""
    from gradtrack.geometry import polygon_to_xywh

    kind = getattr(region, "type", None)
    if kind is None:  # plain numbers (tests, python callers)
        values = np.asarray(region, dtype=np.float64).reshape(-1)
    elif kind == "rectangle":
        values = np.asarray(region.bounds(), dtype=np.float64)
    elif kind == "polygon":
        points = [region.get(i) for i in range(region.size())]
        values = np.asarray(points, dtype=np.float64).reshape(-1)
    else:
        raise ValueError(f"the gradtrack TraX client takes rectangle or polygon regions, got a {kind} region")
    if values.size == 4:
        box = values.copy()
    elif values.size >= 6 and values.size % 2 == 0:
        box = polygon_to_xywh(values)
    else:
        raise ValueError(f"a region has 4 values (x, y, w, h) or an even number >= 6 (polygon), got {values.size}")
    if not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"the initial region gives no usable box: {box.tolist()} (finite, positive width and height needed)")
    return box


def trax_image_to_rgb(image) -> np.ndarray:
    """A TraX image (path, memory or buffer) -> RGB uint8 ``H x W x 3``.  URL images are refused."""
    import cv2

    from gradtrack.io import as_rgb_uint8, read_image

    kind = image.type() if callable(getattr(image, "type", None)) else getattr(image, "type", None)
    if kind == "path":
        return read_image(image.path())
    if kind == "memory":
        arr = image.array()  # memory images are RGB (or gray) already
        return as_rgb_uint8(arr if arr.ndim == 2 or arr.shape[2] != 1 else arr[:, :, 0], name="TraX memory image")
    if kind == "buffer":
        data = image.buffer()
        if isinstance(data, tuple):  # (bytes, format) in some versions of the bindings
            data = data[0]
        decoded = cv2.imdecode(np.frombuffer(bytes(data), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise ValueError("cannot decode the TraX buffer image (not JPEG / PNG data)")
        if decoded.ndim == 3 and decoded.shape[2] == 3:
            decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
        elif decoded.ndim == 3 and decoded.shape[2] == 4:
            decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
        return as_rgb_uint8(decoded, name="TraX buffer image")
    raise ValueError(f"the gradtrack TraX client reads path, memory or buffer images, got {kind!r}")


class TraxSession:
    """The tracker side of one TraX connection, without the transport: :meth:`initialize` and :meth:`frame`
    take an RGB frame and a region and return ``(x, y, w, h, confidence)``.  :func:`serve` feeds it from
    libtrax; tests can drive it directly."""

    def __init__(self, tracker):
        self.tracker = tracker
        self.initialized = False

    def initialize(self, image: np.ndarray, region) -> tuple[np.ndarray, float]:
        box = region_to_box(region)
        self.tracker.init(image, box)
        self.initialized = True
        return box, 1.0

    def frame(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        if not self.initialized:
            raise RuntimeError("TraX frame request before initialisation")
        res = self.tracker.update(image)
        box = np.asarray(res.box, dtype=np.float64).reshape(4)
        score = float(res.score) if res.score is not None and np.isfinite(res.score) else 0.0
        return box, score


def _warm_up(tracker) -> None:
    """One init + update on a small blank frame, so that lazy set-up (first forward pass, allocator) does
    not land on the toolkit's first timed request."""
    frame = np.full((128, 128, 3), 127, dtype=np.uint8)
    try:
        tracker.init(frame, np.array([48.0, 48.0, 32.0, 32.0]))
        tracker.update(frame)
    except Exception:  # noqa: BLE001 - a warm-up failure is not fatal; the real request reports real errors
        pass
    finally:
        reset = getattr(tracker, "reset", None)
        if callable(reset):
            reset()


def build(tracker_name: str, *, weights=None, device: str | None = "cpu", threads: int | None = None,
          overrides: Mapping[str, Any] | None = None, warm_up: bool = True):
    """Set torch's threads, build ``tracker_name`` and warm it up (everything that must happen before the
    handshake)."""
    n = resolve_threads(threads)
    import torch

    if n is not None:
        torch.set_num_threads(n)
    from gradtrack import build_tracker

    try:
        tracker = build_tracker(tracker_name, weights=weights, device=device, **dict(overrides or {}))
    except KeyError as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    if warm_up:
        _warm_up(tracker)
    return tracker


def serve(tracker_name: str, *, weights=None, device: str | None = "cpu", threads: int | None = None,
          overrides: Mapping[str, Any] | None = None, log: bool | str = False) -> int:
    """Build the tracker, then run the TraX loop on stdin/stdout until the client quits.  Returns 0."""
    TraxStatus, Image, Region, Server = _import_trax()
    if not os.environ.get("TRAX") and not os.environ.get("TRAX_SOCKET"):
        print("gradtrack vot-client: warning: TRAX is not set; this command is meant to be started by the VOT "
              "toolkit (trackers.ini, protocol = trax)", file=sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):
        tracker = build(tracker_name, weights=weights, device=device, threads=threads, overrides=overrides)
        session = TraxSession(tracker)
        from trax.region import Rectangle

        with Server([Region.RECTANGLE, Region.POLYGON], [Image.PATH, Image.MEMORY, Image.BUFFER],
                    tracker_name=f"gradtrack_{tracker_name}", tracker_description=f"gradtrack {tracker_name}",
                    tracker_family="gradtrack", log=log) as server:
            while True:
                request = server.wait()
                if request.type == TraxStatus.QUIT:
                    break
                if "color" not in request.image:
                    raise ValueError(f"TraX request without a color image (channels: {', '.join(request.image)})")
                image = trax_image_to_rgb(request.image["color"])
                if request.type == TraxStatus.INITIALIZE:
                    if len(request.objects) != 1:
                        raise ValueError(f"the gradtrack TraX client tracks one object, got {len(request.objects)}")
                    box, conf = session.initialize(image, request.objects[0][0])
                else:
                    box, conf = session.frame(image)
                x, y, w, h = (float(v) for v in box)
                server.status([(Rectangle.create(x, y, w, h), {"confidence": f"{conf:.6f}"})])
    return 0

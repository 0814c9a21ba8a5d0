"""Many sequences (or many targets of one video) per step: :class:`BatchedTracker`.

A batched tracker holds ``slots``: independent copies of one tracker (SiamFC, ``siamfc_effnet`` or GradNet)
that share its network.  Each slot starts with ``init(slot, image, box)`` and all slots given a frame are
advanced together by ``update({slot: image, ...})``:

* the search crops of every slot and every scale go through **one** backbone forward
  (``SiameseSearch._search_features`` of the shared network), and the correlations of all slots are one
  grouped convolution per template kind (``models.xcorr`` with one template per slot);
* the post-processing (upsampling, scale choice, window, move) of each slot is that of its own tracker
  (the ``SiameseSearch`` helpers of :mod:`gradtrack.trackers.common`), so a slot gives the boxes of the
  one-by-one tracker (``tests/test_batched.py`` checks 1e-3 px in fp32; the only difference is float
  summation order in the batched convolutions);
* GradNet: every slot keeps its own update schedule (:mod:`gradtrack.trackers.update`); the updates a frame
  asks for are collected, the search features of all their samples are computed in one forward, then
  each slot's gradient update runs in the order its schedule asked for them.

Slots may start and end at any time and frames of different slots may have different sizes: a slot is
one sequence.  Calibrated scores and the ``lost`` flag are those of the slot's tracker
(``Tracker._confidence``).

Not batched (``BatchedTracker.batched`` is ``False`` and ``fallback_reason`` says why): SiamMLG, the
OpenCV trackers, ``backend="onnxruntime"``, ``long_term=True`` and any other tracker.  Then
``update`` loops over the slots one by one with their own ``update`` -- the same results, no speed-up.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from ..io import ImageError
from .base import Tracker, TrackResult
from .common import stage

__all__ = ["BatchedTracker", "SlotError"]


class SlotError(ValueError):
    """A frame given to ``BatchedTracker.update`` was rejected for one slot (``slot``; the cause is chained).
    Nothing was advanced: the other slots may be updated again without it."""

    def __init__(self, slot, exc: BaseException):
        self.slot, self.error = slot, exc
        super().__init__(f"slot {slot}: {exc}")


def _batch_kind(tracker) -> tuple[str | None, str]:
    """``("siamfc" | "gradnet", "")`` when ``tracker`` can be batched, else ``(None, why not)``."""
    from .gradnet import GradNetTracker
    from .siamfc import SiamFCTracker

    kind = {SiamFCTracker: "siamfc", GradNetTracker: "gradnet"}.get(type(tracker))
    if kind is None:
        return None, f"{type(tracker).__name__} ({getattr(tracker, 'name', '?')}) has no batched search"
    if getattr(tracker, "_search_net", None) is None or getattr(tracker.model, "backend", "torch") != "torch":
        return None, (f"backend='onnxruntime' ({getattr(tracker, 'precision', 'fp32')} graphs) is not batched; "
                      "precision='bf16' or 'fp32' runs the batched torch path")
    if kind == "gradnet" and tracker._search_net is tracker.model.search_features:  # pragma: no cover - ORT
        return None, "backend='onnxruntime' is not batched"
    if getattr(tracker.cfg, "long_term", False):
        return None, "long_term=True changes the search size per slot; it is not batched"
    return kind, ""


class BatchedTracker:
    """Independent tracking slots sharing one network; see the module docstring.

    ``tracker``: a built tracker used as the prototype (its network, config and weights are shared by all
    slots; build it with :func:`gradtrack.build_tracker` or use :meth:`build`).  ``batched=False`` forces
    the one-by-one fallback (for comparisons)."""

    def __init__(self, tracker: Tracker, batched: bool = True):
        self.prototype = tracker
        kind, why = _batch_kind(tracker)
        if not batched:
            kind, why = None, "batched=False"
        self.kind, self.fallback_reason = kind, why
        self.slots: dict = {}

    @classmethod
    def build(cls, name: str, weights=None, device=None, **overrides) -> "BatchedTracker":
        from .registry import build_tracker

        return cls(build_tracker(name, weights=weights, device=device, **overrides))

    @property
    def batched(self) -> bool:
        return self.kind is not None

    @property
    def name(self) -> str:
        return self.prototype.name

    @property
    def is_deterministic(self) -> bool:
        return self.prototype.is_deterministic

    def _new_slot(self) -> Tracker:
        if self.kind is None and not self.slots:
            return self.prototype
        if self.kind is None:
            # a tracker without a batched path: an independent copy sharing the (read-only) network
            t = copy.copy(self.prototype)
        else:
            t = copy.copy(self.prototype)
            t._window = None  # per-slot cache
        t.reset()
        return t

    # -- slots ------------------------------------------------------------------------------------
    def init(self, slot, image, box) -> None:
        """Start ``slot`` (any hashable key) on ``image`` with ``box``; an existing slot is restarted.
        Errors are the tracker's (:class:`ImageError`, :class:`gradtrack.geometry.BoxError`); the slot is then
        removed."""
        t = self.slots.get(slot)
        if t is None:
            t = self._new_slot()
        try:
            t.init(image, box)
        except BaseException:
            self.slots.pop(slot, None)
            raise
        self.slots[slot] = t

    def release(self, slot) -> None:
        """Forget ``slot`` (a finished sequence)."""
        self.slots.pop(slot, None)

    def __len__(self) -> int:
        return len(self.slots)

    def __contains__(self, slot) -> bool:
        return slot in self.slots

    def tracker(self, slot) -> Tracker:
        """The tracker object of ``slot`` (its state, e.g. ``tracker(slot).state``)."""
        return self.slots[slot]

    # -- one step ---------------------------------------------------------------------------------
    def _checked_frame(self, slot, image) -> np.ndarray:
        t = self.slots.get(slot)
        try:
            if t is None or not t._initialized:
                raise RuntimeError(f"slot {slot!r} was not initialised (call init(slot, image, box) first)")
            return t._checked_frame(image)  # the tracker's own checks (type, size of the init frame)
        except (ImageError, RuntimeError) as exc:
            raise SlotError(slot, exc) from exc

    def update(self, images: dict) -> dict:
        """Advance every slot in ``images`` (``{slot: frame}``) by one frame; returns ``{slot: TrackResult}``.
        All frames are checked first: a bad one raises :class:`SlotError` before anything moves."""
        if not isinstance(images, dict):
            raise TypeError(f"update() takes a dict {{slot: frame}}, got {type(images).__name__}")
        imgs = {k: self._checked_frame(k, im) for k, im in images.items()}
        if not imgs:
            return {}
        if self.kind is None:
            return {k: self.slots[k].update(im) for k, im in imgs.items()}
        keys = list(imgs)
        ts = [self.slots[k] for k in keys]
        step = self._step_siamfc if self.kind == "siamfc" else self._step_gradnet
        raw_results = step(ts, [imgs[k] for k in keys])
        out = {}
        for k, t, res in zip(keys, ts, raw_results):
            size = t._image_size
            out[k] = t._confidence(t._checked(res, size))
        return out

    # -- shared pieces ----------------------------------------------------------------------------
    def _features(self, crops: list[np.ndarray]) -> torch.Tensor:
        """Search features of the stacked crops of all slots: one backbone forward."""
        return self.prototype._search_features(np.concatenate(crops, axis=0))

    @staticmethod
    @torch.no_grad()
    def _scores(head, templates: list[torch.Tensor], xf: torch.Tensor) -> np.ndarray:
        """Raw maps ``B x n x n`` of template ``i`` against its ``len(xf) / len(templates)`` search features."""
        with stage("correlation"):
            t = torch.cat(templates, 0).float()
            xf = xf.float()  # the correlation is fp32 in every precision (see SiamFCTracker._responses)
            if len(templates) == 1:
                r = head.score(t, xf)
            else:
                r = head.score(t, xf.contiguous())
            return r.float()[:, 0].cpu().numpy()

    # -- SiamFC -----------------------------------------------------------------------------------
    def _step_siamfc(self, ts, images) -> list[TrackResult]:
        proto = self.prototype
        crops = [t._search_crops(im, t.state) for t, im in zip(ts, images)]
        xf = self._features(crops)
        raw_all = self._scores(proto.model, [t.template for t in ts], xf)
        s = len(crops[0])
        return [t._finish(raw_all[i * s:(i + 1) * s]) for i, t in enumerate(ts)]

    # -- GradNet ----------------------------------------------------------------------------------
    def _step_gradnet(self, ts, images) -> list[TrackResult]:
        proto = self.prototype
        cfg = proto.cfg
        model = proto.model
        mid = (cfg.scale_num - 1) // 2
        s = cfg.scale_num
        for t in ts:
            t.state.frame += 1
        crops = [t._search_crops(im, t.state.target) for t, im in zip(ts, images)]
        xf = self._features(crops).float()
        n = len(ts)
        raw_gra_all = None
        if cfg.fusion == "official":  # the fixed SiamFC template on all scales, the GradNet one on the middle
            raw_all = self._scores(model.siamfc, [t.state.template_sia for t in ts], xf)
            mids = xf[torch.arange(n, device=xf.device) * s + mid]
            raw_gra_all = self._scores(model, [t.state.template for t in ts], mids)
        else:
            raw_all = self._scores(model, [t.state.template for t in ts], xf)
        out, pending = [], []
        for j, (t, image) in enumerate(zip(ts, images)):
            asked: list = []  # this slot's updates, run after the batched forward of their samples
            gra = raw_gra_all[j:j + 1] if raw_gra_all is not None else None
            out.append(t._finish(image, raw_all[j * s:(j + 1) * s], gra,
                                 lambda sample, keep, asked=asked: asked.append((sample, keep))))
            pending.append((t, asked))
        self._run_updates(pending)
        return out

    def _run_updates(self, pending) -> None:
        """The gradient updates the schedules asked for this frame: the features of all their samples in
        one forward, then each slot's updates in its schedule's order."""
        need, seen = [], set()
        for _, asked in pending:
            for sample, _ in asked:
                if sample.features is None and id(sample) not in seen:
                    seen.add(id(sample))
                    need.append(sample)
        with stage("update"):
            if need:  # samples already used once keep their cached features
                feats = self._features([np.asarray(smp.crop) for smp in need]).float()
                k = 0
                for smp in need:
                    m = len(smp.crop)
                    smp.features = feats[k:k + m]
                    k += m
            for t, asked in pending:
                for sample, keep in asked:
                    t._update_from(sample, keep)

"""GradNet's online template-update schedule, shared by the GradNet and SiamMLG trackers.

The tracker owns the network state (``hid``, the f2 feature) and runs the updates; the schedule decides
*when* and *on what*, from one confidence per frame:

- frame 0: the ground-truth search crop joins the buffer with score 0 and, if ``init_periodic_update``
  (``0 % update_interval == 0``), the periodic update runs on it at once;
- ``F_thr`` is the mean confidence of frames ``1..threshold_frames`` (0 until then);
- frame ``i`` is *reliable* if its confidence ``F >= min(reliable_ratio F_thr, mean(buffer scores))``;
  the buffer always holds a sample after frame 0 (it is a FIFO of ``buffer_size``), and should it ever
  be empty the bound is ``reliable_ratio F_thr`` alone.  A reliable frame's search crop, re-cut at the
  new target state, joins the buffer;
- otherwise, while ``i < rescue_before`` and ``F < rescue_ratio F_thr``, a *rescue* update runs at once
  on that re-cut crop with ``rescue_keep`` (``rescue_before = 0`` switches rescues off);
- every ``update_interval`` frames the *periodic* update runs on the best-scoring buffered sample (the
  first of equal scores) with ``periodic_keep``.

An update with ``keep`` sets ``hid <- keep * hid + (1 - keep) * f2'`` where ``f2' = hid + U2(dL/dhid)``
(see :func:`blend`); ``keep`` is the share of the old state that is kept, for both kinds of update.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch


@dataclass
class OnlineUpdateConfig:
    """The schedule's knobs; the GradNet and SiamMLG tracker configs extend this class."""

    update_interval: int = 5
    buffer_size: int = 5
    threshold_frames: int = 5  # F_thr = mean confidence over frames 1..threshold_frames
    reliable_ratio: float = 0.5
    rescue_ratio: float = 0.4
    rescue_before: int = 10  # rescue updates only while i < rescue_before (0 = never)
    rescue_keep: float = 0.3  # share of the old state kept by a rescue update
    periodic_keep: float = 0.4  # share of the old state kept by a periodic update
    init_periodic_update: bool = True  # the periodic update also runs on frame 0

    def check_schedule(self) -> None:
        for name in ("reliable_ratio", "rescue_ratio", "rescue_keep", "periodic_keep"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("update_interval", "buffer_size", "threshold_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rescue_before < 0:
            raise ValueError(f"rescue_before must be >= 0, got {self.rescue_before}")


@dataclass
class Sample:
    crop: Any  # the search crop, in whatever form the tracker feeds its network
    score: float
    frame: int
    features: torch.Tensor | None = None  # search features, computed by the tracker on first use


@dataclass
class Step:
    """What the schedule did on one frame."""

    reliable: bool = False
    rescued: bool = False
    updated: bool = False  # the periodic update ran


Update = Callable[[Sample, float], None]  # (sample, keep) -> None: the tracker's gradient update


def blend(hid: torch.Tensor, f2_new: torch.Tensor, keep: float) -> torch.Tensor:
    return keep * hid + (1.0 - keep) * f2_new


class UpdateSchedule:
    """Per-sequence state of the schedule (buffer, ``F_thr``); build a new one for each sequence."""

    def __init__(self, cfg: OnlineUpdateConfig):
        self.cfg = cfg
        self.samples: deque[Sample] = deque(maxlen=cfg.buffer_size)
        self.f_thr = 0.0
        self.rescues = 0
        self._peak_sum = 0.0

    def start(self, sample: Sample, update: Update) -> bool:
        """Frame 0: buffer the ground-truth sample (score 0); returns whether the periodic update ran on it."""
        self.samples.append(sample)
        if self.cfg.init_periodic_update:
            update(sample, self.cfg.periodic_keep)
        return self.cfg.init_periodic_update

    def bound(self) -> float:
        b = self.cfg.reliable_ratio * self.f_thr
        return min(b, float(np.mean([s.score for s in self.samples]))) if self.samples else b

    def step(self, frame: int, score: float, crop: Callable[[], Any], update: Update) -> Step:
        """Frame ``frame >= 1`` with confidence ``score``; ``crop()`` re-cuts the search crop at the new state
        (called at most once, only when needed)."""
        cfg, out = self.cfg, Step()
        if frame <= cfg.threshold_frames:
            self._peak_sum += score
            if frame == cfg.threshold_frames:
                self.f_thr = self._peak_sum / cfg.threshold_frames
        if score >= self.bound():
            self.samples.append(Sample(crop(), score, frame))
            out.reliable = True
        elif frame < cfg.rescue_before and score < cfg.rescue_ratio * self.f_thr:
            update(Sample(crop(), score, frame), cfg.rescue_keep)
            self.rescues += 1
            out.rescued = True
        if frame % cfg.update_interval == 0 and self.samples:
            update(max(self.samples, key=lambda s: s.score), cfg.periodic_keep)
            out.updated = True
        return out

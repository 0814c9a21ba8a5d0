"""GradNet tracker (Li et al., ICCV 2019): SiamFC search with a gradient-updated template.

Follows the tracking loop of the official release (``track.py`` of LPXTT/GradNet-Tensorflow, see
implementation notes 1.6); frame indices ``i`` count from 0 (the init frame).

Initialisation (frame 0)
    ``f2 = stem(z)``; ``g0 = dL/df2`` of the balanced logistic loss of ``U1(f2)`` on the frame-0
    middle-scale 255 crop (centred label, radius 2 cells); ``hid = f2 + U2(g0)``, template
    ``U1(hid)``.  Frame 0 is pushed into the sample buffer with score 0 and, because ``0 % 5 == 0``, the
    periodic update below runs once more on that same sample (as in the official code; set
    ``init_periodic_update=False`` to skip it).  ``fusion="official"`` also keeps the plain SiamFC
    template: the exemplar through the *search* branch, never updated.
Each frame i >= 1
    3-scale search (see ``fusion``), move, scale update, ``F = peak score`` (all scales).  ``F_thr`` is
    the mean of ``F`` over frames 1..5 (0 before frame 5).  If ``F >= min(0.5 F_thr, mean(buffer
    scores))`` the middle-scale crop re-cut at the *new* position and size is pushed (with ``F`` and
    ``i``) into a FIFO of 5 samples; otherwise, if ``i < 10`` and ``F < 0.4 F_thr``, an immediate rescue
    update runs on that re-cut crop: ``template, f2' = U(hid, crop)``, ``hid <- 0.3 hid + 0.7 f2'``.
    If ``i % 5 == 0``: ``template, f2' = U(hid, best-scoring buffered crop)``, ``hid <- 0.4 hid + 0.6 f2'``.
    ``U(h, x)``: ``g = dL(U1(h) * phi(x), label)/dh`` (autograd, ``create_graph=False``, eval mode),
    ``f2' = h + U2(g)``, template ``U1(f2')`` (from the unblended ``f2'``).  Since ``f2' = h + D``, the
    blend is ``h + 0.6 D``: corrections accumulate and the initial feature is never decayed.
    Search features of buffered crops are computed once, when first used, and cached in the buffer.

``fusion``
    ``"official"``: the released ensemble.  Raw maps of the fixed SiamFC template on all scales pick the
    scale (penalty 0.97 on non-centre scales, step 1.04); the GradNet template is scored on the middle
    scale only; both maps (x16 bicubic) are normalised (min-subtract, divide by sum) and fused
    ``(1 - w) sia + w gra`` with ``w = fusion_weight = 0.15``; window influence 0.25.  ``F`` is the
    peak of the raw SiamFC maps.
    ``"paper"``: track with the GradNet template alone on all scales, SiamFC-3s constants (step 1.0375,
    penalty 0.9745, window 0.176).  ``F`` is the peak of the raw GradNet maps.
    ``scale_step``, ``scale_penalty`` and ``window_influence`` default to ``None`` = these per-fusion values.

Scores
    The official thresholds compare raw correlation peaks, which are positive for its networks.  Our
    networks end in an adjust layer (a logit, possibly negative), on which ratios such as ``0.5 F_thr``
    are meaningless, so by default ``F`` is ``sigmoid(raw peak)`` (``reliability_score="sigmoid"``);
    ``"raw"`` uses the raw peak as the official code does.  ``TrackResult.score`` is the sigmoid of the
    raw peak of the chosen scale of the map that chose the scale (SiamFC map for "official").

Deviations from the official code: the "refind" heuristic (search around the image centre after the
box leaves through the right edge) is not implemented; the single frame with window influence 0 when
the last reliable sample is 9 frames old is implemented but off by default (``no_window_heuristic``);
output boxes are floats (the official code rounds them); the displacement uses the exact geometry of
:mod:`gradtrack.trackers.common` rather than ``round(x_sz)`` and centre 136.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..config import from_dict
from ..models.labels import centered_label
from . import TRACKERS
from .base import Tracker, TrackResult
from .common import (SiameseSearch, TargetState, check_common, check_scale_params, crops_to_tensor,
                     load_tracker_model, normalize_response, resolve_device, sigmoid, upsample_responses)

_FUSION_DEFAULTS = {
    "official": {"scale_step": 1.04, "scale_penalty": 0.97, "window_influence": 0.25},
    "paper": {"scale_step": 1.0375, "scale_penalty": 0.9745, "window_influence": 0.176},
}


@dataclass
class GradNetTrackerConfig:
    fusion: Literal["official", "paper"] = "official"
    fusion_weight: float = 0.15  # weight of the GradNet map in the "official" ensemble
    exemplar_size: int = 127
    instance_size: int = 255
    total_stride: int = 8
    context: float = 0.5
    scale_num: int = 3
    scale_step: float | None = None  # None = per fusion (official 1.04, paper 1.0375)
    scale_penalty: float | None = None  # None = per fusion (official 0.97, paper 0.9745)
    scale_lr: float = 0.59
    window_influence: float | None = None  # None = per fusion (official 0.25, paper 0.176)
    response_up: int = 16
    min_scale: float = 0.2
    max_scale: float = 5.0
    min_target_size: float = 10.0
    amp: bool = False  # bf16 autocast for the search branch (the gradient is always fp32)
    label_radius: float = 2.0  # cells, for the online gradient's centred label
    # False = the paper's "w/o U" ablation: the template stays U1(f2(z)), no gradient update at all.
    # Also off when the model was trained without gradients (GradNetConfig.use_gradient=False, "w/o MG").
    online_update: bool = True
    update_interval: int = 5
    buffer_size: int = 5
    threshold_frames: int = 5  # F_thr = mean peak over frames 1..threshold_frames
    reliable_ratio: float = 0.5
    rescue_ratio: float = 0.4
    rescue_before: int = 10  # rescue updates only while i < rescue_before
    rescue_keep: float = 0.3  # hid <- keep * hid + (1 - keep) * f2'
    periodic_keep: float = 0.4
    init_periodic_update: bool = True
    reliability_score: Literal["sigmoid", "raw"] = "sigmoid"
    # official heuristic, off by default: window influence 0 for one frame (once per sequence) when the
    # last reliable sample is exactly ``no_window_after`` frames old
    no_window_heuristic: bool = False
    no_window_after: int = 9

    def validate(self) -> None:
        check_common(self)
        step, pen, win = self.resolved()
        check_scale_params(step, pen, win)
        for name in ("fusion_weight", "reliable_ratio", "rescue_ratio", "rescue_keep", "periodic_keep"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        for name in ("update_interval", "buffer_size", "threshold_frames", "no_window_after"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.label_radius < 0:
            raise ValueError(f"label_radius must be >= 0, got {self.label_radius}")

    def resolved(self) -> tuple[float, float, float]:
        d = _FUSION_DEFAULTS[self.fusion]
        pick = lambda v, k: d[k] if v is None else v  # noqa: E731
        return (pick(self.scale_step, "scale_step"), pick(self.scale_penalty, "scale_penalty"),
                pick(self.window_influence, "window_influence"))


@dataclass
class Sample:
    crop: np.ndarray  # 1 x 255 x 255 x 3 uint8, centred on the tracked target
    score: float
    frame: int
    features: torch.Tensor | None = None  # search features, computed on first use


@dataclass
class GradNetState:
    """Everything GradNet keeps per sequence (rebuilt by ``init``)."""

    target: TargetState
    hid: torch.Tensor  # the f2 state
    template: torch.Tensor  # U1(f2') of the last update
    template_sia: torch.Tensor | None  # fixed SiamFC template ("official" fusion)
    samples: deque
    frame: int = 0
    peak_sum: float = 0.0
    f_thr: float = 0.0
    updates: int = 0
    rescues: int = 0
    no_window_used: bool = False
    last_loss: float = float("nan")


class GradNetTracker(SiameseSearch, Tracker):
    """``model``: a :class:`gradtrack.models.GradNet` (or anything with ``search_features``, ``f2``,
    ``gradient``, ``update``, ``score`` and ``siamfc.embed``)."""

    name = "gradnet"
    is_deterministic = True

    def __init__(self, model: torch.nn.Module, cfg: GradNetTrackerConfig | None = None, device=None,
                 weights_source: str = "module"):
        super().__init__()
        self.cfg = cfg or GradNetTrackerConfig()
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.weights_source = weights_source
        self._setup_search(*self.cfg.resolved())
        self._labels: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._template_hw: tuple[int, int] | None = None
        self.reset()

    @property
    def untrained(self) -> bool:
        return self.weights_source == "random"

    def reset(self) -> None:
        """Drop all per-sequence state (``init`` calls this first)."""
        self.state: GradNetState | None = None
        self._initialized = False

    # -- network pieces -------------------------------------------------------------------------
    def _label(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        if n not in self._labels:
            self._labels[n] = centered_label(n, self.cfg.label_radius, device=self.device)
        return self._labels[n]

    @torch.no_grad()
    def _features(self, crops: np.ndarray) -> torch.Tensor:
        x = crops_to_tensor(crops, self.device)
        with self._amp():
            xf = self.model.search_features(x)
        return xf.float()

    @torch.no_grad()
    def _score(self, template: torch.Tensor, xf: torch.Tensor, siamfc: bool = False) -> np.ndarray:
        """Raw maps; the fixed SiamFC template is scored with the SiamFC head (its own adjust layer)."""
        head = self.model.siamfc if siamfc else self.model
        return head.score(template, xf).float()[:, 0].cpu().numpy()

    def _grad_update(self, hid: torch.Tensor, xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(template, f2', loss)``: one gradient-guided update of state ``hid`` on search features ``xf``."""
        if self._template_hw is None:  # spatial size of U1's output, fixed for a model
            with torch.no_grad():
                self._template_hw = tuple(self.model.u1(hid).shape[-2:])
        n = xf.shape[-1] - self._template_hw[-1] + 1
        label, weight = self._label(n)
        g, loss = self.model.gradient(hid, xf, label, weight, create_graph=False)
        with torch.no_grad():
            template, f2_new = self.model.update(hid, g.detach())
        return template.detach(), f2_new.detach(), float(loss.detach())

    def _sample_features(self, s: Sample) -> torch.Tensor:
        if s.features is None:
            s.features = self._features(s.crop)
        return s.features

    def _update_from(self, xf: torch.Tensor, keep: float) -> None:
        st = self.state
        template, f2_new, loss = self._grad_update(st.hid, xf)
        st.template = template
        st.hid = keep * st.hid + (1.0 - keep) * f2_new
        st.last_loss = loss
        st.updates += 1

    # -- tracking -------------------------------------------------------------------------------
    def _init(self, image: np.ndarray, box: np.ndarray) -> None:
        self.reset()
        cfg = self.cfg
        target = self._new_state(image, box)
        with torch.no_grad():
            z = crops_to_tensor(self._exemplar_crop(image, target), self.device)
            f2 = self.model.f2(z).float()
            template_sia = self.model.siamfc.embed(z).float() if cfg.fusion == "official" else None
        crop0 = self._search_crops(image, target, factors=[1.0])
        xf0 = self._features(crop0)
        self.state = GradNetState(target=target, hid=f2, template=f2, template_sia=template_sia,
                                  samples=deque(maxlen=cfg.buffer_size))
        st = self.state
        if not self.updates_enabled:
            with torch.no_grad():
                st.template = self.model.u1(f2).float()
            return
        template, f2_new, loss = self._grad_update(f2, xf0)  # first template is already updated once
        st.template, st.hid, st.last_loss, st.updates = template, f2_new, loss, 1
        # frame 0 joins the buffer with score 0 (official: min(0, mean([])) -> 0); its features are xf0
        st.samples.append(Sample(crop=crop0, score=0.0, frame=0, features=xf0))
        if cfg.init_periodic_update:
            self._update_from(xf0, cfg.periodic_keep)

    @property
    def updates_enabled(self) -> bool:
        return self.cfg.online_update and getattr(self.model.cfg, "use_gradient", True)

    def _peak_value(self, raw_peak: float) -> float:
        return sigmoid(raw_peak) if self.cfg.reliability_score == "sigmoid" else raw_peak

    def _update(self, image: np.ndarray) -> TrackResult:
        cfg, st = self.cfg, self.state
        tg = st.target
        st.frame += 1
        i = st.frame
        xf = self._features(self._search_crops(image, tg))
        mid = (cfg.scale_num - 1) // 2
        if cfg.fusion == "official":
            raw_sia = self._score(st.template_sia, xf, siamfc=True)
            raw_gra = self._score(st.template, xf[mid:mid + 1])
            n = raw_sia.shape[-1]
            up_sia = upsample_responses(raw_sia, cfg.response_up)
            best = self._pick_scale(up_sia)
            up_gra = upsample_responses(raw_gra, cfg.response_up)[0]
            w = cfg.fusion_weight
            r = (1.0 - w) * normalize_response(up_sia[best]) + w * normalize_response(up_gra)
            chosen, all_raw = raw_sia[best], raw_sia
        else:
            raw = self._score(st.template, xf)
            n = raw.shape[-1]
            up = upsample_responses(raw, cfg.response_up)
            best = self._pick_scale(up)
            r = normalize_response(up[best])
            chosen, all_raw = raw[best], raw
        influence = self.window_influence
        if (cfg.no_window_heuristic and not st.no_window_used and st.samples
                and i - st.samples[-1].frame == cfg.no_window_after):
            influence, st.no_window_used = 0.0, True
        r = self._apply_window(r, influence)
        self._move(tg, r, n, best)

        f_max = self._peak_value(float(all_raw.max()))
        if i <= cfg.threshold_frames:
            st.peak_sum += f_max
            if i == cfg.threshold_frames:
                st.f_thr = st.peak_sum / cfg.threshold_frames

        reliable = rescued = updated = False
        if not self.updates_enabled:
            peak = float(chosen.max())
            return TrackResult(box=tg.box(), score=sigmoid(peak), extra={
                "scale_index": best, "raw_peak": peak, "peak": f_max, "updated": False, "window_influence": influence})
        mean_buf = float(np.mean([s.score for s in st.samples])) if st.samples else float("nan")
        bound = cfg.reliable_ratio * st.f_thr
        if not np.isnan(mean_buf):
            bound = min(bound, mean_buf)
        reliable = f_max >= bound
        if reliable:
            crop = self._search_crops(image, tg, factors=[1.0])
            st.samples.append(Sample(crop=crop, score=f_max, frame=i))
        elif i < cfg.rescue_before and f_max < cfg.rescue_ratio * st.f_thr:
            xf_now = self._features(self._search_crops(image, tg, factors=[1.0]))
            self._update_from(xf_now, cfg.rescue_keep)
            st.rescues += 1
            rescued = True
        if i % cfg.update_interval == 0 and st.samples:
            best_sample = max(st.samples, key=lambda s: s.score)  # first of equal scores, as np.argmax
            self._update_from(self._sample_features(best_sample), cfg.periodic_keep)
            updated = True

        peak = float(chosen.max())
        return TrackResult(box=tg.box(), score=sigmoid(peak), extra={
            "scale_index": best, "raw_peak": peak, "peak": f_max, "threshold": st.f_thr, "reliable": bool(reliable),
            "rescued": rescued, "updated": updated, "window_influence": influence})


@TRACKERS.register("gradnet")
def build_gradnet(weights=None, device=None, **overrides) -> GradNetTracker:
    """GradNet with a :class:`gradtrack.models.GradNet` network (see :func:`gradtrack.build_tracker`)."""
    cfg = from_dict(GradNetTrackerConfig, overrides, where="gradnet tracker config")
    dev = resolve_device(device)
    model, source = load_tracker_model("gradnet", weights, "gradnet", dev)
    return GradNetTracker(model, cfg, dev, weights_source=source)

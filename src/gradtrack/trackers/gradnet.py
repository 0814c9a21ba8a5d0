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
    3-scale search (see ``fusion``), move, scale update, ``F = peak score`` (all scales), then the online
    update schedule of :mod:`gradtrack.trackers.update` (``F_thr``, the FIFO of reliable middle-scale
    crops re-cut at the new position and size, rescue updates while ``i < 10`` with ``rescue_keep = 0.3``,
    periodic updates every 5 frames on the best buffered sample with ``periodic_keep = 0.4``).
    An update ``U(h, x)``: ``g = dL(U1(h) * phi(x), label)/dh`` (autograd, ``create_graph=False``, eval
    mode), ``f2' = h + U2(g)``, template ``U1(f2')`` (from the unblended ``f2'``), ``hid <- keep h + (1 - keep)
    f2'``.  Since ``f2' = h + D``, the blend is ``h + (1 - keep) D``: corrections accumulate and the initial
    feature is never decayed.  Search features of buffered crops are computed once, when first used, and
    cached in the buffer.  The label is the centred one of the model's geometry (``label_radius`` cells).

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

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..config import from_dict
from ..models.labels import centered_label
from .registry import TRACKERS, model_backend
from .base import Tracker, TrackResult
from .common import (PRECISIONS, SiameseSearch, TargetState, check_common, check_scale_params, crops_to_tensor,
                     load_tracker_model, normalize_response, resolve_device, sigmoid, stage, tracker_geometry,
                     upsample_responses)
from .update import OnlineUpdateConfig, Sample, UpdateSchedule, blend

_FUSION_DEFAULTS = {
    "official": {"scale_step": 1.04, "scale_penalty": 0.97, "window_influence": 0.25},
    "paper": {"scale_step": 1.0375, "scale_penalty": 0.9745, "window_influence": 0.176},
}


@dataclass
class GradNetTrackerConfig(OnlineUpdateConfig):
    fusion: Literal["official", "paper"] = "official"
    fusion_weight: float = 0.15  # weight of the GradNet map in the "official" ensemble
    instance_size: int | None = None  # search crop side; None = the network's (model.cfg.geometry())
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
    amp: bool = False  # older switch: True = precision "bf16"
    # search branch: "fp32", "bf16", "fp16" (CUDA) or "auto" (bf16 where the CPU/GPU has it); the online
    # gradient and the correlation are always fp32
    precision: str = "auto"
    # grow the search while lost, no template update while lost (SiameseSearch._after_confidence)
    long_term: bool = False
    # False = the paper's "w/o U" ablation: the template stays U1(f2(z)), no gradient update at all.
    # Also off when the model was trained without gradients (GradNetConfig.use_gradient=False, "w/o MG").
    online_update: bool = True
    reliability_score: Literal["sigmoid", "raw"] = "sigmoid"
    # official heuristic, off by default: window influence 0 for one frame (once per sequence) when the
    # last reliable sample is exactly ``no_window_after`` frames old
    no_window_heuristic: bool = False
    no_window_after: int = 9

    def validate(self) -> None:
        check_common(self)
        self.check_schedule()
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        step, pen, win = self.resolved()
        check_scale_params(step, pen, win)
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ValueError(f"fusion_weight must be in [0, 1], got {self.fusion_weight}")
        if self.no_window_after < 1:
            raise ValueError(f"no_window_after must be >= 1, got {self.no_window_after}")

    def resolved(self) -> tuple[float, float, float]:
        d = _FUSION_DEFAULTS[self.fusion]
        pick = lambda v, k: d[k] if v is None else v  # noqa: E731
        return (pick(self.scale_step, "scale_step"), pick(self.scale_penalty, "scale_penalty"),
                pick(self.window_influence, "window_influence"))


@dataclass
class GradNetState:
    """Everything GradNet keeps per sequence (rebuilt by ``init``)."""

    target: TargetState
    hid: torch.Tensor  # the f2 state
    template: torch.Tensor  # U1(f2') of the last update
    template_sia: torch.Tensor | None  # fixed SiamFC template ("official" fusion)
    schedule: UpdateSchedule
    frame: int = 0
    updates: int = 0
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
        self.geom = tracker_geometry(self.model, self.cfg.instance_size)
        self._setup_search(*self.cfg.resolved())
        siamfc = self.model.siamfc
        if getattr(self.model, "backend", "torch") == "onnxruntime":  # gradtrack.deploy: fp32 ONNX graphs
            if self.cfg.amp or getattr(self.cfg, "precision", "fp32") not in ("fp32", "auto"):
                raise ValueError("backend='onnxruntime' runs fp32 graphs; bf16/fp16 need backend='torch'")
            self.precision, self._dtype, self._search_net = "fp32", torch.float32, self.model.search_features
        else:
            self._setup_precision(torch.nn.Sequential(siamfc.backbone, siamfc.neck)
                                  if hasattr(siamfc, "backbone") and hasattr(siamfc, "neck") else self.model.search_features)
        # the online gradient's centred label on the middle-scale map
        self._label = centered_label(self.geom.score_size, self.geom.label_radius, device=self.device)
        self.reset()

    @property
    def untrained(self) -> bool:
        return self.weights_source == "random"

    def reset(self) -> None:
        """Drop all per-sequence state (``init`` calls this first)."""
        super().reset()
        self.state: GradNetState | None = None

    # -- network pieces -------------------------------------------------------------------------
    @torch.no_grad()
    def _features(self, crops: np.ndarray) -> torch.Tensor:
        return self._search_features(crops).float()

    @torch.no_grad()
    def _score(self, template: torch.Tensor, xf: torch.Tensor, siamfc: bool = False) -> np.ndarray:
        """Raw maps; the fixed SiamFC template is scored with the SiamFC head (its own adjust layer)."""
        head = self.model.siamfc if siamfc else self.model
        with stage("correlation"):
            return head.score(template, xf).float()[:, 0].cpu().numpy()

    def _grad_update(self, hid: torch.Tensor, xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(template, f2', loss)``: one gradient-guided update of state ``hid`` on search features ``xf``."""
        label, weight = self._label
        g, loss = self.model.gradient(hid, xf, label, weight, create_graph=False)
        with torch.no_grad():
            template, f2_new = self.model.update(hid, g.detach())
        return template.detach(), f2_new.detach(), float(loss.detach())

    def _update_from(self, sample: Sample, keep: float) -> None:
        """One gradient update of the state on ``sample`` (its search features are cached on first use)."""
        if sample.features is None:
            sample.features = self._features(sample.crop)
        st = self.state
        template, f2_new, loss = self._grad_update(st.hid, sample.features)
        st.template = template
        st.hid = blend(st.hid, f2_new, keep)
        st.last_loss = loss
        st.updates += 1

    # -- tracking -------------------------------------------------------------------------------
    def _init(self, image: np.ndarray, box: np.ndarray) -> None:
        cfg = self.cfg
        target = self._new_state(image, box)
        with torch.no_grad():
            z = crops_to_tensor(self._exemplar_crop(image, target), self.device)
            f2 = self.model.f2(z).float()
            template_sia = self.model.siamfc.embed(z).float() if cfg.fusion == "official" else None
        crop0 = self._search_crops(image, target, factors=[1.0])
        xf0 = self._features(crop0)
        self.state = st = GradNetState(target=target, hid=f2, template=f2, template_sia=template_sia,
                                       schedule=UpdateSchedule(cfg))
        if not self.updates_enabled:
            with torch.no_grad():
                st.template = self.model.u1(f2).float()
            return
        template, f2_new, loss = self._grad_update(f2, xf0)  # first template is already updated once
        st.template, st.hid, st.last_loss, st.updates = template, f2_new, loss, 1
        # frame 0 joins the buffer with score 0 (official: min(0, mean([])) -> 0); its features are xf0
        st.schedule.start(Sample(crop=crop0, score=0.0, frame=0, features=xf0), self._update_from)

    @property
    def updates_enabled(self) -> bool:
        return self.cfg.online_update and getattr(self.model.cfg, "use_gradient", True)

    def _peak_value(self, raw_peak: float) -> float:
        return sigmoid(raw_peak) if self.cfg.reliability_score == "sigmoid" else raw_peak

    def _update(self, image: np.ndarray) -> TrackResult:
        cfg, st = self.cfg, self.state
        st.frame += 1
        xf = self._features(self._search_crops(image, st.target))
        mid = (cfg.scale_num - 1) // 2
        if cfg.fusion == "official":
            raw_sia = self._score(st.template_sia, xf, siamfc=True)
            raw_gra = self._score(st.template, xf[mid:mid + 1])
            return self._finish(image, raw_sia, raw_gra, self._update_from)
        return self._finish(image, self._score(st.template, xf), None, self._update_from)

    def _finish(self, image: np.ndarray, raw: np.ndarray, raw_gra: np.ndarray | None, update) -> TrackResult:
        """The frame's result from its raw maps (``raw``: all scales, the SiamFC template's for the "official"
        fusion, whose GradNet map of the middle scale is ``raw_gra``): fuse, window, move, then the update
        schedule, whose gradient updates go to ``update(sample, keep)``.  Also used by
        :class:`gradtrack.trackers.batched.BatchedTracker` (maps of many trackers at once, updates collected)."""
        cfg, st = self.cfg, self.state
        tg, i = st.target, st.frame
        with stage("post"):
            if cfg.fusion == "official":
                r, best, chosen, all_raw = self._fuse(raw, raw_gra)
            else:
                up = upsample_responses(raw, cfg.response_up)
                best = self._pick_scale(up)
                r = normalize_response(up[best])
                chosen, all_raw = raw[best], raw
            influence = self.window_influence
            samples = st.schedule.samples
            if (cfg.no_window_heuristic and not st.no_window_used and samples
                    and i - samples[-1].frame == cfg.no_window_after):
                influence, st.no_window_used = 0.0, True
            r = self._apply_window(r, influence)
            self._move(tg, r, best)
            f_max = self._peak_value(float(all_raw.max()))
            peak = float(chosen.max())
        extra = {"scale_index": best, "raw_peak": peak, "peak": f_max, "updated": False, "window_influence": influence,
                 "precision": self.precision}
        if self.updates_enabled and not self._lt_lost:  # long-term mode: no template update while lost
            with stage("update"):
                done = st.schedule.step(i, f_max, lambda: self._search_crops(image, tg, factors=[1.0]), update)
            extra.update(threshold=st.schedule.f_thr, reliable=done.reliable, rescued=done.rescued, updated=done.updated)
        return TrackResult(box=tg.box(), score=sigmoid(peak), extra=extra)

    def _fuse(self, raw_sia: np.ndarray, raw_gra: np.ndarray):
        """"official" fusion: ``(map, scale picked by the SiamFC maps, its raw SiamFC map, all raw SiamFC maps)``."""
        cfg = self.cfg
        up_sia = upsample_responses(raw_sia, cfg.response_up)
        best = self._pick_scale(up_sia)
        up_gra = upsample_responses(raw_gra, cfg.response_up)[0]
        w = cfg.fusion_weight
        r = (1.0 - w) * normalize_response(up_sia[best]) + w * normalize_response(up_gra)
        return r, best, raw_sia[best], raw_sia


def _build(name: str, weights, device, backend, onnx_dir, overrides) -> GradNetTracker:
    model_over = overrides.pop("model", None)  # with weights="random" only (load_tracker_model checks)
    cfg = from_dict(GradNetTrackerConfig, overrides, where=f"{name} tracker config")
    dev = resolve_device(device)
    model, source = load_tracker_model(name, weights, "gradnet", dev, model_config=model_over)
    # onnxruntime: every graph in ORT, the update's gradient too where it is exported (analytic, AlexNet U1),
    # else torch autograd (gradtrack.deploy.onnx)
    model = model_backend(name, model, source, backend, onnx_dir, dev, overrides)
    return GradNetTracker(model, cfg, dev, weights_source=source)


@TRACKERS.register("gradnet")
def build_gradnet(weights=None, device=None, backend="torch", onnx_dir=None, **overrides) -> GradNetTracker:
    """GradNet with a :class:`gradtrack.models.GradNet` network (see :func:`gradtrack.build_tracker`).

    The shipped ``weights/gradnet.pt`` is the GradNet that scored best on val: since 3 Dec 2026 the one on
    the ImageNet EfficientNet-Lite0 SiamFC (model card ``weights/gradnet.md``); the paper's AlexNet GradNet
    is ``gradnet_alexnet``.  ``weights="random"`` builds the default :class:`GradNetConfig` (AlexNet), the
    architecture of the paper and of ``gradnet_alexnet``, or with ``model={...}`` that config (e.g. the
    shipped file's: ``read_checkpoint(path)["config"]``)."""
    return _build("gradnet", weights, device, backend, onnx_dir, overrides)


@TRACKERS.register("gradnet_alexnet")
def build_gradnet_alexnet(weights=None, device=None, backend="torch", onnx_dir=None, **overrides) -> GradNetTracker:
    """The paper's GradNet on AlexNet (``weights/gradnet_alexnet.pt``, retrained on the new train split; the
    default ``gradnet`` until 3 Dec 2026).  Its U1 is plain convolutions, so the ONNX export includes the
    update's analytic gradient graph."""
    return _build("gradnet_alexnet", weights, device, backend, onnx_dir, overrides)

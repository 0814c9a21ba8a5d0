"""SiamFC tracker (Bertinetto et al. 2016), MATLAB-faithful 3-scale variant.

Per frame: a 3-scale pyramid of 255 crops around the previous centre (search side ``x_sz * 1.0375^k``,
``k = -1, 0, 1``), one embedding pass, cross-correlation with the fixed template, x16 bicubic upsampling
of each 17 x 17 map, penalty 0.9745 on the non-centre scales, best scale by penalised peak, then
``r <- (r - min) / sum``, ``r <- 0.824 r + 0.176 hann`` and the peak gives the displacement (exact
geometry: :mod:`gradtrack.trackers.common`).  Scale damping ``(1 - 0.59) + 0.59 * scale``; the scale
relative to the first frame is clamped to ``[0.2, 5]`` (as MATLAB does for the search size) and from
below so that the target's shorter side stays >= ``min_target_size`` (10 px; or its initial size when
that is smaller).  The centre is clipped to the image; the output box may extend past the border.

``TrackResult.score`` is the sigmoid of the highest raw response (a logit, the adjust layer included) of
the chosen scale, before upsampling and windowing.  ``extra`` holds ``scale_index``, ``raw_peak``.

``precision`` ("fp32", "bf16", "fp16" on CUDA, or "auto" = bf16 on CPUs with AVX512-BF16/AMX and on CUDA)
is the dtype of the search branch; ``amp=True`` (older switch) means bf16.  The search branch runs as a
BN-folded copy of the backbone on channels-last inputs (:func:`gradtrack.trackers.common.inference_net`); the
template stays fp32.  The precision used is ``tracker.precision`` and ``TrackResult.extra["precision"]``;
``gradtrack bench`` measures the speed of each.  The default is "auto": on val, bf16 search features
scored +0.001 [+0.000, +0.001] success AUC from fp32 (paired 90 % interval over the 16 sequences; README,
Speed) at several times the fp32 speed on AMX CPUs.  The correlation is fp32 in every precision.
``siamfc_effnet`` defaults to fp32 (its bf16 was not within 0.01 of fp32).  "int8" runs int8 ONNX graphs
through onnxruntime (the shipped weights come with them, ``weights/siamfc_int8/``; val -0.004 [-0.008,
-0.001] from fp32); on a CPU without AMX, "auto" picks them for the shipped weights (:func:`auto_int8_dir`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import torch

from ..config import from_dict
from .registry import TRACKERS, model_backend
from .base import Tracker, TrackResult
from .common import (INT8, PRECISIONS, WEIGHTS_DIR, SiameseSearch, TargetState, check_common, check_scale_params,
                     cpu_bf16_flags, crops_to_tensor, load_tracker_model, tracker_weights_file, normalize_response, resolve_device,
                     sigmoid, stage, tracker_geometry, upsample_responses)


@dataclass
class SiamFCTrackerConfig:
    instance_size: int | None = None  # search crop side; None = the network's (model.cfg.geometry())
    context: float = 0.5
    scale_num: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    window_influence: float = 0.176
    response_up: int = 16
    min_scale: float = 0.2  # bounds of the target scale relative to the first frame
    max_scale: float = 5.0
    min_target_size: float = 10.0  # px, shorter side (unless the initial box is smaller)
    amp: bool = False  # older switch: True = precision "bf16"
    precision: str = "auto"  # search branch: "auto" (bf16 where fast, else fp32; the shipped siamfc weights on
    # a CPU without AMX: their int8 graphs, see auto_int8_dir), "fp32", "bf16", "fp16" (CUDA),
    # "int8" (onnxruntime: the shipped weights' graphs in weights/siamfc_int8/, or backend="onnxruntime" with
    # onnx_dir= graphs from `gradtrack quantize`; "auto" with an onnx_dir = the graphs' precision)
    long_term: bool = False  # grow the search while lost, re-acquire (SiameseSearch._after_confidence)

    def validate(self) -> None:
        check_common(self)
        if self.precision not in PRECISIONS + (INT8,):
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS + (INT8,))}, got {self.precision!r}")
        check_scale_params(self.scale_step, self.scale_penalty, self.window_influence)


class SiamFCTracker(SiameseSearch, Tracker):
    """``model`` needs ``embed(images) -> features`` and ``score(template, features) -> B x 1 x n x n``
    (e.g. :class:`gradtrack.models.SiamFC`)."""

    name = "siamfc"
    is_deterministic = True

    def __init__(self, model: torch.nn.Module, cfg: SiamFCTrackerConfig | None = None, device=None,
                 weights_source: str = "module"):
        super().__init__()
        self.cfg = cfg or SiamFCTrackerConfig()
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.weights_source = weights_source
        self.geom = tracker_geometry(self.model, self.cfg.instance_size)
        self._setup_search(self.cfg.scale_step, self.cfg.scale_penalty, self.cfg.window_influence)
        if getattr(self.model, "backend", "torch") == "onnxruntime":  # gradtrack.deploy: fp32 or int8 graphs
            have = getattr(self.model, "precision", "fp32")
            want = "bf16" if self.cfg.amp else self.cfg.precision
            if want not in ("auto", have):
                raise ValueError(f"the ONNX graphs in {getattr(self.model, 'onnx_dir', '?')} are {have}; precision="
                                 f"{want!r} needs " + ("int8 graphs from `gradtrack quantize --tracker NAME OUT/` "
                                                       "(onnx_dir=OUT)" if want == INT8 else "backend='torch'"))
            self.precision, self._search_net = have, None
        elif self.cfg.precision == INT8:
            raise ValueError("precision='int8' runs quantised ONNX graphs: the shipped siamfc weights come with "
                             "them (build_tracker('siamfc', precision='int8')); for other weights make them with "
                             "`gradtrack quantize --tracker NAME OUT/`, then pass backend='onnxruntime', onnx_dir=OUT")
        else:
            self._setup_precision(torch.nn.Sequential(self.model.backbone, self.model.neck)
                                  if hasattr(self.model, "backbone") and hasattr(self.model, "neck") else self.model.embed)
        self.reset()

    @property
    def untrained(self) -> bool:
        return self.weights_source == "random"

    def reset(self) -> None:
        """Forget the current sequence (``init`` does this too)."""
        super().reset()
        self.state: TargetState | None = None
        self.template: torch.Tensor | None = None

    @torch.no_grad()
    def _init(self, image: np.ndarray, box: np.ndarray) -> None:
        st = self._new_state(image, box)
        z = crops_to_tensor(self._exemplar_crop(image, st), self.device)
        self.template = self.model.embed(z).float()
        self.state = st

    @torch.no_grad()
    def _responses(self, crops: np.ndarray, template: torch.Tensor) -> np.ndarray:
        if self._search_net is None:  # onnxruntime backend: one search graph from the crops to the raw maps
            with stage("backbone"):
                return self.model.responses(crops, template)
        xf = self._search_features(crops)
        with stage("correlation"):
            # always fp32 (as GradNet's): a bf16 output rounds the response to 8 significant bits (0.25 at a
            # peak of 40), enough to flip the scale choice, whose penalty is 2.5 %; on val a bf16
            # correlation cost 0.011 success AUC; the fp32 correlation stage takes ~1.2 ms a frame (bench)
            r = self.model.score(template, xf.float())
            return r[:, 0].cpu().numpy()

    def _update(self, image: np.ndarray) -> TrackResult:
        return self._finish(self._responses(self._search_crops(image, self.state), self.template))

    def _finish(self, raw: np.ndarray) -> TrackResult:
        """The frame's result from its raw maps (one per scale): pick the scale, window, move.  Also used by
        :class:`gradtrack.trackers.batched.BatchedTracker`, which computes the maps of many trackers at once."""
        st = self.state
        with stage("post"):
            up = upsample_responses(raw, self.cfg.response_up)
            best = self._pick_scale(up)
            r = self._apply_window(normalize_response(up[best]), self.window_influence)
            self._move(st, r, best)
            peak = float(raw[best].max())
        return TrackResult(box=st.box(), score=sigmoid(peak),
                           extra={"scale_index": best, "raw_peak": peak, "precision": self.precision})


def calibration_crops(tracker: SiamFCTracker, frames, box, *, start: int = 0, max_frames: int = 100,
                      every: int = 10) -> tuple[np.ndarray, list[np.ndarray]]:
    """What ``tracker`` feeds its networks while it follows ``box`` (in frame ``start``) through up to
    ``max_frames`` of ``frames``: the exemplar crop (``e x e x 3`` uint8) and the search crops (``S x s x s x
    3``) of every ``every``-th frame, cut where the tracker searches (int8 calibration,
    :mod:`gradtrack.quantize`)."""
    if max_frames < 2 or every < 1:
        raise ValueError(f"max_frames must be >= 2 and every >= 1, got {max_frames} / {every}")
    tracker.init(frames[start], box)
    template = tracker._exemplar_crop(frames[start], tracker.state)[0]
    searches = []
    for i in range(start + 1, min(len(frames), start + max_frames)):
        frame = frames[i]
        if (i - start) % every == 0:
            searches.append(tracker._search_crops(frame, tracker.state))
        tracker.update(frame)
    return template, searches


def shipped_int8_dir(name: str):
    """``weights/<name>_int8/`` (int8 graphs of the shipped weights from `gradtrack quantize`), None if absent."""
    d = WEIGHTS_DIR / f"{name}_int8"
    return d if (d / "manifest.json").is_file() else None


def auto_int8_dir(name: str, cfg: SiamFCTrackerConfig, device: torch.device):
    """The shipped int8 graphs where ``precision="auto"`` (with the shipped weights, torch backend, no
    onnx_dir) runs them, else None: on a CPU whose flags are readable and show no AMX (there bf16 is slow:
    on an AMD Zen 4 with AVX512-BF16, int8 made 2.4-3.3x the reference loop against bf16's 1.8x; with AMX
    bf16 made 3.1x), with onnxruntime installed and ``amp`` off."""
    if cfg.precision != "auto" or cfg.amp or device.type != "cpu" or importlib.util.find_spec("onnxruntime") is None:
        return None
    flags = cpu_bf16_flags()
    if flags is None or "amx_bf16" in flags:
        return None
    return shipped_int8_dir(name)


def _build(name: str, weights, device, backend, onnx_dir, overrides: dict, random_model=None) -> SiamFCTracker:
    """The SiamFC tracker ``name`` on a "siamfc"-kind network (shipped, a file, or ``random_model`` for
    weights="random"), through ``backend``; the shipped weights run their shipped int8 graphs for
    ``precision="int8"`` and, on CPUs without AMX, for ``"auto"`` (:func:`auto_int8_dir`)."""
    cfg = from_dict(SiamFCTrackerConfig, overrides, where=f"{name} tracker config")
    dev = resolve_device(device)
    if backend == "torch" and onnx_dir is None and weights is None:
        chosen = shipped_int8_dir(name) if cfg.precision == INT8 else auto_int8_dir(name, cfg, dev)
        if chosen is not None:
            backend, onnx_dir = "onnxruntime", chosen
    random = isinstance(weights, str) and weights == "random"
    if backend == "onnxruntime" and onnx_dir is not None and not random:
        # graphs exported from this very file: no torch copy of their weights (deploy.onnx)
        from ..deploy.onnx import load_backend_from_checkpoint

        path = tracker_weights_file(name, weights)
        net = load_backend_from_checkpoint(name, path, onnx_dir, device=dev)
        if net is not None:
            return SiamFCTracker(net, cfg, dev, weights_source=str(path))
    model, source = load_tracker_model(name, weights, "siamfc", dev, random_model if random else None)
    model = model_backend(name, model, source, backend, onnx_dir, dev, overrides)
    return SiamFCTracker(model, cfg, dev, weights_source=source)


@TRACKERS.register("siamfc")
def build_siamfc(weights=None, device=None, backend="torch", onnx_dir=None, **overrides) -> SiamFCTracker:
    """SiamFC-3s with a :class:`gradtrack.models.SiamFC` network (see :func:`gradtrack.build_tracker`)."""
    return _build("siamfc", weights, device, backend, onnx_dir, overrides)


# SiamFC on an ImageNet EfficientNet-Lite0 (blocks 0-10 dilated to stride 8, 1x1 neck to 128 channels, centre
# 8 x 8 template cells; configs/siamfc_effnet_cpu.yaml): the architecture of weights/siamfc_effnet.pt, also
# what weights="random" builds for this tracker
EFFNET_MODEL = {"backbone": {"name": "efficientnet_lite0", "padding": "symmetric", "output_stride": 8, "frozen_bn": True},
                "neck_channels": 128, "template_crop": 8}


@TRACKERS.register("siamfc_effnet")
def build_siamfc_effnet(weights=None, device=None, backend="torch", onnx_dir=None, **overrides) -> SiamFCTracker:
    """SiamFC-3s on the ImageNet-initialised EfficientNet-Lite0 backbone (``weights/siamfc_effnet.pt``).
    Its default precision is fp32, not "auto": on val its bf16 path scored -0.013 [-0.031, +0.002] success
    AUC from fp32, outside the 0.01 that the other trackers' bf16 keeps (README, Speed)."""
    return _build("siamfc_effnet", weights, device, backend, onnx_dir, {"precision": "fp32", **overrides},
                  EFFNET_MODEL)

"""Pieces shared by the trackers: device and weight resolution, the score-map geometry of the network,
tensor conversion, autocast, the Hann window, and (for the SiamFC-style trackers, SiamFC and GradNet) the
multi-scale search, response post-processing and the per-sequence target state.

Geometry (derived for gradtrack's crop convention, see :mod:`gradtrack.geometry.crop`)
-------------------------------------------------------------------------------------
A search crop of side ``s`` image pixels centred on ``c`` is resampled to ``N_x`` (255) pixels, so its
continuous centre is crop coordinate ``N_x / 2``.  In SiamFC's AlexNet (VALID convs, total stride 8) the
receptive-field centre of final feature cell ``g`` is crop coordinate ``8 g + 43.5``; the 6 x 6 template
of a 127 crop is therefore centred at ``8 * 2.5 + 43.5 = 63.5 = 127 / 2``.  Response cell ``i`` places the
template's first column on search cell ``i``, i.e. the template centre on crop coordinate
``8 i + 63.5``, which equals the crop centre ``127.5`` for ``i = 8 = (17 - 1) / 2``.  Hence

    response cell i  <->  offset (i - (n - 1) / 2) * stride crop pixels from the crop centre

(:meth:`gradtrack.geometry.ScoreMapGeometry.cell_to_displacement`; the sizes, stride and ``n`` are the
model's, ``model.cfg.geometry()``, see :func:`tracker_geometry`).

``cv2.resize`` (half-pixel centres) maps upsampled index ``p`` to response coordinate
``(p + 0.5) / up - 0.5``, so ``p`` <-> ``((p + 0.5) / up - 0.5 - (n - 1) / 2) * stride`` crop pixels; for
``n = 17, up = 16, stride = 8`` this is ``(p - 135.5) / 2``.  Crop pixels become image pixels through
``s / N_x`` where ``s`` is the side of the crop of the *chosen scale* (``x_sz * scale``); this is exact,
whereas the MATLAB/TF originals use the unscaled ``round(x_sz)`` and centre 136.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..checkpoint import load_model
from ..config import ConfigError
from ..geometry import ScoreMapGeometry, crop_and_resize, mean_color
from ..models import build_model

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
RANDOM_WEIGHTS_SEED = 0


class WeightsNotFoundError(FileNotFoundError):
    """No weights file where one was expected (e.g. no trained weights shipped for a tracker)."""


def resolve_device(device=None) -> torch.device:
    """``None`` -> ``cuda`` when available, else ``cpu``; strings and ``torch.device`` are checked."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use device='cpu')")
    return dev


def shipped_weights(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.pt"


def tracker_weights_file(tracker_name: str, weights) -> Path:
    """The checkpoint file ``weights`` names (``None``: the shipped ``weights/<tracker_name>.pt``, a clear
    :class:`WeightsNotFoundError` if none is shipped yet; else a path)."""
    if weights is None:
        path = shipped_weights(tracker_name)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"no trained weights are shipped for tracker {tracker_name!r} yet (expected {path}). Pass "
                f"weights=PATH to a checkpoint saved with gradtrack.checkpoint.save_model (e.g. from "
                f"`gradtrack train`), or weights='random' for an UNTRAINED network whose output is meaningless."
            )
        return path
    if isinstance(weights, (str, os.PathLike)):
        return Path(weights).expanduser()
    raise TypeError(f"weights must be None, 'random' or a checkpoint path, got {type(weights).__name__}")


def load_tracker_model(tracker_name: str, weights, model_name: str, device: torch.device,
                       model_config=None) -> tuple[torch.nn.Module, str]:
    """The network of a tracker, in eval mode on ``device``, and a description of where it came from.

    ``weights``: ``None`` -> the shipped ``weights/<tracker_name>.pt`` (a clear
    :class:`WeightsNotFoundError` if none is shipped yet); ``"random"`` -> an untrained network with
    ``model_config`` (a config object or dict; ``None`` = the default), initialised from a fixed seed
    (``RANDOM_WEIGHTS_SEED``) so runs are repeatable; a path -> a checkpoint written by
    :func:`gradtrack.checkpoint.save_model` that must hold a ``model_name`` model (else
    :class:`gradtrack.checkpoint.CheckpointError`).  A checkpoint carries its config, so ``model_config``
    is only allowed with ``"random"``.
    """
    is_random = isinstance(weights, str) and weights == "random"
    if model_config is not None and not is_random:
        raise ValueError("model overrides are only allowed with weights='random'; a checkpoint carries its config")
    if is_random:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            model = build_model(model_name, model_config)
        return model.eval().to(device), "random"
    path = tracker_weights_file(tracker_name, weights)
    model, _ = load_model(path, expected=model_name, device=device)
    return model.eval(), str(path)


def tracker_geometry(model: torch.nn.Module, instance_size: int | None = None) -> ScoreMapGeometry:
    """The score-map geometry of ``model`` (``model.cfg.geometry()``), on a search crop of ``instance_size``
    pixels (``None`` = the size the network was built for); a size the network cannot use is a
    :class:`ConfigError`."""
    geom = model.cfg.geometry()
    if instance_size is not None and instance_size != geom.instance_size:
        try:
            geom = geom.with_instance_size(instance_size)
        except ValueError as exc:
            raise ConfigError(f"tracker config: instance_size: {exc}") from None
    if not geom.has_center_cell:
        raise ConfigError(f"tracker config: instance_size {geom.instance_size} gives a {geom.score_size}-cell map "
                          "without a centre cell (change it by a multiple of 2 x the stride)")
    return geom


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when ``enabled``, else a no-op context."""
    if enabled:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ------------------------------------------------------------------------------------------ precision

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
INT8 = "int8"  # SiamFC only, through int8 ONNX graphs (gradtrack.deploy.quantize)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=None)
def cpu_bf16_flags() -> tuple[str, ...] | None:
    """This CPU's native-bf16 flags among :data:`BF16_CPU_FLAGS` (from ``/proc/cpuinfo``), or None where
    the flags cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(f for f in BF16_CPU_FLAGS if f in flags)
    except OSError:
        pass
    return None


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): from the ``/proc/cpuinfo`` flags where
    readable, else from ``torch.backends.cpu.get_cpu_capability()`` (``AVX512_BF16`` / ``AMX*``)."""
    flags = cpu_bf16_flags()
    if flags is not None:
        return bool(flags)
    cap = str(torch.backends.cpu.get_cpu_capability()).upper()
    return "BF16" in cap or "AMX" in cap


def resolve_precision(precision: str, amp: bool, device: torch.device) -> str:
    """The precision a tracker runs its search branch in: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``amp=True`` (the older switch) means bf16 and may only be combined with ``"auto"`` (the default, then
    overridden), ``"fp32"`` or ``"bf16"``.  ``"auto"``: bf16 on a CPU with AVX512-BF16/AMX, on CUDA bf16 where
    the GPU
    supports it (else fp16), otherwise fp32.  fp16 needs CUDA (CPU fp16 convolutions are slow)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if amp:
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"amp=True means bf16; it cannot be combined with precision={precision!r}")
        return "bf16"
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision='fp16' needs a CUDA device (use 'bf16' or 'fp32' on the CPU)")
    return precision


def precision_dtype(precision: str) -> torch.dtype:
    return _DTYPES[precision]


def _mkldnn_conv_act():
    """oneDNN's convolution with a fused elementwise post-op (what ``torch.compile`` emits on the CPU), or
    None where this torch build lacks it."""
    try:
        return torch.ops.mkldnn._convolution_pointwise.default
    except (AttributeError, RuntimeError):
        return None


_CONV_ACT = _mkldnn_conv_act()
_ACTS = {torch.nn.ReLU: ("relu", []), torch.nn.ReLU6: ("hardtanh", [0.0, 6.0])}


class ConvAct(torch.nn.Module):
    """Inference-only ``act(conv(x))`` for a (BN-folded) ``Conv2d`` and ReLU / ReLU6 / none: on the CPU, in
    fp32 or bf16 with autograd off, one oneDNN convolution that applies the activation to its output tile
    while it is still in cache (the separate clamp pass cost ~9 % of SiamMLG's frame); elsewhere (CUDA,
    autograd on, a torch without the op) the plain conv and activation.  The same kernels and the same
    rounding: in fp32 it gives the unfused result to the bit (tested)."""

    def __init__(self, conv: torch.nn.Conv2d, act: str = "none", scalars: list[float] | None = None,
                 dilation: int | None = None, padding: int | None = None):
        super().__init__()
        if not _fusable(conv):
            raise ValueError("ConvAct needs a Conv2d with numeric zero padding")
        self.conv, self.act, self.scalars = conv, act, list(scalars or [])
        self.dilation = list(conv.dilation) if dilation is None else [dilation, dilation]
        self.padding = list(conv.padding) if padding is None else [padding, padding]

    def _act(self, y: torch.Tensor) -> torch.Tensor:
        if self.act == "relu":
            return torch.relu_(y)
        if self.act == "hardtanh":
            return y.clamp_(*self.scalars)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if (_CONV_ACT is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)
                and x.dim() == 4 and not torch.is_grad_enabled() and c.weight.dtype == x.dtype):
            return _CONV_ACT(x, c.weight, c.bias, self.padding, list(c.stride), self.dilation, c.groups,
                             self.act, self.scalars, "")
        y = torch.nn.functional.conv2d(x, c.weight, c.bias, c.stride, self.padding, self.dilation, c.groups)
        return self._act(y)


def _fusable(conv: torch.nn.Conv2d) -> bool:
    """Whether :class:`ConvAct` can run ``conv``: oneDNN's fused op takes numeric zero padding only."""
    return conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


def _act_of(module) -> tuple[str, list[float]] | None:
    return _ACTS.get(type(module)) if not isinstance(module, torch.nn.Identity) else ("none", [])


def _fuse_sequential(seq: torch.nn.Sequential) -> torch.nn.Sequential:
    """A plain ``nn.Sequential`` with every ``Conv2d`` + eval ``BatchNorm2d`` pair folded into one conv, and
    a conv directly followed by ReLU / ReLU6 turned into one :class:`ConvAct`."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    layers, out, i = list(seq), [], 0
    while i < len(layers):
        a = layers[i]
        b = layers[i + 1] if i + 1 < len(layers) else None
        if (isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d) and b.track_running_stats
                and b.running_mean is not None):
            out.append(fuse_conv_bn_eval(a, b))
            i += 2
        else:
            out.append(_fused(a))
            i += 1
    fused, i = [], 0
    while i < len(out):
        a = out[i]
        act = _ACTS.get(type(out[i + 1])) if i + 1 < len(out) else None
        if type(a) is torch.nn.Conv2d and act is not None and _fusable(a):
            fused.append(ConvAct(a, *act))
            i += 2
        else:
            fused.append(a)
            i += 1
    return torch.nn.Sequential(*fused)


def _fused(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with its BatchNorms folded: a plain ``nn.Sequential`` is rebuilt pairwise; a module with
    its own ``forward`` keeps it (a subclass of ``nn.Sequential`` too, e.g. EfficientNet-Lite's padded /
    phase-grid ``ConvBNAct``) and folds itself through its ``fold_bn()`` method if it has one, else its
    children are fused.  A module that also offers ``inference_conv()`` (EfficientNet-Lite's ``ConvBNAct``
    once folded: its conv, activation, and the dilation / padding its no-grad forward uses) becomes a
    :class:`ConvAct` unless it returns None (TensorFlow SAME padding, which pads the input itself)."""
    if type(module) is torch.nn.Sequential:
        return _fuse_sequential(module)
    if hasattr(module, "fold_bn"):
        module.fold_bn()
        spec = module.inference_conv() if hasattr(module, "inference_conv") else None
        if spec is not None:
            conv, act, dilation, padding = spec
            kind = _act_of(act)
            if kind is not None:
                return ConvAct(conv, *kind, dilation=dilation, padding=padding)
    else:
        _fuse_children(module)
    return module


def _fuse_children(module: torch.nn.Module) -> None:
    for name, child in list(module.named_children()):
        setattr(module, name, _fused(child))


def inference_net(module: torch.nn.Module, precision: str = "fp32", device=None) -> torch.nn.Module:
    """An inference-only copy of ``module`` (the search branch): every ``Conv2d`` directly followed by an
    eval ``BatchNorm2d`` inside an ``nn.Sequential`` is folded into one convolution, parameters are frozen
    and in the ``precision`` dtype.  In fp32 the folded network agrees with the original to float rounding
    (~1e-6 relative).

    The copy shares the storage of every tensor it keeps unchanged (in fp32 on the same device: all but
    the folded convolutions) instead of duplicating it; it holds its own ``Parameter`` objects, so freezing,
    casting or moving the copy never touches ``module``, which training and the online gradient keep
    using.  It is a snapshot for inference: after changing ``module``'s weights, build a new one.  Weights
    keep their memory format (channels-last weights measured no faster for channels-last inputs)."""
    memo: dict[int, object] = {id(p): torch.nn.Parameter(p.detach(), requires_grad=False) for p in module.parameters()}
    memo.update({id(b): b.detach() for b in module.buffers()})
    net = _fused(copy.deepcopy(module, memo).eval())
    for prm in net.parameters():
        prm.requires_grad_(False)
    if device is not None:
        net = net.to(device)
    return net.to(dtype=precision_dtype(precision))


def search_input(crops: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``S x H x W x 3`` uint8 crops -> ``S x 3 x H x W`` tensor of ``dtype`` in [0, 255], channels-last
    (the permuted view of the HWC buffer is channels-last already, so only the dtype conversion copies)."""
    if crops.ndim == 3:
        crops = crops[None]
    t = torch.from_numpy(np.ascontiguousarray(crops)).to(device, non_blocking=True).permute(0, 3, 1, 2)
    return t.to(dtype, memory_format=torch.channels_last)


# --------------------------------------------------------------------------------------- stage timing

STAGES = ("crop", "backbone", "correlation", "post", "update")


class StageTimer:
    """Accumulates wall-clock seconds per tracking stage while installed with :func:`timing` (used by
    ``gradtrack bench``).  Stages do not nest: a stage entered inside another is counted in the outer one.
    ``sync`` (e.g. ``torch.cuda.synchronize``) runs at every stage boundary so GPU work is attributed to
    the stage that queued it."""

    def __init__(self, sync=None):
        self.totals: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.sync = sync
        self.active: str | None = None

    def add(self, name: str, seconds: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + seconds


class _Stage:
    __slots__ = ("timer", "name", "t0")

    def __init__(self, timer: StageTimer, name: str):
        self.timer, self.name = timer, name

    def __enter__(self):
        if self.timer.sync is not None:
            self.timer.sync()
        self.timer.active = self.name
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.timer.sync is not None:
            self.timer.sync()
        self.timer.add(self.name, time.perf_counter() - self.t0)
        self.timer.active = None
        return False


_TIMER: StageTimer | None = None
_NO_STAGE = contextlib.nullcontext()


def stage(name: str):
    """Context manager timing one stage of a tracker step when a :class:`StageTimer` is installed; a shared
    no-op context otherwise (one global read: free when benchmarks are not running)."""
    timer = _TIMER
    if timer is None or timer.active is not None:
        return _NO_STAGE
    return _Stage(timer, name)


@contextlib.contextmanager
def timing(timer: StageTimer | None):
    """Install ``timer`` for the duration of the block (``None``: timing off)."""
    global _TIMER
    prev, _TIMER = _TIMER, timer
    try:
        yield timer
    finally:
        _TIMER = prev


def hann_window(size: int, norm: str = "sum", dtype=np.float32) -> np.ndarray:
    """Outer product of two symmetric Hann windows, normalised to sum 1 (``norm="sum"``, SiamFC) or to a
    peak of 1 (``norm="max"``, SiamMask/SiamMLG)."""
    w = np.hanning(size)
    win = np.outer(w, w)
    return (win / (win.sum() if norm == "sum" else win.max())).astype(dtype, copy=False)


def upsample_responses(responses: np.ndarray, up: int) -> np.ndarray:
    """``S x n x n`` -> ``S x (n*up) x (n*up)`` with bicubic ``cv2.resize`` (half-pixel centres)."""
    n = responses.shape[-1]
    if up == 1:
        return responses.astype(np.float32, copy=True)
    return np.stack([cv2.resize(r.astype(np.float32), (n * up, n * up), interpolation=cv2.INTER_CUBIC)
                     for r in responses])


def normalize_response(r: np.ndarray) -> np.ndarray:
    """Subtract the minimum and divide by the sum (SiamFC's normalisation before windowing)."""
    r = r - r.min()
    return r / (r.sum() + 1e-16)


def crops_to_tensor(crops: np.ndarray, device: torch.device) -> torch.Tensor:
    """``S x H x W x 3`` (or one ``H x W x 3``) uint8 RGB -> float ``S x 3 x H x W`` in [0, 255] on ``device``."""
    if crops.ndim == 3:
        crops = crops[None]
    t = torch.from_numpy(np.ascontiguousarray(crops)).to(device)
    return t.permute(0, 3, 1, 2).float()


def sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0))))


def check_common(cfg) -> None:
    """Validation shared by the SiamFC-style tracker configs (the crop sizes come from the model, see
    :func:`tracker_geometry`)."""
    if cfg.instance_size is not None and cfg.instance_size <= 0:
        raise ValueError(f"instance_size must be > 0 (or None = the model's), got {cfg.instance_size}")
    if cfg.context < 0:
        raise ValueError(f"context must be >= 0, got {cfg.context}")
    if cfg.scale_num < 1 or cfg.scale_num % 2 == 0:
        raise ValueError(f"scale_num must be odd and >= 1, got {cfg.scale_num}")
    if not 0.0 <= cfg.scale_lr <= 1.0:
        raise ValueError(f"scale_lr must be in [0, 1], got {cfg.scale_lr}")
    if cfg.response_up < 1:
        raise ValueError(f"response_up must be >= 1, got {cfg.response_up}")
    if not 0 < cfg.min_scale <= 1.0 <= cfg.max_scale:
        raise ValueError(f"need 0 < min_scale <= 1 <= max_scale, got {cfg.min_scale}, {cfg.max_scale}")
    if cfg.min_target_size <= 0:
        raise ValueError(f"min_target_size must be > 0, got {cfg.min_target_size}")


def check_scale_params(step: float, penalty: float, window: float) -> None:
    if step < 1.0:
        raise ValueError(f"scale_step must be >= 1, got {step}")
    if not 0.0 < penalty <= 1.0:
        raise ValueError(f"scale_penalty must be in (0, 1], got {penalty}")
    if not 0.0 <= window <= 1.0:
        raise ValueError(f"window_influence must be in [0, 1], got {window}")


@dataclass
class TargetState:
    """Centre, size and search extent of the target (all in image pixels, continuous coordinates).

    SiamFC changes width and height by the same factor, so the state keeps one relative scale ``rel``
    (1 at init) and derives target size, exemplar side and search side from it; clamping ``rel`` to
    ``[lo, hi]`` therefore clamps all three consistently.
    """

    center: np.ndarray  # (2,) cx, cy
    size0: np.ndarray  # (2,) w, h at init
    z_sz0: float
    x_sz0: float
    rel: float
    rel_lo: float
    rel_hi: float
    image_size: tuple[int, int]
    pad_color: np.ndarray
    gain: float = 1.0  # long-term mode: search side / normal search side while lost (1 otherwise)

    @property
    def size(self) -> np.ndarray:
        return self.size0 * self.rel

    @property
    def x_sz(self) -> float:
        return self.x_sz0 * self.rel * self.gain

    def box(self) -> np.ndarray:
        w, h = self.size
        return np.array([self.center[0] - w / 2, self.center[1] - h / 2, w, h], dtype=np.float64)


class SiameseSearch:
    """Mixin holding the multi-scale search machinery; expects ``self.cfg``, ``self.device`` and
    ``self.geom`` (:func:`tracker_geometry`)."""

    cfg: object
    device: torch.device
    geom: ScoreMapGeometry

    # -- long-term mode (cfg.long_term): grow the search while lost, see _after_confidence -------------------
    LT_GROWTH = 1.25  # network input side grows by this factor per lost frame ...
    LT_MAX_INSTANCE = 1023  # ... up to this many pixels (CPU cost bound) or until the crop spans the frame

    def reset(self) -> None:
        super().reset()
        base = getattr(self, "_lt_base", None)
        if base is not None:  # leave the lost mode of the previous sequence
            self.geom, self.window_influence = base
            self._lt_base = None
        self._lt_lost = False

    def _after_confidence(self, result) -> None:
        """Long-term mode (``cfg.long_term``), called by :meth:`Tracker.update` once ``result.lost`` is known.
        While lost: the network input (and the search crop with it, same resolution) grows by ``LT_GROWTH``
        per lost frame up to the whole frame (crop side >= 2 max(W, H)) or ``LT_MAX_INSTANCE`` pixels, the
        cosine window is off and the template is not updated (GradNet checks ``_lt_lost``); the first frame
        whose score is back above the lost threshold re-acquires: normal search size, window and updates.
        ``extra["search_scale"]`` is the search enlargement used for this frame, ``extra["searching"]`` whether
        the next frame searches the enlarged region."""
        if not getattr(self.cfg, "long_term", False):
            return
        st = getattr(self, "state", None)
        st = getattr(st, "target", st)  # GradNet keeps the TargetState inside its state
        result.extra["search_scale"] = float(st.gain)
        if not result.lost:
            if self._lt_lost:
                self.geom, self.window_influence = self._lt_base
                self._lt_base, self._lt_lost, st.gain = None, False, 1.0
            result.extra["searching"] = False
            return
        if not self._lt_lost:
            self._lt_base, self._lt_lost = (self.geom, self.window_influence), True
        base_geom = self._lt_base[0]
        stride, base = base_geom.stride, base_geom.instance_size
        w, h = st.image_size
        need = 2.0 * max(w, h) / (st.x_sz0 * st.rel) * base  # input side at which the crop spans the frame
        cap = min(self.LT_MAX_INSTANCE, max(need, base))
        target = min(self.geom.instance_size * self.LT_GROWTH, cap)
        m = max(0, int(np.ceil((target - base) / (2 * stride))))
        inst = base + 2 * stride * m
        if inst > cap and m > 0:
            inst -= 2 * stride
        if inst != self.geom.instance_size:
            self.geom = tracker_geometry(self.model, inst)
        st.gain = inst / base
        self.window_influence = 0.0
        result.extra["searching"] = True

    def _setup_search(self, scale_step: float, scale_penalty: float, window_influence: float) -> None:
        cfg = self.cfg
        n = cfg.scale_num
        self.scale_factors = scale_step ** (np.arange(n) - (n - 1) / 2)
        self.scale_penalties = np.full(n, scale_penalty, dtype=np.float32)
        self.scale_penalties[(n - 1) // 2] = 1.0
        self.window_influence = window_influence
        self._window: np.ndarray | None = None

    def _amp(self):
        return autocast(self.device, self.cfg.amp)

    def _setup_precision(self, embed: torch.nn.Module) -> None:
        """Resolve ``cfg.precision``/``cfg.amp`` and build the folded search network
        (:func:`inference_net`) from ``embed`` (the module computing search features)."""
        self.precision = resolve_precision(getattr(self.cfg, "precision", "fp32"), self.cfg.amp, self.device)
        self._dtype = precision_dtype(self.precision)
        self._search_net = inference_net(embed, self.precision, self.device)

    def _search_features(self, crops: np.ndarray) -> torch.Tensor:
        """Search features of ``S`` crops in the tracker's precision (dtype of that precision)."""
        with stage("crop"):
            x = search_input(crops, self.device, self._dtype)
        # no_grad, not inference_mode: GradNet's online gradient takes these features as (saved) inputs
        with stage("backbone"), torch.no_grad():
            return self._search_net(x)

    def backbone_probe(self, image: np.ndarray, box: np.ndarray):
        """A zero-argument callable running the per-frame search network alone on the search crops of
        ``image`` at ``box`` (what ``gradtrack bench`` times as the backbone-only lower bound of an
        update), or ``None`` where there is none (onnxruntime backend)."""
        net = self._search_net
        if net is None:
            return None
        x = search_input(self._search_crops(image, self._new_state(image, box)), self.device, self._dtype)

        def run():
            with torch.no_grad():
                return net(x)
        return run

    def _new_state(self, image: np.ndarray, box: np.ndarray) -> TargetState:
        cfg = self.cfg
        x, y, w, h = (float(v) for v in box)
        p = cfg.context * (w + h)
        z_sz = float(np.sqrt((w + p) * (h + p)))
        x_sz = z_sz * self.geom.instance_size / self.geom.exemplar_size
        # the target may not shrink below min_target_size (or its initial size, if that is smaller)
        rel_lo = max(cfg.min_scale, min(1.0, cfg.min_target_size / min(w, h)))
        hi, wi = image.shape[:2]
        return TargetState(center=np.array([x + w / 2, y + h / 2]), size0=np.array([w, h]), z_sz0=z_sz, x_sz0=x_sz,
                           rel=1.0, rel_lo=rel_lo, rel_hi=cfg.max_scale, image_size=(wi, hi),
                           pad_color=mean_color(image))

    def _exemplar_crop(self, image: np.ndarray, st: TargetState) -> np.ndarray:
        return crop_and_resize(image, st.center, st.z_sz0 * st.rel, self.geom.exemplar_size, st.pad_color)[None]

    def _search_crops(self, image: np.ndarray, st: TargetState, factors=None) -> np.ndarray:
        factors = self.scale_factors if factors is None else factors
        with stage("crop"):
            return np.stack([crop_and_resize(image, st.center, st.x_sz * f, self.geom.instance_size, st.pad_color)
                             for f in factors])

    def _window_for(self, size: int) -> np.ndarray:
        if self._window is None or self._window.shape[0] != size:
            self._window = hann_window(size)
        return self._window

    def _pick_scale(self, up: np.ndarray) -> int:
        """Best scale by the penalised peak of the upsampled maps."""
        peaks = up.reshape(len(up), -1).max(1) * self.scale_penalties[: len(up)]
        return int(np.argmax(peaks))

    def _apply_window(self, r: np.ndarray, influence: float) -> np.ndarray:
        return (1.0 - influence) * r + influence * self._window_for(r.shape[0])

    def _displacement(self, r: np.ndarray, crop_side: float) -> np.ndarray:
        """Image-pixel displacement ``(dx, dy)`` of the peak of the upsampled, windowed map ``r``."""
        up = self.cfg.response_up
        if r.shape[0] != self.geom.score_size * up:
            raise RuntimeError(f"the network gave a {r.shape[0] // up}-cell score map, its config's geometry says "
                               f"{self.geom.score_size} (model.cfg.geometry() does not describe the model)")
        row, col = np.unravel_index(int(np.argmax(r)), r.shape)
        cell = (np.array([col, row], dtype=np.float64) + 0.5) / up - 0.5
        return self.geom.cell_to_displacement(cell) * crop_side / self.geom.instance_size

    def _move(self, st: TargetState, r: np.ndarray, scale_idx: int) -> None:
        """Update centre and scale from the final map ``r`` of the chosen scale."""
        f = float(self.scale_factors[scale_idx])
        st.center = st.center + self._displacement(r, st.x_sz * f)
        w_img, h_img = st.image_size
        st.center = np.array([np.clip(st.center[0], 0.0, w_img), np.clip(st.center[1], 0.0, h_img)])
        lr = self.cfg.scale_lr
        st.rel = float(np.clip(st.rel * ((1.0 - lr) + lr * f), st.rel_lo, st.rel_hi))

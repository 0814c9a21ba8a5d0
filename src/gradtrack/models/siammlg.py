"""SiamMLG (Cao & Dai 2024): a two-branch (fully convolutional) SiamMask on a stride-8 ResNet-34 with
SKNet attention and a GradNet-style gradient-guided template update.

Data flow (sizes for the default widths, template ``z`` 127, search ``x`` 255)::

    x -> ResNet [conv1 125, layer1 63, layer2 31, layer3 31x256] -> adjust 1x1+BN (256) -> SK -> xf 31x31
    z -> ResNet stem -> f2 = layer2 15x15x128
         U1(f2) = layer3 -> adjust -> SK -> centre crop 7x7 = zf
    heads (depthwise xcorr, 25x25): score (1), mask (63*63, + Refine to 127x127), optional box (l,t,r,b)

Gradient-guided update (GradNet §3, on the score head only):
``L = balanced_logistic(score(U1(f2), xf), centred label radius 2)``, ``g = dL/df2``,
``f2' = f2 + U2(g)`` (:class:`gradtrack.models.gradnet.GradientUpdate`), template ``zf' = U1(f2')``, which
then feeds every head.  ``create_graph=True`` in training so the loss after the update reaches U2 through
the gradient (second order).

Ablation switches (the paper's Table 3): ``sk = "none"`` and ``gradient_update = False`` -> variant 1
(ResNet-34 only); ``sk = "none"``, ``gradient_update = True`` -> variant 2; ``sk = "neck"``,
``gradient_update = False`` -> variant 3; default -> full SiamMLG.  :func:`ablation_config` builds them.

Inputs are float RGB tensors in [0, 255] (like SiamFC in this package); the model normalises them with
the ImageNet mean/std when ``input_norm == "imagenet"`` (the backbone is meant to start from ImageNet
weights).  The model keeps no per-sequence state.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
import torch.nn as nn

from ..geometry.scoremap import ScoreMapGeometry
from .gradnet import GradientUpdate
from .heads import BoxHead, DepthwiseXCorr, Refine, decode_ltrb, mask_at
from .labels import balanced_logistic_loss, centered_label
from .backbones import BACKBONES, backbone_config, build_backbone, normalize_spec
from .sknet import SKConv, SKUnit

_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass
class SKConfig:
    groups: int = 32
    reduction: int = 16
    min_dim: int = 32


@dataclass
class SiamMLGConfig:
    backbone: dict[str, Any] = field(default_factory=dict)  # backbone spec (models.backbones), default resnet34
    neck_channels: int = 256
    head_hidden: int = 256
    template_crop: int = 7  # centre crop of the template feature (after SK)
    # where the SK attention sits: after the adjust layer with a residual (shared by z and x), inside
    # every layer3 BasicBlock (replacing its second 3x3 conv), or nowhere
    sk: Literal["neck", "layer3", "none"] = "neck"
    sk_cfg: SKConfig = field(default_factory=SKConfig)
    gradient_update: bool = True
    grad_scale: float = 44.0  # see GradNetConfig.grad_scale (same loss normalisation)
    u2_scale: float = 1.0  # U2's output multiplier: see GradNetConfig.u2_scale and gradtrack.models.gradnet
    u2_kernel: int = 3
    label_radius: float = 2.0  # cells
    mask_size: int = 63
    refine: bool = True
    box_head: bool = False
    input_norm: Literal["imagenet", "none"] = "imagenet"
    exemplar_size: int = 127
    instance_size: int = 255
    total_stride: int = 8

    def __post_init__(self) -> None:
        self.backbone = normalize_spec(self.backbone, "resnet34", "backbone")

    def backbone_config(self) -> Any:
        name, cfg = backbone_config(self.backbone, "resnet34")
        if not BACKBONES.get(name).pyramid:
            raise ValueError(f"SiamMLG needs a feature-pyramid backbone ({', '.join(pyramid_backbones())}), got {name}")
        return cfg

    @property
    def backbone_name(self) -> str:
        return self.backbone["name"]

    def validate(self) -> None:
        bcfg = self.backbone_config()
        if self.template_crop <= 2:
            raise ValueError(f"template_crop must be > 2 (the heads' 3x3 conv), got {self.template_crop}")
        if bcfg.stride != self.total_stride:
            raise ValueError(f"the backbone's stride is {bcfg.stride}, total_stride says {self.total_stride}")
        if self.backbone_name.startswith("efficientnet_"):
            if self.input_norm != "none":
                raise ValueError("EfficientNet-Lite normalises its input itself ((x - 127) / 128): set "
                                 "input_norm: none (imagenet would normalise twice)")
            if bcfg.stem_stride != self.total_stride:
                raise ValueError(f"SiamMLG's f2 (the stem's output) must be at the stride of the top feature "
                                 f"({self.total_stride}): split_block {bcfg.resolved()[0]} ends at stride {bcfg.stem_stride}")
        fz = bcfg.feature_size(self.exemplar_size)
        if self.template_crop > fz or (fz - self.template_crop) % 2:
            raise ValueError(f"template_crop {self.template_crop} must be <= the template feature side {fz} and "
                             "centred (same parity)")
        sk_channels = {"neck": self.neck_channels, "layer3": bcfg.out_channels}.get(self.sk)
        if self.sk == "layer3" and self.backbone_name != "resnet34":
            raise ValueError("sk: layer3 (SK inside the ResNet's layer3 blocks) needs the resnet34 backbone; use sk: neck")
        if sk_channels is not None and sk_channels % min(self.sk_cfg.groups, sk_channels):
            raise ValueError(f"the SK channels ({sk_channels}) must be divisible by sk_cfg.groups ({self.sk_cfg.groups})")
        self.geometry()

    def geometry(self) -> ScoreMapGeometry:
        # the heads' 3x3 convs shrink both sides by 2, so the map has (search side - template crop + 1) cells;
        # a padded backbone keeps more cells than a VALID correlation of the crops would (ResNet: search 31,
        # template 7 -> 25 = 17 + 8; EfficientNet-Lite: 32, 8 -> 25)
        bcfg = self.backbone_config()
        n = bcfg.feature_size(self.instance_size) - self.template_crop + 1
        extra = n - ((self.instance_size - self.exemplar_size) // self.total_stride + 1)
        return ScoreMapGeometry.valid_correlation(self.exemplar_size, self.instance_size, self.total_stride,
                                                  self.label_radius, extra_cells=extra)

    @property
    def score_size(self) -> int:
        return self.geometry().score_size


def pyramid_backbones() -> list[str]:
    return [n for n in BACKBONES.names() if BACKBONES.get(n).pyramid]


def ablation_config(variant: Literal["resnet34", "gradient", "sk", "full"],
                    base: SiamMLGConfig | None = None) -> SiamMLGConfig:
    """The paper's ablation variants (Table 3) on top of ``base``."""
    base = base or SiamMLGConfig()
    table = {"resnet34": ("none", False), "gradient": ("none", True), "sk": ("neck", False), "full": ("neck", True)}
    if variant not in table:
        raise ValueError(f"unknown SiamMLG variant {variant!r}; choose from {sorted(table)}")
    sk, grad = table[variant]
    return replace(base, sk=sk, gradient_update=grad)


class SiamMLG(nn.Module):
    def __init__(self, cfg: SiamMLGConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SiamMLGConfig()
        sc = cfg.sk_cfg
        sk_factory = None
        if cfg.sk == "layer3":
            def sk_factory(c: int, d: int) -> nn.Module:
                return SKConv(c, 2, sc.groups, sc.reduction, sc.min_dim, dilation=d)
        self.backbone = build_backbone(cfg.backbone, "resnet34", **({"sk_factory": sk_factory} if sk_factory else {}))
        c0, c1, c2, c3 = self.backbone.channels
        self.neck = nn.Sequential(nn.Conv2d(c3, cfg.neck_channels, 1, bias=False), nn.BatchNorm2d(cfg.neck_channels))
        self.sk = SKUnit(cfg.neck_channels, sc.groups, sc.reduction, sc.min_dim) if cfg.sk == "neck" else nn.Identity()
        self.score_head = DepthwiseXCorr(cfg.neck_channels, cfg.head_hidden, 1)
        self.mask_head = DepthwiseXCorr(cfg.neck_channels, cfg.head_hidden, cfg.mask_size ** 2)
        self.refine = Refine(cfg.head_hidden, (c0, c1, c2)) if cfg.refine else None
        self.box_head = BoxHead(cfg.neck_channels, cfg.head_hidden, cfg.total_stride) if cfg.box_head else None
        self.u2 = GradientUpdate(c2, cfg.u2_kernel, cfg.grad_scale, cfg.u2_scale) if cfg.gradient_update else None
        self.register_buffer("_mean", torch.tensor(_IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(_IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)

    # -- features ----------------------------------------------------------------------------------
    def normalize(self, img: torch.Tensor) -> torch.Tensor:
        if self.cfg.input_norm == "imagenet":
            return (img - self._mean.to(img.dtype)) / self._std.to(img.dtype)
        return img

    def _neck(self, feat: torch.Tensor) -> torch.Tensor:
        return self.sk(self.neck(feat))

    def f2(self, z: torch.Tensor) -> torch.Tensor:
        """Shallow template feature: layer2 output (``B x 128 x 15 x 15`` for a 127 crop)."""
        return self.backbone.shallow(self.normalize(z))[-1]

    def u1(self, f2: torch.Tensor) -> torch.Tensor:
        """The rest of the template path: layer3 -> adjust -> SK -> centre crop (``B x 256 x 7 x 7``)."""
        t = self._neck(self.backbone.deep(f2))
        k = self.cfg.template_crop
        h, w = t.shape[2:]
        if h > k and w > k:
            top, left = (h - k) // 2, (w - k) // 2
            t = t[:, :, top:top + k, left:left + k]
        return t

    def template(self, z: torch.Tensor) -> torch.Tensor:
        """Template feature without any gradient update."""
        return self.u1(self.f2(z))

    def search(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(xf, low)``: the neck feature (``B x 256 x 31 x 31``) and ``[conv1, layer1, layer2]`` for Refine."""
        low = self.backbone.shallow(self.normalize(x))
        return self._neck(self.backbone.deep(low[-1])), low

    # -- heads -------------------------------------------------------------------------------------
    def kernels(self, zf: torch.Tensor) -> dict[str, torch.Tensor]:
        """Template side of every head (computed once per template by a tracker)."""
        out = {"score": self.score_head.kernel(zf), "mask": self.mask_head.kernel(zf)}
        if self.box_head is not None:
            out["box"] = self.box_head.kernel(zf)
        return out

    def score(self, zf: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        return self.score_head(zf, xf)

    def heads(self, kernels: dict[str, torch.Tensor], xf: torch.Tensor,
              full_mask: bool = True) -> dict[str, torch.Tensor]:
        """``score`` (``B x 1 x 25 x 25`` logits), ``mask_corr`` (``B x hidden x 25 x 25``), ``mask``
        (``B x 63^2 x 25 x 25`` logits, only with ``full_mask``) and ``box`` (``B x 4 x 25 x 25`` l,t,r,b)."""
        out = {"score": self.score_head.forward_kernel(kernels["score"], xf)}
        corr = self.mask_head.correlate(kernels["mask"], xf)
        out["mask_corr"] = corr
        if full_mask:
            out["mask"] = self.mask_head.head(corr)
        if self.box_head is not None:
            out["box"] = self.box_head.forward_kernel(kernels["box"], xf)
        return out

    def mask_logits(self, corr: torch.Tensor, batch: torch.Tensor, rows: torch.Tensor,
                    cols: torch.Tensor) -> torch.Tensor:
        """63x63 mask logits at chosen positions (runs the 1x1 mask head there only): ``N x 63 x 63``."""
        feat = corr[batch, :, rows, cols][:, :, None, None]
        return self.mask_head.head(feat).reshape(-1, self.cfg.mask_size, self.cfg.mask_size)

    def refine_mask(self, low: list[torch.Tensor], corr: torch.Tensor, batch: torch.Tensor, rows: torch.Tensor,
                    cols: torch.Tensor) -> torch.Tensor:
        """127x127 refined mask logits at chosen positions: ``N x 1 x 127 x 127``."""
        if self.refine is None:
            raise RuntimeError("this SiamMLG was built with refine=False")
        return self.refine(low, corr, batch, rows, cols)

    # -- gradient-guided update --------------------------------------------------------------------
    def label(self, size: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        return centered_label(size, self.cfg.label_radius, device=device, dtype=dtype)

    def gradient(self, f2: torch.Tensor, xf: torch.Tensor,
                 create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(dL/df2, L)``: score-head loss of the initial template ``U1(f2)`` against search features ``xf``
        (``k`` samples per template allowed) with the centred label.

        ``L`` is the mean over all maps; the gradient is that of ``B_z * L`` (each template's loss averaged
        over its own ``k`` maps), so a template's gradient does not shrink with the training batch size and
        has the same scale as at tracking time (one template, one map).
        """
        with torch.enable_grad():
            leaf = f2 if (create_graph and f2.requires_grad) else f2.detach().requires_grad_(True)
            score = self.score(self.u1(leaf), xf)
            label, weight = self.label(score.shape[-1], device=score.device, dtype=score.dtype)
            loss = balanced_logistic_loss(score, label, weight)
            (g,) = torch.autograd.grad(loss * leaf.shape[0], leaf, create_graph=create_graph)
        return g, loss

    def update(self, f2: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(zf', f2')`` with ``f2' = f2 + U2(g)`` and ``zf' = U1(f2')``."""
        if self.u2 is None:
            raise RuntimeError("this SiamMLG was built with gradient_update=False")
        f2_new = f2 + self.u2(grad)
        return self.u1(f2_new), f2_new

    # -- training forward --------------------------------------------------------------------------
    def forward(self, z: torch.Tensor, x: torch.Tensor, create_graph: bool = True,
                full_mask: bool = True) -> dict:
        """Templates ``z`` (``B``) against searches ``x`` (``B`` or ``k * B``).

        Returns the head outputs of :meth:`heads` for the (updated, if enabled) template plus ``xf``,
        ``low`` (the search features for Refine, a list) and, with the gradient update, ``loss_init`` (the
        score loss of the template before the update; ``create_graph=True`` makes the outputs depend on
        the parameters through the gradient as well, GradNet's second-order training).
        """
        xf, low = self.search(x)
        f2 = self.f2(z)
        out: dict = {}
        if self.u2 is not None:
            g, loss0 = self.gradient(f2, xf, create_graph=create_graph)
            zf, _ = self.update(f2, g)
            out["loss_init"] = loss0
        else:
            zf = self.u1(f2)
        out.update(self.heads(self.kernels(zf), xf, full_mask=full_mask))
        out["xf"], out["low"] = xf, low
        return out


__all__ = ["SiamMLG", "SiamMLGConfig", "SKConfig", "ablation_config", "decode_ltrb", "mask_at"]

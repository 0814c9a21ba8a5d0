"""SiamFC: a shared backbone embeds template (127) and search (255) crops; the response is their
cross-correlation, scaled by an adjust.  Inputs are float RGB tensors in [0, 255].

The backbone comes from :mod:`gradtrack.models.backbones` (default ``alexnet``, the paper's network).
Padded backbones (EfficientNet-Lite) keep border cells whose features see the crop's padding: there
``template_crop`` keeps the centre ``t x t`` cells of the template feature (as SiamRPN++ does), and an
optional ``neck`` (1x1 conv + BN to ``neck_channels``) brings the channels to the correlation width.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..geometry.scoremap import ScoreMapGeometry
from .backbones import BACKBONES, backbone_config, build_backbone, normalize_spec
from .xcorr import ResponseAdjust, xcorr


@dataclass
class SiamFCConfig:
    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "alexnet"})  # see models.backbones
    neck_channels: int = 0  # 0: no neck
    template_crop: int = 0  # 0: the whole template feature; else its centre t x t cells
    adjust_scale: float = 1e-3
    adjust_learn_scale: bool = False  # see ResponseAdjust: a learned scale destabilises SGD
    exemplar_size: int = 127
    instance_size: int = 255
    total_stride: int = 0  # 0: the backbone's; older configs store 8 (checked against the backbone)
    label_radius: float = 2.0  # cells of the score map (16 px at stride 8)

    def __post_init__(self) -> None:
        self.backbone = normalize_spec(self.backbone, "alexnet", "backbone")

    def validate(self) -> None:
        name, bcfg = backbone_config(self.backbone)
        if not BACKBONES.get(name).single_map:
            raise ValueError(f"backbone {name} returns a feature pyramid (SiamMLG); SiamFC needs a single-map backbone")
        if self.total_stride and self.total_stride != bcfg.stride:
            raise ValueError(f"total_stride {self.total_stride} differs from the backbone's stride {bcfg.stride}")
        if self.neck_channels < 0 or self.template_crop < 0:
            raise ValueError("neck_channels and template_crop must be >= 0")
        fz = bcfg.feature_size(self.exemplar_size)
        if self.template_crop > fz or (self.template_crop and (fz - self.template_crop) % 2):
            raise ValueError(f"template_crop {self.template_crop} must be <= the template feature side {fz} and "
                             "centred (same parity)")
        self.geometry()

    @property
    def out_channels(self) -> int:
        return self.neck_channels or backbone_config(self.backbone)[1].out_channels

    def geometry(self) -> ScoreMapGeometry:
        _, b = backbone_config(self.backbone)
        fz, fx = b.feature_size(self.exemplar_size), b.feature_size(self.instance_size)
        n = fx - (self.template_crop or fz) + 1
        if n < 1:
            raise ValueError(f"a {self.instance_size} search crop gives {fx} feature cells, fewer than the template")
        return ScoreMapGeometry(self.exemplar_size, self.instance_size, b.stride, n, self.label_radius)


def make_neck(cin: int, cout: int) -> nn.Module:
    """1x1 conv + BN (SiamRPN++'s adjust layer), or identity for ``cout == 0``."""
    if not cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


def center_crop(f: torch.Tensor, t: int) -> torch.Tensor:
    """The centre ``t x t`` cells of ``f`` (unchanged for ``t == 0`` or a map no larger than that)."""
    h, w = f.shape[-2:]
    if not t or (h <= t and w <= t):
        return f
    top, left = (h - t) // 2, (w - t) // 2
    return f[..., top:top + t, left:left + t]


class SiamFC(nn.Module):
    def __init__(self, cfg: SiamFCConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SiamFCConfig()
        self.backbone = build_backbone(cfg.backbone)
        self.neck = make_neck(self.backbone.out_channels, cfg.neck_channels)
        self.adjust = ResponseAdjust(cfg.adjust_scale, cfg.adjust_learn_scale)

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(img))

    def score(self, zf: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        return self.adjust(xcorr(center_crop(zf, self.cfg.template_crop), xf))

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.embed(z), self.embed(x))

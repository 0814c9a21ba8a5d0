"""SiamFC: a shared AlexNet embeds template (127) and search (255) crops; the response is their
cross-correlation, scaled by a learnable adjust.  Inputs are float RGB tensors in [0, 255]."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..geometry.scoremap import ScoreMapGeometry
from .alexnet import AlexNet, AlexNetConfig
from .xcorr import ResponseAdjust, xcorr


@dataclass
class SiamFCConfig:
    backbone: AlexNetConfig = field(default_factory=AlexNetConfig)
    adjust_scale: float = 1e-3
    adjust_learn_scale: bool = False  # see ResponseAdjust: a learned scale destabilises SGD
    exemplar_size: int = 127
    instance_size: int = 255
    total_stride: int = 8
    label_radius: float = 2.0  # cells of the score map (16 px at stride 8)

    def geometry(self) -> ScoreMapGeometry:
        return ScoreMapGeometry.valid_correlation(self.exemplar_size, self.instance_size, self.total_stride,
                                                  self.label_radius)


class SiamFC(nn.Module):
    def __init__(self, cfg: SiamFCConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or SiamFCConfig()
        self.backbone = AlexNet(cfg.backbone)
        self.adjust = ResponseAdjust(cfg.adjust_scale, cfg.adjust_learn_scale)

    def embed(self, img: torch.Tensor) -> torch.Tensor:
        return self.backbone(img)

    def score(self, zf: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        return self.adjust(xcorr(zf, xf))

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.embed(z), self.embed(x))

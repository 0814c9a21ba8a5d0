"""SiamFC's AlexNet (channels 96/256/384/384/256, grouped conv2/4/5, BN, no BN after conv5).

Split in two so GradNet can work on the shallow features: ``stem`` = conv1, pool1, conv2, pool2 (its
output is GradNet's ``f2``, ``256 x 12 x 12`` for a 127 crop) and ``head`` = conv3, conv4, conv5.
Sizes: 127 -> f2 12 -> 6; 255 -> 28 -> 22; 239 -> 26 -> 20.  Total stride 8.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class AlexNetConfig:
    channels: tuple[int, int, int, int, int] = (96, 256, 384, 384, 256)
    bn_eps: float = 1e-5
    bn_momentum: float = 0.05
    init: str = ""  # a state dict file in this module's keys (see models.backbones.init_backbone)

    @property
    def stride(self) -> int:
        return 8

    @property
    def out_channels(self) -> int:
        return self.channels[4]

    @staticmethod
    def feature_size(size: int) -> int:
        """VALID convolutions: receptive field 87, stride 8 (127 -> 6, 255 -> 22)."""
        return (size - 87) // 8 + 1

    def validate(self) -> None:
        c = self.channels
        if any(v <= 0 for v in c) or c[1] % 2 or c[3] % 2 or c[2] % 2 or c[4] % 2:
            raise ValueError(f"channels must be positive with even conv2..conv5 widths (groups of 2), got {c}")


def _conv_bn(cin, cout, k, s, groups, cfg: AlexNetConfig, relu=True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, groups=groups), nn.BatchNorm2d(cout, eps=cfg.bn_eps, momentum=cfg.bn_momentum)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class AlexNet(nn.Module):
    def __init__(self, cfg: AlexNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AlexNetConfig()
        c1, c2, c3, c4, c5 = cfg.channels
        self.stem = nn.Sequential(
            *_conv_bn(3, c1, 11, 2, 1, cfg), nn.MaxPool2d(3, 2),
            *_conv_bn(c1, c2, 5, 1, 2, cfg), nn.MaxPool2d(3, 2),
        )
        self.head = nn.Sequential(
            *_conv_bn(c2, c3, 3, 1, 1, cfg),
            *_conv_bn(c3, c4, 3, 1, 2, cfg),
            nn.Conv2d(c4, c5, 3, 1, groups=2),
        )
        self.reset_parameters()

    @property
    def stride(self) -> int:
        return 8

    @property
    def f2_channels(self) -> int:
        return self.cfg.channels[1]

    @property
    def out_channels(self) -> int:
        return self.cfg.channels[4]

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x))

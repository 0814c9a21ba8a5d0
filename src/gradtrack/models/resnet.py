"""ResNet-34 with output stride 8 (the SiamRPN++/SiamMask "atrous" layout), for SiamMLG.

Layout (``BasicBlock``, blocks ``(3, 4, 6)``; layer4 of ResNet-34 is not built because it is unused):

* ``conv1``: 7x7, stride 2, **padding 0**, BN, ReLU                    127 -> 61,  255 -> 125
* ``maxpool``: 3x3, stride 2, padding 1                                 61 -> 31,   125 -> 63
* ``layer1``: stride 1                                                   31,         63
* ``layer2``: stride 2; the strided 3x3 convs and the downsample use padding 0 and the downsample is a
  **3x3** stride-2 conv (so the two branches of the first block stay aligned)   15,  31
* ``layer3``: stride 1, dilation 2 (the first block uses dilation 1, its downsample is a 3x3 conv
  with padding 1)                                                        15,         31

``forward`` returns ``[conv1, layer1, layer2, layer3]`` (``shallow`` the first three, ``deep`` the last); the first three feed SiamMask's Refine and
``layer2`` is SiamMLG's shallow template feature ``f2``.  Widths are ``channels = (stem, layer1, layer2,
layer3)``, default ``(64, 64, 128, 256)`` (real ResNet-34); tests use slim widths and fewer blocks.

:func:`convert_imagenet_resnet34` maps a torchvision-layout ImageNet ResNet-34 state dict onto this
network (pure function on tensors, no file I/O): the 1x1 downsample weights go into the centre tap of the
3x3 downsample kernels, everything else is copied as it is (conv1 padding does not change its weights).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

Norm = Callable[[int], nn.Module]


@dataclass
class ResNetConfig:
    channels: tuple[int, int, int, int] = (64, 64, 128, 256)  # conv1, layer1, layer2, layer3
    blocks: tuple[int, int, int] = (3, 4, 6)  # ResNet-34 layer1..layer3
    layer3_dilation: int = 2
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    init: str = ""  # torchvision-layout ImageNet ResNet-34 state dict file (models.backbones.init_backbone)

    @property
    def stride(self) -> int:
        return 8

    @property
    def out_channels(self) -> int:
        return self.channels[3]

    @staticmethod
    def feature_size(size: int) -> int:
        """conv1 (7, s2, no pad), maxpool (3, s2, pad 1), layer2 (3, s2, no pad): 127 -> 15, 255 -> 31."""
        s = (size - 7) // 2 + 1
        s = (s - 1) // 2 + 1
        return (s - 3) // 2 + 1

    def validate(self) -> None:
        if any(c <= 0 for c in self.channels) or any(b <= 0 for b in self.blocks):
            raise ValueError(f"channels and blocks must be positive, got {self.channels} / {self.blocks}")
        if self.layer3_dilation not in (1, 2, 4):
            raise ValueError(f"layer3_dilation must be 1, 2 or 4, got {self.layer3_dilation}")


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or projected) shortcut.  ``conv2`` may be replaced by any module
    that maps ``planes -> planes`` channels and keeps the size (SiamMLG's SK-inside-layer3 option)."""

    def __init__(self, cin: int, planes: int, stride: int, dilation: int, first_dilation: int,
                 downsample: nn.Module | None, norm: Norm, conv2: nn.Module | None = None):
        super().__init__()
        # stride-2 convs take no padding (the atrous layout); otherwise "same" padding for the dilation
        pad1 = 0 if stride == 2 else first_dilation
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, pad1, dilation=first_dilation, bias=False)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        if conv2 is None:
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation=dilation, bias=False)
            self.bn2 = norm(planes)
        else:  # a module carrying its own normalisation
            self.conv2 = conv2
            self.bn2 = nn.Identity()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class ResNetAtrous(nn.Module):
    """Stride-8 ResNet (BasicBlock).  ``sk_factory(channels, dilation)``, if given, builds the module
    that replaces ``conv2``/``bn2`` of every layer3 block."""

    def __init__(self, cfg: ResNetConfig | None = None,
                 sk_factory: Callable[[int, int], nn.Module] | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ResNetConfig()

        def norm(c: int) -> nn.Module:
            return nn.BatchNorm2d(c, eps=cfg.bn_eps, momentum=cfg.bn_momentum)

        c0, c1, c2, c3 = cfg.channels
        self.conv1 = nn.Conv2d(3, c0, 7, 2, 0, bias=False)
        self.bn1 = norm(c0)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(c0, c1, cfg.blocks[0], 1, 1, norm)
        self.layer2 = self._layer(c1, c2, cfg.blocks[1], 2, 1, norm)
        self.layer3 = self._layer(c2, c3, cfg.blocks[2], 1, cfg.layer3_dilation, norm, sk_factory)
        self.channels = tuple(cfg.channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _layer(cin: int, planes: int, n: int, stride: int, dilation: int, norm: Norm,
               sk_factory: Callable[[int, int], nn.Module] | None = None) -> nn.Sequential:
        first = max(1, dilation // 2)
        downsample = None
        if stride != 1 or cin != planes:
            if stride == 2:  # 3x3 stride 2, no padding: aligned with the block's unpadded strided conv
                conv = nn.Conv2d(cin, planes, 3, 2, 0, bias=False)
            elif dilation > 1:
                conv = nn.Conv2d(cin, planes, 3, 1, first, dilation=first, bias=False)
            else:
                conv = nn.Conv2d(cin, planes, 1, 1, 0, bias=False)
            downsample = nn.Sequential(conv, norm(planes))
        blocks = []
        for i in range(n):
            sk = sk_factory(planes, dilation) if sk_factory is not None else None
            blocks.append(BasicBlock(cin if i == 0 else planes, planes, stride if i == 0 else 1, dilation,
                                     first if i == 0 else dilation, downsample if i == 0 else None, norm, sk))
        return nn.Sequential(*blocks)

    def shallow(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[conv1, layer1, layer2]``: the shallow part (its last entry is SiamMLG's ``f2``)."""
        p0 = self.relu(self.bn1(self.conv1(x)))
        p1 = self.layer1(self.maxpool(p0))
        p2 = self.layer2(p1)
        return [p0, p1, p2]

    def deep(self, f2: torch.Tensor) -> torch.Tensor:
        """``layer3`` of the shallow feature (the rest of the network)."""
        return self.layer3(f2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.shallow(x)
        feats.append(self.deep(feats[-1]))
        return feats


def convert_imagenet_resnet34(state_dict: dict[str, torch.Tensor], model: ResNetAtrous) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` from an ImageNet ResNet-34 in torchvision's key layout.

    ``layer4.*`` and ``fc.*`` are dropped.  1x1 downsample kernels become the centre tap of our 3x3
    downsample kernels (the other taps are zero, so the projection is unchanged up to the alignment
    shift of the unpadded stride-2 conv).  Only the real ResNet-34 widths and block counts fit.
    Modules that have no ImageNet counterpart (SK units inside layer3) keep ``model``'s own values.
    """
    own = model.state_dict()
    out = {k: v.clone() for k, v in own.items()}
    for key, val in state_dict.items():
        if key.startswith(("layer4.", "fc.")) or key not in own:
            continue
        target = own[key]
        if val.shape == target.shape:
            out[key] = val.to(target.dtype).clone()
        elif val.dim() == 4 and target.dim() == 4 and val.shape[2:] == (1, 1) and target.shape[2:] == (3, 3) \
                and val.shape[:2] == target.shape[:2]:
            k = torch.zeros_like(target)
            k[:, :, 1, 1] = val[:, :, 0, 0].to(target.dtype)
            out[key] = k
        else:
            raise ValueError(f"ImageNet tensor {key} has shape {tuple(val.shape)}, model expects {tuple(target.shape)}")
    return out

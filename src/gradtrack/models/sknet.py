"""Selective-kernel attention (SKNet, Li et al. CVPR 2019) for SiamMLG: Split, Fuse, Select.

* **Split**: ``M`` grouped 3x3 convolutions with dilations ``d, 2d, ...`` (the dilated 3x3 stands in for
  the 5x5 kernel, as in the official SKNet), each followed by BN and ReLU -> ``U_1 .. U_M``.
* **Fuse**: ``U = sum U_m``; global average pool (adaptive, so 127- and 255-crop features both work);
  ``z = ReLU(BN(W_s s))`` with a 1x1 conv ``C -> d``, ``d = max(C / r, L)``.
* **Select**: a 1x1 conv ``d -> M C`` gives per-branch channel logits, softmax across the branch axis,
  ``V = sum_m a_m * U_m``.

The BN after the global pool sees one value per channel and sample; with a batch of one in training mode
batch statistics do not exist, so it then normalises with its running statistics (and leaves them
unchanged) instead of raising.  In eval mode it always uses the running statistics.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class _PooledBN(nn.BatchNorm2d):
    """BatchNorm for ``N x C x 1 x 1`` inputs that also works for ``N == 1`` in training mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class SKConv(nn.Module):
    """``C -> C`` selective-kernel convolution (keeps the spatial size).

    ``attention(x)`` returns the select weights ``N x M x C`` (they sum to 1 over ``M``).
    """

    def __init__(self, channels: int, branches: int = 2, groups: int = 32, reduction: int = 16, min_dim: int = 32,
                 dilation: int = 1):
        super().__init__()
        if branches < 2:
            raise ValueError(f"SKConv needs at least 2 branches, got {branches}")
        groups = min(groups, channels)
        if channels % groups:
            raise ValueError(f"SKConv: channels {channels} not divisible by groups {groups}")
        self.channels, self.branches = channels, branches
        self.split = nn.ModuleList()
        for m in range(branches):
            d = dilation * (m + 1)
            self.split.append(nn.Sequential(
                nn.Conv2d(channels, channels, 3, 1, d, dilation=d, groups=groups, bias=False),
                nn.BatchNorm2d(channels), nn.ReLU(inplace=True)))
        self.dim = max(channels // reduction, min_dim)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, self.dim, 1, bias=False)
        self.fc_bn = _PooledBN(self.dim)
        self.select = nn.Conv2d(self.dim, branches * channels, 1)

    def _branches(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([b(x) for b in self.split], 1)  # N x M x C x H x W

    def _weights(self, feats: torch.Tensor) -> torch.Tensor:
        s = self.pool(feats.sum(1))  # Fuse: N x C x 1 x 1
        z = F.relu(self.fc_bn(self.fc(s)))
        logits = self.select(z).reshape(feats.shape[0], self.branches, self.channels)
        return torch.softmax(logits, dim=1)  # Select: across branches

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        return self._weights(self._branches(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self._branches(x)
        a = self._weights(feats)
        return (feats * a[..., None, None]).sum(1)


class SKUnit(nn.Module):
    """``x + SKConv(x)``: the residual SK block placed after SiamMLG's adjust layer (shared by z and x).
    The residual keeps the adjusted backbone feature available when the attention path is still untrained."""

    def __init__(self, channels: int, groups: int = 32, reduction: int = 16, min_dim: int = 32):
        super().__init__()
        self.sk = SKConv(channels, 2, groups, reduction, min_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sk(x)

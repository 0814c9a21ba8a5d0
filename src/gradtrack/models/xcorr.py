"""Cross-correlation: the template used as a convolution kernel over the search features."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def xcorr(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Full-channel correlation -> one map per pair.

    ``z``: ``Bz x C x h x w``, ``x``: ``Bx x C x H x W``.  With ``Bz == Bx`` each template is matched to its
    own search features (one grouped convolution); with ``Bz == 1`` the template is matched to every
    search sample; with ``Bx == k * Bz`` template ``i`` is matched to search samples ``i*k .. i*k+k-1``.
    Returns ``Bx x 1 x (H-h+1) x (W-w+1)``.
    """
    bz, c, h, w = z.shape
    bx = x.shape[0]
    if x.shape[1] != c:
        raise ValueError(f"xcorr: template has {c} channels, search has {x.shape[1]}")
    if bz == 1:
        return F.conv2d(x, z)
    if bx % bz:
        raise ValueError(f"xcorr: search batch {bx} is not a multiple of template batch {bz}")
    k = bx // bz
    zz = z.repeat_interleave(k, dim=0) if k > 1 else z
    out = F.conv2d(x.reshape(1, bx * c, *x.shape[2:]), zz, groups=bx)
    return out.reshape(bx, 1, *out.shape[2:])


def xcorr_depthwise(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Channel-by-channel correlation (SiamRPN++/SiamMask): ``B x C x h x w`` with ``B x C x H x W``."""
    b, c = x.shape[:2]
    if z.shape[0] == 1 and b > 1:
        z = z.expand(b, *z.shape[1:])
    out = F.conv2d(x.reshape(1, b * c, *x.shape[2:]), z.reshape(b * c, 1, *z.shape[2:]), groups=b * c)
    return out.reshape(b, c, *out.shape[2:])


class ResponseAdjust(nn.Module):
    """``scale * response + bias``: brings raw correlation values into logit range (SiamFC's adjust).

    The bias is learned.  The scale is fixed by default (as in siamfc-pytorch): its gradient is a sum of
    raw correlation values (thousands), which dominates the gradient norm and, under clipping, lets the
    scale jump by orders of magnitude in a few SGD steps.  ``learn_scale=True`` learns it anyway.
    """

    def __init__(self, scale: float = 1e-3, learn_scale: bool = False):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)), requires_grad=learn_scale)
        self.bias = nn.Parameter(torch.tensor(0.0))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return r * self.scale + self.bias

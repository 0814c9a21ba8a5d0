"""SiamMLG heads on depthwise cross-correlation (SiamRPN++/SiamMask ``DepthwiseXCorr`` layout).

Every head has its own ``conv_kernel`` (template side) and ``conv_search`` (search side): 3x3 conv without
padding and bias, BN, ReLU.  Their depthwise correlation (template 7 -> 5, search 31 -> 29, map 25x25)
goes through a 1x1 conv, BN, ReLU and a 1x1 conv to the head's outputs.  The template side is split out
(:meth:`DepthwiseXCorr.kernel`) so a tracker computes it once per template.

Map cell ``(i, j)`` of a 25x25 map has its centre at search-crop pixel ``(offset + stride * j,
offset + stride * i)`` with ``offset = (255 - 1 - 24 * 8) / 2 = 31``.

* :class:`DepthwiseXCorr` with 1 output: the SiamFC-style score (logit) of each position.
* mask head: 63 * 63 outputs per position (a 63x63 mask of the 127x127 window centred on the cell);
  its correlation feature is kept for :class:`Refine`.
* :class:`BoxHead`: anchor-free ``(l, t, r, b)`` distances ``exp(s * x + b) * stride`` (pixels of the crop).
* :class:`Refine`: SiamMask's refinement of one position's mask to 127x127 with the search features of
  conv1 / layer1 / layer2 (channels taken from the backbone, 64 / 64 / 128 for ResNet-34).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .xcorr import xcorr_depthwise


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _match_batch(kernel: torch.Tensor, n: int) -> torch.Tensor:
    """Template batch ``Bz`` against search batch ``n = k * Bz`` (template ``b`` serves ``k`` searches)."""
    bz = kernel.shape[0]
    if bz == n:
        return kernel
    if n % bz:
        raise ValueError(f"search batch {n} is not a multiple of template batch {bz}")
    return kernel.repeat_interleave(n // bz, dim=0)


class DepthwiseXCorr(nn.Module):
    def __init__(self, in_channels: int, hidden: int, out_channels: int):
        super().__init__()
        self.conv_kernel = _conv_bn_relu(in_channels, hidden, 3)
        self.conv_search = _conv_bn_relu(in_channels, hidden, 3)
        self.head = nn.Sequential(nn.Conv2d(hidden, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                  nn.ReLU(inplace=True), nn.Conv2d(hidden, out_channels, 1))

    def kernel(self, zf: torch.Tensor) -> torch.Tensor:
        return self.conv_kernel(zf)

    def correlate(self, kernel: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        """The ``hidden``-channel depthwise correlation feature (SiamMask keeps it for Refine)."""
        search = self.conv_search(xf)
        return xcorr_depthwise(_match_batch(kernel, search.shape[0]), search)

    def forward_kernel(self, kernel: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        return self.head(self.correlate(kernel, xf))

    def forward(self, zf: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        return self.forward_kernel(self.kernel(zf), xf)


class BoxHead(DepthwiseXCorr):
    """``(l, t, r, b)`` in crop pixels: ``exp(s * x + b) * stride`` with learnable scalars ``s``, ``b``."""

    def __init__(self, in_channels: int, hidden: int, stride: int = 8):
        super().__init__(in_channels, hidden, 4)
        self.stride = stride
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def forward_kernel(self, kernel: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        raw = super().forward_kernel(kernel, xf)
        # clamp the exponent so an untrained head can neither overflow nor give zero-size boxes
        # (exp(8) * 8 ~ 24k px and exp(-10) * 8 ~ 4e-4 px are far outside any real box)
        return torch.exp((self.scale * raw + self.bias).clamp(-10.0, 8.0)) * self.stride


def decode_ltrb(ltrb: torch.Tensor, stride: int = 8, offset: float = 31.5) -> torch.Tensor:
    """``B x 4 x H x W`` distances -> ``B x 4 x H x W`` boxes ``(x1, y1, x2, y2)`` in continuous crop
    coordinates (pixel ``u`` covers ``[u, u + 1)``; cell centres at ``offset + stride * index``, i.e. the
    centre of pixel ``31 + 8 j``)."""
    h, w = ltrb.shape[2:]
    ys = offset + stride * torch.arange(h, device=ltrb.device, dtype=ltrb.dtype)
    xs = offset + stride * torch.arange(w, device=ltrb.device, dtype=ltrb.dtype)
    cx, cy = xs[None, :].expand(h, w), ys[:, None].expand(h, w)
    return torch.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], 1)


def ltrb_targets(boxes: torch.Tensor, size: int = 25, stride: int = 8, offset: float = 31.5,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Regression targets and positives for the box head.  ``boxes``: ``B x 4`` crop boxes (x1, y1, x2, y2)
    in continuous crop coordinates (cell centres at ``31.5 + 8 j``, as in
    :func:`gradtrack.models.heads.decode_ltrb`).
    Returns ``(B x 4 x size x size distances, B x size x size bool)``; positive = the cell centre lies inside
    the box.  The inverse of :func:`decode_ltrb`."""
    grid = offset + stride * torch.arange(size, device=boxes.device, dtype=boxes.dtype)
    cx, cy = grid[None, None, :], grid[None, :, None]
    b = boxes[:, :, None, None]
    ltrb = torch.stack([(cx - b[:, 0]).expand(-1, size, size), (cy - b[:, 1]).expand(-1, size, size),
                        (b[:, 2] - cx).expand(-1, size, size), (b[:, 3] - cy).expand(-1, size, size)], 1)
    return ltrb, ltrb.amin(1) > 0


def mask_at(mask: torch.Tensor, batch: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
            size: int = 63) -> torch.Tensor:
    """The ``size x size`` mask logits of chosen positions: ``mask`` is ``B x size^2 x H x W``; returns
    ``N x size x size`` for index tensors ``batch``, ``rows``, ``cols`` of length ``N``."""
    return mask[batch, :, rows, cols].reshape(-1, size, size)


def _two_convs(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, cout, 3, padding=1), nn.ReLU(inplace=True))


def _up(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class Refine(nn.Module):
    """SiamMask's mask refinement at chosen positions, output ``N x 1 x 127 x 127`` logits.

    The inputs are windows of the search features aligned with the cell's 127x127 window:
    conv1 (padded by 16, window 61, step 4), layer1 (padded by 8, window 31, step 2), layer2 (padded by 4,
    window 15, step 1); the cell's correlation feature goes through a 15x15 transposed conv.  Each stage
    adds a lateral projection of the backbone window, upsamples bilinearly (15 -> 31 -> 61 -> 127) and
    reduces the channels (32 -> 16 -> 4 -> 1).
    """

    def __init__(self, corr_channels: int, low_channels: tuple[int, int, int]):
        super().__init__()
        c0, c1, c2 = low_channels
        self.v0 = _two_convs(c0, 16, 4)
        self.v1 = _two_convs(c1, 32, 16)
        self.v2 = _two_convs(c2, 64, 32)
        self.h2 = _two_convs(32, 32, 32)
        self.h1 = _two_convs(16, 16, 16)
        self.h0 = _two_convs(4, 4, 4)
        self.deconv = nn.ConvTranspose2d(corr_channels, 32, 15, 15)
        self.post0 = nn.Conv2d(32, 16, 3, padding=1)
        self.post1 = nn.Conv2d(16, 4, 3, padding=1)
        self.post2 = nn.Conv2d(4, 1, 3, padding=1)

    @staticmethod
    def _windows(feat: torch.Tensor, pad: int, size: int, step: int, batch, rows, cols) -> torch.Tensor:
        padded = F.pad(feat, [pad] * 4)
        return torch.stack([padded[b, :, step * r:step * r + size, step * c:step * c + size]
                            for b, r, c in zip(batch.tolist(), rows.tolist(), cols.tolist())])

    def forward(self, low: list[torch.Tensor], corr: torch.Tensor, batch: torch.Tensor, rows: torch.Tensor,
                cols: torch.Tensor) -> torch.Tensor:
        """``low``: search ``[conv1, layer1, layer2]`` (``B x C x 125/63/31``); ``corr``: ``B x C x 25 x 25``
        mask correlation feature; ``batch``/``rows``/``cols``: ``N`` chosen positions."""
        p0 = self._windows(low[0], 16, 61, 4, batch, rows, cols)
        p1 = self._windows(low[1], 8, 31, 2, batch, rows, cols)
        p2 = self._windows(low[2], 4, 15, 1, batch, rows, cols)
        p3 = corr[batch, :, rows, cols][:, :, None, None]
        out = self.deconv(p3)
        out = self.post0(_up(self.h2(out) + self.v2(p2), 31))
        out = self.post1(_up(self.h1(out) + self.v1(p1), 61))
        return self.post2(_up(self.h0(out) + self.v0(p0), 127))

"""The one crop-and-resize of gradtrack (NumPy/OpenCV) and its batched torch twin.

A crop is a square or rectangular window of ``size`` source pixels centred on ``center`` (continuous
0-based coordinates, see :mod:`gradtrack.geometry.boxes`), resampled to ``out_size`` pixels by one affine
warp (bilinear, sub-pixel accurate).  Source pixels outside the image take ``pad_color`` (by default the
image's per-channel mean), as SiamFC does.

Output pixel ``u`` (0-based index) has its centre at continuous source coordinate
``cx + (u + 0.5 - out / 2) * size / out``.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _pair(v) -> tuple[float, float]:
    if np.ndim(v) == 0:
        return float(v), float(v)
    a, b = v
    return float(a), float(b)


def mean_color(image: np.ndarray) -> np.ndarray:
    """Per-channel mean of an ``H x W x C`` image, as float."""
    return image.reshape(-1, image.shape[-1]).mean(0) if image.ndim == 3 else np.array([image.mean()])


def crop_affine(center, size, out_size) -> np.ndarray:
    """2x3 matrix mapping output pixel indices to source pixel indices (for ``WARP_INVERSE_MAP``)."""
    cx, cy = _pair(center)
    sw, sh = _pair(size)
    ow, oh = _pair(out_size)
    if not (sw > 0 and sh > 0 and ow > 0 and oh > 0) or not np.isfinite([cx, cy, sw, sh]).all():
        raise ValueError(f"crop needs a finite centre and positive sizes, got centre={center} size={size}")
    kx, ky = sw / ow, sh / oh
    # source index = (u + 0.5 - ow/2) * kx + cx - 0.5
    return np.array([[kx, 0.0, (0.5 - ow / 2) * kx + cx - 0.5], [0.0, ky, (0.5 - oh / 2) * ky + cy - 0.5]])


def crop_and_resize(image: np.ndarray, center, size, out_size, pad_color=None) -> np.ndarray:
    """Crop ``size`` (scalar or ``(w, h)``) source pixels around ``center`` and resize to ``out_size``.

    ``image`` is ``H x W x C`` uint8 or float; the output has the same dtype and channel count.
    """
    if image.ndim != 3:
        raise ValueError(f"crop_and_resize expects an H x W x C image, got shape {image.shape}")
    ow, oh = (int(round(v)) for v in _pair(out_size))
    m = crop_affine(center, size, (ow, oh))
    pad = mean_color(image) if pad_color is None else np.broadcast_to(np.asarray(pad_color, float), (image.shape[2],))
    border = tuple(float(v) for v in pad[:4])
    # OpenCV quantises float64 (and uint8) sample positions to 1/32 pixel but warps float32 exactly
    src = image.astype(np.float32) if image.dtype == np.float64 else image
    out = cv2.warpAffine(
        src, m, (ow, oh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=border,
    )
    if out.ndim == 2:
        out = out[:, :, None]
    return out.astype(image.dtype, copy=False)


def crop_pyramid(image: np.ndarray, center, sizes: Sequence, out_size, pad_color=None) -> np.ndarray:
    """Crops of several sizes around one centre (a scale pyramid), stacked ``S x out x out x C``."""
    pad = mean_color(image) if pad_color is None else pad_color
    return np.stack([crop_and_resize(image, center, s, out_size, pad) for s in sizes])


def crop_and_resize_torch(images: torch.Tensor, centers: torch.Tensor, sizes: torch.Tensor, out_size: int,
                          pad_colors: torch.Tensor | None = None) -> torch.Tensor:
    """Batched crop on any device: ``images`` ``B x C x H x W`` float, ``centers`` ``B x 2``,
    ``sizes`` ``B`` or ``B x 2`` (w, h), ``pad_colors`` ``B x C`` (default: per-image mean).

    Same geometry as :func:`crop_and_resize` (bilinear, ``align_corners=False``); returns ``B x C x out x out``.
    """
    b, c, h, w = images.shape
    dev, dt = images.device, images.dtype
    centers = centers.to(dev, dt).reshape(b, 2)
    sizes = sizes.to(dev, dt)
    sizes = sizes.reshape(b, 1).expand(b, 2) if sizes.numel() == b else sizes.reshape(b, 2)
    if pad_colors is None:
        pad_colors = images.mean(dim=(2, 3))
    pad = pad_colors.to(dev, dt).reshape(b, c, 1, 1)
    steps = (torch.arange(out_size, device=dev, dtype=dt) + 0.5 - out_size / 2) / out_size
    xs = centers[:, 0:1] + steps[None] * sizes[:, 0:1]  # continuous source x, B x out
    ys = centers[:, 1:2] + steps[None] * sizes[:, 1:2]
    gx = 2 * xs / w - 1
    gy = 2 * ys / h - 1
    grid = torch.stack([gx[:, None, :].expand(b, out_size, out_size), gy[:, :, None].expand(b, out_size, out_size)], -1)
    out = F.grid_sample(images - pad, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + pad

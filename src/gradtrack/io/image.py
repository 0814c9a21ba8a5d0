"""Image normalisation: everything that enters a tracker is RGB uint8 ``H x W x 3``.

Defined conversions (the only ones):

* ``H x W`` or ``H x W x 1`` grayscale -> the channel repeated three times;
* ``H x W x 4`` RGBA -> alpha dropped (not composited);
* ``uint16`` -> scaled to 8 bits by ``>> 8`` (``value / 257`` rounded down);
* ``bool`` -> 0 / 255.

Anything else (float images, other channel counts, empty images) raises :class:`ImageError`, because
a guess there would silently change what the tracker sees.  Channel order is never guessed: readers
that decode with OpenCV convert BGR to RGB once, in :mod:`gradtrack.io.frames`.
"""
from __future__ import annotations

import numpy as np


class ImageError(ValueError):
    """An image cannot be turned into RGB uint8 without guessing."""


def as_rgb_uint8(image, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{name} must be a numpy array (H x W x 3 RGB uint8), got {type(image).__name__}")
    img = image
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f"{name} must be H x W x C with C in (1, 3, 4), got shape {image.shape}")
    if img.dtype == np.uint8:
        pass
    elif img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    else:
        raise ImageError(
            f"{name} has dtype {img.dtype}; gradtrack takes uint8 (or uint16/bool, converted). "
            "Convert float images explicitly, e.g. (img * 255).clip(0, 255).astype(np.uint8)"
        )
    c = img.shape[2]
    if c == 1:
        img = np.repeat(img, 3, axis=2)
    elif c == 4:
        img = img[:, :, :3]
    elif c != 3:
        raise ImageError(f"{name} has {c} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    return np.ascontiguousarray(img)

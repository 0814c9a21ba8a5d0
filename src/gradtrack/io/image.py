"""Image normalisation: everything that enters a tracker is RGB uint8 ``H x W x 3``.

Defined conversions (the only ones):

* ``H x W`` or ``H x W x 1`` grayscale -> the channel repeated three times;
* ``H x W x 4`` RGBA -> alpha dropped (not composited);
* ``uint16`` (either byte order) -> scaled to 8 bits by ``>> 8`` (``value / 257`` rounded down);
* ``bool`` -> 0 / 255;
* numpy array subclasses (``np.matrix``, memmaps, ...) -> viewed as plain arrays first;
* masked arrays -> their data when **no** element is masked; a frame with masked pixels is refused
  (fill it yourself, e.g. ``frame.filled(0)``), because dropping the mask would show the tracker pixels
  that were declared invalid.

Anything else raises :class:`ImageError` naming the shape/dtype: float images, other integer types,
other channel counts, empty images, and non-arrays -- torch tensors included (convert them explicitly,
``t.detach().cpu().numpy()`` with channels last), because a guess there would silently change what the
tracker sees.  Channel order is never guessed: readers that decode with OpenCV convert BGR to RGB once,
in :mod:`gradtrack.io.frames`.
"""
from __future__ import annotations

import numpy as np


class ImageError(ValueError):
    """An image cannot be turned into RGB uint8 without guessing."""


def _describe(obj) -> str:
    shape, dtype = getattr(obj, "shape", None), getattr(obj, "dtype", None)
    grad = " requires_grad=True" if getattr(obj, "requires_grad", False) else ""
    return f"{type(obj).__module__}.{type(obj).__name__}" + (f" (shape {tuple(shape)}, dtype {dtype}{grad})"
                                                            if shape is not None else "")


def as_rgb_uint8(image, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        hint = (" (a tensor: convert it explicitly, e.g. t.detach().cpu().numpy(), channels last)"
                if hasattr(image, "detach") else "")
        what = type(image).__name__ if type(image).__module__ == "builtins" else _describe(image)
        raise ImageError(f"{name} must be a numpy array (H x W x 3 RGB uint8), got {what}{hint}")
    if isinstance(image, np.ma.MaskedArray):
        n_masked = int(np.ma.getmaskarray(image).sum())
        if n_masked:
            raise ImageError(f"{name} is a masked array with {n_masked} masked element(s) (shape {image.shape}); "
                             "gradtrack does not drop masks: fill them explicitly, e.g. frame.filled(0)")
        image = image.data
    img = np.asarray(image)  # np.matrix and other subclasses: plain arrays (matrix stays 2-D under indexing)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f"{name} must be H x W x C with C in (1, 3, 4), got shape {img.shape} (dtype {img.dtype})")
    if img.dtype == np.uint8:
        pass
    elif img.dtype.kind == "u" and img.dtype.itemsize == 2:
        img = (img.astype(np.uint16) >> 8).astype(np.uint8)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    else:
        raise ImageError(
            f"{name} has dtype {img.dtype} (shape {img.shape}); gradtrack takes uint8 (or uint16/bool, converted). "
            "Convert float images explicitly, e.g. (img * 255).clip(0, 255).astype(np.uint8)"
        )
    c = img.shape[2]
    if c == 1:
        img = np.repeat(img, 3, axis=2)
    elif c == 4:
        img = img[:, :, :3]
    elif c != 3:
        raise ImageError(f"{name} has {c} channels (shape {img.shape}); expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    return np.ascontiguousarray(img)

"""Training crops and their augmentation: one config and one pair of crop functions for every recipe.

SiamFC (siamfc-pytorch, notes §2) crops the search image at 255 px around the target with context 0.5,
stretches it by ``1 + U(-0.05, 0.05)``, centre-crops 247 and random-crops 239 (a +-4 px translation);
the exemplar gets the same stretch and a centre crop of 127.  Every resampling step there loses a little
sharpness and the 255 crop must be padded anyway, so gradtrack does the *same geometry in one warp*:
the source window is ``x_sz * 239 / 255 / stretch`` wide, shifted by the translation (in output pixels,
converted to source pixels), and resampled straight to 239 px by :func:`gradtrack.geometry.crop.crop_and_resize`
(mean-colour padding).  The exemplar is cropped directly at 127 from a ``z_sz / stretch`` window.

SiamMLG (SiamMask's recipe) uses the same functions with its own strengths: the search crop is the
whole 255 window (``search_size == instance_size``), shifted by up to ``translate`` pixels (64) and
scaled by ``stretch`` (0.18); the template gets its own ``exemplar_stretch`` (isotropic; ``None`` means
"the search's stretch and aspect", SiamFC) and ``exemplar_translate``; with probability ``negative_prob``
the search crop comes from another video (a negative pair; SiamFC and GradNet keep 0).

Photometric augmentation (applied to the crops, uint8 RGB in, uint8 RGB out): brightness/contrast/
saturation jitter plus a per-channel gain (a cheap stand-in for SiamFC's PCA colour noise), conversion to
grey with probability ``grey_prob``, Gaussian blur with probability ``blur_prob``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..geometry.crop import crop_and_resize


@dataclass
class AugmentConfig:
    stretch: float = 0.05  # relative scale jitter (uniform +-)
    aspect: float = 0.0  # extra independent per-axis jitter (uniform +-); 0 = isotropic as SiamFC
    translate: float = 4.0  # max shift of the search crop, in output pixels (SiamFC: 247 -> 239 = +-4)
    exemplar_stretch: float | None = None  # isotropic exemplar scale jitter; None: stretch and aspect as the search
    exemplar_translate: float = 0.0  # max shift of the exemplar crop, output pixels
    negative_prob: float = 0.0  # search crop from another video (negative pair; recipes with targets only)
    brightness: float = 0.15  # additive, fraction of 255
    contrast: float = 0.15
    saturation: float = 0.15
    channel_gain: float = 0.05  # per-channel multiplicative noise
    grey_prob: float = 0.05
    blur_prob: float = 0.05
    blur_sigma: tuple[float, float] = (0.5, 1.5)

    def validate(self) -> None:
        for name in ("stretch", "aspect", "translate", "exemplar_translate", "brightness", "contrast",
                     "saturation", "channel_gain"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.exemplar_stretch is not None and not 0 <= self.exemplar_stretch < 1:
            raise ValueError("exemplar_stretch must lie in [0, 1)")
        for name in ("grey_prob", "blur_prob", "negative_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability")
        if not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError("blur_sigma must be (low, high) with 0 < low <= high")
        if self.stretch >= 1 or self.aspect >= 1:
            raise ValueError("stretch and aspect must be < 1")


@dataclass
class CropConfig:
    exemplar_size: int = 127
    search_size: int = 239  # training search size: 15 x 15 responses with AlexNet (stride 8)
    instance_size: int = 255  # the tracker's search size; the training window is search/instance of it
    context: float = 0.5

    def validate(self) -> None:
        if not (0 < self.exemplar_size <= self.search_size <= self.instance_size * 2):
            raise ValueError("need 0 < exemplar_size <= search_size")
        if self.context < 0:
            raise ValueError("context must be >= 0")


def exemplar_window(box, context: float) -> float:
    """SiamFC's exemplar window side ``sqrt((w + c(w+h)) (h + c(w+h)))`` in source pixels."""
    w, h = float(box[2]), float(box[3])
    pad = context * (w + h)
    return math.sqrt((w + pad) * (h + pad))


def box_center(box) -> tuple[float, float]:
    return float(box[0]) + float(box[2]) / 2.0, float(box[1]) + float(box[3]) / 2.0


def _jitter(rng: np.random.Generator, stretch: float, aspect: float) -> tuple[float, float]:
    s = 1.0 + rng.uniform(-stretch, stretch)
    if aspect > 0:
        a = rng.uniform(-aspect, aspect)
        return s * (1 + a), s / (1 + a)
    return s, s


def crop_exemplar(image: np.ndarray, box, crop: CropConfig, aug: AugmentConfig | None,
                  rng: np.random.Generator | None) -> np.ndarray:
    """The exemplar crop (``exemplar_size`` square) around the target, with optional jitter: a shift of
    up to ``exemplar_translate`` output pixels moves the target off the crop centre by that much."""
    cx, cy = box_center(box)
    side = exemplar_window(box, crop.context)
    sx = sy = 1.0
    dx = dy = 0.0
    if aug is not None and rng is not None:
        own = aug.exemplar_stretch is not None
        sx, sy = _jitter(rng, aug.exemplar_stretch if own else aug.stretch, 0.0 if own else aug.aspect)
        if aug.exemplar_translate > 0:
            dx = rng.uniform(-aug.exemplar_translate, aug.exemplar_translate)
            dy = rng.uniform(-aug.exemplar_translate, aug.exemplar_translate)
    wx, wy, n = side / sx, side / sy, crop.exemplar_size
    return crop_and_resize(image, (cx - dx * wx / n, cy - dy * wy / n), (wx, wy), n)


def search_window(box, crop: CropConfig, aug: AugmentConfig | None, rng: np.random.Generator | None):
    """The (jittered) search window around ``box``: ``(centre, (w, h) in source px, (dx, dy))``, where
    ``(dx, dy)`` is where the target centre lands relative to the crop centre, in output pixels."""
    cx, cy = box_center(box)
    side = exemplar_window(box, crop.context) * crop.instance_size / crop.exemplar_size
    side *= crop.search_size / crop.instance_size  # the 239 part of the 255 window
    sx = sy = 1.0
    dx = dy = 0.0
    if aug is not None and rng is not None:
        sx, sy = _jitter(rng, aug.stretch, aug.aspect)
        if aug.translate > 0:
            dx = rng.uniform(-aug.translate, aug.translate)
            dy = rng.uniform(-aug.translate, aug.translate)
    wx, wy = side / sx, side / sy
    # shifting the window by -d (output px) puts the target at +d from the crop centre
    return (cx - dx * wx / crop.search_size, cy - dy * wy / crop.search_size), (wx, wy), (dx, dy)


def crop_search(image: np.ndarray, box, crop: CropConfig, aug: AugmentConfig | None,
                rng: np.random.Generator | None) -> tuple[np.ndarray, tuple[float, float]]:
    """The search crop (``search_size`` square) around the target; returns ``(crop, (dx, dy))`` (see
    :func:`search_window`)."""
    center, size, shift = search_window(box, crop, aug, rng)
    return crop_and_resize(image, center, size, crop.search_size), shift


def box_in_window(box, center, size, out: int) -> np.ndarray:
    """``box`` (x, y, w, h, source px) as ``x1, y1, x2, y2`` in the continuous coordinates of the ``out``
    pixel crop of the window ``center``/``size``."""
    kx, ky = out / size[0], out / size[1]
    x, y, w, h = (float(v) for v in box)
    return np.array([(x - center[0]) * kx + out / 2, (y - center[1]) * ky + out / 2,
                     (x + w - center[0]) * kx + out / 2, (y + h - center[1]) * ky + out / 2], dtype=np.float64)


def crop_mask(mask: np.ndarray, center, size, out: int) -> np.ndarray:
    """A bool mask through the same warp as the image crop (bilinear coverage thresholded at 0.5; outside
    the image is background)."""
    m = crop_and_resize(np.asarray(mask, dtype=np.float32)[:, :, None], center, size, out, pad_color=0.0)
    return m[:, :, 0] >= 0.5


def photometric(img: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter, grey and blur on a uint8 RGB crop."""
    out = img.astype(np.float32)
    if cfg.contrast > 0:
        c = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
        out = (out - out.mean()) * c + out.mean()
    if cfg.saturation > 0:
        s = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
        grey = out.mean(axis=2, keepdims=True)
        out = grey + (out - grey) * s
    if cfg.brightness > 0:
        out += rng.uniform(-cfg.brightness, cfg.brightness) * 255.0
    if cfg.channel_gain > 0:
        out *= 1.0 + rng.uniform(-cfg.channel_gain, cfg.channel_gain, size=3).astype(np.float32)
    if cfg.grey_prob > 0 and rng.random() < cfg.grey_prob:
        grey = out @ np.array([0.299, 0.587, 0.114], np.float32)
        out = np.repeat(grey[:, :, None], 3, axis=2)
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        sigma = rng.uniform(*cfg.blur_sigma)
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def to_tensor_layout(img: np.ndarray) -> np.ndarray:
    """``H x W x 3`` uint8 -> ``3 x H x W`` float32 in [0, 255] (the models' input convention)."""
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)

"""Still-image pairs: a random region of an image as the "target", and an augmented copy as search image.

A pair is built from one image ``I``: a target box ``b`` is drawn (size ``rel_size`` of the short image
side, aspect in ``aspect``; of ``candidates`` random boxes the most textured one is kept, so flat sky or
walls are rarely chosen).  The template image is ``I`` itself.  The search image is ``A(I)`` for a random
affine map ``A`` (rotation, isotropic scale, small anisotropy/shear, translation) followed by colour
jitter; its ground truth comes from the transform: the centre is ``A(centre(b))`` exactly and the sides
are ``b``'s sides times ``A``'s scale along each axis (the axis-aligned size of the transformed box for
the small rotations used; a rotated box's bounding box would overstate it).

Images come from the train split's frames (a few per sequence, via :class:`EncodedFrames`) and from the
sample images that installed packages ship: OpenCV's sample data (``cv2.samples.findFile``; the pip
wheels usually have none), scikit-image's ``skimage.data`` (if installed) and Matplotlib's
``mpl-data/sample_data`` images.  Nothing is downloaded.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io.frames import EncodedFrames
from .pairs import Pair


@dataclass
class StillConfig:
    rel_size: tuple[float, float] = (0.08, 0.4)
    aspect: tuple[float, float] = (0.5, 2.0)
    candidates: int = 4
    rotate: float = 10.0  # degrees, uniform +-
    scale: float = 0.15  # log-uniform +-
    anisotropy: float = 0.05
    shear: float = 0.05
    translate: float = 0.3  # of the box size, uniform +-
    max_side: int = 640  # images are downscaled to this longest side before encoding

    def validate(self) -> None:
        if not 0 < self.rel_size[0] <= self.rel_size[1] < 1:
            raise ValueError("rel_size must be (low, high) within (0, 1)")
        if not 0 < self.aspect[0] <= self.aspect[1]:
            raise ValueError("aspect must be (low, high) > 0")
        if self.candidates < 1:
            raise ValueError("candidates must be >= 1")


def random_affine(rng: np.random.Generator, cfg: StillConfig, center, box_size) -> np.ndarray:
    """2x3 forward map (source -> augmented image) around ``center``."""
    a = math.radians(rng.uniform(-cfg.rotate, cfg.rotate))
    s = math.exp(rng.uniform(-cfg.scale, cfg.scale))
    an = 1.0 + rng.uniform(-cfg.anisotropy, cfg.anisotropy)
    sh = rng.uniform(-cfg.shear, cfg.shear)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    lin = rot @ np.array([[s * an, sh * s], [0.0, s / an]])
    cx, cy = center
    tx = rng.uniform(-cfg.translate, cfg.translate) * box_size[0]
    ty = rng.uniform(-cfg.translate, cfg.translate) * box_size[1]
    t = np.array([cx, cy]) - lin @ np.array([cx, cy]) + np.array([tx, ty])
    return np.hstack([lin, t[:, None]])


def transform_box(box, m: np.ndarray) -> np.ndarray:
    """Ground truth of ``box`` after the affine ``m``: exact centre, sides scaled by the axis gains."""
    x, y, w, h = (float(v) for v in box)
    c = m[:, :2] @ np.array([x + w / 2, y + h / 2]) + m[:, 2]
    gx = math.hypot(m[0, 0], m[1, 0])  # how much a horizontal segment is stretched
    gy = math.hypot(m[0, 1], m[1, 1])
    nw, nh = w * gx, h * gy
    return np.array([c[0] - nw / 2, c[1] - nh / 2, nw, nh])


def _texture(gray: np.ndarray, box) -> float:
    x, y, w, h = (int(round(v)) for v in box)
    patch = gray[max(y, 0):y + h, max(x, 0):x + w]
    if patch.size < 4:
        return 0.0
    return float(np.abs(np.diff(patch, axis=0)).mean() + np.abs(np.diff(patch, axis=1)).mean())


def random_region(image: np.ndarray, rng: np.random.Generator, cfg: StillConfig) -> np.ndarray:
    h, w = image.shape[:2]
    gray = image.mean(axis=2).astype(np.float32) if cfg.candidates > 1 else None
    best, best_score = None, -1.0
    for _ in range(cfg.candidates):
        side = rng.uniform(*cfg.rel_size) * min(w, h)
        ar = math.exp(rng.uniform(math.log(cfg.aspect[0]), math.log(cfg.aspect[1])))
        bw = min(side * math.sqrt(ar), w * 0.9)
        bh = min(side / math.sqrt(ar), h * 0.9)
        bx = rng.uniform(0, w - bw)
        by = rng.uniform(0, h - bh)
        box = np.array([bx, by, bw, bh])
        score = _texture(gray, box) if gray is not None else 0.0
        if score > best_score:
            best, best_score = box, score
    return best


def still_pair(image: np.ndarray, rng: np.random.Generator, cfg: StillConfig, key: str) -> Pair:
    """A pair from one image (template = the image, search = an affine copy; colour jitter comes later)."""
    box = random_region(image, rng, cfg)
    m = random_affine(rng, cfg, (box[0] + box[2] / 2, box[1] + box[3] / 2), box[2:])
    h, w = image.shape[:2]
    pad = tuple(float(v) for v in image.reshape(-1, 3).mean(0))
    warped = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=pad)
    return Pair(image, box, warped, transform_box(box, m), key)


def _downscale(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    k = max_side / max(h, w)
    if k >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)


def package_sample_images() -> dict[str, np.ndarray]:
    """RGB sample photographs shipped by installed packages (name -> image); may be empty."""
    out: dict[str, np.ndarray] = {}
    for name in ("lena.jpg", "baboon.jpg", "fruits.jpg", "building.jpg", "messi5.jpg", "home.jpg",
                 "starry_night.jpg", "aero3.jpg", "graf1.png", "box_in_scene.png"):
        try:
            path = cv2.samples.findFile(name, required=False, silentMode=True)
        except (cv2.error, TypeError):
            path = ""
        if path and os.path.isfile(path):
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is not None:
                out[f"cv2/{name}"] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    try:  # pragma: no cover - depends on what is installed
        import skimage.data as skd

        for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                     "retina", "motorcycle_left", "cat", "colorwheel"):
            fn = getattr(skd, name, None)
            if fn is None:
                continue
            try:
                img = np.asarray(fn())
            except Exception:
                continue
            if img.ndim == 3 and img.shape[2] >= 3:
                out[f"skimage/{name}"] = np.ascontiguousarray(img[:, :, :3]).astype(np.uint8)
    except ImportError:
        pass
    try:
        import matplotlib

        sample = Path(matplotlib.get_data_path()) / "sample_data"
        for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
            p = sample / name
            if p.is_file():
                img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if img is not None:
                    out[f"matplotlib/{name}"] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    except ImportError:  # pragma: no cover
        pass
    return out


class StillImages:
    """A pool of still images (JPEG in memory) producing still pairs; each image is its own "video"."""

    def __init__(self, cfg: StillConfig, quality: int = 90):
        self.cfg = cfg
        self.quality = quality
        self.names: list[str] = []
        self._pools: list[EncodedFrames] = []

    def add(self, name: str, image: np.ndarray) -> None:
        self._pools.append(EncodedFrames([_downscale(image, self.cfg.max_side)], quality=self.quality))
        self.names.append(name)

    def __len__(self) -> int:
        return len(self.names)

    def sample(self, rng: np.random.Generator, exclude: set | None = None) -> Pair:
        if not self.names:
            raise ValueError("no still images")
        for _ in range(16):
            i = int(rng.integers(len(self.names)))
            if not exclude or f"still:{self.names[i]}" not in exclude:
                break
        return still_pair(self._pools[i][0], rng, self.cfg, f"still:{self.names[i]}")

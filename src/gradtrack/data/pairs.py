"""Training pairs from annotated sequences.

* :class:`BoxFilter` / :func:`usable_frames`: which frames may serve as template or search frame.  The
  defaults are siamfc-pytorch's (notes §2): area >= 20 px, both sides in [20, 500] px, both sides 1-50 %
  of the image side, aspect ratio in [0.25, 4]; plus "at least ``min_inside`` of the box inside the image"
  and "target present" (absent / NaN frames never qualify).
* :func:`sample_pair_indices`: a template frame and a search frame at most ``max_gap`` frames apart,
  both usable (SiamFC and GradNet use 100).
* :class:`CuratedVideo`: SiamFC-style curation kept *in memory*: each usable frame is cropped once around
  its target (a window a little larger than the 255 search window, so stretch and translation stay inside
  real pixels), resized to ``cache_size`` and JPEG-encoded in a :class:`gradtrack.io.frames.EncodedFrames`.
  Nothing is extracted to disk; a pair costs two small JPEG decodes, cheap enough for DataLoader workers.
  The box in the cached image is exact (the crop is one affine map).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from ..geometry.crop import crop_and_resize
from ..io.frames import EncodedFrames
from .augment import CropConfig, box_center, exemplar_window


@dataclass
class BoxFilter:
    min_area: float = 20.0
    min_side: float = 20.0
    max_side: float = 500.0
    min_rel_side: float = 0.01  # each side relative to the same image side
    max_rel_side: float = 0.5
    min_aspect: float = 0.25  # w / h
    max_aspect: float = 4.0
    min_inside: float = 0.5  # fraction of the box area that lies inside the image

    def validate(self) -> None:
        if self.min_side > self.max_side or self.min_rel_side > self.max_rel_side or self.min_aspect > self.max_aspect:
            raise ValueError("filter lower bounds must not exceed upper bounds")
        if not 0 <= self.min_inside <= 1:
            raise ValueError("min_inside must lie in [0, 1]")


def usable_frames(boxes: np.ndarray, image_size: tuple[int, int], flt: BoxFilter,
                  absent: np.ndarray | None = None) -> np.ndarray:
    """``N`` bool: frames whose box passes ``flt`` (NaN / absent frames are never usable)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    W, H = float(image_size[0]), float(image_size[1])
    finite = np.isfinite(boxes).all(1)
    b = np.where(finite[:, None], boxes, 1.0)  # placeholder values for the arithmetic, masked below
    x, y, w, h = b.T
    ok = finite & (w > 0) & (h > 0)
    ok &= w * h >= flt.min_area
    ok &= (np.minimum(w, h) >= flt.min_side) & (np.maximum(w, h) <= flt.max_side)
    ok &= (w / W >= flt.min_rel_side) & (h / H >= flt.min_rel_side)
    ok &= (w / W <= flt.max_rel_side) & (h / H <= flt.max_rel_side)
    aspect = w / np.maximum(h, 1e-9)
    ok &= (aspect >= flt.min_aspect) & (aspect <= flt.max_aspect)
    iw = np.clip(np.minimum(x + w, W) - np.maximum(x, 0.0), 0, None)
    ih = np.clip(np.minimum(y + h, H) - np.maximum(y, 0.0), 0, None)
    ok &= iw * ih >= flt.min_inside * w * h
    if absent is not None:
        ok &= ~np.asarray(absent, dtype=bool)
    return ok


def sample_pair_indices(usable_idx: np.ndarray, max_gap: int, rng: np.random.Generator) -> tuple[int, int]:
    """Template and search frame numbers from the sorted usable frame numbers, ``|x - z| <= max_gap``.

    The two differ whenever the template frame has a usable neighbour within the gap.
    """
    idx = np.asarray(usable_idx)
    if len(idx) == 0:
        raise ValueError("no usable frames to sample a pair from")
    z = int(idx[rng.integers(len(idx))])
    lo = np.searchsorted(idx, z - max_gap, side="left")
    hi = np.searchsorted(idx, z + max_gap, side="right")
    cand = idx[lo:hi]
    others = cand[cand != z]
    x = int(others[rng.integers(len(others))]) if len(others) else z
    return z, x


@dataclass
class Pair:
    """A raw training pair: two RGB images and the target box (0-based x, y, w, h) in each."""

    z_image: np.ndarray
    z_box: np.ndarray
    x_image: np.ndarray
    x_box: np.ndarray
    video: str  # identifies the video the pair comes from (template generalisation needs distinct ones)


def curation_window(box, crop: CropConfig, margin: float) -> float:
    """Side (source px) of the cached window: the 255 search window times ``margin``."""
    return exemplar_window(box, crop.context) * crop.instance_size / crop.exemplar_size * margin


class CuratedVideo:
    """Usable frames of one video, each cropped around its target and JPEG-encoded in memory."""

    def __init__(self, key: str, frames: Iterable[np.ndarray], boxes: np.ndarray, usable: np.ndarray,
                 crop: CropConfig, cache_size: int = 287, margin: float = 1.125, quality: int = 88):
        self.key = key
        boxes = np.asarray(boxes, dtype=np.float64)
        usable = np.asarray(usable, dtype=bool)
        self.frame_numbers = np.flatnonzero(usable)  # original frame numbers of the cached frames
        if len(self.frame_numbers) == 0:
            raise ValueError(f"video {key!r} has no usable frame")
        self.cache_size = int(cache_size)
        local = np.empty((len(self.frame_numbers), 4))

        def crops() -> Iterator[np.ndarray]:
            j = 0
            want = set(self.frame_numbers.tolist())
            for i, frame in enumerate(frames):
                if i not in want:
                    continue
                box = boxes[i]
                side = curation_window(box, crop, margin)
                k = self.cache_size / side
                cx, cy = box_center(box)
                # the box in the cached image: centred, scaled by k
                local[j] = (self.cache_size / 2 - box[2] * k / 2, self.cache_size / 2 - box[3] * k / 2,
                            box[2] * k, box[3] * k)
                j += 1
                yield crop_and_resize(frame, (cx, cy), side, self.cache_size)
                if j == len(self.frame_numbers):
                    return

        self.images = EncodedFrames(crops(), quality=quality)
        if len(self.images) != len(self.frame_numbers):
            raise ValueError(f"video {key!r}: frame source ended early ({len(self.images)} of "
                             f"{len(self.frame_numbers)} usable frames)")
        self.boxes = local

    def __len__(self) -> int:
        return len(self.frame_numbers)

    def sample(self, rng: np.random.Generator, max_gap: int) -> Pair:
        z, x = sample_pair_indices(self.frame_numbers, max_gap, rng)
        jz = int(np.searchsorted(self.frame_numbers, z))
        jx = int(np.searchsorted(self.frame_numbers, x))
        return Pair(self.images[jz], self.boxes[jz].copy(), self.images[jx], self.boxes[jx].copy(), self.key)

    @property
    def nbytes(self) -> int:
        return self.images.nbytes

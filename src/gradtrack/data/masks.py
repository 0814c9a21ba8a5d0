"""Sequences with per-frame segmentation masks of one object (SiamMLG mask training).

A :class:`MaskSequence` is a :class:`~gradtrack.data.sequence.Sequence` with one more field, ``masks``:
a lazy per-frame mask source (:class:`MaskFrames`) such that ``masks[i]`` is an ``H x W`` bool array (the
object's pixels in frame ``i``, ``H x W`` the frame size) or ``None`` when frame ``i`` has no mask
annotation.  An annotated frame where the object is not visible gives an all-False mask (and a NaN box).

Readers derive boxes from masks with :func:`mask_to_box`: the tight box of the mask's pixels in the box
convention of :mod:`gradtrack.geometry.boxes` (0-based ``x, y, w, h``; a mask covering columns ``c1..c2``
has ``x = c1, w = c2 - c1 + 1``), NaN for an empty mask.

Mask sources are picklable and decode nothing until indexed (data-loader workers each open their own).

For training (SiamMLG), :class:`MaskVideo` is a pair source whose pairs (:class:`MaskPair`) carry the
search frame's mask; :class:`MaskDatasetConfig` names a mask dataset (YouTube-VOS, DAVIS, COCO) in its
standard layout; :class:`PackedMasks` keeps procedural masks bit-packed in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

import numpy as np

from .pairs import Pair, sample_pair_indices
from .sequence import Sequence, SequenceError

__all__ = ["MaskFrames", "ArrayMasks", "LoadedMasks", "MaskSequence", "mask_to_box", "MaskDatasetConfig", "MaskPair",
           "PackedMasks", "MaskVideo"]


def mask_to_box(mask) -> np.ndarray:
    """The tight 0-based ``x, y, w, h`` box of the True pixels of a 2-D mask; NaN row if it is empty."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a mask is 2-D (H x W), got shape {m.shape}")
    m = m.astype(bool, copy=False)
    cols = np.flatnonzero(m.any(0))
    if cols.size == 0:
        return np.full(4, np.nan)
    rows = np.flatnonzero(m.any(1))
    c1, c2, r1, r2 = cols[0], cols[-1], rows[0], rows[-1]
    return np.array([c1, r1, c2 - c1 + 1, r2 - r1 + 1], dtype=np.float64)


class MaskFrames:
    """Per-frame masks of one object: ``len()``, ``[i]`` -> ``H x W`` bool or ``None`` (not annotated).

    Subclasses implement ``__len__`` and :meth:`_get` (a valid 0-based index -> mask or ``None``).
    """

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get(self, i: int) -> np.ndarray | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, i) -> np.ndarray | None:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"mask index must be an int, got {type(i).__name__}")
        n = len(self)
        if not 0 <= int(i) < n:
            raise IndexError(f"mask index {i} out of range for {n} frames")
        return self._get(int(i))

    def __iter__(self) -> Iterator[np.ndarray | None]:
        for i in range(len(self)):
            yield self[i]

    def annotated(self) -> np.ndarray:
        """``N`` bool: frames that have a mask annotation (default: all; sources that know better override)."""
        return np.ones(len(self), dtype=bool)


class ArrayMasks(MaskFrames):
    """Masks held in memory: a list of ``H x W`` arrays (any dtype, non-zero = object) or ``None``."""

    def __init__(self, masks):
        out = []
        shape = None
        for k, m in enumerate(masks):
            if m is None:
                out.append(None)
                continue
            a = np.asarray(m)
            if a.ndim != 2:
                raise SequenceError(f"mask {k} must be H x W, got shape {a.shape}")
            if shape is not None and a.shape != shape:
                raise SequenceError(f"mask {k} is {a.shape} but an earlier mask is {shape}")
            shape = a.shape
            out.append(a.astype(bool))
        if not out:
            raise SequenceError("ArrayMasks needs at least one frame")
        self._masks = out

    def __len__(self) -> int:
        return len(self._masks)

    def _get(self, i: int) -> np.ndarray | None:
        m = self._masks[i]
        return None if m is None else m.copy()

    def annotated(self) -> np.ndarray:
        return np.array([m is not None for m in self._masks])


class LoadedMasks(MaskFrames):
    """Masks produced on demand by ``loader(key)`` for per-frame keys (``None`` key: not annotated).

    ``loader`` must be picklable (a module-level function or a ``functools.partial`` of one) and return an
    ``H x W`` bool array.  Keys are typically annotation file paths.
    """

    def __init__(self, keys, loader: Callable[[object], np.ndarray]):
        self.keys = list(keys)
        if not self.keys:
            raise SequenceError("LoadedMasks needs at least one frame")
        self.loader = loader

    def __len__(self) -> int:
        return len(self.keys)

    def _get(self, i: int) -> np.ndarray | None:
        key = self.keys[i]
        return None if key is None else np.asarray(self.loader(key), dtype=bool)

    def annotated(self) -> np.ndarray:
        return np.array([k is not None for k in self.keys])

    def __repr__(self) -> str:
        return f"LoadedMasks({len(self)} frames, {int(self.annotated().sum())} annotated)"


@dataclass(eq=False)
class MaskSequence(Sequence):
    """A :class:`Sequence` of one object with per-frame masks (``masks[i]``: ``H x W`` bool or ``None``).

    ``boxes`` are expected to be the masks' tight boxes (readers derive them with :func:`mask_to_box`);
    frames without a mask annotation have NaN boxes.  ``len(masks)`` must equal the number of frames.
    """

    masks: MaskFrames | None = None

    def __post_init__(self):
        super().__post_init__()
        m = self.masks
        if m is None or not hasattr(m, "__getitem__") or not hasattr(m, "__len__"):
            raise SequenceError(
                f"sequence {self.name!r}: a MaskSequence needs masks (len() and [i] -> H x W bool or None), "
                f"got {type(m).__name__}"
            )
        if len(m) != len(self.boxes):
            raise SequenceError(f"sequence {self.name!r}: {len(m)} masks but {len(self.boxes)} frames")

    def mask(self, i: int) -> np.ndarray | None:
        """The object's mask in frame ``i`` (``H x W`` bool), or ``None`` if the frame is not annotated."""
        return self.masks[i]

    def __repr__(self) -> str:
        ds = f"{self.dataset}/" if self.dataset else ""
        return f"MaskSequence({ds}{self.name}, {len(self)} frames)"


# ------------------------------------------------------------------------------------------------
# training sources with masks

VAL_SUBSETS = ("val", "valid", "validation", "test", "test-dev", "testdev")


@dataclass
class MaskDatasetConfig:
    """A mask dataset in its standard layout (read by :mod:`gradtrack.data.readers.masks`)."""

    format: Literal["youtube_vos", "davis", "coco"] = "youtube_vos"
    root: str = ""
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)  # reader keyword arguments (subset, split, year...)
    limit_sequences: int = 0
    max_gap: int = 20  # SiamMask's frame range for YouTube-VOS

    def validate(self) -> None:
        if not self.root:
            raise ValueError("a mask dataset needs a root")
        if self.weight < 0 or self.max_gap < 0 or self.limit_sequences < 0:
            raise ValueError("weight, max_gap and limit_sequences must be >= 0")
        for key in ("subset", "split"):
            v = self.options.get(key)
            if isinstance(v, str) and (v.lower() in VAL_SUBSETS or v.lower().startswith("val")):
                raise ValueError(f"mask dataset {self.format}: {key}={v!r} is a validation/test subset; "
                                 "training never reads it")


@dataclass
class MaskPair(Pair):
    """A :class:`Pair` whose search image comes with the object's mask (``H x W`` bool) or ``None``."""

    x_mask: np.ndarray | None = None


class PackedMasks:
    """In-memory bool masks, bit-packed (1 bit / pixel): ``len()``, ``[i]`` -> ``H x W`` bool."""

    def __init__(self, masks):
        masks = [np.asarray(m, dtype=bool) for m in masks]
        self.shapes = [m.shape for m in masks]
        self.blobs = [np.packbits(m.reshape(-1)) for m in masks]

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> np.ndarray:
        h, w = self.shapes[i]
        return np.unpackbits(self.blobs[i], count=h * w).reshape(h, w).astype(bool)

    @property
    def nbytes(self) -> int:
        return int(sum(b.nbytes for b in self.blobs))


class MaskVideo:
    """Frames, boxes and masks of one object; ``sample`` draws a pair of usable frames (``max_gap`` apart)
    as a :class:`MaskPair`.  ``frames`` and ``masks`` only need ``[i]`` (lazy readers or in-memory stores)."""

    def __init__(self, key: str, frames, masks, boxes: np.ndarray, usable: np.ndarray):
        self.key = key
        self.frames, self.masks = frames, masks
        self.boxes = np.asarray(boxes, dtype=np.float64)
        self.frame_numbers = np.flatnonzero(np.asarray(usable, dtype=bool))
        if len(self.frame_numbers) == 0:
            raise ValueError(f"video {key!r} has no usable frame")

    def __len__(self) -> int:
        return len(self.frame_numbers)

    def sample(self, rng: np.random.Generator, max_gap: int) -> MaskPair:
        z, x = sample_pair_indices(self.frame_numbers, max_gap, rng)
        mask = self.masks[x]
        return MaskPair(np.asarray(self.frames[z]), self.boxes[z].copy(), np.asarray(self.frames[x]),
                        self.boxes[x].copy(), self.key, None if mask is None else np.asarray(mask, dtype=bool))

    @property
    def nbytes(self) -> int:
        return int(getattr(self.frames, "nbytes", 0)) + int(getattr(self.masks, "nbytes", 0))

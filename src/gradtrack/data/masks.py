"""Sequences with per-frame segmentation masks of one object (SiamMLG mask training).

A :class:`MaskSequence` is a :class:`~gradtrack.data.sequence.Sequence` with one more field, ``masks``:
a lazy per-frame mask source (:class:`MaskFrames`) such that ``masks[i]`` is an ``H x W`` bool array (the
object's pixels in frame ``i``, ``H x W`` the frame size) or ``None`` when frame ``i`` has no mask
annotation.  An annotated frame where the object is not visible gives an all-False mask (and a NaN box).

Readers derive boxes from masks with :func:`mask_to_box`: the tight box of the mask's pixels in the box
convention of :mod:`gradtrack.geometry.boxes` (0-based ``x, y, w, h``; a mask covering columns ``c1..c2``
has ``x = c1, w = c2 - c1 + 1``), NaN for an empty mask.

Mask sources are picklable and decode nothing until indexed (data-loader workers each open their own).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .sequence import Sequence, SequenceError

__all__ = ["MaskFrames", "ArrayMasks", "LoadedMasks", "MaskSequence", "mask_to_box"]


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

"""Annotated sequences and datasets of them: the common currency of training and evaluation.

A :class:`Sequence` pairs a lazy frame source (:mod:`gradtrack.io.frames`) with per-frame ground truth
in THE box convention of :mod:`gradtrack.geometry.boxes` (0-based float ``x, y, w, h``).  Frames where
the target is absent or not annotated have a row of NaN.  Readers convert every benchmark's own
convention (1-based MATLAB pixels, corner boxes, polygons) before building a ``Sequence``; nothing
downstream converts again.

A :class:`SequenceDataset` is an ordered, name-indexed collection of sequences that are built only when
asked for, so opening a benchmark with thousands of sequences costs a directory listing.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from gradtrack.io.frames import FrameSource

__all__ = ["DatasetError", "SequenceError", "Sequence", "SequenceDataset", "FrameRange", "LazyFrames"]


class DatasetError(ValueError):
    """A dataset on disk does not have the expected layout, or its annotations are malformed."""


class SequenceError(ValueError):
    """A :class:`Sequence` is inconsistent (box shape, frame count, per-frame arrays) or has no target."""


class FrameRange:
    """A view of frames ``start .. stop-1`` of another frame source (no copy, no decoding).

    Readers use it to trim explicitly, e.g. OTB ``Diving`` (231 images, 215 annotated frames) or
    ``David`` (frames 300-770).  ``start``/``stop`` are 0-based, ``stop`` exclusive.
    """

    def __init__(self, source, start: int, stop: int):
        n = len(source)
        if not (0 <= start < stop <= n):
            raise SequenceError(f"frame range [{start}, {stop}) does not fit a source of {n} frames")
        self.source = source
        self.start = int(start)
        self.stop = int(stop)

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"frame index must be an int, got {type(i).__name__}")
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"frame {i} out of range for {n} frames")
        return self.source[self.start + int(i)]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    @property
    def size(self) -> tuple[int, int]:
        return self.source.size

    @property
    def fps(self):
        return getattr(self.source, "fps", None)

    def __repr__(self) -> str:
        return f"FrameRange({self.source!r}, {self.start}, {self.stop})"


class LazyFrames:
    """A frame source opened on first use, whose length is declared by the reader (the annotations).

    Videos cannot tell their frame count without decoding them (MPEG-1 headers under-report it), and a
    dataset of many videos must not decode them all to be listed.  ``len()`` is the declared ``length``;
    the first random access checks it against the real count of the opened source and raises
    :class:`SequenceError` on a mismatch (a longer source is accepted only with ``allow_longer=True``,
    i.e. an explicit trim to the first ``length`` frames); iteration stops after ``length`` frames and
    raises if the source ends early.  ``opener`` is a picklable callable returning a frame source
    (e.g. ``functools.partial(VideoFrames, path)``).
    """

    def __init__(self, opener, length: int, what: str = "frames", *, allow_longer: bool = False):
        if int(length) < 1:
            raise SequenceError(f"{what}: a sequence needs at least one frame, declared {length}")
        self.opener = opener
        self.length = int(length)
        self.what = what
        self.allow_longer = allow_longer
        self._src = None
        self._checked = False

    def _source(self):
        if self._src is None:
            self._src = self.opener()
        return self._src

    def _check_length(self) -> None:
        if self._checked:
            return
        m = len(self._source())
        if m < self.length or (m > self.length and not self.allow_longer):
            raise SequenceError(f"{self.what} has {m} frames but the annotations have {self.length} rows")
        self._checked = True

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i) -> np.ndarray:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"frame index must be an int, got {type(i).__name__}")
        if not 0 <= int(i) < self.length:
            raise IndexError(f"frame index {i} out of range for {self.length} frames")
        self._check_length()
        return self._src[int(i)]

    def __iter__(self) -> Iterator[np.ndarray]:
        k = 0
        for frame in self._source():
            if k == self.length:
                if not self.allow_longer:
                    raise SequenceError(f"{self.what} has more frames than the {self.length} annotation rows")
                break
            yield frame
            k += 1
        if k < self.length:
            raise SequenceError(f"{self.what} ended after {k} frames but the annotations have {self.length} rows")

    @property
    def size(self) -> tuple[int, int]:
        return self._source().size

    @property
    def fps(self):
        return getattr(self._source(), "fps", None)

    def close(self) -> None:
        if self._src is not None and hasattr(self._src, "close"):
            self._src.close()
        self._src = None
        self._checked = False

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_src"] = None
        state["_checked"] = False
        return state

    def __repr__(self) -> str:
        return f"LazyFrames({self.what}, {self.length} frames)"


def _per_frame(value, n: int, what: str, name: str, dtype) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or len(arr) != n:
        raise SequenceError(f"sequence {name!r}: {what} must have one value per frame ({n}), got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


@dataclass(eq=False)
class Sequence:
    """One annotated video.

    Attributes:
        name: the sequence name, unique within its dataset (``Jogging.1``, ``airplane-1``...).
        frames: a lazy frame source: ``len()``, ``[i]`` -> RGB uint8 ``H x W x 3``, ``.size`` ``(w, h)``.
        boxes: ``N x 4`` float64, 0-based ``x, y, w, h``; NaN rows where the target is absent or the frame
            is not annotated.  ``N == len(frames)`` (trim the frames with :class:`FrameRange` if a benchmark
            annotates only part of a video).
        dataset: the dataset the sequence comes from (``otb``, ``vot``...).
        polygons: ``N x 8`` 0-based VOT polygons (or ``None``).
        absent: ``N`` bool, True where the target is absent; derived from NaN boxes when not given (a row
            that is NaN is always absent).
        cover: ``N`` int, GOT-10k visible-ratio labels 0..8 (or ``None``).
        tags: per-frame boolean tags, name -> ``N`` bool (VOT ``occlusion``, ``camera_motion``...).
        attributes: sequence-level attributes (OTB ``IV``, ``SV``...).
        meta: anything else (fps, source files, language description, object class...).
    """

    name: str
    frames: FrameSource
    boxes: np.ndarray
    dataset: str = ""
    polygons: np.ndarray | None = None
    absent: np.ndarray | None = None
    cover: np.ndarray | None = None
    tags: dict[str, np.ndarray] = field(default_factory=dict)
    attributes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        name = self.name
        if not isinstance(name, str) or not name:
            raise SequenceError(f"sequence name must be a non-empty string, got {name!r}")
        if self.frames is None or not hasattr(self.frames, "__getitem__") or not hasattr(self.frames, "__len__"):
            raise SequenceError(
                f"sequence {name!r}: frames must be a frame source (len() and [i]), got {type(self.frames).__name__}"
            )
        try:
            boxes = np.asarray(self.boxes, dtype=np.float64)
        except (TypeError, ValueError):
            raise SequenceError(f"sequence {name!r}: boxes must be numbers, N x 4") from None
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise SequenceError(f"sequence {name!r}: boxes must be N x 4 (x, y, w, h), got shape {boxes.shape}")
        n = len(boxes)
        if n == 0:
            raise SequenceError(f"sequence {name!r} has no annotated frames")
        n_frames = len(self.frames)
        if n_frames != n:
            hint = (
                " (a reader that annotates only part of the frames must trim them explicitly with FrameRange)"
                if n_frames > n
                else ""
            )
            raise SequenceError(f"sequence {name!r}: {n_frames} frames but {n} annotation rows{hint}")
        # a row is either fully numeric or fully NaN: a half-NaN row is a parse problem, not "absent"
        nan = np.isnan(boxes)
        partial = nan.any(1) & ~nan.all(1)
        if partial.any():
            i = int(np.flatnonzero(partial)[0])
            raise SequenceError(f"sequence {name!r}: box of frame {i} is partly NaN: {boxes[i].tolist()}")
        if np.isinf(boxes).any():
            i = int(np.flatnonzero(np.isinf(boxes).any(1))[0])
            raise SequenceError(f"sequence {name!r}: box of frame {i} is infinite: {boxes[i].tolist()}")
        self.boxes = boxes
        nan_rows = nan.all(1)
        if self.absent is None:
            self.absent = nan_rows.copy()
        else:
            self.absent = _per_frame(self.absent, n, "absent", name, bool) | nan_rows
        if self.polygons is not None:
            polys = np.asarray(self.polygons, dtype=np.float64)
            if polys.ndim != 2 or polys.shape != (n, 8):
                raise SequenceError(f"sequence {name!r}: polygons must be {n} x 8, got shape {polys.shape}")
            self.polygons = polys
        if self.cover is not None:
            cover = _per_frame(self.cover, n, "cover", name, np.int64)
            if ((cover < 0) | (cover > 8)).any():
                raise SequenceError(f"sequence {name!r}: cover labels must lie in 0..8")
            self.cover = cover
        tags = {}
        for key, value in dict(self.tags).items():
            tags[str(key)] = _per_frame(value, n, f"tag {key!r}", name, bool)
        self.tags = tags
        self.attributes = [str(a) for a in self.attributes]
        self.meta = dict(self.meta)

    def __len__(self) -> int:
        return len(self.boxes)

    def __repr__(self) -> str:
        ds = f"{self.dataset}/" if self.dataset else ""
        return f"Sequence({ds}{self.name}, {len(self)} frames)"

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames (from the frame source)."""
        w, h = self.frames.size
        return int(w), int(h)

    @property
    def init_box(self) -> np.ndarray:
        """The first frame's box (a copy); raises :class:`SequenceError` if the first frame has no target."""
        box = self.boxes[0]
        if np.isnan(box).any():
            raise SequenceError(f"sequence {self.name!r}: the first frame has no box (target absent), cannot initialise")
        return box.copy()

    @property
    def valid(self) -> np.ndarray:
        """``N`` bool: frames with a box and the target present."""
        return ~self.absent & ~np.isnan(self.boxes).any(1)


class SequenceDataset:
    """An ordered collection of sequences, indexable by position and by name, built lazily.

    Subclasses set ``self._names`` (the order of the dataset) in ``__init__`` and implement
    :meth:`_load` (name -> :class:`Sequence`).  Built sequences are cached (frames stay lazy).
    """

    #: dataset name, as in the registry (``otb``, ``vot``...)
    dataset: str = ""

    def __init__(self, root=None, names: Iterable[str] = ()):
        self.root = root
        self._names: list[str] = list(names)
        self._cache: dict[str, Sequence] = {}

    # -- to implement -------------------------------------------------------------------------------
    def _load(self, name: str) -> Sequence:
        raise NotImplementedError(f"{type(self).__name__} does not implement _load")

    # -- collection protocol -----------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[Sequence]:
        for name in self._names:
            yield self[name]

    def __getitem__(self, key) -> Sequence:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            n = len(self._names)
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"sequence index {key} out of range for {n} sequences")
            name = self._names[i]
        elif isinstance(key, str):
            if key not in self._names:
                raise KeyError(self._unknown_message([key]))
            name = key
        else:
            raise TypeError(f"index a dataset with an int or a sequence name, got {type(key).__name__}")
        seq = self._cache.get(name)
        if seq is None:
            seq = self._load(name)
            self._cache[name] = seq
        return seq

    def _unknown_message(self, unknown: list[str]) -> str:
        shown = ", ".join(self._names[:8]) + (", ..." if len(self._names) > 8 else "")
        what = type(self).__name__ + (f" at {self.root}" if self.root is not None else "")
        return f"unknown sequence(s) {', '.join(map(repr, unknown))} in {what}; it has {len(self._names)}: {shown}"

    def subset(self, names: Iterable[str]) -> "SequenceDataset":
        """A dataset of the same kind holding only ``names`` (in the given order); unknown names raise."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self._names]
        if unknown:
            raise KeyError(self._unknown_message(unknown))
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"subset names repeat: {dup}")
        sub = copy.copy(self)
        sub._names = names
        sub._cache = {n: s for n, s in self._cache.items() if n in set(names)}
        return sub

    def __repr__(self) -> str:
        root = f", root={str(self.root)!r}" if self.root is not None else ""
        return f"{type(self).__name__}({len(self)} sequences{root})"


class InMemoryDataset(SequenceDataset):
    """A dataset over :class:`Sequence` objects already built (procedural sequences, tests, custom data).

    Sequence names must be unique: they are the keys by which protocols and result files find them."""

    def __init__(self, sequences: Iterable[Sequence]):
        seqs = list(sequences)
        by_name = {s.name: s for s in seqs}
        if len(by_name) != len(seqs):
            dup = sorted({s.name for s in seqs if sum(t.name == s.name for t in seqs) > 1})
            raise DatasetError(f"sequence names must be unique, repeated: {dup}")
        super().__init__(None, list(by_name))
        self._by_name = by_name

    def _load(self, name: str) -> Sequence:
        return self._by_name[name]

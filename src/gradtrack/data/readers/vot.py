"""VOT (2013-2019 short-term layout, and VOT2020+ mask regions read as their tight boxes).

``root/list.txt`` names the sequences (without it every folder holding ``groundtruth.txt`` is one);
``root/<seq>/`` holds the frames (``00000001.jpg...`` directly, in ``color/``, or where the ``sequence``
file's ``channels.color`` pattern says), ``groundtruth.txt`` (one region per line: ``x,y,w,h``, an 8-value
polygon, a VOT2020 mask ``m...`` or a lone ``0`` for an unannotated frame) and per-frame tag files
(``*.tag`` VOT2016+, ``*.label`` VOT2014/15: one 0/1 per line; files shorter than the sequence are padded
with 0, as the VOT toolkits do).  ``*.value`` files (per-frame numbers) go to ``meta["values"]``.
Coordinates are taken as stored (0-based).  Polygons become area-preserving axis-aligned boxes.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gradtrack.io.frames import ImageFolderFrames, natural_key

from ..sequence import DatasetError, Sequence, SequenceDataset
from ._common import describe, list_images, listing, require_root
from .annotations import iter_lines, read_flags, read_regions

__all__ = ["VOTDataset", "read_sequence_file"]


def read_sequence_file(path: Path) -> dict[str, str]:
    """The ``key=value`` lines of a VOT ``sequence`` metadata file."""
    out = {}
    for lineno, s in iter_lines(path):
        if s.startswith("#"):
            continue
        if "=" not in s:
            raise DatasetError(f"{path}:{lineno}: expected 'key=value', found {s!r}")
        k, v = s.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _pattern_files(folder: Path, pattern: str) -> list[Path]:
    """Files of a printf-style pattern such as ``color/%08d.jpg``, from 1 while they exist."""
    if not re.search(r"%0?\d*d", pattern):
        raise DatasetError(f"{folder}: channel pattern {pattern!r} has no frame number (%08d)")
    files, k = [], 1
    while (folder / (pattern % k)).is_file():
        files.append(folder / (pattern % k))
        k += 1
    return files


class VOTDataset(SequenceDataset):
    dataset = "vot"
    one_based = False

    def __init__(self, root):
        expected = "<root>/list.txt and <root>/<seq>/groundtruth.txt with the frames 00000001.jpg (or color/00000001.jpg)"
        root = require_root(root, "vot", expected)
        list_file = root / "list.txt"
        if list_file.is_file():
            names = [s for _, s in iter_lines(list_file)]
            missing = [n for n in names if not (root / n / "groundtruth.txt").is_file()]
            if missing:
                raise DatasetError(
                    f"vot: {len(missing)} sequences in {list_file} have no {root}/<seq>/groundtruth.txt: "
                    f"{', '.join(missing[:5])} (e.g. {root / missing[0]}: {describe(root / missing[0])})"
                )
        else:
            names = sorted((p.name for p in root.iterdir() if (p / "groundtruth.txt").is_file()), key=natural_key)
        if not names:
            raise DatasetError(f"vot: no sequences under {root} ({describe(root)}); expected {expected}")
        super().__init__(root, names)

    def _frames(self, folder: Path, seqfile: dict) -> list[Path]:
        pattern = seqfile.get("channels.color")
        if pattern:
            return _pattern_files(folder, pattern)
        for d in (folder, folder / "color"):
            imgs = list_images(d)
            if imgs:
                return imgs
        return []

    def _load(self, name: str) -> Sequence:
        folder = self.root / name
        seqfile = read_sequence_file(folder / "sequence") if (folder / "sequence").is_file() else {}
        images = self._frames(folder, seqfile)
        if not images:
            raise DatasetError(f"vot sequence {name!r}: no frames in {folder} or {folder / 'color'} ({listing(folder)})")
        boxes, polygons = read_regions(folder / "groundtruth.txt")
        n = len(boxes)
        if len(images) != n:
            raise DatasetError(f"vot sequence {name!r}: {n} regions in groundtruth.txt but {len(images)} frames in {folder}")
        tags, values = {}, {}
        for f in sorted(folder.iterdir(), key=lambda p: p.name):
            if f.suffix in (".tag", ".label") and f.is_file():
                t = read_flags_padded(f, n)
                tags[f.stem] = t != 0
            elif f.suffix == ".value" and f.is_file():
                values[f.stem] = read_flags(f, n, what="values", integer=False)
        meta = {"folder": str(folder)}
        if values:
            meta["values"] = values
        if seqfile:
            meta["sequence_file"] = seqfile
        fps = seqfile.get("fps")
        try:
            fps = float(fps) if fps is not None else None
        except ValueError:
            raise DatasetError(f"{folder / 'sequence'}: fps={fps!r} is not a number") from None
        if np.isnan(polygons).all():
            polygons = None
        return Sequence(name, ImageFolderFrames(images, fps=fps), boxes, dataset=self.dataset, polygons=polygons,
                        tags=tags, meta=meta)


def read_flags_padded(path: Path, n: int) -> np.ndarray:
    """A VOT tag file: one 0/1 per line, possibly shorter than the sequence (missing trailing frames are 0)."""
    lines = list(iter_lines(path))
    if len(lines) > n:
        raise DatasetError(f"{path}: {len(lines)} tag lines but the sequence has {n} frames")
    t = read_flags(path, len(lines), what="tags") if lines else np.zeros(0, dtype=np.int64)
    if ((t != 0) & (t != 1)).any():
        bad = int(np.flatnonzero((t != 0) & (t != 1))[0])
        raise DatasetError(f"{path}:{bad + 1}: tags must be 0 or 1, found {t[bad]}")
    return np.concatenate([t, np.zeros(n - len(t), dtype=np.int64)])

"""GOT-10k: ``root/{train,val,test}/list.txt`` and one folder per sequence with ``00000001.jpg...``,
``groundtruth.txt`` (``x,y,w,h`` taken as stored, 0-based), ``absence.label`` (1 = absent),
``cover.label`` (visible ratio class 0..8, 0 = fully occluded), ``cut_by_image.label`` and
``meta_info.ini``.

The test split gives only the first frame's box: the other rows are NaN (unannotated, not absent).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gradtrack.io.frames import ImageFolderFrames

from ..sequence import DatasetError, Sequence, SequenceDataset
from ._common import describe, list_images, listing, require_root
from .annotations import iter_lines, read_boxes, read_flags

__all__ = ["GOT10kDataset", "read_meta_info"]


def read_meta_info(path: Path) -> dict[str, str]:
    """``key: value`` lines of a GOT-10k ``meta_info.ini`` (the ``[METAINFO]`` header is skipped)."""
    out = {}
    for lineno, s in iter_lines(path):
        if s.startswith("[") and s.endswith("]"):
            continue
        if ":" not in s:
            raise DatasetError(f"{path}:{lineno}: expected 'key: value', found {s!r}")
        k, v = s.split(":", 1)
        out[k.strip()] = v.strip()
    return out


class GOT10kDataset(SequenceDataset):
    """Args: ``root`` (holding ``train/ val/ test/``, or one split folder itself); ``subset`` in
    ``train``, ``val``, ``test`` (required when ``root`` holds several)."""

    dataset = "got10k"
    one_based = False

    def __init__(self, root, subset: str | None = None):
        expected = "<root>/<subset>/list.txt and <root>/<subset>/GOT-10k_<Subset>_000001/{00000001.jpg, groundtruth.txt}"
        root = require_root(root, "got10k", expected)
        if subset is not None and subset not in ("train", "val", "test"):
            raise ValueError(f"got10k subset must be 'train', 'val' or 'test', got {subset!r}")
        if subset is not None and (root / subset / "list.txt").is_file():
            split_dir = root / subset
        elif (root / "list.txt").is_file() and (subset is None or root.name == subset):
            split_dir = root
            subset = subset or (root.name if root.name in ("train", "val", "test") else None)
        elif subset is None:
            present = [s for s in ("train", "val", "test") if (root / s / "list.txt").is_file()]
            raise DatasetError(
                f"got10k: pass subset= one of {present or ['train', 'val', 'test']} "
                f"({root} holds: {listing(root)}); expected {expected}"
            )
        else:
            raise DatasetError(f"got10k: expected {root / subset / 'list.txt'}, but {describe(root / subset / 'list.txt')}")
        self.subset = subset
        self.split_dir = split_dir
        names = [s for _, s in iter_lines(split_dir / "list.txt")]
        missing = [n for n in names if not (split_dir / n).is_dir()]
        if missing:
            raise DatasetError(
                f"got10k: {len(missing)} sequences listed in {split_dir / 'list.txt'} have no folder in {split_dir}: "
                f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}"
            )
        if len(set(names)) != len(names):
            raise DatasetError(f"got10k: {split_dir / 'list.txt'} lists a sequence twice")
        if not names:
            raise DatasetError(f"got10k: {split_dir / 'list.txt'} is empty")
        super().__init__(root, names)

    def _load(self, name: str) -> Sequence:
        folder = self.split_dir / name
        images = list_images(folder)
        n = len(images)
        if n == 0:
            raise DatasetError(f"got10k sequence {name!r}: no images in {folder} ({describe(folder)})")
        gt = folder / "groundtruth.txt"
        boxes = read_boxes(gt, one_based=self.one_based)
        if len(boxes) == 1 and n > 1 and (self.subset == "test" or not (folder / "absence.label").is_file()):
            full = np.full((n, 4), np.nan)
            full[0] = boxes[0]
            boxes = full  # test split: only the first frame is annotated
        elif len(boxes) != n:
            raise DatasetError(f"got10k sequence {name!r}: {len(boxes)} rows in {gt} but {n} images in {folder}")
        absent = cover = None
        tags = {}
        if (folder / "absence.label").is_file():
            a = read_flags(folder / "absence.label", n, what="absence labels")
            if ((a != 0) & (a != 1)).any():
                raise DatasetError(f"{folder / 'absence.label'}: absence labels must be 0 or 1")
            absent = a.astype(bool)
        if (folder / "cover.label").is_file():
            cover = read_flags(folder / "cover.label", n, what="cover labels")
            if ((cover < 0) | (cover > 8)).any():
                raise DatasetError(f"{folder / 'cover.label'}: cover labels must lie in 0..8")
        if (folder / "cut_by_image.label").is_file():
            tags["cut_by_image"] = read_flags(folder / "cut_by_image.label", n, what="cut_by_image labels") != 0
        meta = {"folder": str(folder), "subset": self.subset}
        if (folder / "meta_info.ini").is_file():
            meta.update(read_meta_info(folder / "meta_info.ini"))
        return Sequence(name, ImageFolderFrames(images, fps=10), boxes, dataset=self.dataset, absent=absent,
                        cover=cover, tags=tags, meta=meta)

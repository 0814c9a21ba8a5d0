"""LaSOT: ``root/<class>/<class>-<k>/img/00000001.jpg`` with ``groundtruth.txt`` (1-based ``x,y,w,h``),
``full_occlusion.txt`` and ``out_of_view.txt`` (one line of comma-separated 0/1 flags) and ``nlp.txt``
(the language description).  The flat layout ``root/<class>-<k>/`` of the test-set download is read too.

``split="test"`` keeps the sequences named in ``root/testing_set.txt`` (one name per line), ``"train"``
the others; ``None`` keeps all.  A frame is absent when it is fully occluded or out of view; the boxes
are kept as the file gives them (``Sequence.absent`` and the ``full_occlusion`` / ``out_of_view`` tags say
which frames to skip).
"""
from __future__ import annotations

import re
from pathlib import Path

from gradtrack.io.frames import ImageFolderFrames, natural_key

from ..sequence import DatasetError, Sequence, SequenceDataset
from ._common import describe, list_images, require_root
from .annotations import iter_lines, read_boxes, read_flags

__all__ = ["LaSOTDataset"]

_NAME = re.compile(r"^(?P<cls>.+)-(?P<k>\d+)$")


class LaSOTDataset(SequenceDataset):
    dataset = "lasot"
    one_based = True

    def __init__(self, root, split: str | None = None):
        expected = ("<root>/<class>/<class>-<k>/img/00000001.jpg and .../groundtruth.txt "
                    "(plus full_occlusion.txt, out_of_view.txt, nlp.txt)")
        root = require_root(root, "lasot", expected)
        folders: dict[str, Path] = {}

        def consider(p: Path) -> None:
            if _NAME.match(p.name) and (p / "groundtruth.txt").is_file():
                if p.name in folders:
                    raise DatasetError(f"lasot: sequence {p.name!r} found twice: {folders[p.name]} and {p}")
                folders[p.name] = p

        for p in root.iterdir():
            if not p.is_dir():
                continue
            consider(p)
            if not _NAME.match(p.name):
                for q in p.iterdir():
                    if q.is_dir():
                        consider(q)
        if not folders:
            raise DatasetError(f"lasot: no sequences under {root} ({describe(root)}); expected {expected}")
        names = sorted(folders, key=natural_key)
        if split is not None:
            if split not in ("train", "test"):
                raise ValueError(f"lasot split must be None, 'train' or 'test', got {split!r}")
            list_file = root / "testing_set.txt"
            if not list_file.is_file():
                raise DatasetError(f"lasot: split={split!r} needs {list_file} (one test sequence name per line), but {describe(list_file)}")
            test = [s for _, s in iter_lines(list_file)]
            if split == "test":
                missing = [n for n in test if n not in folders]
                if missing:
                    raise DatasetError(
                        f"lasot: {len(missing)} test sequences listed in {list_file} are missing under {root}: "
                        f"{', '.join(missing[:10])}"
                    )
                names = test
            else:
                test_set = set(test)
                names = [n for n in names if n not in test_set]
        self._folders = folders
        self.split = split
        super().__init__(root, names)

    def _load(self, name: str) -> Sequence:
        folder = self._folders[name]
        boxes = read_boxes(folder / "groundtruth.txt", one_based=self.one_based)
        n = len(boxes)
        img_dir = folder / "img"
        images = list_images(img_dir)
        if len(images) != n:
            raise DatasetError(
                f"lasot sequence {name!r}: {n} annotation rows but {len(images)} images in {img_dir} ({describe(img_dir)})"
                if not images else f"lasot sequence {name!r}: {n} annotation rows but {len(images)} images in {img_dir}"
            )
        tags = {}
        for key in ("full_occlusion", "out_of_view"):
            f = folder / f"{key}.txt"
            if f.is_file():
                flags = read_flags(f, n, what=f"{key} flags")
                if ((flags != 0) & (flags != 1)).any():
                    raise DatasetError(f"{f}: {key} flags must be 0 or 1")
                tags[key] = flags.astype(bool)
        absent = None
        if tags:
            absent = tags.get("full_occlusion", False) | tags.get("out_of_view", False)
        meta = {"folder": str(folder), "object_class": _NAME.match(name).group("cls")}
        nlp = folder / "nlp.txt"
        if nlp.is_file():
            meta["nlp"] = nlp.read_text(encoding="utf-8-sig", errors="replace").strip()
        return Sequence(name, ImageFolderFrames(images, fps=30), boxes, dataset=self.dataset, absent=absent,
                        tags=tags, meta=meta)

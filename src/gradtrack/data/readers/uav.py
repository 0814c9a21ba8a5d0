"""UAV benchmarks: UAV123 / UAV123@10fps / UAV20L, DTB70 and UAVDT (all 1-based MATLAB coordinates).

UAV123 official layout::

    <root>/data_seq/UAV123/<folder>/000001.jpg      (UAV123_10fps: data_seq/UAV123_10fps/...)
    <root>/anno/UAV123/<seq>.txt                     (NaN rows: target fully occluded or out of view)

Several UAV123 sequences are sub-sequences of one video folder (``car1_1``, ``car1_2``, ``car1_3`` all
live in ``data_seq/UAV123/car1``).  Their 1-based inclusive frame ranges come from the benchmark's
``configSeqs.m``; the tables for UAV123 (30 fps) and UAV123_10fps are built in (:data:`UAV123_SUBSEQUENCES`)
and can be replaced or extended with a table file of lines ``<name> <folder> <start> <end>`` (``#``
comments allowed) passed as ``subsequences=``.  UAV20L uses ``anno/UAV20L/<seq>.txt`` with the frames of
``data_seq/UAV123/<seq>`` (whole folders).
"""
from __future__ import annotations

import os
from pathlib import Path

from gradtrack.io.frames import ImageFolderFrames, natural_key

from ..sequence import DatasetError, Sequence, SequenceDataset
from ._common import describe, list_images, listing, require_root
from .annotations import AnnotationError, iter_lines, read_boxes, read_flags
from .otb import select_frames

__all__ = ["UAV123Dataset", "DTB70Dataset", "UAVDTDataset", "UAV123_SUBSEQUENCES", "read_subsequence_table"]

# name, folder, (start, end) at 30 fps, (start, end) at 10 fps; from the benchmark's configSeqs.m files.
_SUBSEQ_ROWS = """
bird1_1 bird1 1 253 1 85
bird1_2 bird1 775 1477 259 493
bird1_3 bird1 1573 2437 525 813
car1_1 car1 1 751 1 251
car1_2 car1 751 1627 251 543
car1_3 car1 1627 2629 543 877
car6_1 car6 1 487 1 163
car6_2 car6 487 1807 163 603
car6_3 car6 1807 2953 603 985
car6_4 car6 2953 3925 985 1309
car6_5 car6 3925 4861 1309 1621
car8_1 car8 1 1357 1 453
car8_2 car8 1357 2575 453 859
car16_1 car16 1 415 1 139
car16_2 car16 415 1993 139 665
group1_1 group1 1 1333 1 445
group1_2 group1 1333 2515 445 839
group1_3 group1 2515 3925 839 1309
group1_4 group1 3925 4873 1309 1625
group2_1 group2 1 907 1 303
group2_2 group2 907 1771 303 591
group2_3 group2 1771 2683 591 895
group3_1 group3 1 1567 1 523
group3_2 group3 1567 2827 523 943
group3_3 group3 2827 4369 943 1457
group3_4 group3 4369 5527 1457 1843
person2_1 person2 1 1189 1 397
person2_2 person2 1189 2623 397 875
person4_1 person4 1 1501 1 501
person4_2 person4 1501 2743 501 915
person5_1 person5 1 877 1 293
person5_2 person5 877 2101 293 701
person7_1 person7 1 1249 1 417
person7_2 person7 1249 2065 417 689
person8_1 person8 1 1075 1 359
person8_2 person8 1075 1525 359 509
person12_1 person12 1 601 1 201
person12_2 person12 601 1621 201 541
person14_1 person14 1 847 1 283
person14_2 person14 847 1813 283 605
person14_3 person14 1813 2923 605 975
person17_1 person17 1 1501 1 501
person17_2 person17 1501 2347 501 783
person19_1 person19 1 1243 1 415
person19_2 person19 1243 2791 415 931
person19_3 person19 2791 4357 931 1453
truck4_1 truck4 1 577 1 193
truck4_2 truck4 577 1261 193 421
uav1_1 uav1 1 1555 1 519
uav1_2 uav1 1555 2377 519 793
uav1_3 uav1 2473 3469 825 1157
"""


def _builtin_tables() -> dict[str, dict[str, tuple[str, int, int]]]:
    t30, t10 = {}, {}
    for row in _SUBSEQ_ROWS.split("\n"):
        if row.strip():
            name, folder, a, b, c, d = row.split()
            t30[name] = (folder, int(a), int(b))
            t10[name] = (folder, int(c), int(d))
    return {"UAV123": t30, "UAV123_10fps": t10, "UAV20L": {}}


#: version -> {sub-sequence name: (folder, start, end)} (1-based inclusive frame numbers).
UAV123_SUBSEQUENCES: dict[str, dict[str, tuple[str, int, int]]] = _builtin_tables()

_FPS = {"UAV123": 30.0, "UAV123_10fps": 10.0, "UAV20L": 30.0}


def read_subsequence_table(path: str | os.PathLike) -> dict[str, tuple[str, int, int]]:
    """A sub-sequence table file: lines ``<name> <folder> <start> <end>`` (1-based inclusive), ``#`` comments."""
    table = {}
    for lineno, s in iter_lines(path):
        s = s.split("#", 1)[0].strip()
        if not s:
            continue
        parts = s.replace(",", " ").split()
        where = f"{path}:{lineno}"
        if len(parts) != 4:
            raise AnnotationError(f"{where}: expected '<name> <folder> <start> <end>', found {len(parts)} fields")
        name, folder, a, b = parts
        try:
            start, end = int(a), int(b)
        except ValueError:
            raise AnnotationError(f"{where}: start and end must be integer frame numbers, got {a!r} {b!r}") from None
        if start < 1 or end < start:
            raise AnnotationError(f"{where}: invalid range {start}-{end} (1-based, start <= end)")
        if name in table:
            raise AnnotationError(f"{where}: sub-sequence {name!r} is listed twice")
        table[name] = (folder, start, end)
    return table


class UAV123Dataset(SequenceDataset):
    """UAV123, UAV123@10fps or UAV20L in the official layout (see the module docstring).

    Args:
        root: the folder holding ``data_seq/`` and ``anno/``.
        version: ``"UAV123"``, ``"UAV123_10fps"`` or ``"UAV20L"``; ``None`` picks the only one present
            under ``root/anno``.
        subsequences: a table file (or a dict ``name -> (folder, start, end)``) replacing the built-in
            sub-sequence table of this version.
    """

    dataset = "uav123"
    one_based = True

    def __init__(self, root, version: str | None = None, *, subsequences=None):
        expected = ("<root>/anno/<version>/<seq>.txt and <root>/data_seq/<version>/<folder>/000001.jpg "
                    "with <version> one of UAV123, UAV123_10fps, UAV20L")
        root = require_root(root, "uav123", expected)
        anno_root = root / "anno"
        if not anno_root.is_dir():
            raise DatasetError(f"uav123: no anno/ folder in {root} ({describe(root)}); expected {expected}")
        known = {v.lower(): v for v in _FPS}
        if version is None:
            present = [known[p.name.lower()] for p in anno_root.iterdir() if p.is_dir() and p.name.lower() in known]
            if len(present) != 1:
                raise DatasetError(
                    f"uav123: cannot pick the version: {anno_root} holds {listing(anno_root)}; "
                    f"pass version= one of {', '.join(_FPS)}"
                )
            version = present[0]
        if str(version).lower() not in known:
            raise ValueError(f"uav123 version must be one of {', '.join(_FPS)}, got {version!r}")
        version = known[str(version).lower()]
        self.version = version
        self.anno_dir = anno_root / version
        if not self.anno_dir.is_dir():
            raise DatasetError(f"uav123: expected annotations in {self.anno_dir}, but {describe(self.anno_dir)}")
        data_dir = root / "data_seq" / version
        if version == "UAV20L" and not data_dir.is_dir():
            data_dir = root / "data_seq" / "UAV123"
        if not data_dir.is_dir():
            raise DatasetError(f"uav123: expected the frames in {data_dir}/<sequence>/, but {describe(data_dir)}")
        self.data_dir = data_dir
        if subsequences is None:
            self.subsequences = dict(UAV123_SUBSEQUENCES[version])
        elif isinstance(subsequences, dict):
            self.subsequences = {k: (str(f), int(a), int(b)) for k, (f, a, b) in subsequences.items()}
        else:
            self.subsequences = read_subsequence_table(subsequences)
        names = sorted((p.stem for p in self.anno_dir.glob("*.txt") if p.is_file()), key=natural_key)
        if not names:
            raise DatasetError(f"uav123: no <seq>.txt annotation files in {self.anno_dir} ({describe(self.anno_dir)})")
        for n in names:
            if n in self.subsequences:
                folder = data_dir / self.subsequences[n][0]
                if not folder.is_dir():
                    raise DatasetError(
                        f"uav123: sub-sequence {n!r} needs the frames of {folder}, but {describe(folder)}"
                    )
            elif not (data_dir / n).is_dir():
                raise DatasetError(
                    f"uav123: annotation {self.anno_dir / (n + '.txt')} has no frame folder {data_dir / n} and "
                    f"{n!r} is not in the sub-sequence table of {version} (give subsequences= a table file "
                    f"'<name> <folder> <start> <end>')"
                )
        super().__init__(root, names)

    def _load(self, name: str) -> Sequence:
        anno = self.anno_dir / f"{name}.txt"
        boxes = read_boxes(anno, one_based=self.one_based)
        meta = {"version": self.version, "annotation_file": str(anno)}
        if name in self.subsequences:
            folder_name, start, end = self.subsequences[name]
            folder = self.data_dir / folder_name
            where = f"uav123 sub-sequence {name!r} ({folder})"
            images = select_frames(list_images(folder), start, end, where)
            meta.update(folder=str(folder), frame_range=(start, end))
        else:
            folder = self.data_dir / name
            where = f"uav123 sequence {name!r} ({folder})"
            images = list_images(folder)
            meta["folder"] = str(folder)
        if len(images) != len(boxes):
            raise DatasetError(f"{where}: {len(boxes)} annotation rows in {anno.name} but {len(images)} frames")
        return Sequence(name, ImageFolderFrames(images, fps=_FPS[self.version]), boxes,
                        dataset=self.dataset, meta=meta)


class DTB70Dataset(SequenceDataset):
    """DTB70: ``root/<seq>/img/00001.jpg`` and ``root/<seq>/groundtruth_rect.txt`` (1-based)."""

    dataset = "dtb70"
    one_based = True

    def __init__(self, root):
        expected = "<root>/<seq>/img/00001.jpg and <root>/<seq>/groundtruth_rect.txt"
        root = require_root(root, "dtb70", expected)
        names = []
        for folder in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
            if not (folder / "groundtruth_rect.txt").is_file():
                continue
            if not (folder / "img").is_dir():
                raise DatasetError(f"dtb70: {folder} has groundtruth_rect.txt but no img/ ({listing(folder)})")
            names.append(folder.name)
        if not names:
            raise DatasetError(f"dtb70: no sequences under {root} ({describe(root)}); expected {expected}")
        super().__init__(root, names)

    def _load(self, name: str) -> Sequence:
        folder = self.root / name
        boxes = read_boxes(folder / "groundtruth_rect.txt", one_based=self.one_based)
        images = list_images(folder / "img")
        if len(images) != len(boxes):
            raise DatasetError(
                f"dtb70 sequence {name!r}: {len(boxes)} annotation rows but {len(images)} images in {folder / 'img'}"
            )
        return Sequence(name, ImageFolderFrames(images), boxes, dataset=self.dataset, meta={"folder": str(folder)})


class UAVDTDataset(SequenceDataset):
    """UAVDT single-object benchmark (UAV-benchmark-S), 1-based ``x,y,w,h``.

    Annotations ``<seq>_gt.txt`` are looked for in ``root/anno/``, ``root/UAV-benchmark-SOT_v1.0/anno/``
    and ``root/<seq>/``; the frames (``img000001.jpg``...) of ``<seq>`` in ``root/<seq>/``,
    ``root/<seq>/img/``, ``root/UAV-benchmark-S/<seq>/``, ``root/data_seq/<seq>/`` or ``root/seq/<seq>/``.
    An attribute file ``<seq>_att.txt`` next to the annotation is kept as ``meta["attribute_flags"]``.
    """

    dataset = "uavdt"
    one_based = True
    _ANNO_DIRS = ("anno", "UAV-benchmark-SOT_v1.0/anno")
    _FRAME_DIRS = ("", "UAV-benchmark-S", "data_seq", "seq", "sequences")

    def __init__(self, root):
        expected = ("<root>/anno/<seq>_gt.txt (or <root>/<seq>/<seq>_gt.txt) and the frames in "
                    "<root>/<seq>/ or <root>/UAV-benchmark-S/<seq>/ (img000001.jpg ...)")
        root = require_root(root, "uavdt", expected)
        annos: dict[str, Path] = {}
        for d in self._ANNO_DIRS:
            for p in (root / d).glob("*_gt.txt") if (root / d).is_dir() else ():
                annos.setdefault(p.name[: -len("_gt.txt")], p)
        for folder in (p for p in root.iterdir() if p.is_dir()):
            p = folder / f"{folder.name}_gt.txt"
            if p.is_file():
                annos.setdefault(folder.name, p)
        if not annos:
            raise DatasetError(f"uavdt: no <seq>_gt.txt annotation files under {root} ({describe(root)}); expected {expected}")
        self._annos = annos
        self._frames: dict[str, Path] = {}
        names = sorted(annos, key=natural_key)
        for n in names:
            found = None
            for d in self._FRAME_DIRS:
                base = root / d / n if d else root / n
                for cand in (base, base / "img"):
                    if cand.is_dir() and list_images(cand):
                        found = cand
                        break
                if found:
                    break
            if found is None:
                tried = ", ".join(str((root / d / n) if d else root / n) for d in self._FRAME_DIRS)
                raise DatasetError(f"uavdt: annotation {annos[n]} has no frame folder; looked for images in {tried}")
            self._frames[n] = found
        super().__init__(root, names)

    def _load(self, name: str) -> Sequence:
        anno = self._annos[name]
        boxes = read_boxes(anno, one_based=self.one_based)
        images = list_images(self._frames[name])
        if len(images) != len(boxes):
            raise DatasetError(
                f"uavdt sequence {name!r}: {len(boxes)} annotation rows in {anno} but {len(images)} images "
                f"in {self._frames[name]}"
            )
        meta = {"folder": str(self._frames[name]), "annotation_file": str(anno)}
        att = anno.with_name(f"{name}_att.txt")
        if att.is_file():
            meta["attribute_flags"] = read_flags(att, what="attribute flags").tolist()
        return Sequence(name, ImageFolderFrames(images), boxes, dataset=self.dataset, meta=meta)

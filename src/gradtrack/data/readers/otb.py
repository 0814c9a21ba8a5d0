"""OTB-2013 / OTB-2015 (``<seq>/img/0001.jpg``, ``<seq>/groundtruth_rect*.txt``) and Temple-Color-128.

OTB annotations are 1-based MATLAB pixel coordinates: readers subtract 1 from x and y.  Delimiters vary
between files (tabs, commas, spaces): the shared parser reads them all.

Special cases handled as the benchmark's own configuration does:

* **multi-target folders**: ``Jogging`` and ``Skating2`` hold ``groundtruth_rect.1.txt`` and
  ``groundtruth_rect.2.txt``; each file is a sequence, named ``Jogging.1``, ``Jogging.2``...  A folder with
  a single numbered file (``Human4`` ships only ``groundtruth_rect.2.txt``) is named after the folder.
* **frame ranges** (1-based, inclusive): David 300-770, Football1 1-74, Freeman3 1-460, Freeman4 1-283,
  Diving 1-215: the images of the range are used, the others ignored.  Any other count mismatch between
  images and annotation rows is an error.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gradtrack.io.frames import ImageFolderFrames

from ..sequence import DatasetError, Sequence, SequenceDataset
from ._common import describe, frame_number, list_images, listing, require_file, require_root
from .annotations import read_boxes, read_table

__all__ = ["OTBDataset", "TC128Dataset", "OTB2013_SEQUENCES", "OTB2015_SEQUENCES", "OTB_FRAME_RANGES", "OTB_ATTRIBUTES"]

#: OTB-2013 (CVPR 2013 benchmark): 50 folders, 51 sequences (Jogging has two targets).
OTB2013_SEQUENCES: tuple[str, ...] = (
    "Basketball", "Bolt", "Boy", "Car4", "CarDark", "CarScale", "Coke", "Couple", "Crossing", "David",
    "David2", "David3", "Deer", "Dog1", "Doll", "Dudek", "FaceOcc1", "FaceOcc2", "Fish", "FleetFace",
    "Football", "Football1", "Freeman1", "Freeman3", "Freeman4", "Girl", "Ironman", "Jogging.1", "Jogging.2",
    "Jumping", "Lemming", "Liquor", "Matrix", "Mhyang", "MotorRolling", "MountainBike", "Shaking", "Singer1",
    "Singer2", "Skating1", "Skiing", "Soccer", "Subway", "Suv", "Sylvester", "Tiger1", "Tiger2", "Trellis",
    "Walking", "Walking2", "Woman",
)

_OTB2015_EXTRA: tuple[str, ...] = (
    "Biker", "Bird1", "Bird2", "BlurBody", "BlurCar1", "BlurCar2", "BlurCar3", "BlurCar4", "BlurFace", "BlurOwl",
    "Board", "Bolt2", "Box", "Car1", "Car2", "Car24", "ClifBar", "Coupon", "Crowds", "Dancer", "Dancer2",
    "Diving", "Dog", "DragonBaby", "Girl2", "Gym", "Human2", "Human3", "Human4", "Human5", "Human6", "Human7",
    "Human8", "Human9", "Jump", "KiteSurf", "Man", "Panda", "RedTeam", "Rubik", "Skater", "Skater2",
    "Skating2.1", "Skating2.2", "Surfer", "Toy", "Trans", "Twinnings", "Vase",
)

#: OTB-2015 (TB-100): 98 folders, 100 sequences (Jogging and Skating2 have two targets each).
OTB2015_SEQUENCES: tuple[str, ...] = tuple(sorted(OTB2013_SEQUENCES + _OTB2015_EXTRA, key=str.lower))

#: 1-based inclusive frame ranges of the sequences whose folder holds more images than annotated frames.
OTB_FRAME_RANGES: dict[str, tuple[int, int]] = {
    "David": (300, 770),
    "Football1": (1, 74),
    "Freeman3": (1, 460),
    "Freeman4": (1, 283),
    "Diving": (1, 215),
}

#: the OTB attribute codes, in the order of the benchmark's per-sequence flag files (``anno/att/<Seq>.txt``).
OTB_ATTRIBUTES: tuple[str, ...] = ("IV", "SV", "OCC", "DEF", "MB", "FM", "IPR", "OPR", "OV", "BC", "LR")

_VERSIONS = {
    "otb2013": OTB2013_SEQUENCES, "2013": OTB2013_SEQUENCES,
    "otb2015": OTB2015_SEQUENCES, "2015": OTB2015_SEQUENCES, "otb100": OTB2015_SEQUENCES,
    "tb100": OTB2015_SEQUENCES,
}

_GT = re.compile(r"^groundtruth_rect(?:\.(\d+))?\.txt$")


def select_frames(images: list[Path], start: int, end: int, where: str) -> list[Path]:
    """Images of the 1-based inclusive frame range ``start..end``.

    When every file name is a number (``0001.jpg``) the numbers select the frames; otherwise positions in
    natural order are used.
    """
    if start < 1 or end < start:
        raise DatasetError(f"{where}: invalid frame range {start}-{end} (1-based, inclusive)")
    numbers = [frame_number(p) for p in images]
    if images and all(n is not None for n in numbers):
        by_number = dict(zip(numbers, images))
        missing = [k for k in range(start, end + 1) if k not in by_number]
        if missing:
            raise DatasetError(
                f"{where}: frames {start}-{end} are needed but image number {missing[0]} is missing "
                f"({len(missing)} missing; the folder holds {len(images)} images)"
            )
        return [by_number[k] for k in range(start, end + 1)]
    if end > len(images):
        raise DatasetError(f"{where}: frames {start}-{end} are needed but the folder holds {len(images)} images")
    return images[start - 1:end]


class OTBDataset(SequenceDataset):
    """OTB-2013/2015 in the benchmark's layout: ``root/<Seq>/img/0001.jpg`` + ``groundtruth_rect*.txt``.

    Args:
        root: the folder holding the sequence folders.
        version: ``None`` (every sequence found under ``root``), ``"otb2013"`` or ``"otb2015"`` (the
            benchmark's list, in its order; a listed sequence missing from ``root`` is an error unless
            ``allow_missing``).
        frame_ranges: extra or replacement 1-based inclusive ranges, folder name -> ``(start, end)``.
        attributes: sequence-level attributes: a dict (sequence or folder name -> list of codes such as
            ``["IV", "SV"]``) or a folder of flag files ``<Seq>.txt`` holding 11 0/1 values in the order of
            :data:`OTB_ATTRIBUTES` (the benchmark's ``anno/att`` files).  ``None``: no attributes.
    """

    dataset = "otb"
    one_based = True

    def __init__(self, root, version: str | int | None = None, *, allow_missing: bool = False,
                 frame_ranges: dict[str, tuple[int, int]] | None = None, attributes=None):
        expected = "<root>/<Sequence>/img/0001.jpg and <root>/<Sequence>/groundtruth_rect.txt"
        root = require_root(root, "otb", expected)
        self.frame_ranges = dict(OTB_FRAME_RANGES)
        self.frame_ranges.update(frame_ranges or {})
        self._entries: dict[str, tuple[Path, Path]] = {}  # name -> (sequence folder, annotation file)
        for folder in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                             key=lambda p: p.name.lower()):
            gts = [(m.group(1), p) for p in folder.iterdir() if (m := _GT.match(p.name)) and p.is_file()]
            if not gts:
                continue
            if not (folder / "img").is_dir():
                raise DatasetError(
                    f"otb: {folder} has {gts[0][1].name} but no img/ folder with the frames "
                    f"(expected {folder / 'img' / '0001.jpg'}; it holds: {listing(folder)})"
                )
            numbered = sorted((int(k), p) for k, p in gts if k is not None)
            plain = [p for k, p in gts if k is None]
            if len(numbered) >= 2:
                for k, p in numbered:
                    self._entries[f"{folder.name}.{k}"] = (folder, p)
            elif plain:
                self._entries[folder.name] = (folder, plain[0])
            else:
                self._entries[folder.name] = (folder, numbered[0][1])
        if not self._entries:
            raise DatasetError(f"otb: no sequences under {root} ({describe(root)}); expected {expected}")
        if version is None:
            names = list(self._entries)
        else:
            key = str(version).lower().replace("-", "").replace("_", "")
            if key not in _VERSIONS:
                raise ValueError(f"otb version must be None, 'otb2013' or 'otb2015', got {version!r}")
            listed = _VERSIONS[key]
            missing = [n for n in listed if n not in self._entries]
            if missing and not allow_missing:
                raise DatasetError(
                    f"otb: {len(missing)} of the {len(listed)} sequences of {version} are missing under {root}: "
                    f"{', '.join(missing[:10])}{', ...' if len(missing) > 10 else ''} "
                    "(pass allow_missing=True to use the ones present)"
                )
            names = [n for n in listed if n in self._entries]
        super().__init__(root, names)
        self.version = version
        if attributes is not None and not isinstance(attributes, dict):
            att_dir = Path(attributes)
            if not att_dir.is_dir():
                raise DatasetError(f"otb: attributes= must be a dict or a folder of <Seq>.txt flag files; {att_dir}: {describe(att_dir)}")
        self.attributes = attributes

    def _attributes(self, name: str, folder: Path) -> list[str]:
        if self.attributes is None:
            return []
        if isinstance(self.attributes, dict):
            return list(self.attributes.get(name, self.attributes.get(folder.name, [])))
        f = Path(self.attributes) / f"{folder.name}.txt"
        if not f.is_file():
            return []
        flags = read_table(f, len(OTB_ATTRIBUTES), allow_nan=False)
        if len(flags) != 1 or not np.isin(flags, (0, 1)).all():
            raise DatasetError(f"{f}: expected one line of {len(OTB_ATTRIBUTES)} 0/1 flags ({', '.join(OTB_ATTRIBUTES)})")
        return [a for a, v in zip(OTB_ATTRIBUTES, flags[0]) if v]

    def _load(self, name: str) -> Sequence:
        folder, gt = self._entries[name]
        boxes = read_boxes(gt, one_based=self.one_based)
        images = list_images(folder / "img")
        where = f"otb sequence {name!r} ({folder / 'img'})"
        if not images:
            raise DatasetError(f"{where}: no images ({describe(folder / 'img')})")
        rng = self.frame_ranges.get(folder.name)
        meta = {"folder": str(folder), "annotation_file": str(gt)}
        if rng is not None:
            images = select_frames(images, rng[0], rng[1], where)
            meta["frame_range"] = rng
        if len(images) != len(boxes):
            raise DatasetError(
                f"{where}: {len(boxes)} annotation rows in {gt.name} but {len(images)} images"
                + (f" in the range {rng[0]}-{rng[1]}" if rng else "")
                + " (OTB sequences with a partial range need an entry in frame_ranges)"
            )
        return Sequence(name, ImageFolderFrames(images, fps=30), boxes, dataset=self.dataset,
                        attributes=self._attributes(name, folder), meta=meta)


class TC128Dataset(SequenceDataset):
    """Temple-Color-128: ``root/<seq>/img/0001.jpg``, ``root/<seq>/<seq>_gt.txt`` and the frame range
    ``root/<seq>/<seq>_frames.txt`` (``start,end``, 1-based inclusive).  1-based coordinates."""

    dataset = "tc128"
    one_based = True

    def __init__(self, root):
        expected = "<root>/<seq>/<seq>_gt.txt, <root>/<seq>/<seq>_frames.txt and <root>/<seq>/img/0001.jpg"
        root = require_root(root, "tc128", expected)
        names = []
        for folder in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name.lower()):
            gt = folder / f"{folder.name}_gt.txt"
            if not gt.is_file():
                continue
            require_file(folder / f"{folder.name}_frames.txt", "tc128", f"the frame range of {folder.name}")
            if not (folder / "img").is_dir():
                raise DatasetError(f"tc128: {folder} has {gt.name} but no img/ folder ({listing(folder)})")
            names.append(folder.name)
        if not names:
            raise DatasetError(f"tc128: no sequences under {root} ({describe(root)}); expected {expected}")
        super().__init__(root, names)

    def _load(self, name: str) -> Sequence:
        folder = self.root / name
        boxes = read_boxes(folder / f"{name}_gt.txt", one_based=self.one_based)
        rng_file = folder / f"{name}_frames.txt"
        rng = read_table(rng_file, 2, allow_nan=False)
        if len(rng) != 1 or (rng[0] != np.round(rng[0])).any():
            raise DatasetError(f"{rng_file}: expected one line 'start,end' of frame numbers")
        start, end = int(rng[0, 0]), int(rng[0, 1])
        where = f"tc128 sequence {name!r}"
        images = select_frames(list_images(folder / "img"), start, end, where)
        if len(images) != len(boxes):
            raise DatasetError(f"{where}: {len(boxes)} annotation rows but the range {start}-{end} has {len(images)} frames")
        return Sequence(name, ImageFolderFrames(images), boxes, dataset=self.dataset,
                        meta={"folder": str(folder), "frame_range": (start, end)})

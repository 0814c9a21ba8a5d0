"""ILSVRC2015-VID (ImageNet video object detection) in its raw layout, as single-object sequences.

Layout (``root`` is the ``ILSVRC2015`` folder, or a folder holding it)::

    Data/VID/train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000/000000.JPEG
    Annotations/VID/train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000/000000.xml
    Data/VID/val/ILSVRC2015_val_00000000/000000.JPEG
    Annotations/VID/val/ILSVRC2015_val_00000000/000000.xml

Each XML (PASCAL-VOC style, one per frame, frames numbered from 0) lists the frame's objects: ``trackid``
(the object's identity within the snippet), ``name`` (WordNet id, one of :data:`VID_CLASSES`),
``bndbox`` (``xmin, ymin, xmax, ymax``), ``occluded`` and ``generated`` (0/1).

**Box convention.**  The coordinates are 0-based pixel indices and ``xmax``/``ymax`` are *inclusive*: the
official devkit's evaluation (``eval_vid_detection.m``) computes box widths as ``xmax - xmin + 1``.  The
default ``corners="inclusive"`` therefore gives ``x = xmin, w = xmax - xmin + 1``.  Many tracking code
bases (SiamFC curation, pysot) use ``w = xmax - xmin`` instead: pass ``corners="exclusive"`` to match them.

One sequence per (snippet, trackid), named ``<snippet>.<trackid>``, spanning the track's first to last
annotated frame; frames in between where the track is not annotated (out of view, occluded away) have NaN
boxes.  Per-frame tags ``occluded`` and ``generated`` are kept (False where the track is absent).

Opening the train split parses about a million XML files: pass ``cache="vid_train_index.json"`` to write
the parsed index once and reuse it (it is rebuilt if it was made for another folder).

The *curated* layout of the SiamFC code (pre-cropped ``*.crop.x.jpg`` with an ``imdb_video.mat``) is not
supported: its crops do not store the target size (that lives in a MATLAB file), so no boxes can be
read from it.  Use the raw layout.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from gradtrack.io.frames import natural_key

from ..sequence import DatasetError, Sequence, SequenceDataset
from ._common import describe, listing, require_root
from .annotations import AnnotationError
from .masks import frames_by_stem

__all__ = ["VIDDataset", "VID_CLASSES", "parse_vid_xml"]

#: the 30 ILSVRC2015-VID classes: WordNet id -> name
VID_CLASSES: dict[str, str] = {
    "n02691156": "airplane", "n02419796": "antelope", "n02131653": "bear", "n02834778": "bicycle",
    "n01503061": "bird", "n02924116": "bus", "n02958343": "car", "n02402425": "cattle", "n02084071": "dog",
    "n02121808": "domestic_cat", "n02503517": "elephant", "n02118333": "fox", "n02510455": "giant_panda",
    "n02342885": "hamster", "n02374451": "horse", "n02129165": "lion", "n01674464": "lizard",
    "n02484322": "monkey", "n03790512": "motorcycle", "n02324045": "rabbit", "n02509815": "red_panda",
    "n02411705": "sheep", "n01726692": "snake", "n02355227": "squirrel", "n02129604": "tiger",
    "n04468005": "train", "n01662784": "turtle", "n04530566": "watercraft", "n02062744": "whale",
    "n02391049": "zebra",
}

_INDEX_VERSION = 1


def _text(elem, tag: str, where: str, *, required: bool = True, default=None) -> str | None:
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise AnnotationError(f"{where}: missing <{tag}>")
        return default
    return child.text.strip()


def _num(text: str, tag: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise AnnotationError(f"{where}: <{tag}> is not a number: {text!r}") from None
    if not np.isfinite(v):
        raise AnnotationError(f"{where}: <{tag}> is not finite: {text!r}")
    return v


def _flag(elem, tag: str, where: str) -> bool:
    t = _text(elem, tag, where, required=False, default="0")
    if t not in ("0", "1"):
        raise AnnotationError(f"{where}: <{tag}> must be 0 or 1, found {t!r}")
    return t == "1"


def parse_vid_xml(path) -> dict:
    """One VID frame annotation: ``{"size": [w, h] or None, "objects": [{"trackid", "wnid", "corners":
    [xmin, ymin, xmax, ymax], "occluded", "generated"}]}`` (corners as stored, nothing converted)."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise AnnotationError(f"{p}:{line}: malformed XML (column {col}): {exc.msg if hasattr(exc, 'msg') else exc}") from None
    except OSError as exc:
        raise AnnotationError(f"{p}: cannot read ({exc.strerror})") from None
    if root.tag != "annotation":
        raise AnnotationError(f"{p}: the root element is <{root.tag}>, expected <annotation>")
    size = None
    s = root.find("size")
    if s is not None:
        w = _num(_text(s, "width", f"{p}: <size>"), "width", str(p))
        h = _num(_text(s, "height", f"{p}: <size>"), "height", str(p))
        size = [int(w), int(h)]
    objects = []
    seen = set()
    for k, obj in enumerate(root.findall("object")):
        where = f"{p}: <object> {k + 1}"
        tid_text = _text(obj, "trackid", where)
        try:
            tid = int(tid_text)
        except ValueError:
            raise AnnotationError(f"{where}: <trackid> must be an integer, found {tid_text!r}") from None
        where = f"{p}: <object> {k + 1} (trackid {tid})"
        if tid in seen:
            raise AnnotationError(f"{where}: trackid {tid} appears twice in the frame")
        seen.add(tid)
        wnid = _text(obj, "name", where)
        bb = obj.find("bndbox")
        if bb is None:
            raise AnnotationError(f"{where}: missing <bndbox>")
        c = [_num(_text(bb, t, where), t, where) for t in ("xmin", "ymin", "xmax", "ymax")]
        if c[2] < c[0] or c[3] < c[1]:
            raise AnnotationError(f"{where}: <bndbox> has xmax < xmin or ymax < ymin: {c}")
        objects.append({"trackid": tid, "wnid": wnid, "corners": c,
                        "occluded": _flag(obj, "occluded", where), "generated": _flag(obj, "generated", where)})
    return {"size": size, "objects": objects}


def _looks_curated(root: Path) -> bool:
    """Whether a ``*.crop.x.jpg`` file lies within a few folder levels of ``root`` (cheap, bounded scan)."""
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if any(f.endswith(".crop.x.jpg") for f in filenames):
            return True
        seen += 1
        if seen > 50:
            return False
        if len(Path(dirpath).relative_to(root).parts) >= 5:
            dirnames[:] = []
    return False


def _snippet_dirs(ann_base: Path) -> list[Path]:
    """Folders under ``ann_base`` (at depth 1 or 2) that hold XML files, in natural order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(ann_base):
        depth = len(Path(dirpath).relative_to(ann_base).parts)
        if any(f.endswith(".xml") for f in filenames):
            out.append(Path(dirpath))
        if depth >= 2:
            dirnames[:] = []
        dirnames.sort(key=natural_key)
    return sorted(out, key=lambda q: natural_key(str(q.relative_to(ann_base))))


def _index_snippet(folder: Path) -> dict:
    """Parse every XML of a snippet: ``{"n": frames, "size": [w, h], "tracks": {tid: {...}}}``."""
    xmls = sorted((q for q in folder.iterdir() if q.suffix == ".xml"), key=lambda q: natural_key(q.name))
    tracks: dict[str, dict] = {}
    size = None
    for i, x in enumerate(xmls):
        if not x.stem.isdigit() or int(x.stem) != i:
            raise AnnotationError(
                f"{x}: frame annotations must be numbered 000000.xml, 000001.xml, ... without gaps; "
                f"this is file {i + 1} of {folder} (expected {i:06d}.xml)"
            )
        ann = parse_vid_xml(x)
        if ann["size"] is not None:
            if size is None:
                size = ann["size"]
            elif ann["size"] != size:
                raise AnnotationError(f"{x}: <size> {ann['size']} differs from {size} of the snippet's first frame")
        for o in ann["objects"]:
            t = tracks.setdefault(str(o["trackid"]), {"wnid": o["wnid"], "frames": [], "corners": [],
                                                      "occluded": [], "generated": []})
            t["frames"].append(i)
            t["corners"].append(o["corners"])
            t["occluded"].append(o["occluded"])
            t["generated"].append(o["generated"])
    return {"n": len(xmls), "size": size, "tracks": tracks}


class VIDDataset(SequenceDataset):
    """ILSVRC2015-VID, raw layout: one sequence per (snippet, trackid), named ``<snippet>.<trackid>``.

    Args:
        root: the ``ILSVRC2015`` folder (holding ``Data/`` and ``Annotations/``) or its parent.
        subset: ``"train"`` or ``"val"``.
        corners: ``"inclusive"`` (default, the devkit's ``w = xmax - xmin + 1``) or ``"exclusive"``.
        min_frames: skip tracks annotated in fewer frames than this.
        cache: a JSON file for the parsed annotation index (read if valid for this folder, else written).
    """

    dataset = "vid"

    def __init__(self, root, subset: str = "train", *, corners: str = "inclusive", min_frames: int = 1, cache=None):
        expected = (f"<root>/Data/VID/{subset}/<snippet>/000000.JPEG and "
                    f"<root>/Annotations/VID/{subset}/<snippet>/000000.xml (train snippets sit in batch folders "
                    "ILSVRC2015_VID_train_000k/)")
        root = require_root(root, "vid", expected)
        if subset not in ("train", "val"):
            raise ValueError(f"vid subset must be 'train' or 'val', got {subset!r}")
        if corners not in ("inclusive", "exclusive"):
            raise ValueError(f"corners must be 'inclusive' or 'exclusive', got {corners!r}")
        if not (root / "Annotations").is_dir() and (root / "ILSVRC2015" / "Annotations").is_dir():
            root = root / "ILSVRC2015"
        self.ann_base = root / "Annotations" / "VID" / subset
        self.data_base = root / "Data" / "VID" / subset
        for d in (self.ann_base, self.data_base):
            if not d.is_dir():
                hint = ""
                if _looks_curated(root):
                    hint = (" (this looks like the curated SiamFC layout of *.crop.x.jpg crops, which is not "
                            "supported: it does not store the target boxes; use the raw ILSVRC2015 download)")
                raise DatasetError(f"vid: expected the folder {d}, but {describe(d)}{hint}; expected {expected}")
        self.subset = subset
        self.corners = corners
        index = self._read_cache(cache)
        if index is None:
            snippets = _snippet_dirs(self.ann_base)
            if not snippets:
                raise DatasetError(f"vid: no snippet folder with XML files under {self.ann_base} "
                                   f"({listing(self.ann_base)}); expected {expected}")
            index = {str(s.relative_to(self.ann_base).as_posix()): _index_snippet(s) for s in snippets}
            if cache is not None:
                tmp = Path(cache).with_suffix(".tmp")
                tmp.write_text(json.dumps({"version": _INDEX_VERSION, "annotations": str(self.ann_base.resolve()),
                                           "snippets": index}))
                os.replace(tmp, cache)
        self._index = index
        self._tracks: dict[str, tuple[str, str]] = {}
        for rel, snip in index.items():
            base = rel.rsplit("/", 1)[-1]
            for tid in sorted(snip["tracks"], key=int):
                if len(snip["tracks"][tid]["frames"]) < min_frames:
                    continue
                name = f"{base}.{tid}"
                if name in self._tracks:
                    raise DatasetError(f"vid: snippet {base!r} found twice under {self.ann_base}: "
                                       f"{self._tracks[name][0]} and {rel}")
                self._tracks[name] = (rel, tid)
        if not self._tracks:
            raise DatasetError(f"vid: no track under {self.ann_base} has at least {min_frames} annotated frames")
        super().__init__(root, list(self._tracks))

    def _read_cache(self, cache):
        if cache is None or not Path(cache).is_file():
            return None
        try:
            data = json.loads(Path(cache).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # unreadable cache: rebuilt and overwritten
        if (not isinstance(data, dict) or data.get("version") != _INDEX_VERSION
                or data.get("annotations") != str(self.ann_base.resolve()) or not isinstance(data.get("snippets"), dict)):
            return None
        return data["snippets"]

    def _load(self, name: str) -> Sequence:
        rel, tid = self._tracks[name]
        snip = self._index[rel]
        t = snip["tracks"][tid]
        frames_idx = np.asarray(t["frames"], dtype=np.int64)
        i0, i1 = int(frames_idx[0]), int(frames_idx[-1]) + 1
        n = i1 - i0
        c = np.asarray(t["corners"], dtype=np.float64)
        extra = 1.0 if self.corners == "inclusive" else 0.0
        boxes = np.full((n, 4), np.nan)
        boxes[frames_idx - i0] = np.concatenate([c[:, :2], c[:, 2:] - c[:, :2] + extra], axis=1)
        tags = {}
        for key in ("occluded", "generated"):
            flags = np.zeros(n, dtype=bool)
            flags[frames_idx - i0] = np.asarray(t[key], dtype=bool)
            tags[key] = flags
        stems = [f"{i:06d}" for i in range(i0, i1)]
        frames = frames_by_stem(stems, self.data_base / rel, f"vid sequence {name!r}")
        if snip["size"] is not None and tuple(frames.size) != tuple(snip["size"]):
            raise DatasetError(
                f"vid sequence {name!r}: images in {self.data_base / rel} are {frames.size[0]}x{frames.size[1]} but "
                f"the XML <size> in {self.ann_base / rel} says {snip['size'][0]}x{snip['size'][1]}"
            )
        meta = {"snippet": rel, "trackid": int(tid), "wnid": t["wnid"], "object_class": VID_CLASSES.get(t["wnid"], t["wnid"]),
                "first_frame": i0, "subset": self.subset, "folder": str(self.data_base / rel)}
        return Sequence(name, frames, boxes, dataset=self.dataset, tags=tags, meta=meta)

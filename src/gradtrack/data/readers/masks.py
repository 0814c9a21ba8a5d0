"""Mask datasets for SiamMLG training: YouTube-VOS, DAVIS 2016/2017 and COCO instances.

Every reader returns :class:`~gradtrack.data.masks.MaskSequence` objects (one object each): frames, boxes
derived from the masks (tight 0-based ``x, y, w, h``, NaN where the object is not visible or the frame
has no annotation) and ``masks[i]`` -> ``H x W`` bool, or ``None`` for a frame without an annotation file.

Layouts
-------
* **YouTube-VOS** (2018/2019): ``<root>/train/JPEGImages/<video>/<%05d>.jpg``,
  ``<root>/train/Annotations/<video>/<%05d>.png`` (palette PNGs whose palette *index* is the object id,
  0 = background) and ``<root>/train/meta.json`` (``{"videos": {<video>: {"objects": {<id>: {"category":
  ..., "frames": ["00000", "00005", ...]}}}}}``).  Annotations exist every 5th frame (6 fps).  One
  sequence per (video, object), named ``<video>.<id>``, over the annotated frames (those with a PNG) from
  the object's first to its last visible frame; ``JPEGImages`` may hold only those frames (the standard
  download) or all of them (``train_all_frames``).
* **DAVIS**: ``<root>/JPEGImages/480p/<seq>/00000.jpg``, ``<root>/Annotations/480p/<seq>/00000.png``,
  ``<root>/ImageSets/2017/{train,val}.txt``.  DAVIS 2017 PNGs are palette images, index = object id,
  255 = void (ignored); DAVIS 2016 PNGs are binary (0/255) for a single object (id 1).  The objects of a
  sequence are those of its first annotation (the DAVIS convention); a frame without PNG (test-dev
  beyond the first frame) has mask ``None`` and a NaN box.  One sequence per object: ``<seq>.<id>``.
* **COCO** (instances): ``<root>/annotations/instances_<subset>.json`` and ``<root>/<subset>/<file_name>``.
  One single-frame sequence per instance, named ``<image stem>.<annotation id>``, for still-image pair
  training.  Boxes are the annotation's ``bbox`` (COCO's own ``x, y, w, h``, 0-based continuous
  coordinates).  Masks come from polygons (rasterised here: a pixel belongs to the object when its centre
  ``(c + 0.5, r + 0.5)`` lies inside a polygon, even-odd rule, centres on a left/top edge inside and on a
  right/bottom edge outside, union of the polygons).  Checked against pycocotools 2.0: compressed and
  uncompressed RLE decode identically; polygon masks agree except for about 3% of the pixels, all on the
  boundary (pycocotools rasterises an upsampled outline), which is well below annotation noise. or RLE (uncompressed ``counts`` lists and compressed
  ``counts`` strings, decoded here, column-major as COCO stores them).  Filters: ``min_area`` (the
  annotation's ``area``), ``include_crowd`` (``iscrowd`` annotations are skipped by default), ``min_size``
  (boxes narrower or lower than this are skipped) and ``categories`` (names or ids).

Palette PNGs are read with Pillow (installed with matplotlib): OpenCV expands a palette to colours even
with ``IMREAD_UNCHANGED``, which loses the object ids.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from gradtrack.io.frames import FrameError, ImageFolderFrames, natural_key, read_image

from ..masks import LoadedMasks, MaskSequence, mask_to_box
from ..sequence import DatasetError, SequenceDataset
from ._common import describe, list_images, require_file, require_root
from .annotations import AnnotationError, iter_lines

__all__ = [
    "YouTubeVOSDataset", "DAVISDataset", "COCODataset", "read_label_png", "read_json", "decode_rle",
    "rle_string_to_counts", "polygons_to_mask", "coco_segmentation_to_mask", "object_mask", "frames_by_stem",
]


# ------------------------------------------------------------------------------------------------ decoders


def read_label_png(path, *, void: int | None = 255) -> np.ndarray:
    """An annotation PNG as an ``H x W`` uint8 array of object ids (0 = background).

    Palette (``P``) images give their palette indices; ``void`` (255 by default) becomes 0.  Grayscale
    (``L``/``1``) images are taken as ids, except binary 0/255 masks (DAVIS 2016), which become 0/1.
    Colour images cannot be turned into ids and raise :class:`AnnotationError`.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise AnnotationError(f"annotation image not found: {p}")
    try:
        with Image.open(p) as im:
            mode = im.mode
            if mode in ("P", "L"):
                arr = np.array(im)
            elif mode == "1":
                arr = np.array(im).astype(np.uint8)
            else:
                raise AnnotationError(
                    f"{p}: an object-id annotation must be a palette (P) or grayscale (L) PNG, found mode {mode}; "
                    "a colour PNG has lost its ids (save the index image, not its colours)"
                )
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise AnnotationError(f"{p}: not a readable PNG ({exc})") from None
    if arr.ndim != 2:
        raise AnnotationError(f"{p}: expected a single-channel id image, got shape {arr.shape}")
    arr = arr.astype(np.uint8, copy=False)
    if mode == "P":
        if void is not None:
            arr = np.where(arr == void, 0, arr).astype(np.uint8)
    else:
        vals = np.unique(arr)
        if vals.size and vals.max() == 255 and set(vals.tolist()) <= {0, 255}:
            arr = (arr == 255).astype(np.uint8)
    return arr


def object_mask(path, object_id: int) -> np.ndarray:
    """``H x W`` bool: the pixels of ``object_id`` in the annotation PNG ``path`` (picklable loader)."""
    return read_label_png(path) == int(object_id)


def read_json(path) -> object:
    """A JSON file, with :class:`AnnotationError` naming ``file:line:column`` when it is malformed."""
    p = Path(path)
    if not p.is_file():
        raise AnnotationError(f"annotation file not found: {p}")
    try:
        with open(p, "rb") as f:
            return json.loads(f.read().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{p} is not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{p}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None


def rle_string_to_counts(s: str, where: str = "") -> list[int]:
    """The run lengths of a COCO compressed RLE string.

    Each run is coded in 5-bit groups, least significant first, as characters ``48 + group``; bit 0x20
    of a group means "more groups follow", bit 0x10 of the last group is the sign.  From the fourth run
    on, the stored value is the difference to the run two places before.
    """
    if not isinstance(s, str):
        raise AnnotationError(f"{where}: compressed RLE counts must be a string, got {type(s).__name__}")
    counts: list[int] = []
    p, n = 0, len(s)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise AnnotationError(f"{where}: compressed RLE string ends inside a value: {s[-20:]!r}")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise AnnotationError(f"{where}: invalid character {s[p]!r} at {p} of a compressed RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def decode_rle(counts, height: int, width: int, where: str = "") -> np.ndarray:
    """``H x W`` bool from COCO run lengths: alternating 0- and 1-runs (starting with 0) in column-major
    order (down the first column, then the next).  ``counts`` is a list of ints or a compressed string."""
    if isinstance(counts, (str, bytes)):
        counts = rle_string_to_counts(counts.decode("ascii") if isinstance(counts, bytes) else counts, where)
    try:
        runs = np.asarray([int(c) for c in counts], dtype=np.int64)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: RLE counts must be integers") from None
    h, w = int(height), int(width)
    if h <= 0 or w <= 0:
        raise AnnotationError(f"{where}: RLE size must be positive, got {h} x {w}")
    if (runs < 0).any():
        raise AnnotationError(f"{where}: negative RLE run length {int(runs[runs < 0][0])}")
    total = int(runs.sum())
    if total != h * w:
        raise AnnotationError(f"{where}: RLE runs cover {total} pixels but the mask is {h} x {w} = {h * w}")
    values = (np.arange(len(runs)) % 2).astype(bool)
    flat = np.repeat(values, runs)
    return flat.reshape(w, h).T.copy()


def _polygon_mask(v: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pixels whose centre lies inside one polygon (flat ``x1, y1, x2, y2, ...``), even-odd rule."""
    out = np.zeros((h, w), dtype=bool)
    xs, ys = v[0::2], v[1::2]
    x2, y2 = np.roll(xs, -1), np.roll(ys, -1)
    r0 = max(int(np.floor(ys.min() - 0.5)), 0)
    r1 = min(int(np.ceil(ys.max() - 0.5)), h - 1)
    centres_x = np.arange(w) + 0.5
    for r in range(r0, r1 + 1):
        yc = r + 0.5
        cross = (ys <= yc) != (y2 <= yc)  # edges straddling the row's centre line (half-open: no double count)
        if not cross.any():
            continue
        t = (yc - ys[cross]) / (y2[cross] - ys[cross])
        xi = np.sort(xs[cross] + t * (x2[cross] - xs[cross]))
        # a centre is inside when an odd number of crossings lie at or left of it (a centre exactly on a left
        # edge is inside, on a right edge outside: half-open like the rows, so polygons sharing an edge
        # do not overlap)
        out[r] = (np.searchsorted(xi, centres_x, side="right") % 2).astype(bool)
    return out


def polygons_to_mask(polygons, height: int, width: int, where: str = "") -> np.ndarray:
    """``H x W`` bool: pixels whose centre ``(c + 0.5, r + 0.5)`` lies inside any of the polygons (flat
    ``[x1, y1, x2, y2, ...]`` lists in continuous image coordinates; even-odd rule per polygon, union over
    polygons)."""
    h, w = int(height), int(width)
    if not isinstance(polygons, (list, tuple)):
        raise AnnotationError(f"{where}: polygon segmentation must be a list of coordinate lists")
    out = np.zeros((h, w), dtype=bool)
    for k, poly in enumerate(polygons):
        try:
            v = np.asarray(poly, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            raise AnnotationError(f"{where}: polygon {k} holds non-numbers") from None
        if len(v) < 6 or len(v) % 2:
            raise AnnotationError(f"{where}: polygon {k} needs an even number >= 6 of coordinates, got {len(v)}")
        if not np.isfinite(v).all():
            raise AnnotationError(f"{where}: polygon {k} has a non-finite coordinate")
        out |= _polygon_mask(v, h, w)
    return out


def coco_segmentation_to_mask(seg, height: int, width: int, where: str = "") -> np.ndarray:
    """``H x W`` bool of a COCO ``segmentation``: a polygon list, or an RLE dict ``{"size": [h, w],
    "counts": [...] or "..."}``."""
    if isinstance(seg, list):
        return polygons_to_mask(seg, height, width, where)
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            raise AnnotationError(f"{where}: RLE segmentation needs 'counts' and 'size', found {sorted(seg)}")
        size = seg["size"]
        if not (isinstance(size, list) and len(size) == 2):
            raise AnnotationError(f"{where}: RLE 'size' must be [height, width], got {size!r}")
        if [int(size[0]), int(size[1])] != [int(height), int(width)]:
            raise AnnotationError(f"{where}: RLE size {size} differs from the image's {height} x {width}")
        return decode_rle(seg["counts"], size[0], size[1], where)
    raise AnnotationError(f"{where}: segmentation must be a polygon list or an RLE dict, got {type(seg).__name__}")


def _coco_mask(args) -> np.ndarray:
    seg, h, w, where = args
    return coco_segmentation_to_mask(seg, h, w, where)


def _boxes_from_pngs(pngs: list[Path | None], object_ids, size: tuple[int, int] | None = None,
                     what: str = "") -> dict[int, np.ndarray]:
    """Per object id: ``N x 4`` boxes from label PNGs (NaN where the object is absent or there is no PNG).

    ``size`` (``(w, h)`` of the frames), when given, is checked against every PNG.
    """
    out = {int(o): np.full((len(pngs), 4), np.nan) for o in object_ids}
    for i, png in enumerate(pngs):
        if png is None:
            continue
        labels = read_label_png(png)
        if size is not None and (labels.shape[1], labels.shape[0]) != tuple(size):
            raise DatasetError(
                f"{what}: annotation {png} is {labels.shape[1]}x{labels.shape[0]} but the frames are {size[0]}x{size[1]}"
            )
        for o in out:
            out[o][i] = mask_to_box(labels == o)
    return out


def _png_files(folder: Path) -> list[Path]:
    return [p for p in list_images(folder) if p.suffix.lower() == ".png"]


def _first_image_size(folder: Path) -> tuple[int, int] | None:
    """``(w, h)`` of the first image of a folder (``None`` if it has none)."""
    images = list_images(folder)
    if not images:
        return None
    img = read_image(images[0])
    return int(img.shape[1]), int(img.shape[0])


def frames_by_stem(stems: list[str], img_dir: Path, what: str, fps=None) -> ImageFolderFrames:
    """The images ``img_dir/<stem>.jpg`` (or another image extension) of the given frame stems."""
    by_stem = {p.stem: p for p in list_images(img_dir)}
    missing = [s for s in stems if s not in by_stem]
    if missing:
        raise DatasetError(
            f"{what}: {len(missing)} annotated frame(s) have no image in {img_dir}: {', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''} ({describe(img_dir)})"
        )
    return ImageFolderFrames([by_stem[s] for s in stems], fps=fps)


# ------------------------------------------------------------------------------------------------ YouTube-VOS


class YouTubeVOSDataset(SequenceDataset):
    """YouTube-VOS: one :class:`MaskSequence` per (video, object), named ``<video>.<object id>``.

    Args:
        root: the dataset folder holding ``<subset>/`` (or the subset folder itself).
        subset: ``"train"`` (default) or ``"valid"`` (whose annotations are first-frame only).
    """

    dataset = "youtube_vos"
    fps = 6.0  # 30 fps videos annotated every 5th frame

    def __init__(self, root, subset: str = "train"):
        expected = (f"<root>/{subset}/meta.json, <root>/{subset}/JPEGImages/<video>/00000.jpg and "
                    f"<root>/{subset}/Annotations/<video>/00000.png (palette PNG, index = object id)")
        root = require_root(root, "youtube_vos", expected)
        if (root / subset / "meta.json").is_file():
            split_dir = root / subset
        elif (root / "meta.json").is_file() and (root / "Annotations").is_dir():
            split_dir = root
        else:
            raise DatasetError(
                f"youtube_vos: no {subset}/meta.json under {root} ({describe(root)}); expected {expected}"
            )
        self.subset = subset
        self.split_dir = split_dir
        meta_path = split_dir / "meta.json"
        meta = read_json(meta_path)
        videos = meta.get("videos") if isinstance(meta, dict) else None
        if not isinstance(videos, dict):
            raise AnnotationError(f"{meta_path}: expected {{'videos': {{<video>: {{'objects': ...}}}}}} at the top")
        for d in ("JPEGImages", "Annotations"):
            if not (split_dir / d).is_dir():
                raise DatasetError(f"youtube_vos: expected the folder {split_dir / d}, but {describe(split_dir / d)}")
        self._objects: dict[str, tuple[str, int, dict]] = {}
        self._video_objects: dict[str, list[int]] = {}
        missing = []
        for vid in sorted(videos, key=natural_key):
            entry = videos[vid]
            objs = entry.get("objects") if isinstance(entry, dict) else None
            if not isinstance(objs, dict):
                raise AnnotationError(f"{meta_path}: video {vid!r} has no 'objects' mapping")
            if not (split_dir / "Annotations" / vid).is_dir():
                missing.append(vid)
            ids = []
            for key, obj in objs.items():
                try:
                    oid = int(key)
                except ValueError:
                    raise AnnotationError(f"{meta_path}: video {vid!r}: object id {key!r} is not an integer") from None
                if not 1 <= oid <= 254:
                    raise AnnotationError(f"{meta_path}: video {vid!r}: object id {oid} outside 1..254")
                if not isinstance(obj, dict) or not isinstance(obj.get("frames"), list) or not obj["frames"]:
                    raise AnnotationError(f"{meta_path}: video {vid!r} object {key}: expected a non-empty 'frames' list")
                ids.append(oid)
                self._objects[f"{vid}.{oid}"] = (vid, oid, obj)
            self._video_objects[vid] = sorted(ids)
        if missing:
            raise DatasetError(
                f"youtube_vos: {len(missing)} video(s) of {meta_path} have no folder in {split_dir / 'Annotations'}: "
                f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}"
            )
        if not self._objects:
            raise DatasetError(f"youtube_vos: {meta_path} lists no objects")
        self._videos: dict[str, tuple[list[Path], dict[int, np.ndarray]]] = {}
        super().__init__(root, list(self._objects))

    def _video(self, vid: str):
        """Annotation PNGs of a video and the boxes of all its objects (each PNG decoded once)."""
        if vid not in self._videos:
            ann_dir = self.split_dir / "Annotations" / vid
            pngs = _png_files(ann_dir)
            if not pngs:
                raise DatasetError(f"youtube_vos video {vid!r}: no PNG annotations in {ann_dir} ({describe(ann_dir)})")
            size = _first_image_size(self.split_dir / "JPEGImages" / vid)
            boxes = _boxes_from_pngs(pngs, self._video_objects[vid], size, f"youtube_vos video {vid!r}")
            self._videos = {vid: (pngs, boxes)}  # keep one video: sequences of a video are loaded together
        return self._videos[vid]

    def _load(self, name: str) -> MaskSequence:
        vid, oid, obj = self._objects[name]
        pngs, boxes = self._video(vid)
        b = boxes[oid]
        visible = np.flatnonzero(~np.isnan(b).any(1))
        if visible.size == 0:
            raise DatasetError(
                f"youtube_vos sequence {name!r}: {self.split_dir / 'meta.json'} lists object {oid} in video {vid!r} "
                f"but no annotation PNG in {self.split_dir / 'Annotations' / vid} has pixels of id {oid}"
            )
        i0, i1 = int(visible[0]), int(visible[-1]) + 1
        keys = pngs[i0:i1]
        frames = frames_by_stem([p.stem for p in keys], self.split_dir / "JPEGImages" / vid,
                               f"youtube_vos sequence {name!r}", fps=self.fps)
        meta = {"video": vid, "object_id": oid, "object_class": obj.get("category"),
                "frame_names": [p.stem for p in keys], "subset": self.subset}
        return MaskSequence(name, frames, b[i0:i1].copy(), dataset=self.dataset, meta=meta,
                            masks=LoadedMasks(keys, functools.partial(object_mask, object_id=oid)))


# ------------------------------------------------------------------------------------------------ DAVIS


class DAVISDataset(SequenceDataset):
    """DAVIS 2016/2017: one :class:`MaskSequence` per object of a sequence, named ``<seq>.<object id>``.

    Args:
        root: the folder holding ``JPEGImages/``, ``Annotations/`` and ``ImageSets/``.
        split: ``"train"``, ``"val"`` (the names in ``ImageSets/<year>/<split>.txt``), another list name
            there (``"test-dev"``), or ``None`` (every folder of ``JPEGImages/<resolution>``).
        resolution: ``"480p"`` (default) or ``"Full-Resolution"``.
        year: the ``ImageSets`` folder to read the split from (``"2017"`` or ``"2016"``).
    """

    dataset = "davis"
    fps = 24.0

    def __init__(self, root, split: str | None = "train", *, resolution: str = "480p", year: str | int = "2017"):
        expected = (f"<root>/JPEGImages/{resolution}/<seq>/00000.jpg, <root>/Annotations/{resolution}/<seq>/00000.png "
                    f"and <root>/ImageSets/{year}/<split>.txt")
        root = require_root(root, "davis", expected)
        self.img_root = root / "JPEGImages" / resolution
        self.ann_root = root / "Annotations" / resolution
        for d in (self.img_root, self.ann_root):
            if not d.is_dir():
                raise DatasetError(f"davis: expected the folder {d}, but {describe(d)}; expected {expected}")
        if split is None:
            seqs = sorted((p.name for p in self.img_root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                          key=natural_key)
            if not seqs:
                raise DatasetError(f"davis: no sequence folders in {self.img_root}; expected {expected}")
        else:
            list_file = root / "ImageSets" / str(year) / f"{split}.txt"
            if not list_file.is_file():
                have = sorted(p.stem for p in list_file.parent.glob("*.txt")) if list_file.parent.is_dir() else []
                raise DatasetError(
                    f"davis: split={split!r} needs {list_file} (one sequence name per line), but {describe(list_file)}"
                    + (f"; splits available: {have}" if have else "")
                )
            seqs = []
            for lineno, s in iter_lines(list_file):
                if len(s.split()) != 1 or "/" in s:
                    raise AnnotationError(f"{list_file}:{lineno}: expected one sequence name per line, found {s!r}")
                seqs.append(s)
            if len(set(seqs)) != len(seqs):
                raise AnnotationError(f"{list_file}: a sequence is listed twice")
            if not seqs:
                raise DatasetError(f"davis: {list_file} lists no sequence (empty file)")
        self.split = split
        self._objects: dict[str, tuple[str, int]] = {}
        self._seq_objects: dict[str, list[int]] = {}
        for seq in seqs:
            ann_dir = self.ann_root / seq
            if not (self.img_root / seq).is_dir():
                raise DatasetError(f"davis: sequence {seq!r} has no image folder {self.img_root / seq} ({describe(self.img_root / seq)})")
            pngs = _png_files(ann_dir)
            if not pngs:
                raise DatasetError(f"davis: sequence {seq!r} has no PNG annotation in {ann_dir} ({describe(ann_dir)})")
            ids = [int(v) for v in np.unique(read_label_png(pngs[0])) if v != 0]
            if not ids:
                raise DatasetError(f"davis: the first annotation {pngs[0]} of sequence {seq!r} holds no object (all background)")
            self._seq_objects[seq] = ids
            for oid in ids:
                self._objects[f"{seq}.{oid}"] = (seq, oid)
        self._cache_seq: dict[str, tuple] = {}
        super().__init__(root, list(self._objects))

    def _sequence(self, seq: str):
        if seq not in self._cache_seq:
            img_dir, ann_dir = self.img_root / seq, self.ann_root / seq
            images = list_images(img_dir)
            if not images:
                raise DatasetError(f"davis sequence {seq!r}: no images in {img_dir}")
            by_stem = {p.stem: p for p in _png_files(ann_dir)}
            stems = {p.stem for p in images}
            orphans = sorted(s for s in by_stem if s not in stems)
            if orphans:
                raise DatasetError(
                    f"davis sequence {seq!r}: annotation(s) {', '.join(o + '.png' for o in orphans[:5])} in {ann_dir} "
                    f"have no image in {img_dir}"
                )
            keys = [by_stem.get(p.stem) for p in images]
            frames = ImageFolderFrames(images, fps=self.fps)
            boxes = _boxes_from_pngs(keys, self._seq_objects[seq], frames.size, f"davis sequence {seq!r}")
            self._cache_seq = {seq: (frames, keys, boxes)}
        return self._cache_seq[seq]

    def _load(self, name: str) -> MaskSequence:
        seq, oid = self._objects[name]
        frames, keys, boxes = self._sequence(seq)
        meta = {"sequence": seq, "object_id": oid, "split": self.split, "folder": str(self.img_root / seq)}
        return MaskSequence(name, frames, boxes[oid].copy(), dataset=self.dataset, meta=meta,
                            masks=LoadedMasks(keys, functools.partial(object_mask, object_id=oid)))


# ------------------------------------------------------------------------------------------------ COCO


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


class COCODataset(SequenceDataset):
    """COCO instances as single-frame :class:`MaskSequence` objects, one per kept annotation.

    Args:
        root: the folder holding ``annotations/`` and ``<subset>/``.
        subset: the image folder and annotation name (``train2017``, ``val2017``...).
        annotation_file: another instances JSON (default ``<root>/annotations/instances_<subset>.json``).
        min_area: skip annotations whose ``area`` (mask pixels) is below this.
        min_size: skip annotations whose ``bbox`` is narrower or lower than this (pixels).
        include_crowd: keep ``iscrowd: 1`` annotations (crowd regions; skipped by default).
        categories: keep only these categories (names or ids); ``None`` keeps all.
    """

    dataset = "coco"

    def __init__(self, root, subset: str = "train2017", *, annotation_file=None, min_area: float = 0.0,
                 min_size: float = 1.0, include_crowd: bool = False, categories=None):
        expected = f"<root>/annotations/instances_{subset}.json and <root>/{subset}/<file_name>.jpg"
        root = require_root(root, "coco", expected)
        ann = Path(annotation_file) if annotation_file is not None else root / "annotations" / f"instances_{subset}.json"
        require_file(ann, "coco", f"the instances annotation file ({expected})")
        self.image_dir = root / subset
        if not self.image_dir.is_dir():
            raise DatasetError(f"coco: expected the image folder {self.image_dir}, but {describe(self.image_dir)}")
        self.annotation_file = ann
        data = read_json(ann)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
            raise AnnotationError(f"{ann}: expected a COCO instances file (an object with 'images' and 'annotations' lists)")
        images: dict[int, tuple[str, int, int]] = {}
        for k, im in enumerate(data["images"]):
            if not isinstance(im, dict) or not all(key in im for key in ("id", "file_name", "width", "height")):
                raise AnnotationError(f"{ann}: images[{k}] needs 'id', 'file_name', 'width' and 'height'")
            if not (isinstance(im["width"], int) and isinstance(im["height"], int) and im["width"] > 0 and im["height"] > 0):
                raise AnnotationError(f"{ann}: images[{k}] (id {im['id']}) has an invalid size {im['width']}x{im['height']}")
            images[im["id"]] = (str(im["file_name"]), im["width"], im["height"])
        cats: dict[int, str] = {}
        for k, c in enumerate(data.get("categories") or []):
            if not isinstance(c, dict) or "id" not in c:
                raise AnnotationError(f"{ann}: categories[{k}] needs an 'id'")
            cats[c["id"]] = str(c.get("name", c["id"]))
        keep_cats = None
        if categories is not None:
            wanted = [categories] if isinstance(categories, (str, int)) else list(categories)
            by_name = {v: k for k, v in cats.items()}
            keep_cats = set()
            for c in wanted:
                if c in cats:
                    keep_cats.add(c)
                elif c in by_name:
                    keep_cats.add(by_name[c])
                else:
                    raise ValueError(f"coco: unknown category {c!r}; {ann} has: {', '.join(sorted(by_name)[:20])}")
        self.categories = cats
        self._entries: dict[str, tuple] = {}
        for k, a in enumerate(data["annotations"]):
            where = f"{ann}: annotations[{k}]"
            if not isinstance(a, dict):
                raise AnnotationError(f"{where} is not an object")
            for key in ("id", "image_id", "bbox", "segmentation"):
                if key not in a:
                    raise AnnotationError(f"{where} (id {a.get('id')}) lacks {key!r}")
            where = f"{ann}: annotation id {a['id']}"
            bbox = a["bbox"]
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
                raise AnnotationError(f"{where}: 'bbox' must be [x, y, w, h] numbers, got {bbox!r}")
            if a["image_id"] not in images:
                raise AnnotationError(f"{where}: image_id {a['image_id']} is not in 'images'")
            crowd = a.get("iscrowd", 0)
            if crowd not in (0, 1):
                raise AnnotationError(f"{where}: 'iscrowd' must be 0 or 1, got {crowd!r}")
            area = a.get("area", bbox[2] * bbox[3])
            if not _number(area):
                raise AnnotationError(f"{where}: 'area' must be a number, got {area!r}")
            if crowd and not include_crowd:
                continue
            if area < min_area or bbox[2] < min_size or bbox[3] < min_size:
                continue
            if keep_cats is not None and a.get("category_id") not in keep_cats:
                continue
            file_name, w, h = images[a["image_id"]]
            name = f"{Path(file_name).stem}.{a['id']}"
            if name in self._entries:
                raise AnnotationError(f"{where}: annotation id {a['id']} is used twice for image {file_name}")
            self._entries[name] = (file_name, w, h, [float(v) for v in bbox], a["segmentation"], a.get("category_id"),
                                   float(area), bool(crowd), where)
        if not self._entries:
            raise DatasetError(f"coco: no annotation of {ann} passes the filters (min_area={min_area}, "
                               f"min_size={min_size}, include_crowd={include_crowd}, categories={categories})")
        super().__init__(root, list(self._entries))

    def _load(self, name: str) -> MaskSequence:
        file_name, w, h, bbox, seg, cat, area, crowd, where = self._entries[name]
        path = self.image_dir / file_name
        try:
            frames = ImageFolderFrames([path])
        except FrameError as exc:
            raise DatasetError(f"coco sequence {name!r} ({where}): {exc}") from None
        if frames.size != (w, h):
            raise DatasetError(f"{where}: {path} is {frames.size[0]}x{frames.size[1]} but 'images' says {w}x{h}")
        meta = {"image": str(path), "annotation_id": int(name.rsplit(".", 1)[1]), "category_id": cat,
                "object_class": self.categories.get(cat), "area": area, "iscrowd": crowd}
        return MaskSequence(name, frames, np.array([bbox]), dataset=self.dataset, meta=meta,
                            masks=LoadedMasks([(seg, h, w, where)], _coco_mask))

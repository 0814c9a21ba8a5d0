"""The generic "video + boxes" dataset: every folder under ``root`` (at any depth) that holds
``groundtruth.txt`` and either a video file (``video.mp4`` preferred, else the only video there) or image
frames (in the folder itself or in ``img/``).  Sequences are named by their path relative to ``root``
(``otb/Crossing``).  Symlinked folders are followed; what cannot be used (broken or looping symlinks,
unreadable folders) is listed in ``FolderDataset.skipped`` and reported in one warning.

``groundtruth.txt`` holds one ``x,y,w,h`` per frame (commas, tabs or spaces; ``nan`` rows for absent
targets).  An optional ``meta.json`` is read into ``Sequence.meta``: its ``frames`` count must match the
annotations, ``fps`` is used, ``dataset`` becomes ``Sequence.dataset``.  Coordinates: ``one_based="auto"``
(default) subtracts 1 from x and y when ``meta.json`` says ``"one_based": true`` or its ``annotation``
text says ``1-based``; ``True``/``False`` force it.

``split="train"`` (or any key) keeps the names listed under that key in ``splits.json``, in that order:
the file given as ``splits=``, else ``root/splits.json``, else ``root/../splits.json`` (the layout of
``data/sequences`` + ``data/splits.json``).  Names are folder paths relative to ``root``.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from gradtrack.io.frames import ImageFolderFrames, natural_key

from ..sequence import DatasetError, Sequence, SequenceDataset
from ._common import describe, list_images, list_videos, listing, require_root, video_frames
from .annotations import read_boxes

__all__ = ["FolderDataset", "read_split"]


def read_split(path: Path, split: str) -> list[str]:
    """The names listed under ``split`` in a ``splits.json`` (``{"train": [...], "val": [...]}``)."""
    if not path.is_file():
        raise DatasetError(f"folder dataset: split={split!r} needs the split file {path}, but {describe(path)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object of split name -> list of sequence names")
    if split not in data:
        keys = [k for k, v in data.items() if isinstance(v, list)]
        raise DatasetError(f"{path}: no split {split!r}; it has {', '.join(keys)}")
    names = data[split]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path}: split {split!r} must be a list of sequence names (strings)")
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: split {split!r} lists a sequence twice")
    return names


def _sequence_folders(root: Path, skipped: list) -> list[Path]:
    """Folders under ``root`` (``root`` included) holding ``groundtruth.txt``, in natural order of their paths.

    Symlinked folders are followed (a folder reached twice through links is scanned once); hidden folders
    are ignored.  Broken symlinks, symlink loops and unreadable folders are appended to ``skipped`` as
    ``(path, reason)``."""
    found, seen = [], set()

    def onerror(exc: OSError) -> None:
        skipped.append((str(exc.filename), f"unreadable: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=onerror):
        here = Path(dirpath)
        real = os.path.realpath(dirpath)
        if real in seen:
            skipped.append((dirpath, f"a symlink to {real}, which is already scanned (a loop or a duplicate)"))
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if os.path.islink(here / f) and not (here / f).exists():
                skipped.append((str(here / f), f"broken symlink to {os.readlink(here / f)}"))
        if "groundtruth.txt" in filenames and (here / "groundtruth.txt").is_file():
            found.append(here)
    return sorted(found, key=lambda p: natural_key(p.relative_to(root).as_posix()))


class FolderDataset(SequenceDataset):
    dataset = "folder"

    def __init__(self, root, split: str | None = None, *, splits=None, one_based: bool | str = "auto"):
        expected = "folders <root>/.../<name>/ holding groundtruth.txt and video.mp4 (or another video, or images)"
        root = require_root(root, "folder", expected)
        if one_based not in (True, False, "auto"):
            raise ValueError(f"one_based must be True, False or 'auto', got {one_based!r}")
        self.one_based = one_based
        self._sources: dict[str, tuple[str, Path]] = {}
        #: ``(path, reason)`` of what the scan could not use (broken or looping symlinks, unreadable folders)
        self.skipped: list[tuple[str, str]] = []
        for folder in _sequence_folders(root, self.skipped):
            name = folder.relative_to(root).as_posix() if folder != root else folder.name
            videos = list_videos(folder)
            preferred = [v for v in videos if v.stem == "video"]
            if preferred:
                videos = preferred[:1]
            if len(videos) == 1:
                self._sources[name] = ("video", videos[0])
                continue
            if len(videos) > 1:
                raise DatasetError(
                    f"folder dataset: {folder} holds several videos ({', '.join(v.name for v in videos)}); "
                    "name the one to use video.<ext>"
                )
            for d in (folder, folder / "img"):
                if list_images(d):
                    self._sources[name] = ("images", d)
                    break
            else:
                raise DatasetError(
                    f"folder dataset: {folder} has groundtruth.txt but no video and no images ({listing(folder)})"
                )
        if self.skipped:
            shown = "; ".join(f"{p} ({why})" for p, why in self.skipped[:5])
            more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            warnings.warn(f"folder dataset {root}: skipped {len(self.skipped)} path(s): {shown}{more}", stacklevel=2)
        if not self._sources:
            raise DatasetError(f"folder dataset: no sequence folders under {root} ({describe(root)}); expected {expected}")
        names = list(self._sources)
        self.split = split
        if split is not None:
            if splits is not None:
                split_file = Path(splits)
            else:  # next to the sequences, or one level up (the shipped layout: data/splits.json, data/sequences/)
                split_file = next((p for p in (root / "splits.json", root.parent / "splits.json") if p.is_file()),
                                  root / "splits.json")
            names = read_split(split_file, split)
            unknown = [n for n in names if n not in self._sources]
            if unknown:
                raise DatasetError(
                    f"{split_file}: split {split!r} names {len(unknown)} sequence(s) not found under {root}: "
                    f"{', '.join(unknown[:5])} (names are folder paths relative to the root, e.g. {next(iter(self._sources))})"
                )
        super().__init__(root, names)

    def _load(self, name: str) -> Sequence:
        kind, src = self._sources[name]
        folder = src.parent if kind == "video" else (src.parent if src.name == "img" else src)
        meta = {}
        meta_file = folder / "meta.json"
        if meta_file.is_file():
            try:
                meta = json.loads(meta_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{meta_file}:{exc.lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(meta, dict):
                raise DatasetError(f"{meta_file}: expected a JSON object")
        if self.one_based == "auto":
            flag = meta.get("one_based")
            one_based = bool(flag) if isinstance(flag, bool) else "1-based" in str(meta.get("annotation", "")).lower()
        else:
            one_based = self.one_based
        boxes = read_boxes(folder / "groundtruth.txt", one_based=one_based)
        n = len(boxes)
        if "frames" in meta and meta["frames"] != n:
            raise DatasetError(f"{meta_file}: says {meta['frames']} frames but {folder / 'groundtruth.txt'} has {n} rows")
        fps = meta.get("fps")
        if kind == "video":
            frames = video_frames(src, n, f"video {src}")
        else:
            images = list_images(src)
            if len(images) != n:
                raise DatasetError(f"folder sequence {name!r}: {n} rows in groundtruth.txt but {len(images)} images in {src}")
            frames = ImageFolderFrames(images, fps=fps)
        meta = dict(meta)
        meta.update(folder=str(folder), one_based=one_based)
        return Sequence(name, frames, boxes, dataset=str(meta.get("dataset", "")) or self.dataset, meta=meta)

"""TrackingNet: ``root/TRAIN_<k>/{frames,anno}`` (k = 0..11) and ``root/TEST/{frames,anno}``.

Each chunk holds ``frames/<video>/0.jpg, 1.jpg, ...`` (numbered from 0, not zero-padded: natural order)
and ``anno/<video>.txt``, one ``x,y,w,h`` line per frame.  The boxes are taken as stored, 0-based
(TrackingNet's own toolkit and the common readers use them without any offset).  The TEST chunk gives
only the first frame's box: the other rows are NaN (unannotated, not absent).

Video names are unique across chunks; the sequence name is the video name (the chunk is in
``meta["chunk"]``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gradtrack.io.frames import ImageFolderFrames, natural_key

from ..sequence import DatasetError, Sequence, SequenceDataset
from ._common import describe, list_images, listing, require_root
from .annotations import read_boxes

__all__ = ["TrackingNetDataset"]

_TRAIN = re.compile(r"^TRAIN_(\d+)$")


class TrackingNetDataset(SequenceDataset):
    """Args:
        root: the folder holding ``TRAIN_0 ... TRAIN_11`` and/or ``TEST`` (or one chunk folder itself).
        subset: ``"train"`` (every ``TRAIN_<k>`` found), ``"test"`` (``TEST``) or ``None`` (all chunks).
        chunks: restrict to these chunks (``[0, 1]`` or ``["TRAIN_0", "TEST"]``); missing ones are an error.
    """

    dataset = "trackingnet"
    fps = 30.0

    def __init__(self, root, subset: str | None = "train", *, chunks=None):
        expected = "<root>/TRAIN_<k>/frames/<video>/0.jpg and <root>/TRAIN_<k>/anno/<video>.txt (TEST/ likewise)"
        root = require_root(root, "trackingnet", expected)
        if subset not in (None, "train", "test"):
            raise ValueError(f"trackingnet subset must be 'train', 'test' or None, got {subset!r}")
        if (root / "anno").is_dir() and (root / "frames").is_dir():
            chunk_dirs = [root]  # a chunk folder itself
        else:
            found = [p for p in root.iterdir() if p.is_dir() and (_TRAIN.match(p.name) or p.name == "TEST")]
            found.sort(key=lambda p: (p.name == "TEST", natural_key(p.name)))  # TRAIN_0..11, then TEST
            if chunks is not None:
                wanted = [f"TRAIN_{c}" if isinstance(c, int) else str(c) for c in chunks]
                by_name = {p.name: p for p in found}
                missing = [w for w in wanted if w not in by_name]
                if missing:
                    raise DatasetError(f"trackingnet: chunk(s) {', '.join(missing)} not found in {root} ({listing(root)})")
                chunk_dirs = [by_name[w] for w in wanted]
            elif subset == "train":
                chunk_dirs = [p for p in found if _TRAIN.match(p.name)]
            elif subset == "test":
                chunk_dirs = [p for p in found if p.name == "TEST"]
            else:
                chunk_dirs = found
            if not chunk_dirs:
                raise DatasetError(
                    f"trackingnet: no {'TRAIN_<k>' if subset == 'train' else 'TEST' if subset == 'test' else 'chunk'} "
                    f"folder in {root} ({describe(root)}); expected {expected}"
                )
        self.subset = subset
        self._entries: dict[str, tuple[Path, Path]] = {}
        for chunk in chunk_dirs:
            anno, frames = chunk / "anno", chunk / "frames"
            for d in (anno, frames):
                if not d.is_dir():
                    raise DatasetError(f"trackingnet: expected the folder {d}, but {describe(d)}; expected {expected}")
            videos = sorted((p.stem for p in anno.iterdir() if p.suffix == ".txt" and not p.name.startswith(".")),
                            key=natural_key)
            if not videos:
                raise DatasetError(f"trackingnet: no <video>.txt annotation in {anno} ({describe(anno)})")
            missing = [v for v in videos if not (frames / v).is_dir()]
            if missing:
                raise DatasetError(
                    f"trackingnet: {len(missing)} video(s) annotated in {anno} have no folder in {frames}: "
                    f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''} (zipped chunks must be extracted)"
                )
            for v in videos:
                if v in self._entries:
                    raise DatasetError(f"trackingnet: video {v!r} is in two chunks: {self._entries[v][0]} and {chunk}")
                self._entries[v] = (chunk, anno / f"{v}.txt")
        super().__init__(root, list(self._entries))

    def _load(self, name: str) -> Sequence:
        chunk, anno = self._entries[name]
        folder = chunk / "frames" / name
        images = list_images(folder)
        n = len(images)
        if n == 0:
            raise DatasetError(f"trackingnet sequence {name!r}: no images in {folder} ({describe(folder)})")
        boxes = read_boxes(anno)
        test = chunk.name == "TEST"
        if len(boxes) == 1 and n > 1 and (test or self.subset == "test"):
            full = np.full((n, 4), np.nan)
            full[0] = boxes[0]
            boxes = full  # test chunk: only the first frame is annotated
        elif len(boxes) != n:
            raise DatasetError(f"trackingnet sequence {name!r}: {len(boxes)} rows in {anno} but {n} images in {folder}")
        meta = {"chunk": chunk.name, "folder": str(folder)}
        return Sequence(name, ImageFolderFrames(images, fps=self.fps), boxes, dataset=self.dataset, meta=meta)

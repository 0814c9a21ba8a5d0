"""The TLD dataset (Kalal et al.): ``root/<NN_name>/`` with the video (``*.mpg``; or the frames as
images), ``gt.txt`` with one ``x1,y1,x2,y2`` corner box per frame (``NaN,NaN,NaN,NaN`` when the target is
absent) and ``init.txt`` (the first box).

Corners are MATLAB pixel indices, 1-based and inclusive (OpenTLD's ``bb_width = x2 - x1 + 1``), so the
0-based box of corners ``(x1, y1, x2, y2)`` is ``(x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1)``.
"""
from __future__ import annotations

from gradtrack.io.frames import ImageFolderFrames, natural_key

from ..sequence import DatasetError, Sequence, SequenceDataset
from ._common import describe, list_images, list_videos, listing, require_root, video_frames
from .annotations import read_boxes

__all__ = ["TLDDataset"]


class TLDDataset(SequenceDataset):
    dataset = "tld"
    one_based = True

    def __init__(self, root):
        expected = "<root>/<NN_name>/gt.txt (x1,y1,x2,y2 per frame) and the video <root>/<NN_name>/<name>.mpg or frames"
        root = require_root(root, "tld", expected)
        names = sorted((p.name for p in root.iterdir() if p.is_dir() and (p / "gt.txt").is_file()), key=natural_key)
        if not names:
            raise DatasetError(f"tld: no sequences under {root} ({describe(root)}); expected {expected}")
        for n in names:
            folder = root / n
            if not list_videos(folder) and not list_images(folder):
                raise DatasetError(f"tld: {folder} has gt.txt but no video (*.mpg) and no images ({listing(folder)})")
        super().__init__(root, names)

    def _load(self, name: str) -> Sequence:
        folder = self.root / name
        boxes = read_boxes(folder / "gt.txt", one_based=True, corners="inclusive")
        n = len(boxes)
        meta = {"folder": str(folder)}
        images = list_images(folder)
        if images:
            if len(images) != n:
                raise DatasetError(f"tld sequence {name!r}: {n} rows in gt.txt but {len(images)} images in {folder}")
            frames = ImageFolderFrames(images, fps=25)
        else:
            videos = list_videos(folder)
            if len(videos) > 1:
                raise DatasetError(f"tld sequence {name!r}: several videos in {folder}: {', '.join(v.name for v in videos)}")
            frames = video_frames(videos[0], n, f"tld video {videos[0]}")
            meta["video"] = str(videos[0])
        return Sequence(name, frames, boxes, dataset=self.dataset, meta=meta)

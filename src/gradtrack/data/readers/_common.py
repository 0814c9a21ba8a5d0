"""Helpers shared by the readers: layout checks with actionable errors, image listings, frame opening."""
from __future__ import annotations

import functools
import os
from pathlib import Path

from gradtrack.io.frames import IMAGE_EXTENSIONS, ImageFolderFrames, VideoFrames, natural_key

from ..sequence import DatasetError, FrameRange, LazyFrames

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mpg", ".mpeg", ".mov", ".mkv", ".webm", ".m4v", ".wmv")


def describe(path: Path, limit: int = 8) -> str:
    """What is at ``path``: 'missing', 'a file', or the first entries of the folder."""
    if not path.exists():
        parent = path.parent
        if parent != path and parent.is_dir():
            return f"it does not exist (the folder {parent} holds: {listing(parent, limit)})"
        return "it does not exist"
    if path.is_file():
        return "it is a file"
    return f"it holds: {listing(path, limit)}"


def listing(path: Path, limit: int = 8) -> str:
    try:
        entries = sorted(os.listdir(path), key=natural_key)
    except OSError as exc:
        return f"<unreadable: {exc.strerror}>"
    if not entries:
        return "nothing (empty folder)"
    shown = [e + ("/" if (path / e).is_dir() else "") for e in entries[:limit]]
    more = f", ... ({len(entries)} entries)" if len(entries) > limit else ""
    return ", ".join(shown) + more


def require_root(root, dataset: str, expected: str) -> Path:
    """``root`` as a Path that exists and is a folder, else a :class:`DatasetError` saying what was expected."""
    if root is None:
        raise DatasetError(f"{dataset}: no root folder given; expected {expected}")
    p = Path(root).expanduser()
    if not p.is_dir():
        raise DatasetError(f"{dataset}: root {p} is not a folder ({describe(p)}); expected {expected}")
    return p


def require_file(path: Path, dataset: str, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{dataset}: expected {what} at {path}, but {describe(path)}")
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder`` in natural order (hidden files ignored); empty list if none."""
    if not folder.is_dir():
        return []
    files = [q for q in folder.iterdir()
             if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS and not q.name.startswith(".")]
    files.sort(key=lambda q: natural_key(q.name))
    return files


def list_videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    files = [q for q in folder.iterdir()
             if q.is_file() and q.suffix.lower() in VIDEO_EXTENSIONS and not q.name.startswith(".")]
    return sorted(files, key=lambda q: natural_key(q.name))


def image_frames(files: list[Path], n: int, dataset: str, seq: str, folder: Path, fps=None):
    """An :class:`ImageFolderFrames` over exactly ``files`` after checking there are ``n`` of them."""
    if len(files) != n:
        raise DatasetError(
            f"{dataset} sequence {seq!r}: {n} annotation rows but {len(files)} images in {folder}"
            + (" (no images found)" if not files else "")
        )
    return ImageFolderFrames(files, fps=fps)


def video_frames(path: Path, n: int, what: str, *, start: int = 0, allow_longer: bool = False):
    """A lazily opened video with ``n`` annotated frames, optionally starting at frame ``start``."""
    opener = functools.partial(VideoFrames, path)
    if start == 0:
        return LazyFrames(opener, n, what, allow_longer=allow_longer)
    full = LazyFrames(opener, start + n, what, allow_longer=allow_longer)
    return FrameRange(full, start, start + n)


def frame_number(path: Path) -> int | None:
    """The number in an image file name (``0042.jpg`` -> 42), or ``None``."""
    digits = "".join(ch for ch in path.stem if ch.isdigit())
    return int(digits) if digits and path.stem.isdigit() else None

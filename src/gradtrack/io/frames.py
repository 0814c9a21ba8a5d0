"""Frame sources: videos, image folders, cameras and in-memory frames behind one small API.

Every source yields RGB ``uint8`` ``H x W x 3`` frames (see :func:`gradtrack.io.as_rgb_uint8`); frames
decoded by OpenCV are converted from BGR to RGB exactly once, here.

The :class:`FrameSource` API (random-access sources: :class:`VideoFrames`, :class:`ImageFolderFrames`,
:class:`ArrayFrames`, :class:`EncodedFrames`):

* ``len(src)``: the number of frames;
* ``src[i]``: frame ``i`` for ``0 <= i < len(src)``.  Negative or too large indices raise
  :class:`IndexError`, non-integer indices :class:`TypeError`;
* ``for frame in src``: every frame in order;
* ``src.size``: ``(width, height)``; ``src.fps``: frames per second as ``float``, or ``None`` if unknown;
* ``src.close()`` and ``with src: ...``.

:class:`CameraFrames` is a live source: it can only be iterated (``len()`` and ``[]`` raise
:class:`TypeError`, which is what ``list()`` and ``tqdm`` expect of an unsized iterable).

Sources are not thread-safe: give each thread or data-loader worker its own object (pickling a
:class:`VideoFrames` drops the open decoder; the copy reopens the file when it is first used).
"""
from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from .image import ImageError, as_rgb_uint8

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class FrameError(ValueError):
    """A frame source cannot be opened or read (missing, unreadable, corrupt or empty)."""


@runtime_checkable
class FrameSource(Protocol):
    """What every random-access frame source provides (see the module docstring)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...

    def __iter__(self) -> Iterator[np.ndarray]: ...

    @property
    def size(self) -> tuple[int, int]: ...

    @property
    def fps(self) -> float | None: ...

    def close(self) -> None: ...


def _clean_fps(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


class _RandomAccess:
    """Shared index checking, iteration and context-manager behaviour."""

    _fps: float | None = None

    def _check_index(self, index) -> int:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be integers, got {type(index).__name__}")
        i = int(index)
        n = len(self)
        if i < 0:
            raise IndexError(f"negative frame index {i}: {type(self).__name__} takes 0 <= index < {n}")
        if i >= n:
            raise IndexError(f"frame index {i} out of range: {type(self).__name__} has {n} frame(s)")
        return i

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    @property
    def fps(self) -> float | None:
        return self._fps

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# in-memory frames


class ArrayFrames(_RandomAccess):
    """Frames held in memory (a list of images or an ``N x H x W x C`` array), checked once.

    Every frame is normalised with :func:`as_rgb_uint8` on construction and must have the size of the
    first one.
    """

    def __init__(self, frames: Iterable[np.ndarray], fps: float | None = None) -> None:
        out = []
        for i, f in enumerate(frames):
            try:
                img = as_rgb_uint8(f, name=f"frame {i}")
            except ImageError as exc:
                raise FrameError(str(exc)) from None
            if out and img.shape != out[0].shape:
                raise FrameError(
                    f"frame {i} is {img.shape[1]}x{img.shape[0]} but frame 0 is {out[0].shape[1]}x{out[0].shape[0]}"
                )
            out.append(img)
        if not out:
            raise FrameError("ArrayFrames needs at least one frame, got none")
        self._frames = out
        self._fps = _clean_fps(fps)

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index) -> np.ndarray:
        return self._frames[self._check_index(index)]

    @property
    def size(self) -> tuple[int, int]:
        h, w = self._frames[0].shape[:2]
        return (w, h)

    def __repr__(self) -> str:
        return f"ArrayFrames({len(self)} frames, {self.size[0]}x{self.size[1]})"


# --------------------------------------------------------------------------------------------------
# videos


def _open_capture(target, what: str, why: str = "unsupported format, corrupt or empty file") -> cv2.VideoCapture:
    try:
        cap = cv2.VideoCapture(target)
    except cv2.error as exc:
        raise FrameError(f"cannot open {what}: {exc}") from None
    if not cap.isOpened():
        cap.release()
        raise FrameError(f"cannot open {what}: OpenCV could not open it ({why})")
    return cap


def _fingerprint(bgr: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(bgr).data)


class VideoFrames(_RandomAccess):
    """Frames of a video file that OpenCV can decode (mp4, avi, mpg, ...), decoded lazily.

    * **Frame count.** ``CAP_PROP_FRAME_COUNT`` is not trusted (MPEG-1 files under-report it): the first
      call that needs the count (``len``, random access, negative checks) decodes the whole video once and
      counts the frames that actually decode, storing a CRC32 fingerprint of each.  A full iteration builds
      the same index as a side effect, so ``len`` after ``for f in video`` is free.
    * **Sequential access** (``for f in video`` or ``video[i]`` for increasing ``i``) decodes each frame
      once, in order.  Iteration uses its own decoder, so it does not disturb random access.
    * **Random access** reads forward from the current decoder position when the target is at most
      ``forward_limit`` frames ahead; otherwise it seeks with ``CAP_PROP_POS_FRAMES``.  Every frame
      returned by random access is checked against the fingerprint of the same frame from the counting
      pass.  The first mismatch (seeking is not frame-accurate for MPEG-1 and some other codecs) switches
      the object to *safe mode* (``seek_is_accurate`` becomes ``False``): the frame is decoded again from
      frame 0, and from then on backward jumps reopen the file and decode forward from frame 0, forward
      jumps decode forward from the current position.  Either way ``video[k]`` equals the ``k``-th frame of sequential decoding.  For heavy random
      access (training), use :class:`EncodedFrames` instead.
    * ``size`` is taken from the first decoded frame, ``fps`` from the container (``None`` if unknown).
    * ``expected_frames``: the container's frame count (``None`` if it gives none), known without decoding;
      iteration that yields fewer frames means the file is truncated or corrupt (callers decide; the
      ``track`` command makes it an error).  Some codecs under-report it (see above), so more is not an error.

    Raises :class:`FrameError` for a missing file, a file OpenCV cannot open or decode, and a video
    without frames.
    """

    def __init__(self, path: str | os.PathLike, *, forward_limit: int = 64) -> None:
        p = Path(path)
        if not p.exists():
            raise FrameError(f"video file not found: {p}")
        if p.is_dir():
            raise FrameError(f"{p} is a directory, not a video file (use ImageFolderFrames for image folders)")
        if forward_limit < 0:
            raise ValueError(f"forward_limit must be >= 0, got {forward_limit}")
        self.path = p
        self.forward_limit = int(forward_limit)
        self._cap: cv2.VideoCapture | None = None
        self._pos = 0  # index of the frame the next read() of self._cap returns
        self._count: int | None = None
        self._prints: list[int] | None = None
        self._seek_ok = True
        self._trusted = True  # decoder position reached by decoding from frame 0 (no seek involved)
        cap = _open_capture(str(p), f"video {p}")
        try:
            ok, first = cap.read()
            if not ok or first is None or first.size == 0:
                raise FrameError(f"video {p} has no decodable frames (empty or corrupt)")
            self._fps = _clean_fps(cap.get(cv2.CAP_PROP_FPS))
            claimed = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            self.expected_frames = int(claimed) if np.isfinite(claimed) and claimed >= 1 else None
        except BaseException:
            cap.release()
            raise
        self._size = (int(first.shape[1]), int(first.shape[0]))
        self._cap, self._pos = cap, 1
        self._first = first

    # --- decoder handling

    def _reader(self) -> cv2.VideoCapture:
        if self._cap is None:
            self._cap = _open_capture(str(self.path), f"video {self.path}")
            self._pos, self._trusted = 0, True
        return self._cap

    def _restart(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._reader()
        self._trusted = True

    def _build_index(self) -> None:
        cap = _open_capture(str(self.path), f"video {self.path}")
        prints = []
        try:
            while True:
                ok, f = cap.read()
                if not ok or f is None:
                    break
                prints.append(_fingerprint(f))
        finally:
            cap.release()
        if not prints:
            raise FrameError(f"video {self.path} has no decodable frames (empty or corrupt)")
        self._prints, self._count = prints, len(prints)

    def __len__(self) -> int:
        if self._count is None:
            self._build_index()
        return self._count  # type: ignore[return-value]

    def _decode_to(self, k: int) -> np.ndarray:
        cap = self._reader()
        while self._pos < k:
            if not cap.grab():
                raise FrameError(f"video {self.path}: decoding stopped at frame {self._pos} before frame {k}")
            self._pos += 1
        ok, f = cap.read()
        if not ok or f is None:
            raise FrameError(f"video {self.path}: frame {k} could not be decoded")
        self._pos = k + 1
        return f

    def _read_bgr(self, k: int) -> np.ndarray:
        if k == 0 and self._first is not None:
            return self._first
        cap = self._reader()
        ahead = k - self._pos
        if not (0 <= ahead <= self.forward_limit):
            if self._seek_ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, k)
                self._pos, self._trusted = k, False
            elif ahead < 0:
                self._restart()
        f = self._decode_to(k)
        if self._prints is not None and _fingerprint(f) != self._prints[k]:
            if self._trusted:
                raise FrameError(f"video {self.path}: frame {k} decodes differently each time (corrupt stream?)")
            # the decoder position came from an inaccurate seek: decode forward from frame 0 from now on
            self._seek_ok = False
            self._restart()
            f = self._decode_to(k)
            if _fingerprint(f) != self._prints[k]:
                raise FrameError(f"video {self.path}: frame {k} decodes differently each time (corrupt stream?)")
        return f

    def __getitem__(self, index) -> np.ndarray:
        k = self._check_index(index)
        return cv2.cvtColor(self._read_bgr(k), cv2.COLOR_BGR2RGB)

    def __iter__(self) -> Iterator[np.ndarray]:
        cap = _open_capture(str(self.path), f"video {self.path}")
        prints = [] if self._prints is None else None
        try:
            while True:
                ok, f = cap.read()
                if not ok or f is None:
                    break
                if prints is not None:
                    prints.append(_fingerprint(f))
                yield cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        if prints and self._prints is None:
            self._prints, self._count = prints, len(prints)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def seek_is_accurate(self) -> bool | None:
        """``False`` once a seek landed on the wrong frame (safe mode), else ``True`` (``None``: untested)."""
        return None if self._seek_ok and self._prints is None else self._seek_ok

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cap"] = None
        state["_pos"] = 0
        state["_trusted"] = True
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        n = "?" if self._count is None else self._count
        return f"VideoFrames({str(self.path)!r}, {n} frames, {self._size[0]}x{self._size[1]}, fps={self._fps})"


# --------------------------------------------------------------------------------------------------
# image folders


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: ``2.jpg`` before ``10.jpg``."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in parts if p != "")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as RGB uint8 (16-bit, grayscale and RGBA converted by :func:`as_rgb_uint8`).

    The pixels are taken as stored: EXIF orientation tags are ignored, so that annotations made on the
    stored pixel grid stay valid.  Raises :class:`FrameError` naming the file if it cannot be read.
    """
    p = Path(path)
    try:
        data = np.fromfile(str(p), dtype=np.uint8)  # works for non-ASCII paths, unlike cv2.imread
    except OSError as exc:
        raise FrameError(f"cannot read image {p}: {exc.strerror or exc}") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise FrameError(f"cannot decode image {p} (unreadable, corrupt or not an image)")
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    try:
        return as_rgb_uint8(img, name=f"image {p}")
    except ImageError as exc:
        raise FrameError(str(exc)) from None


class ImageFolderFrames(_RandomAccess):
    """Frames stored as image files: a directory (natural order, extensions in ``IMAGE_EXTENSIONS``,
    hidden files ignored, not recursive) or an explicit list of files (kept in the given order).

    Files are read on access (nothing is cached).  ``size`` is the size of the first image; an image of a
    different size raises :class:`FrameError` naming the file when it is read.  ``fps`` is the given value
    (``None`` by default).
    """

    def __init__(self, paths_or_dir: str | os.PathLike | Sequence[str | os.PathLike], fps: float | None = None) -> None:
        if isinstance(paths_or_dir, (str, os.PathLike)):
            d = Path(paths_or_dir)
            if not d.exists():
                raise FrameError(f"image folder not found: {d}")
            if not d.is_dir():
                raise FrameError(f"{d} is not a directory (pass a list of image files, or a video to VideoFrames)")
            files = [
                q for q in d.iterdir()
                if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS and not q.name.startswith(".")
            ]
            files.sort(key=lambda q: natural_key(q.name))
            if not files:
                raise FrameError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {d}")
        else:
            files = [Path(q) for q in paths_or_dir]
            if not files:
                raise FrameError("ImageFolderFrames got an empty list of image files")
            missing = [str(q) for q in files if not q.is_file()]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise FrameError(f"image file not found: {missing[0]}{more}")
        self.paths: list[Path] = files
        self._fps = _clean_fps(fps)
        first = read_image(files[0])
        self._size = (int(first.shape[1]), int(first.shape[0]))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> np.ndarray:
        p = self.paths[self._check_index(index)]
        img = read_image(p)
        if (img.shape[1], img.shape[0]) != self._size:
            raise FrameError(
                f"image {p} is {img.shape[1]}x{img.shape[0]} but the sequence is {self._size[0]}x{self._size[1]}"
            )
        return img

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def __repr__(self) -> str:
        return f"ImageFolderFrames({len(self)} images, {self._size[0]}x{self._size[1]})"


# --------------------------------------------------------------------------------------------------
# cameras and live streams


_SECRET_QUERY = re.compile(r"((?:^|[?&;])(?:password|passwd|pass|pwd|token|key|secret|auth)=)[^&;#]*", re.I)


def mask_url(url: str) -> str:
    """``url`` with its password (``user:PASSWORD@host``) and password-like query values replaced by ``***``,
    for messages and file names; anything that is not a URL is returned as it is."""
    text = str(url)
    if "://" not in text:
        return text
    scheme, rest = text.split("://", 1)
    netloc, sep, tail = rest.partition("/")
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    return f"{scheme}://{netloc}{sep}{_SECRET_QUERY.sub(lambda m: m.group(1) + '***', tail)}"


class CameraFrames:
    """A live camera (``int`` device index) or stream (``str`` URL such as ``rtsp://...``): iteration only.

    ``len(cam)`` and ``cam[i]`` raise :class:`TypeError` (a live source has no length and no random
    access).  The first frame is read on construction (a camera that opens but delivers nothing is an
    error) and is the first one iterated.  Iteration stops when the device stops delivering frames, after
    ``max_frames`` frames if given, or after :meth:`close`.  ``size`` comes from the first frame, ``fps``
    from the driver (``None`` if it does not say).
    """

    def __init__(self, index: int | str = 0, *, max_frames: int | None = None) -> None:
        if isinstance(index, bool) or not isinstance(index, (int, str)):
            raise FrameError(f"camera must be a device index (int) or a stream URL (str), got {index!r}")
        if isinstance(index, int) and index < 0:
            raise FrameError(f"camera index must be >= 0, got {index}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
        what = f"camera {index}" if isinstance(index, int) else f"stream {mask_url(index)}"
        self.index = index
        self.max_frames = max_frames
        self._cap: cv2.VideoCapture | None = _open_capture(
            index, what, "no such device, device busy, or stream unreachable"
        )
        ok, first = self._cap.read()
        if not ok or first is None:
            self.close()
            raise FrameError(f"{what} opened but delivered no frame")
        self._first: np.ndarray | None = first
        self._size = (int(first.shape[1]), int(first.shape[0]))
        self._fps = _clean_fps(self._cap.get(cv2.CAP_PROP_FPS))
        self._what = what

    def __len__(self) -> int:
        raise TypeError(f"{self._what} is a live source: it has no length (iterate over it)")

    def __getitem__(self, index):
        raise TypeError(f"{self._what} is a live source: no random access (iterate over it)")

    def __iter__(self) -> Iterator[np.ndarray]:
        n = 0
        while self._cap is not None and (self.max_frames is None or n < self.max_frames):
            if self._first is not None:
                f, self._first = self._first, None
            else:
                ok, f = self._cap.read()
                if not ok or f is None:
                    return
            n += 1
            yield cv2.cvtColor(f, cv2.COLOR_BGR2RGB)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def fps(self) -> float | None:
        return self._fps

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# compressed in-memory store


class EncodedFrames(_RandomAccess):
    """All frames of a source kept in memory as encoded images (JPEG by default), decoded on access.

    Built from any iterable of frames (e.g. a :class:`FrameSource`); use it to sample random frames of
    many videos during training without extracting them to disk and without holding raw frames.  JPEG is
    lossy (``quality`` 0-100); ``ext=".png"`` stores frames losslessly (bigger, slower).  ``nbytes`` is the
    memory taken by the encoded data.  Objects pickle cheaply (a list of ``bytes``).
    """

    def __init__(self, source: Iterable[np.ndarray], quality: int = 90, ext: str = ".jpg",
                 fps: float | None = None) -> None:
        ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
        if ext in (".jpg", ".jpeg"):
            if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 0 <= quality <= 100:
                raise ValueError(f"JPEG quality must be an integer in 0..100, got {quality!r}")
            params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        elif ext == ".png":
            params = [cv2.IMWRITE_PNG_COMPRESSION, 1]
        else:
            raise ValueError(f"EncodedFrames stores .jpg or .png, got {ext!r}")
        self.ext, self.quality = ext, int(quality)
        blobs: list[bytes] = []
        size = None
        for i, frame in enumerate(source):
            try:
                img = as_rgb_uint8(frame, name=f"frame {i}")
            except ImageError as exc:
                raise FrameError(str(exc)) from None
            fsize = (img.shape[1], img.shape[0])
            if size is None:
                size = fsize
            elif fsize != size:
                raise FrameError(f"frame {i} is {fsize[0]}x{fsize[1]} but frame 0 is {size[0]}x{size[1]}")
            ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
            if not ok:
                raise FrameError(f"frame {i} could not be encoded as {ext}")
            blobs.append(buf.tobytes())
        if size is None:
            raise FrameError("EncodedFrames got a source without frames")
        self._blobs = blobs
        self._size = size
        src_fps = getattr(source, "fps", None)
        self._fps = _clean_fps(fps if fps is not None else src_fps)

    def __len__(self) -> int:
        return len(self._blobs)

    def __getitem__(self, index) -> np.ndarray:
        blob = self._blobs[self._check_index(index)]
        bgr = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:  # cannot happen for data we encoded, unless memory was corrupted
            raise FrameError(f"stored frame {index} could not be decoded")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes of encoded image data held (excluding Python object overhead, ~33 bytes per frame)."""
        return sum(len(b) for b in self._blobs)

    def __repr__(self) -> str:
        return f"EncodedFrames({len(self)} frames {self.ext}, {self._size[0]}x{self._size[1]}, {self.nbytes} bytes)"


# --------------------------------------------------------------------------------------------------
# writing


class VideoWriter:
    """Write RGB uint8 frames to a video file with ``cv2.VideoWriter`` (codec ``fourcc``, default mp4v).

    The frame size is fixed by ``size=(width, height)`` or by the first frame; a frame of another size
    raises :class:`FrameError` (OpenCV would silently drop it).  Frames are normalised with
    :func:`as_rgb_uint8` and converted to BGR for OpenCV.  Opening fails with :class:`FrameError` when the
    folder does not exist or OpenCV cannot open a writer for the file name / codec.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 25.0, size: tuple[int, int] | None = None,
                 fourcc: str = "mp4v") -> None:
        p = Path(path)
        if not p.parent.is_dir():
            raise FrameError(f"cannot write video {p}: folder {p.parent} does not exist")
        if _clean_fps(fps) is None:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters, got {fourcc!r}")
        self.path, self.fps, self.fourcc = p, float(fps), fourcc
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames_written = 0
        if size is not None:
            self._open(tuple(int(v) for v in size))  # type: ignore[arg-type]

    def _open(self, size: tuple[int, int]) -> None:
        w, h = size
        if w < 1 or h < 1:
            raise FrameError(f"cannot write video {self.path}: frame size {w}x{h} is empty")
        try:
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
        except cv2.error as exc:
            raise FrameError(f"cannot write video {self.path}: {exc}") from None
        if not writer.isOpened():
            writer.release()
            raise FrameError(
                f"cannot write video {self.path}: OpenCV could not open a writer for codec {self.fourcc!r} "
                f"and this file extension"
            )
        self._writer, self._size = writer, (w, h)

    def write(self, frame: np.ndarray) -> None:
        try:
            img = as_rgb_uint8(frame, name=f"frame {self.frames_written}")
        except ImageError as exc:
            raise FrameError(str(exc)) from None
        fsize = (img.shape[1], img.shape[0])
        if self._writer is None:
            if self._size is not None:
                raise FrameError(f"video writer for {self.path} is closed")
            self._open(fsize)
        if fsize != self._size:
            raise FrameError(
                f"frame {self.frames_written} is {fsize[0]}x{fsize[1]} but video {self.path} is "
                f"{self._size[0]}x{self._size[1]}"  # type: ignore[index]
            )
        self._writer.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))  # type: ignore[union-attr]
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
        self._writer = None
        if self._size is None:
            self._size = (0, 0)  # closed before any frame: further writes are an error

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 25.0,
                fourcc: str = "mp4v") -> int:
    """Write all ``frames`` (RGB uint8) to ``path``; returns the number written (0 frames is an error)."""
    with VideoWriter(path, fps=fps, fourcc=fourcc) as w:
        for f in frames:
            w.write(f)
        n = w.frames_written
    if n == 0:
        raise FrameError(f"no frames to write to {path}")
    return n


# --------------------------------------------------------------------------------------------------
# dispatch


def open_frames(source, *, fps: float | None = None):
    """Open ``source`` as a frame source.

    * an existing frame source (anything with ``__iter__`` and ``size``) is returned as it is;
    * ``int`` or a string of digits (``"0"``) -> :class:`CameraFrames`; a string with ``://`` -> a live
      stream (:class:`CameraFrames`);
    * a directory -> :class:`ImageFolderFrames`; an image file -> a one-frame :class:`ImageFolderFrames`;
    * any other file -> :class:`VideoFrames`;
    * a list/tuple of paths -> :class:`ImageFolderFrames`.

    ``fps`` is used for image sources (which carry no frame rate).  A path that does not exist raises
    :class:`FrameError`.
    """
    if hasattr(source, "__iter__") and hasattr(source, "size") and not isinstance(source, (str, bytes)):
        return source
    if isinstance(source, bool):
        raise FrameError(f"cannot open frames from {source!r}")
    if isinstance(source, (int, np.integer)):
        return CameraFrames(int(source))
    if isinstance(source, (list, tuple)):
        return ImageFolderFrames(source, fps=fps)
    if isinstance(source, str) and source.strip().isdigit():
        return CameraFrames(int(source.strip()))
    if isinstance(source, str) and "://" in source:
        return CameraFrames(source)
    if not isinstance(source, (str, os.PathLike)):
        raise FrameError(f"cannot open frames from a {type(source).__name__}: give a path, camera index or list")
    p = Path(source)
    if not p.exists():
        raise FrameError(f"no such file or directory: {p}")
    if p.is_dir():
        return ImageFolderFrames(p, fps=fps)
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFolderFrames([p], fps=fps)
    return VideoFrames(p)


__all__ = [
    "ArrayFrames",
    "CameraFrames",
    "EncodedFrames",
    "FrameError",
    "FrameSource",
    "IMAGE_EXTENSIONS",
    "ImageFolderFrames",
    "VideoFrames",
    "VideoWriter",
    "mask_url",
    "natural_key",
    "open_frames",
    "read_image",
    "write_video",
]


class LatestFrames:
    """Real-time wrapper of a live source (camera, stream): a reader thread keeps only the newest frame,
    so a consumer slower than the source gets the latest frame and the others are dropped (counted in
    ``dropped``).  Iterating yields frames until the source ends; ``close()`` stops the thread.  ``size``
    and ``fps`` are the source's."""

    def __init__(self, source):
        import threading

        self.source = source
        self.size = getattr(source, "size", None)
        self.fps = getattr(source, "fps", None)
        self.dropped = 0
        self._frame = None
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="gradtrack-latest-frame", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for frame in self.source:
                if self._stop.is_set():
                    break
                with self._cond:
                    if self._frame is not None:
                        self.dropped += 1  # the consumer did not take the previous one in time
                    self._frame = frame
                    self._cond.notify()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            self._error = exc
        with self._cond:
            self._ended = True
            self._cond.notify()

    def __iter__(self):
        while True:
            with self._cond:
                while self._frame is None and not self._ended:
                    self._cond.wait(0.1)
                if self._frame is None:
                    if self._error is not None:
                        raise self._error
                    return
                frame, self._frame = self._frame, None
            yield frame

    def close(self) -> None:
        """Stop the reader thread (it checks between frames: waited for up to 2 s, so that the capture is
        not released under a ``read()`` in progress), then close the source."""
        self._stop.set()
        import threading

        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        close = getattr(self.source, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001
                pass

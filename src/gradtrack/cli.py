"""The ``gradtrack`` command line (a thin layer over the library; ``python -m gradtrack`` is the same).

Subcommands: ``track``, ``demo``, ``list``, ``info`` (here) and ``eval`` / ``report`` / ``train`` (registered by
:mod:`gradtrack.evaluation.cli` and :mod:`gradtrack.training.cli`; if one of those cannot be imported, only
its own subcommands fail, with a message that says why).

User errors (missing file, unreadable video, malformed box, unknown tracker, missing weights, bad config)
print one line ``gradtrack <cmd>: error: ...`` to stderr and exit with status 2, without a traceback.
Set ``GRADTRACK_DEBUG=1`` to get the traceback as well.  Anything else is a bug and is not hidden.
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

EXIT_USAGE = 2
DEMO_PRESET = "demo"
DEMO_SEED = 0


from .errors import UsageError  # noqa: E402  (defined low so subcommand modules can raise it)


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exception classes that mean "bad input" rather than "bug" (imported lazily: parts may be absent)."""
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .geometry import BoxError
    from .io import ImageError

    types: list[type[BaseException]] = [UsageError, CheckpointError, ConfigError, BoxError, ImageError]
    for mod, name in (("gradtrack.io.frames", "FrameError"), ("gradtrack.visualize", "DrawError"),
                      ("gradtrack.data.sequence", "DatasetError"), ("gradtrack.data.sequence", "SequenceError"),
                      ("gradtrack.data.readers.annotations", "AnnotationError")):
        try:
            types.append(getattr(importlib.import_module(mod), name))
        except (ImportError, AttributeError):
            pass
    return tuple(types)


# --------------------------------------------------------------------------------------------- helpers


def _frames_api():
    try:
        return importlib.import_module("gradtrack.io.frames")
    except ImportError as exc:
        raise UsageError(f"video input/output is unavailable: cannot import gradtrack.io.frames ({exc})") from None


def _tracker_api():
    import gradtrack

    build = getattr(gradtrack, "build_tracker", None)
    names = getattr(gradtrack, "list_trackers", None)
    if build is None or names is None:
        raise UsageError("no trackers are available: gradtrack.build_tracker / list_trackers are missing")
    return build, names


_STREAM_URL = re.compile(r"^(rtsps?|rtmps?|https?|udp|rtp|tcp|srt)://\S+$", re.IGNORECASE)


def _is_stream(source) -> bool:
    """A network stream URL (``rtsp://``, ``http(s)://``, ``udp://``, ...) as :func:`_parse_source` returns it."""
    return isinstance(source, str) and bool(_STREAM_URL.match(source))


def _is_live(source) -> bool:
    """A camera index or a stream URL: no length, read in real time through ``LatestFrames``."""
    return isinstance(source, int) or _is_stream(source)


def _shown_source(text) -> str:
    """``text`` for messages: a stream URL with its password masked."""
    return _frames_api().mask_url(str(text)) if "://" in str(text) else str(text)


def _parse_source(text: str):
    """A camera index (digits, not an existing path), a stream URL (kept as ``str``), else a path that must
    exist."""
    if text.isdigit() and not Path(text).exists():
        return int(text)
    if _is_stream(text):
        return text
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise UsageError(f"unsupported stream URL scheme {scheme!r} in {_shown_source(text)} "
                         "(use rtsp://, http(s)://, udp://, rtmp://, rtp://, tcp:// or srt://)")
    path = Path(text).expanduser()
    if not path.exists():
        raise UsageError(f"source not found: {text} (expected a video file, an image folder, a camera index or a "
                         "stream URL such as rtsp://HOST/PATH)")
    return path


def _check_weights(weights: str | None) -> str | None:
    if weights is None or weights == "random":
        return weights
    path = Path(weights).expanduser()
    if not path.exists():  # a checkpoint file (a folder of ONNX files for nanotrack)
        raise UsageError(f"weights file not found: {weights} (give a checkpoint path, or 'random' for untrained weights)")
    return str(path)


def _make_tracker(name: str, weights: str | None, device: str | None):
    build, list_trackers = _tracker_api()
    known = list(list_trackers())
    if name not in known:
        raise UsageError(f"unknown tracker {name!r}; available: {', '.join(known)}")
    weights = _check_weights(weights)
    if device is not None:
        _check_device(device)
    try:
        return build(name, weights=weights, device=device)
    except FileNotFoundError as exc:  # no shipped weights, missing model files
        raise UsageError(f"cannot build tracker {name!r}: {exc} [command line: --weights PATH or --weights random]") from exc
    except ValueError as exc:  # build_tracker's documented bad-argument errors (e.g. weights for a tracker without any)
        raise UsageError(f"cannot build tracker {name!r}: {exc}") from exc


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise UsageError(f"invalid --device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device} requested but CUDA is not available on this machine (use --device cpu)")


def _check_complete(frames, tracked: int, expected, max_frames, allow_truncated: bool, stopped: bool) -> None:
    """A source that decoded fewer frames than it claims is an error unless ``--allow-truncated`` (or the
    user stopped the run)."""
    wanted = expected if max_frames is None or expected is None else min(expected, max_frames)
    if wanted is not None and tracked < wanted and not allow_truncated and not stopped:
        raise UsageError(f"{getattr(frames, 'path', 'the source')}: decoding stopped after {tracked} of the "
                         f"{wanted} frames it claims "
                         "(truncated or corrupt file); --allow-truncated keeps the frames tracked so far")


def _emit_frame(img, out_video, writer, fps_out, window):
    """Write an annotated frame to the (lazily opened, ``.partial``) output video and show it in the window;
    returns ``(writer, stopped)`` where ``stopped`` means the user closed the window."""
    if out_video is not None:
        if writer is None:
            writer = _writer_for(_partial(out_video), fps_out, (img.shape[1], img.shape[0]))
        writer.write(img)
    return writer, bool(window is not None and window.show(img))


def _writer_for(path: Path, fps: float, size: tuple[int, int]):
    """A video writer from :mod:`gradtrack.io.frames` with ``write(rgb_frame)`` and ``close()``."""
    frames = _frames_api()
    return frames.VideoWriter(path, fps=fps, size=size)


def _fmt_box(box) -> str:
    return ",".join(f"{float(v):.2f}" for v in np.asarray(box, dtype=np.float64).reshape(4))


def _fps_line(update_times: Sequence[float]) -> str:
    if len(update_times) == 0:
        return "no update() calls timed (only one frame)"
    med = float(np.median(update_times))
    fps = 1.0 / med if med > 0 else float("inf")
    return (f"speed: {fps:.1f} fps (median update {med * 1e3:.1f} ms over {len(update_times)} frames; "
            f"decoding, drawing and writing excluded)")


def _frame_count_hint(frames) -> int | None:
    """Number of frames for the progress bar, without decoding a whole video just to count it."""
    if hasattr(frames, "expected_frames"):  # a video: len() would decode it once before tracking starts
        return frames.expected_frames
    try:
        return len(frames)
    except TypeError:  # live camera
        return None


def _partial(path: Path) -> Path:
    """Where ``path`` is written until it is complete (same folder, same extension for the video codec)."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def _open_output(path: Path, what: str):
    """Create the folder and the partial file of output ``path`` now, so an unwritable place fails up front."""
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory; give a file name")
    folder = next(q for q in path.parents if q.exists())
    if not folder.is_dir():
        raise UsageError(f"cannot write {what} {path}: {folder} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(_partial(path), "w")
    except OSError as exc:
        raise UsageError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def run_tracking(tracker, frames, box, *, out_video: Path | None, out_boxes: Path | None, fps_out: float,
                 gt: np.ndarray | None = None, max_frames: int | None = None, show_fps: bool = False,
                 progress: bool = True, desc: str = "tracking", expected: int | None = None,
                 allow_truncated: bool = False, show: bool = False):
    """Track ``frames`` (indexable/iterable RGB uint8 frames) from ``box`` in frame 0; write the annotated
    video and the boxes file.  Returns ``(boxes N x 4, update seconds N - 1)``.

    Outputs are written as ``NAME.partial.EXT`` in their folder and renamed to ``NAME.EXT`` only when the
    whole run succeeded; after an error they stay as ``.partial`` files and the error (a :class:`UsageError`
    for bad input) says so.  ``expected``: the number of frames the source claims; fewer decoded frames
    (before ``max_frames``) is an error unless ``allow_truncated``.  ``show``: display the annotated frames
    in a window; ``q`` or Esc there stops tracking and the outputs are finalised as for a normal end."""
    from tqdm import tqdm

    from .trackers import track_frames
    from .visualize import draw_result

    total = _frame_count_hint(frames)
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    outputs = [p for p in (out_boxes, out_video) if p is not None]
    boxes: list[np.ndarray] = []
    times: list[float] = []
    writer = None
    boxes_file = None
    window = _LiveWindow(f"gradtrack: {desc} (q or Esc stops)") if show else None
    stopped = False
    try:
        if out_boxes is not None:
            boxes_file = _open_output(out_boxes, "boxes file")
        if out_video is not None:
            _open_output(out_video, "video").close()
        bar = tqdm(total=total, desc=desc, unit="frame", disable=not progress, file=sys.stderr, dynamic_ncols=True)
        with bar:
            for step in track_frames(tracker, itertools.islice(frames, max_frames), box):
                b = step.box
                if step.index > 0:
                    times.append(step.seconds)
                boxes.append(b)
                if boxes_file is not None:
                    boxes_file.write(_fmt_box(b) + "\n")
                if out_video is not None or window is not None:
                    live_fps = 1.0 / float(np.median(times)) if (show_fps and times) else None
                    i = step.index
                    img = draw_result(step.frame, b if step.result is None else step.result, index=i, fps=live_fps,
                                      gt=None if gt is None or i >= len(gt) else gt[i])
                    writer, stopped = _emit_frame(img, out_video, writer, fps_out, window)
                bar.update(1)
                if stopped:
                    break
        if not boxes:
            raise UsageError("the source has no frames")
        _check_complete(frames, len(boxes), expected, max_frames, allow_truncated, stopped)
    except BaseException as exc:
        left = [str(_partial(p)) for p in outputs if _partial(p).exists()]
        if not boxes:  # nothing tracked: nothing worth keeping
            for q in left:
                Path(q).unlink()
        elif isinstance(exc, _user_error_types()):
            raise UsageError(f"{exc}; the partial output of {len(boxes)} frame(s) is left in "
                             f"{', '.join(left)}") from exc
        elif left:  # an interrupt or a bug: still say where the partial output is
            print(f"gradtrack: the partial output of {len(boxes)} frame(s) is left in {', '.join(left)}",
                  file=sys.stderr)
        raise
    finally:
        if boxes_file is not None:
            boxes_file.close()
        if writer is not None:
            writer.close()
        if window is not None:
            window.close()
    for p in outputs:
        os.replace(_partial(p), p)
    if stopped:
        print(f"stopped by the user (q/Esc in the --show window) after {len(boxes)} frame(s)", file=sys.stderr)
    return np.stack(boxes), np.asarray(times)


class _LiveWindow:
    """An OpenCV window showing RGB frames; :meth:`show` returns True when the user asks to stop (``q``,
    Esc, or the window closed)."""

    STOP_KEYS = (ord("q"), ord("Q"), 27)

    def __init__(self, title: str) -> None:
        import cv2

        self._cv2 = cv2
        self.title = title
        self._opened = False

    def show(self, rgb: np.ndarray) -> bool:
        cv2 = self._cv2
        cv2.imshow(self.title, cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        self._opened = True
        key = cv2.waitKey(1)
        if key != -1 and (key & 0xFF) in self.STOP_KEYS:
            return True
        try:  # the user closed the window
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return False

    def close(self) -> None:
        if self._opened:
            try:
                self._cv2.destroyWindow(self.title)
                self._cv2.waitKey(1)
            except self._cv2.error:
                pass


# --------------------------------------------------------------------------------------------- track


def _box_argv(argv: Sequence[str]) -> list[str]:
    """``--box -5,10,20,20`` -> ``--box=-5,10,20,20`` (argparse would take a value starting with '-' for an option)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--box" and i + 1 < len(argv) and re.match(r"-[\d.]", str(argv[i + 1])):
            out.append(f"--box={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _outputs(args: argparse.Namespace, source) -> tuple[Path | None, Path]:
    """The video (``None`` with --no-video) and boxes paths: defaults beside --out, else beside the input
    (the current folder for a camera); an existing file is refused unless --force."""
    for path, flag in ((args.out, "--out"), (args.boxes, "--boxes")):
        if path is not None and Path(path).is_dir():
            raise UsageError(f"{flag} {path} is a directory; give a file name")
    if isinstance(source, int):
        stem = f"camera{source}"
    elif _is_stream(source):  # stream-HOST, never the credentials
        host = source.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        stem = "stream-" + (re.sub(r"[^A-Za-z0-9.-]+", "_", host).strip("._-") or "url")
    else:
        stem = Path(source).stem
    folder = Path(".") if _is_live(source) else Path(source).parent
    out_video = None if args.no_video else Path(args.out or folder / f"{stem}.{args.tracker}.mp4")
    if args.boxes:
        out_boxes = Path(args.boxes)
    elif args.out:
        out_boxes = Path(args.out).with_suffix(".txt")
    else:
        out_boxes = folder / f"{stem}.{args.tracker}.txt"
    if out_video is not None and out_video.resolve() == out_boxes.resolve():
        raise UsageError(f"the video and the boxes file would both be {out_boxes}; give --boxes another name")
    for path in (out_video, out_boxes):
        if path is not None and path.exists() and not args.force:
            raise UsageError(f"output {path} already exists; pass --force to overwrite it")
    return out_video, out_boxes


_TARGET_COLORS = ((0, 255, 0), (255, 64, 64), (64, 160, 255), (255, 200, 0), (255, 0, 255), (0, 255, 255),
                  (255, 128, 0), (160, 96, 255))


def _target_boxes_path(out_boxes: Path, k: int) -> Path:
    """``<out>.<k>.txt``: the boxes file of target ``k`` when several --box are given."""
    return out_boxes.with_name(f"{out_boxes.stem}.{k}{out_boxes.suffix}")


def run_multi_tracking(multi, frames, boxes, *, out_video: Path | None, out_boxes: list[Path], fps_out: float,
                       max_frames: int | None = None, show_fps: bool = False, progress: bool = True,
                       desc: str = "tracking", expected: int | None = None, allow_truncated: bool = False,
                       show: bool = False):
    """:func:`run_tracking` for several targets with a :class:`gradtrack.MultiTracker`: one boxes file per
    target (``out_boxes[k]``) and one annotated video with all boxes.  Returns ``(boxes T x F x 4, update
    seconds F - 1)`` (seconds of one ``update`` for all targets)."""
    import time

    from tqdm import tqdm

    from .visualize import draw_result

    total = _frame_count_hint(frames)
    if max_frames is not None:
        total = max_frames if total is None else min(total, max_frames)
    outputs = [p for p in (*out_boxes, out_video) if p is not None]
    rows: list[np.ndarray] = []
    times: list[float] = []
    writer, files = None, []
    window = _LiveWindow(f"gradtrack: {desc} (q or Esc stops)") if show else None
    stopped = False
    try:
        files = [_open_output(p, f"boxes file of target {k}") for k, p in enumerate(out_boxes)]
        if out_video is not None:
            _open_output(out_video, "video").close()
        bar = tqdm(total=total, desc=desc, unit="frame", disable=not progress, file=sys.stderr, dynamic_ncols=True)
        with bar:
            for i, frame in enumerate(itertools.islice(frames, max_frames)):
                t0 = time.perf_counter()
                if i == 0:
                    multi.init(frame, boxes)
                    results = [np.asarray(b, dtype=np.float64) for b in boxes]
                else:
                    results = multi.update(frame)
                    times.append(time.perf_counter() - t0)
                bs = np.stack([np.asarray(getattr(r, "box", r), dtype=np.float64).reshape(4) for r in results])
                rows.append(bs)
                for fh, b in zip(files, bs):
                    fh.write(_fmt_box(b) + "\n")
                if out_video is not None or window is not None:
                    live_fps = 1.0 / float(np.median(times)) if (show_fps and times) else None
                    img = frame
                    for k, r in enumerate(results):
                        img = draw_result(img, r, index=i if k == 0 else None, fps=live_fps if k == 0 else None,
                                          label=None if len(results) == 1 else f"#{k}" if k else "target 0",
                                          color=_TARGET_COLORS[k % len(_TARGET_COLORS)])
                    writer, stopped = _emit_frame(img, out_video, writer, fps_out, window)
                bar.update(1)
                if stopped:
                    break
        if not rows:
            raise UsageError("the source has no frames")
        _check_complete(frames, len(rows), expected, max_frames, allow_truncated, stopped)
    except BaseException as exc:
        left = [str(_partial(p)) for p in outputs if _partial(p).exists()]
        if not rows:
            for fh in files:
                fh.close()
            files = []
            for q in left:
                Path(q).unlink()
        elif isinstance(exc, _user_error_types()):
            raise UsageError(f"{exc}; the partial output of {len(rows)} frame(s) is left in "
                             f"{', '.join(left)}") from exc
        elif left:
            print(f"gradtrack: the partial output of {len(rows)} frame(s) is left in {', '.join(left)}",
                  file=sys.stderr)
        raise
    finally:
        for fh in files:
            fh.close()
        if writer is not None:
            writer.close()
        if window is not None:
            window.close()
    for p in outputs:
        os.replace(_partial(p), p)
    if stopped:
        print(f"stopped by the user (q/Esc in the --show window) after {len(rows)} frame(s)", file=sys.stderr)
    return np.stack(rows, axis=1), np.asarray(times)


def cmd_track(args: argparse.Namespace) -> int:
    from .geometry import BoxError, parse_box, validate_box

    texts = [args.box] if isinstance(args.box, str) else list(args.box or [])
    if getattr(args, "show", False):  # before anything is opened or created
        why = _gui_unavailable("--show", "--no-video / --out (and the boxes file) still work without it: drop --show")
        if why:
            raise UsageError(why)
    if getattr(args, "select", False):
        if texts:
            raise UsageError("--select and --box are exclusive: pick the box with the mouse or give it")
        why = _select_unavailable()
        if why:
            raise UsageError(why)
        texts = [_select_box(_frames_api().open_frames(_parse_source(args.source)))]
    if not texts:
        raise UsageError("give the target with --box X,Y,W,H (repeat --box for several targets) or --select")
    try:
        all_boxes = [parse_box(t) for t in texts]
    except BoxError as exc:
        raise UsageError(f"--box: {exc}") from None
    if len(all_boxes) > 1:
        return _cmd_track_multi(args, texts, all_boxes)
    box = all_boxes[0]
    args.box = texts[0]
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {args.max_frames}")
    source = _parse_source(args.source)
    out_video, out_boxes = _outputs(args, source)
    tracker = _make_tracker(args.tracker, args.weights, args.device)  # fail on names/weights before decoding
    frames = _frames_api().open_frames(source)
    w, h = frames.size
    validate_box(box, (w, h), name=f"--box {args.box!r}")
    live = None
    if _is_live(source):  # a camera or stream: keep up in real time, drop the frames the tracker has no time for
        live = frames = _frames_api().LatestFrames(frames)
    expected = getattr(frames, "expected_frames", None)
    fps_src = getattr(frames, "fps", None) or 25.0
    stem = out_boxes.stem
    try:
        boxes, times = run_tracking(tracker, frames, box, out_video=out_video, out_boxes=out_boxes,
                                    fps_out=float(fps_src), max_frames=args.max_frames, show_fps=args.show_fps,
                                    progress=not args.quiet, desc=f"{args.tracker} {stem}", expected=expected,
                                    allow_truncated=args.allow_truncated, show=getattr(args, "show", False))
    finally:
        if live is not None:
            live.close()
    print(f"tracked {len(boxes)} frames of {_shown_source(args.source)} with {args.tracker}")
    if live is not None:
        what = "camera" if isinstance(source, int) else "stream"
        print(f"real time: {live.dropped} frame(s) of the {what} were dropped (the tracker was slower than the source)")
    wanted = expected if args.max_frames is None or expected is None else min(expected, args.max_frames)
    if wanted is not None and len(boxes) < wanted:
        print(f"gradtrack track: warning: the source claims {wanted} frames but decoding stopped after "
              f"{len(boxes)} (truncated or corrupt file; kept because of --allow-truncated)", file=sys.stderr)
    x, y, bw, bh = boxes.T
    lost = int(((x >= w) | (y >= h) | (x + bw <= 0) | (y + bh <= 0)).sum())
    if lost:
        print(f"note: the boxes of {lost} frame(s) lie entirely outside the {w}x{h} frame (the tracker lost the target)")
    if out_video is not None:
        print(f"video: {out_video}")
    print(f"boxes: {out_boxes} (one 0-based x,y,w,h line per frame)")
    print(_fps_line(times))
    return 0


def _select_unavailable() -> str:
    """Why cv2.selectROI cannot run here (this command has no GUI path when it cannot)."""
    return _gui_unavailable("--select", "give --box X,Y,W,H (read it off the first frame, e.g. in an image viewer)")


def _gui_unavailable(option: str, instead: str) -> str:
    """Why an OpenCV window (``option``: --select, --show) cannot open here, ending with ``instead`` (what
    still works); ``""`` when a display and a GUI-enabled OpenCV are present."""
    import cv2

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return f"{option} needs a display (neither DISPLAY nor WAYLAND_DISPLAY is set); {instead}"
    gui = ""
    try:
        info = cv2.getBuildInformation()
        gui = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.strip().startswith("GUI:")), "")
    except Exception:  # noqa: BLE001
        pass
    if not gui or gui.upper() == "NONE":
        return (f"{option} needs OpenCV with a GUI (highgui), but this OpenCV build has none "
                f"(opencv-contrib-python-headless; opencv-contrib-python has one); {instead}")
    return ""


def _select_box(frames) -> str:
    """Let the user draw the box on the first frame with cv2.selectROI; returns it as ``x,y,w,h``."""
    import cv2

    why = _select_unavailable()
    if why:
        raise UsageError(why)
    first = next(iter(frames))
    x, y, w, h = cv2.selectROI("gradtrack: select the target, then ENTER", cv2.cvtColor(first, cv2.COLOR_RGB2BGR),
                               showCrosshair=True)
    cv2.destroyAllWindows()
    if w <= 0 or h <= 0:
        raise UsageError("--select: no box was drawn (selection cancelled)")
    return f"{x},{y},{w},{h}"


def _cmd_track_multi(args: argparse.Namespace, texts: list[str], all_boxes: list) -> int:
    from .geometry import validate_box

    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {args.max_frames}")
    source = _parse_source(args.source)
    out_video, out_boxes = _outputs(args, source)
    per_target = [_target_boxes_path(out_boxes, k) for k in range(len(all_boxes))]
    for path in per_target:
        if path.exists() and not args.force:
            raise UsageError(f"output {path} already exists; pass --force to overwrite it")
    tracker = _make_tracker(args.tracker, args.weights, args.device)
    frames = _frames_api().open_frames(source)
    w, h = frames.size
    boxes = [validate_box(b, (w, h), name=f"--box {t!r} (target {k})") for k, (t, b) in enumerate(zip(texts, all_boxes))]
    from .trackers.multi import MultiTracker

    multi = MultiTracker(tracker=tracker)
    live = None
    if _is_live(source):  # a camera or stream: keep up in real time (as for one target)
        live = frames = _frames_api().LatestFrames(frames)
    expected = getattr(frames, "expected_frames", None)
    try:
        rows, times = run_multi_tracking(multi, frames, boxes, out_video=out_video, out_boxes=per_target,
                                         fps_out=float(getattr(frames, "fps", None) or 25.0),
                                         max_frames=args.max_frames, show_fps=args.show_fps, progress=not args.quiet,
                                         desc=f"{args.tracker} {out_boxes.stem} x{len(boxes)}", expected=expected,
                                         allow_truncated=args.allow_truncated, show=getattr(args, "show", False))
    finally:
        if live is not None:
            live.close()
    print(f"tracked {len(boxes)} targets over {rows.shape[1]} frames of {_shown_source(args.source)} with "
          f"{args.tracker}" + ("" if multi.batched else f" (one by one: {multi.fallback_reason})"))
    if live is not None:
        what = "camera" if isinstance(source, int) else "stream"
        print(f"real time: {live.dropped} frame(s) of the {what} were dropped (the tracker was slower than the source)")
    if out_video is not None:
        print(f"video: {out_video}")
    for k, path in enumerate(per_target):
        print(f"boxes of target {k}: {path}")
    print(_fps_line(times).replace("median update", f"median update of all {len(boxes)} targets"))
    return 0


# --------------------------------------------------------------------------------------------- demo


def _shipped_weights(name: str) -> Path | None:
    from .trackers.common import shipped_weights

    path = shipped_weights(name)
    return path if path.is_file() else None


def _no_shipped_weights(exc: BaseException | None) -> bool:
    try:
        from .trackers.common import WeightsNotFoundError
    except ImportError:
        return False
    return isinstance(exc, WeightsNotFoundError)


def cmd_demo(args: argparse.Namespace) -> int:
    from .geometry import iou

    try:
        synthetic = importlib.import_module("gradtrack.data.synthetic")
    except ImportError as exc:
        raise UsageError(f"the demo needs gradtrack.data.synthetic, which cannot be imported ({exc})") from None
    if args.frames is not None and args.frames < 2:
        raise UsageError(f"--frames must be >= 2, got {args.frames}")
    overrides = {} if args.frames is None else {"num_frames": args.frames}
    seq = synthetic.preset(args.preset, seed=args.seed, **overrides)
    frames, gt = seq.frames, np.asarray(seq.boxes, dtype=np.float64)
    n = len(frames)
    _, list_trackers = _tracker_api()
    if args.tracker not in list_trackers():
        raise UsageError(f"unknown tracker {args.tracker!r}; available: {', '.join(list_trackers())}")
    weights = args.weights
    try:
        tracker = _make_tracker(args.tracker, weights, args.device)
    except UsageError as exc:
        if weights is not None or not _no_shipped_weights(exc.__cause__):
            raise
        weights = "random"
        tracker = _make_tracker(args.tracker, weights, args.device)
        bar = "!" * 78
        print(f"{bar}\nNOTICE: no trained weights for {args.tracker!r} are shipped with this version of gradtrack.\n"
              f"The demo runs with RANDOM weights: the tracker works end to end but will not follow the target.\n"
              f"Train weights with `gradtrack train` and pass them with --weights PATH.\n{bar}", file=sys.stderr)
    out_dir = Path(args.out)
    out_video = out_dir / f"demo_{seq.name}_{args.tracker}.mp4"
    out_boxes = out_dir / f"demo_{seq.name}_{args.tracker}.txt"
    boxes, times = run_tracking(tracker, frames, gt[0], out_video=out_video, out_boxes=out_boxes,
                                fps_out=float(getattr(seq, "fps", None) or 25.0),
                                gt=gt, max_frames=n, show_fps=True, progress=not args.quiet,
                                desc=f"demo {args.tracker}")
    ious = iou(boxes[1:], gt[1:len(boxes)])
    print(f"demo: sequence {seq.name!r} ({len(boxes)} frames, seed {args.seed}), tracker {args.tracker}, "
          f"weights {weights or _shipped_weights(args.tracker) or 'tracker default'}")
    present = np.isfinite(ious)
    mean_iou = float(ious[present].mean()) if present.any() else float("nan")
    print(f"mean IoU vs ground truth (frames 1..{len(boxes) - 1} with a ground-truth box, "
          f"{int(present.sum())} frames): {mean_iou:.3f}")
    print(_fps_line(times))
    print(f"video: {out_video}\nboxes: {out_boxes}")
    return 0


# --------------------------------------------------------------------------------------------- list / info


def cmd_list(args: argparse.Namespace) -> int:
    try:
        _, list_trackers = _tracker_api()
        trackers = list(list_trackers())
    except UsageError as exc:
        trackers = [f"(unavailable: {exc})"]
    print("trackers:")
    for name in trackers:
        shipped = _shipped_weights(name) if not name.startswith("(") else None
        print(f"  {name}" + (f"  [shipped weights: {shipped.name}]" if shipped else ""))
    from .models import MODELS

    print("models:\n" + "".join(f"  {n}\n" for n in MODELS.names()), end="")
    print("datasets:")
    for line in _dataset_lines():
        print(f"  {line}")
    return 0


def _dataset_lines() -> list[str]:
    lines: list[str] = []
    try:
        readers = importlib.import_module("gradtrack.data.readers")
        lines.append("benchmark readers: "
                     + ", ".join(readers.DATASETS.names()))
    except Exception as exc:  # noqa: BLE001 - listing must not fail because one part is broken
        lines.append(f"benchmark readers: unavailable ({type(exc).__name__}: {exc})")
    try:
        synthetic = importlib.import_module("gradtrack.data.synthetic")
        presets = sorted(getattr(synthetic, "PRESETS", None) or [])
        lines.append("synthetic (procedural, exact ground truth): presets " + (", ".join(presets) or "(none)"))
    except Exception as exc:  # noqa: BLE001
        lines.append(f"synthetic: unavailable ({type(exc).__name__}: {exc})")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    import yaml

    from .checkpoint import read_checkpoint

    path = Path(args.weights).expanduser()
    ckpt = read_checkpoint(path)
    sd = ckpt["state_dict"]
    n_params = sum(int(v.numel()) for v in sd.values() if hasattr(v, "numel"))
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in sd.values() if hasattr(v, "dtype")})
    print(f"checkpoint: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"format: {ckpt['format']} v{ckpt['version']}")
    print(f"model: {ckpt['model']}  ({n_params:,} values in {len(sd)} tensors; dtypes {', '.join(dtypes)})")
    extra = sorted(k for k in ckpt if k not in ("format", "version", "model", "config", "state_dict", "meta"))
    if extra:
        print(f"training state: {', '.join(extra)}")
    meta = ckpt.get("meta") or {}
    print("meta:")
    print(_indent(yaml.safe_dump(meta, sort_keys=True, default_flow_style=False) if meta else "{}\n"), end="")
    print("config:")
    print(_indent(yaml.safe_dump(ckpt["config"], sort_keys=True, default_flow_style=None)), end="")
    card = path.with_suffix(".md")
    if card.is_file():
        print(f"model card ({card.name}):")
        print(_indent(card.read_text()), end="")
    return 0


def _indent(text: str) -> str:
    return "".join("  " + line for line in text.splitlines(keepends=True))


# --------------------------------------------------------------------------------------------- parser


def _add_optional(sub, module: str, names: Sequence[str], helps: Sequence[str]) -> None:
    """Let ``module.register_cli(sub)`` add its subcommands; if the import fails, add placeholders that
    report the failure only when one of them is used."""
    try:
        mod = importlib.import_module(module)
        register: Callable = mod.register_cli
    except Exception as exc:  # noqa: BLE001 - any import-time failure of an optional part
        reason = f"{type(exc).__name__}: {exc}"
        for name, help_ in zip(names, helps):
            p = sub.add_parser(name, help=f"{help_} (unavailable: {module} failed to import)", add_help=False)
            p.add_argument("rest", nargs=argparse.REMAINDER)
            p.set_defaults(func=_unavailable(name, module, reason), _placeholder=True)
        return
    register(sub)


def _unavailable(name: str, module: str, reason: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise UsageError(f"the {name!r} subcommand is unavailable because {module} cannot be imported ({reason})")

    return run


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradtrack")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradtrack", description="Gradient-guided Siamese visual object tracking (SiamFC, GradNet, SiamMLG).",
        epilog="Boxes are 0-based x,y,w,h in pixels (continuous coordinates). GRADTRACK_DEBUG=1 shows tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"gradtrack {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("track", help="track one object through a video, an image folder or a camera",
                       description="Track the object in --box from the first frame of SOURCE; write an annotated "
                                   "video and a boxes file (one 0-based 'x,y,w,h' line per frame, no header; "
                                   "line 1 is the given box).")
    p.add_argument("source", metavar="SOURCE",
                   help="video file, folder of images, camera index (0, 1, ...) or stream URL (rtsp://, http(s)://, "
                        "udp://, ...); cameras and streams are tracked in real time (frames the tracker has no time "
                        "for are dropped and counted)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--box", action="append", default=None, metavar="X,Y,W,H",
                   help="target in the first frame, 0-based pixels; repeat for several targets (one pass, "
                        "boxes to OUT.0.txt, OUT.1.txt, ... in the order given, one video with all boxes)")
    target.add_argument("--select", action="store_true",
                   help="draw the target box on the first frame with the mouse (needs a display and an OpenCV "
                        "with GUI; exclusive with --box)")
    p.add_argument("--tracker", default="gradnet", help="tracker name (see `gradtrack list`; default gradnet)")
    p.add_argument("--weights", default=None, metavar="PATH|random",
                   help="checkpoint file; 'random' for untrained weights; default: the shipped weights")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: the tracker's)")
    p.add_argument("--out", default=None, metavar="VIDEO",
                   help="annotated video (default: SOURCE-STEM.TRACKER.mp4 beside SOURCE)")
    p.add_argument("--boxes", default=None, metavar="TXT",
                   help="boxes file (default: --out with the extension .txt, else SOURCE-STEM.TRACKER.txt beside SOURCE)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files (default: refuse)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="a video that decodes fewer frames than its container claims is not an error: keep the "
                        "frames tracked and say so")
    p.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--show-fps", action="store_true", help="draw the running tracking speed on the video")
    p.add_argument("--show", action="store_true",
                   help="display the annotated frames live (needs a display and an OpenCV with GUI); q or Esc in "
                        "the window stops tracking and keeps the outputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("demo", help="track a procedural sequence (nothing to download) and report IoU and fps")
    p.add_argument("--tracker", default="gradnet", help="tracker name (default gradnet)")
    p.add_argument("--weights", default=None, metavar="PATH|random", help="default: the shipped weights")
    p.add_argument("--device", default=None, help="torch device (default: the tracker's)")
    p.add_argument("--out", default="out/demo", metavar="DIR", help="output folder (default out/demo)")
    p.add_argument("--frames", type=int, default=None, metavar="N", help="track only the first N frames")
    p.add_argument("--preset", default=DEMO_PRESET, help=f"synthetic sequence preset (default {DEMO_PRESET})")
    p.add_argument("--seed", type=int, default=DEMO_SEED, help=f"sequence seed (default {DEMO_SEED})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("list", help="list trackers, models and datasets")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="print the model card, meta data and config of a checkpoint")
    p.add_argument("weights", metavar="WEIGHTS", help="checkpoint file (.pt)")
    p.set_defaults(func=cmd_info)

    _add_optional(sub, "gradtrack.evaluation.cli", ("eval", "report"),
                  ("run a benchmark protocol", "tables and plots from evaluation results"))
    _add_optional(sub, "gradtrack.training.cli", ("train",), ("train a model",))
    _add_optional(sub, "gradtrack.bench.cli", ("bench",), ("measure tracking speed",))
    _add_optional(sub, "gradtrack.deploy.cli", ("export",), ("export a tracker's networks (ONNX)",))
    _add_optional(sub, "gradtrack.quantize", ("quantize",), ("int8 ONNX graphs of a SiamFC tracker",))
    _add_optional(sub, "gradtrack.integrations.cli", ("vot-workspace", "vot-client"),
                  ("write a VOT toolkit workspace", "TraX client for the VOT toolkit"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # placeholders of unavailable subcommands accept any arguments (they only report why they are unavailable)
    args, extra = parser.parse_known_args(_box_argv(sys.argv[1:] if argv is None else argv))
    if extra and not getattr(args, "_placeholder", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    func = getattr(args, "func", None)
    if func is None:
        parser.error(f"no action for command {args.command!r}")
    try:
        rc = func(args)
    except KeyboardInterrupt:
        print("gradtrack: interrupted", file=sys.stderr)
        return 130
    except _user_error_types() as exc:
        if os.environ.get("GRADTRACK_DEBUG"):
            traceback.print_exc()
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"gradtrack {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())

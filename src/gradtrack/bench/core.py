"""Speed of trackers measured side by side in one process, on preloaded frames.

Method
------
* The frames are decoded first (:func:`load_source`), so decoding is excluded.
* Every run (a gradtrack tracker, its backbone-only twin, and with ``compare`` the reference SiamFC,
  OpenCV NanoTrack and CSRT) processes each frame in turn (round robin), so load from other processes on a
  shared machine hits all runs alike and the ratios stay comparable.  A repeat is ``init`` on frame 0 plus
  ``update`` on every later frame; its fps is ``frames / (init + updates)``; the reported fps is the median
  over repeats.  CUDA is synchronised after each step.
* Stage times come from the trackers' timing hooks (:func:`gradtrack.trackers.common.stage`, free when no
  timer is installed): ``crop``, ``backbone``, ``correlation``, ``post`` (upsampling, windowing, the move),
  ``update`` (the online template update, GradNet/SiamMLG) and ``other`` (the rest of the update time).
  SiamMLG: ``backbone`` = backbone and neck, ``correlation`` = its heads (depth-wise correlations, score,
  mask and box branches), ``post`` = penalties, window, peak, the mask at the peak (Refine), its warp into
  the image, contours and the move.
  On the CPU they are collected during the timed repeats; on CUDA (where they need a synchronisation at
  each boundary) in one extra, untimed pass.
* ``backbone-only``: the tracker's own search network (``tracker.backbone_probe``) run on the same search
  crops (three for SiamFC/GradNet, one for SiamMLG; frame 0 at the initial box) with nothing else, the
  lower bound of an update; ``vs backbone`` = backbone-only time / the tracker's update time.
* FLOPs per frame: :class:`torch.utils.flop_counter.FlopCounterMode` over the first ``FLOP_FRAMES`` updates
  after an init (mean; GradNet's periodic update is amortised); GFLOP/s = FLOPs per frame / update time.
* Memory (:mod:`gradtrack.bench.memory`): each run in a fresh process with the libraries loaded, the growth
  of the resident set while the tracker is built, initialised and run on a few frames (``first``), and
  what a second one beside it adds (``another``).
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..config import ConfigError
from ..trackers import build_tracker, list_trackers
from ..trackers.common import STAGES, StageTimer, cpu_bf16_flags, timing
from .memory import measure, probe, read_frames

REPO = Path(__file__).resolve().parents[3]
FLOP_FRAMES = 5
DEFAULT_SEQUENCE = "otb/Crossing"
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
BACKENDS = ("torch", "onnxruntime")


class BenchError(ValueError):
    """A bad benchmark request (unknown tracker, unsupported option, unreadable source)."""


class Unsupported(BenchError):
    """A tracker has no path for the requested precision or backend (skipped with a note when others can run)."""


# ------------------------------------------------------------------------------------------- sources

def shared_dir() -> Path:
    return Path(os.environ.get("GRADTRACK_SHARED", REPO.parent / "shared"))


def _first_box(gt: Path) -> np.ndarray:
    line = next((ln for ln in gt.read_text().splitlines() if ln.strip()), "")
    vals = [float(v) for v in line.replace("\t", ",").replace(" ", ",").split(",") if v]
    if len(vals) == 4:
        return np.array(vals, dtype=np.float64)
    if len(vals) >= 6 and len(vals) % 2 == 0:  # polygon -> its bounding box
        xs, ys = vals[0::2], vals[1::2]
        return np.array([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], dtype=np.float64)
    raise BenchError(f"{gt}: first line is not x,y,w,h or a polygon: {line!r}")


def load_source(source: str | os.PathLike | None, frames: int, box=None) -> tuple[list[np.ndarray], np.ndarray, str]:
    """``(frames, initial box, description)``: at most ``frames`` RGB frames, preloaded.

    ``source``: ``None`` -> the real sequence ``../shared/data/sequences/otb/Crossing`` if present, else the
    procedural demo sequence; ``"demo"`` (or ``demo:SEED``) -> the procedural sequence; a sequence folder
    (``groundtruth.txt`` or ``groundtruth_rect.txt`` beside ``video.mp4``, ``img/`` or the images) -> its
    frames and first box; a video file or image folder -> its frames, with ``box`` required."""
    if frames < 2:
        raise BenchError(f"--frames must be >= 2 (init + at least one update), got {frames}")
    if source is None:
        seq = shared_dir() / "data" / "sequences" / DEFAULT_SEQUENCE
        source = seq if (seq / "video.mp4").is_file() else "demo"
    if isinstance(source, str) and (source == "demo" or source.startswith("demo:")):
        from ..data import synthetic

        seed = int(source.partition(":")[2] or 0)
        seq = synthetic.preset("demo", seed=seed, num_frames=frames)
        imgs = [np.ascontiguousarray(f) for f in seq.frames][:frames]
        b = np.asarray(seq.boxes[0], dtype=np.float64) if box is None else np.asarray(box, dtype=np.float64)
        return imgs, b, f"procedural demo sequence (seed {seed})"
    from ..io import open_frames

    path = Path(source)
    if not path.exists():
        raise BenchError(f"--source {path}: no such file or directory")
    target: Path = path
    gt_box = None
    if path.is_dir():
        gt = next((path / n for n in ("groundtruth.txt", "groundtruth_rect.txt") if (path / n).is_file()), None)
        if gt is not None:
            gt_box = _first_box(gt)
        if (path / "video.mp4").is_file():
            target = path / "video.mp4"
        elif (path / "img").is_dir():
            target = path / "img"
    b = box if box is not None else gt_box
    if b is None:
        raise BenchError(f"--source {path}: no groundtruth.txt there, so give the initial box with --box X,Y,W,H")
    imgs = []
    with open_frames(str(target)) as src:
        for f in src:
            imgs.append(np.ascontiguousarray(f))
            if len(imgs) >= frames:
                break
    if len(imgs) < 2:
        raise BenchError(f"--source {path}: fewer than 2 frames could be read")
    return imgs, np.asarray(b, dtype=np.float64), str(path)


# ---------------------------------------------------------------------------------------------- runs

@dataclass
class Run:
    """One thing timed: ``init(frame, box)`` and ``update(frame)``; ``tracker`` is the gradtrack tracker."""

    label: str
    kind: str  # "gradtrack", "backbone", "peer"
    init: Callable[[np.ndarray, np.ndarray], Any]
    update: Callable[[np.ndarray], Any]
    tracker: Any = None
    precision: str = "fp32"
    device: str = "cpu"
    base: str | None = None  # backbone runs: the label of the tracker they belong to
    fps: list[float] = field(default_factory=list)
    update_s: list[float] = field(default_factory=list)  # all update times (every repeat)
    init_s: list[float] = field(default_factory=list)
    timer: StageTimer | None = None
    staged_frames: int = 0
    memory_mb: float | None = None  # resident memory the first live tracker adds (bench.memory)
    memory_another_mb: float | None = None  # ... and a second one beside it
    flops: float | None = None
    note: str = ""
    rebuild: dict | None = None  # how a fresh process builds this run again (bench.memory)


def _precision_kwargs(name: str, precision: str) -> list[dict]:
    """Tracker keyword arguments to try, in order, for ``precision`` ("auto": each tracker's default;
    "fp32" falls back to the default for trackers without a precision option, which run fp32)."""
    if precision == "auto":
        return [{}]
    if precision == "fp32":
        return [{"precision": "fp32"}, {}]
    out = [{"precision": precision}]
    if precision == "bf16":
        out.append({"amp": True})  # trackers with only the older bf16 switch
    return out


_INT8_DIRS: dict[tuple[str, str | None], Any] = {}  # (tracker, weights) -> TemporaryDirectory, for this process


def int8_graphs(name: str, weights=None, log: Callable[[str], None] | None = None) -> Path:
    """int8 graphs of ``name`` for ``--precision int8``: the shipped ones (``weights/<name>_int8/``) for the
    shipped weights, else :func:`gradtrack.quantize.quantize_tracker` into a temporary folder, calibrated on
    the procedural suite (the bench measures speed, not accuracy)."""
    from ..quantize import QUANTIZABLE, quantize_tracker
    from ..trackers.siamfc import shipped_int8_dir

    if name not in QUANTIZABLE:
        raise Unsupported(f"tracker {name!r} has no int8 path (gradtrack quantize covers {', '.join(QUANTIZABLE)})")
    shipped = shipped_int8_dir(name) if weights is None else None
    if shipped is not None:
        return shipped
    key = (name, None if weights is None else str(weights))
    if key not in _INT8_DIRS:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix=f"gradtrack-bench-int8-{name}-")
        (log or (lambda s: None))(f"{name}: quantising to int8 (gradtrack quantize, procedural calibration)")
        quantize_tracker(name, tmp.name, weights=weights, sequences=4, frames=41, every=5)
        _INT8_DIRS[key] = tmp
    return Path(_INT8_DIRS[key].name)


def build_gradtrack(name: str, device: str, precision: str, backend: str, weights=None, onnx_dir=None) -> Any:
    if name not in list_trackers():
        raise BenchError(f"unknown tracker {name!r}; known: {', '.join(list_trackers())}")
    if precision == "int8":
        if device != "cpu":
            raise BenchError("--precision int8 runs int8 ONNX graphs on the CPU (--device cpu)")
        d = onnx_dir if onnx_dir is not None else int8_graphs(name, weights)
        try:
            return build_tracker(name, weights=weights, device=device, backend="onnxruntime", onnx_dir=d)
        except (ConfigError, TypeError, ValueError, ImportError, OSError, RuntimeError) as exc:
            raise BenchError(f"tracker {name!r} int8: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if onnx_dir is not None:
        if backend != "onnxruntime":
            raise BenchError("--onnx-dir needs --backend onnxruntime (or --precision int8)")
        try:
            return build_tracker(name, weights=weights, device=device, backend=backend, onnx_dir=onnx_dir)
        except (ConfigError, TypeError, ValueError, ImportError, OSError, RuntimeError) as exc:
            raise BenchError(f"tracker {name!r} with --onnx-dir {onnx_dir}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0]}") from None
    extra = {} if backend == "torch" else {"backend": backend}
    last: Exception | None = None
    for kw in _precision_kwargs(name, precision):
        try:
            return build_tracker(name, weights=weights, device=device, **kw, **extra)
        except (ConfigError, TypeError) as exc:
            last = exc
            msg = str(exc)
            if backend != "torch" and "backend" in msg:
                raise Unsupported(f"tracker {name!r} does not support backend={backend!r} ({msg.splitlines()[0]})") from None
            if "precision" in msg or "amp" in msg:
                continue
            raise BenchError(f"tracker {name!r}: {msg.splitlines()[0]}") from None
        except ValueError as exc:
            raise BenchError(f"tracker {name!r}: {str(exc).splitlines()[0]}") from None
        except (ImportError, OSError, RuntimeError) as exc:
            if backend == "torch":
                raise
            raise BenchError(f"tracker {name!r} with backend={backend!r}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    raise Unsupported(f"tracker {name!r} does not support precision {precision!r} "
                               f"({str(last).splitlines()[0]})")


def _sync_for(device: str) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.startswith("cuda") else None


def gradtrack_run(name: str, device: str, precision: str, backend: str, weights=None, onnx_dir=None) -> Run:
    tr = build_gradtrack(name, device, precision, backend, weights, onnx_dir)
    prec = getattr(tr, "precision", None) or ("bf16" if getattr(getattr(tr, "cfg", None), "amp", False) else "fp32")
    used = getattr(getattr(tr, "model", None), "backend", "torch")
    label = name if used == "torch" else f"{name} [{used}]"
    return Run(f"{label} {prec}", "gradtrack", tr.init, tr.update, tracker=tr, precision=prec,
               device=str(getattr(tr, "device", device)),
               rebuild={"tracker": name, "device": device, "precision": precision, "backend": backend,
                        "weights": None if weights is None else str(weights),
                        "onnx_dir": None if onnx_dir is None else str(onnx_dir)})


def backbone_run(base: Run, frame0: np.ndarray, box: np.ndarray) -> Run | None:
    """The search network of ``base.tracker`` alone on its frame-0 search crops (``tracker.backbone_probe``;
    None if the tracker has none)."""
    probe = getattr(base.tracker, "backbone_probe", None)
    run = probe(frame0, box) if probe is not None else None
    if run is None:
        return None
    return Run(f"{base.label} backbone-only", "backbone", lambda f, b: None, lambda _frame: run(),
               precision=base.precision, device=base.device, base=base.label)


PEERS = ("reference_siamfc", "nanotrack", "opencv_csrt")


def build_peer(name: str, device: str) -> Run:
    """The comparison tracker ``name`` (one of :data:`PEERS`) as a run; raises when it cannot be built."""
    if name == "reference_siamfc":
        ref = REPO / "benchmarks" / "reference_siamfc.py"
        if not ref.is_file():
            raise FileNotFoundError(f"{ref} not found (run from a gradtrack checkout)")
        import importlib.util

        spec = importlib.util.spec_from_file_location("gradtrack_reference_siamfc", ref)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        r = mod.build(device=device)
        return Run("reference_siamfc fp32", "peer", r.init, r.update, precision="fp32", device=device,
                   note="plain SiamFC loop standing in for siamfc-pytorch (benchmarks/reference_siamfc.py)",
                   rebuild={"peer": name, "device": device})
    if name not in PEERS:
        raise BenchError(f"unknown comparison tracker {name!r}; known: {', '.join(PEERS)}")
    tr = build_tracker(name)
    return Run(f"{name} (OpenCV)", "peer", tr.init, tr.update, tracker=tr, device="cpu",
               rebuild={"peer": name, "device": "cpu"})


def peer_runs(device: str) -> tuple[list[Run], list[str]]:
    """The comparison trackers that can be built here, and a note for each that cannot."""
    runs, notes = [], []
    for name in PEERS:
        try:
            runs.append(build_peer(name, device))
        except Exception as exc:  # noqa: BLE001 - a comparison that cannot run is skipped, with the reason
            notes.append(f"{name} skipped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return runs, notes


def memory_child(spec_json: str, frames_file: str) -> None:
    """Entry point of :func:`gradtrack.bench.memory.measure`'s fresh process: builds the run ``spec``
    describes (:attr:`Run.rebuild`) twice and prints the memory figures as one JSON line."""
    import json

    spec = json.loads(spec_json)
    frames, box = read_frames(frames_file)

    def build() -> Run:
        if "peer" in spec:
            return build_peer(spec["peer"], spec["device"])
        return gradtrack_run(spec["tracker"], spec["device"], spec["precision"], spec["backend"],
                             spec.get("weights"), spec.get("onnx_dir"))

    print(json.dumps(probe(build, frames, box, spec.get("threads"))), flush=True)


# -------------------------------------------------------------------------------------------- measure

class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker: every FLOP goes to "Global"."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fused_op_flops() -> dict:
    """FLOP formulas for the fused CPU ops the per-frame copies call (``trackers.common.ConvAct``): oneDNN's
    convolution with an activation post-op counts as the convolution it is (the activation, like aten's
    bias, is not counted)."""
    from torch.utils.flop_counter import conv_flop_count

    try:
        packet = torch.ops.mkldnn._convolution_pointwise
    except (AttributeError, RuntimeError):
        return {}

    def conv_pointwise_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        return conv_flop_count(list(x_shape), list(w_shape), list(out_shape))

    return {packet: conv_pointwise_flop}


def count_flops(run: Run, frames: list[np.ndarray], box: np.ndarray) -> float | None:
    """Mean FLOPs per update over the first :data:`FLOP_FRAMES` updates after an init (torch ops only)."""
    from torch.utils.flop_counter import FlopCounterMode

    k = min(FLOP_FRAMES, len(frames) - 1)
    run.init(frames[0], box)
    counter = FlopCounterMode(display=False, custom_mapping=_fused_op_flops())
    # count globally, without the per-module tracker: its backward hooks break torch.autograd.grad (GradNet's
    # and SiamMLG's online update) -- "a leaf node was passed to _will_engine_execute_node"
    counter.mod_tracker = _GlobalOnly()
    with counter:
        for f in frames[1:1 + k]:
            run.update(f)
    total = counter.get_total_flops()
    return float(total) / k if total else None


def _timed(fn, sync) -> float:
    t0 = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - t0


def interleave(runs: list[Run], frames: list[np.ndarray], box: np.ndarray, repeats: int, warmup: int,
               stages_in_timed: bool) -> None:
    """The round-robin loop (see the module docstring); fills ``fps``, ``update_s``, ``init_s`` and stages."""
    syncs = [_sync_for(r.device) for r in runs]
    for r in runs:
        r.timer = StageTimer()
    for r in runs:  # warm-up: lazy kernel selection, allocator
        r.init(frames[0], box)
        for f in frames[1:1 + warmup]:
            r.update(f)
    for _ in range(repeats):
        totals = [0.0] * len(runs)
        for j, r in enumerate(runs):
            totals[j] = _timed(lambda r=r: r.init(frames[0], box), syncs[j])
            r.init_s.append(totals[j])
        for f in frames[1:]:
            for j, r in enumerate(runs):
                if stages_in_timed:
                    with timing(r.timer):
                        dt = _timed(lambda r=r: r.update(f), syncs[j])
                    r.staged_frames += 1
                else:
                    dt = _timed(lambda r=r: r.update(f), syncs[j])
                totals[j] += dt
                r.update_s.append(dt)
        for j, r in enumerate(runs):
            r.fps.append(len(frames) / totals[j])
    if not stages_in_timed:  # one untimed pass with synchronising stage timers
        for j, r in enumerate(runs):
            r.timer = StageTimer(sync=syncs[j])
            r.init(frames[0], box)
            t_all = 0.0
            for f in frames[1:]:
                with timing(r.timer):
                    t_all += _timed(lambda r=r: r.update(f), syncs[j])
            r.staged_frames = len(frames) - 1
            r.timer.totals["_total"] = t_all


@dataclass
class BenchResult:
    header: dict
    rows: list[dict]
    notes: list[str]


def environment(device: str) -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
           "processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
           "cpu_capability": str(torch.backends.cpu.get_cpu_capability()), "device": device}
    flags = cpu_bf16_flags()
    env["cpu_bf16"] = "unknown" if flags is None else (" ".join(flags) or "none")
    try:
        import cv2

        env["opencv"] = cv2.__version__
    except ImportError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def run_bench(trackers: list[str], device: str = "cpu", precision: str = "auto", backend: str = "torch",
              source=None, frames: int = 50, repeats: int = 3, threads: int | None = None, compare: bool = False,
              warmup: int = 2, box=None, weights=None, flops: bool = True, memory: bool = True,
              onnx_dir=None, log: Callable[[str], None] | None = None) -> BenchResult:
    """Measure ``trackers`` (see the module docstring); returns the header, one row per run and notes."""
    log = log or (lambda s: None)
    if precision not in PRECISIONS:
        raise BenchError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if backend not in BACKENDS:
        raise BenchError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if repeats < 1:
        raise BenchError(f"--repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise BenchError(f"warm-up must be >= 0, got {warmup}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"--device {device}: CUDA is not available here")
    if device != "cpu" and not device.startswith("cuda"):
        raise BenchError(f"--device must be cpu or cuda[:N], got {device!r}")
    if precision == "fp16" and device == "cpu":
        raise BenchError("--precision fp16 needs --device cuda (use bf16 on the CPU)")
    if threads is not None:
        if threads < 1:
            raise BenchError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
        try:
            import cv2

            cv2.setNumThreads(threads)
        except ImportError:
            pass
    if not trackers:
        raise BenchError("give at least one --tracker")
    imgs, b, desc = load_source(source, frames, box)
    h, w = imgs[0].shape[:2]
    log(f"source: {desc}: {len(imgs)} frames {w}x{h}, init box {np.round(b, 1).tolist()}")

    runs: list[Run] = []
    notes: list[str] = []
    for name in trackers:
        try:
            d = onnx_dir
            if precision == "int8" and onnx_dir is None:
                d = int8_graphs(name, weights, log)  # quantised once here, not in each memory probe
            run = gradtrack_run(name, device, precision, backend, weights, d)
        except Unsupported as exc:
            if len(trackers) == 1:
                raise
            notes.append(f"{name} skipped: {exc}")
            continue
        runs.append(run)
        bb = backbone_run(run, imgs[0], b)
        if bb is not None:
            runs.append(bb)
    if not runs:
        raise BenchError("none of the trackers can run with these options: " + "; ".join(notes))
    if compare:
        peers, why = peer_runs(device)  # the reference loop on the same device; OpenCV's trackers on the CPU
        notes += why
        runs += peers
    if memory:
        for r in runs:
            if r.rebuild is None:
                continue
            log(f"memory: {r.label} (a fresh process)")
            got, why = measure(r.rebuild, imgs, b, threads=torch.get_num_threads())
            if got is None:
                notes.append(f"{r.label}: no memory figure: {why}")
            else:
                r.memory_mb, r.memory_another_mb = got["first"], got["another"]
    if flops:
        for r in runs:
            if r.kind != "backbone":
                r.flops = count_flops(r, imgs, b)
    log(f"timing {len(runs)} runs x {repeats} repeats x {len(imgs)} frames (interleaved)")
    interleave(runs, imgs, b, repeats, warmup, stages_in_timed=not device.startswith("cuda"))

    ref_fps = next((statistics.median(r.fps) for r in runs if r.label.startswith("reference_siamfc")), None)
    backbone_ms = {r.base: 1e3 * float(np.median(r.update_s)) for r in runs if r.kind == "backbone"}
    rows = []
    for r in runs:
        upd = np.asarray(r.update_s)
        row: dict[str, Any] = {
            "label": r.label, "kind": r.kind, "precision": r.precision, "device": r.device,
            "fps": statistics.median(r.fps), "fps_repeats": r.fps,
            "update_ms_median": 1e3 * float(np.median(upd)), "update_ms_mean": 1e3 * float(upd.mean()),
            "init_ms_median": 1e3 * float(np.median(r.init_s)),
        }
        if r.timer is not None and r.kind != "backbone" and r.staged_frames:
            staged_total = r.timer.totals.pop("_total", None)
            total_s = staged_total if staged_total is not None else float(upd.sum())
            stages = {k: 1e3 * r.timer.totals.get(k, 0.0) / r.staged_frames for k in STAGES}
            if any(stages.values()):
                stages["other"] = max(0.0, 1e3 * total_s / r.staged_frames - sum(stages.values()))
                row["stages_ms"] = stages
                row["stages_total_ms"] = 1e3 * total_s / r.staged_frames
        if r.flops:
            row["gflop_per_frame"] = r.flops / 1e9
            row["gflops_achieved"] = r.flops / 1e9 / (float(upd.mean()))
        if r.memory_mb is not None:
            row["rss_added_mb"] = r.memory_mb
            row["rss_another_mb"] = r.memory_another_mb
        if r.kind == "gradtrack" and r.label in backbone_ms:
            row["backbone_only_ms"] = backbone_ms[r.label]
            row["vs_backbone"] = backbone_ms[r.label] / row["update_ms_median"]
        if ref_fps:
            row["x_reference"] = row["fps"] / ref_fps
        if r.note:
            row["note"] = r.note
        rows.append(row)
    header = {"source": desc, "frames": len(imgs), "size": [w, h], "repeats": repeats, "warmup": warmup,
              "precision": precision, "backend": backend, **environment(device)}
    return BenchResult(header, rows, notes)


# --------------------------------------------------------------------------------------------- report

def _mem(row: dict) -> str:
    if row.get("rss_added_mb") is None:
        return "-"
    return f"{row['rss_added_mb']:.0f} / {row['rss_another_mb']:.0f}"


def format_table(res: BenchResult) -> str:
    """A Markdown table of the rows plus the stage breakdown."""
    lines = ["| run | fps | x reference | update ms | vs backbone | GFLOP/frame | GFLOP/s | RSS MB first / another |",
             "|---|---|---|---|---|---|---|---|"]

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for r in res.rows:
        lines.append(f"| {r['label']} | {r['fps']:.1f} | {f(r.get('x_reference'), '.2f')} | "
                     f"{r['update_ms_median']:.1f} | {f(r.get('vs_backbone'), '.0%')} | "
                     f"{f(r.get('gflop_per_frame'), '.2f')} | {f(r.get('gflops_achieved'), '.0f')} | "
                     f"{_mem(r)} |")
    staged = [r for r in res.rows if "stages_ms" in r]
    if staged:
        names = list(STAGES) + ["other"]
        lines += ["", "| run (ms per frame) | " + " | ".join(names) + " | total |",
                  "|---|" + "---|" * (len(names) + 1)]
        for r in staged:
            s = r["stages_ms"]
            lines.append(f"| {r['label']} | " + " | ".join(f"{s[n]:.1f}" for n in names)
                         + f" | {r['stages_total_ms']:.1f} |")
    return "\n".join(lines)

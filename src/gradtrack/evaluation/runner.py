"""Run a protocol over a dataset: parallel worker processes, resumable, per-frame times.

    from gradtrack.evaluation import TrackerSpec, DatasetSpec, run_benchmark
    run_benchmark(TrackerSpec("gradnet", weights="w.pt", device="cpu"),
                  DatasetSpec("otb", "/data/OTB100"), "results", protocol="ope", workers=4)

* **Workers** (``workers > 1``) are ``spawn``-ed processes; each builds its *own* tracker from the
  :class:`TrackerSpec` (name, weights, device, overrides -- or a picklable module-level ``factory``) and its
  own dataset from the :class:`DatasetSpec`, once per process; nothing unpicklable crosses a process
  boundary.  Workers run with one torch thread and one OpenCV thread each, and die with the main process
  (``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread polling the parent pid).  A worker that dies
  (OOM, a signal) costs a retry of the unfinished sequences, not the run (see :func:`run_benchmark`).
* **Resume**: a sequence is skipped when its result files are all valid (right number of lines, every line
  parses, frame 0 holds the initial box) *and* were made by the same tracker, weights (SHA-256) and
  settings (its :func:`fingerprint` in ``.fingerprints/<seq>.json``); a missing or broken one is run again
  (all its repetitions); valid results of other settings are refused (:class:`ResumeError`) unless
  ``redo=True``.  Files are written atomically, the fingerprint before the results.
* **Failures** of single sequences (unreadable data, bad ground truth, tracker errors) do not stop the
  others; :class:`BenchmarkError` lists them all at the end.
* **Repetitions**: OPE 1; VOT 15 and GOT-10k 3 for a tracker with ``is_deterministic = False``, else 1.
  Repetition ``r`` (1-based) seeds ``random``, NumPy and torch with ``seed + r - 1``.
* Layout and file formats: :mod:`gradtrack.evaluation.results` (boxes are 0-based).
"""
from __future__ import annotations

import glob
import hashlib
import json
import multiprocessing as mp
import os
import platform
import random
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import results as R
from .protocols import repetitions_for, run_got10k, run_ope, run_vot_supervised

__all__ = ["TrackerSpec", "DatasetSpec", "run_benchmark", "sequence_done", "result_problem", "fingerprint",
           "ResumeError", "BenchmarkError", "PROTOCOLS"]

PROTOCOLS = ("ope", "vot", "got10k")


@dataclass(frozen=True)
class TrackerSpec:
    """How to build a tracker (in this process or in a worker).

    ``factory``: optional picklable callable ``(weights, device, **overrides) -> Tracker`` (a module-level
    function); by default :func:`gradtrack.build_tracker` with ``name``.  ``label``: the results folder name
    (default ``name``).
    """

    name: str
    weights: str | None = None
    device: str | None = "cpu"
    overrides: dict = field(default_factory=dict)
    label: str | None = None
    factory: Callable | None = None

    @property
    def folder(self) -> str:
        return self.label or self.name

    def build(self):
        if self.factory is not None:
            return self.factory(weights=self.weights, device=self.device, **self.overrides)
        from gradtrack import build_tracker

        return build_tracker(self.name, weights=self.weights, device=self.device, **self.overrides)


@dataclass(frozen=True)
class DatasetSpec:
    """How to open a dataset: :func:`gradtrack.data.readers.build_dataset` ``(name, root, **kwargs)``, or a
    picklable ``factory(root, **kwargs)``."""

    name: str
    root: str | None = None
    kwargs: dict = field(default_factory=dict)
    factory: Callable | None = None

    def build(self):
        if self.factory is not None:
            return self.factory(self.root, **self.kwargs)
        from gradtrack.data.readers import build_dataset

        return build_dataset(self.name, self.root, **self.kwargs)


class ResumeError(ValueError):
    """Existing results in the results folder were made with other settings (or unknown ones)."""


class BenchmarkError(RuntimeError):
    """Some sequences failed; ``failures`` lists ``(sequence, problem)``, the other results are written."""

    def __init__(self, folder: str, failures: list[tuple[str, str]], total: int):
        self.folder, self.failures, self.total = folder, failures, total
        lines = [f"{folder}: sequence {n!r} failed: {p}" for n, p in failures]
        super().__init__("\n".join(lines + [f"{folder}: {len(failures)} of {total} sequence(s) failed"]))


# ------------------------------------------------------------------------------------------ resume check
def _result_paths(results_dir, folder: str, protocol: str, seq_name: str, repetitions: int) -> list[Path]:
    if protocol == "ope":
        return [R.ope_result_path(results_dir, folder, seq_name)]
    path = R.got10k_result_path if protocol == "got10k" else R.vot_result_path
    return [path(results_dir, folder, seq_name, r) for r in range(1, repetitions + 1)]


def result_problem(results_dir, folder: str, protocol: str, seq_name: str, n_frames: int,
                   repetitions: int) -> str | None:
    """Why the results of a sequence are not complete and valid, or ``None`` when they are."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    check = R.vot_file_problem if protocol == "vot" else R.box_file_problem
    for path in _result_paths(results_dir, folder, protocol, seq_name, repetitions):
        problem = check(path, n_frames)
        if problem:
            return problem
    return None


def sequence_done(results_dir, folder: str, protocol: str, seq_name: str, n_frames: int, repetitions: int) -> bool:
    """True when every result file a protocol writes for this sequence is present and valid."""
    return result_problem(results_dir, folder, protocol, seq_name, n_frames, repetitions) is None


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(tracker: TrackerSpec, protocol: str, repetitions: int, seed: int) -> dict:
    """What made a result: tracker (name, factory), weights (SHA-256 of the file: the given checkpoint or the
    shipped one; ``"random"``), settings (overrides), protocol, repetitions and seed.  The device is not part
    of it; :func:`run_benchmark` adds the precision a registry tracker resolved (``"auto"`` differs by CPU).
    ``weights_path`` is informational (a moved checkpoint with the same hash still matches)."""
    weights, path = tracker.weights, tracker.weights
    if weights is None and tracker.factory is None:
        try:
            from gradtrack.trackers.common import shipped_weights

            path = shipped_weights(tracker.name)
        except ImportError:  # pragma: no cover - trackers are part of the package
            path = None
    if weights == "random":
        digest = "random"
    elif path is not None and Path(path).expanduser().is_file():
        digest = "sha256:" + _file_sha256(Path(path).expanduser())
    else:
        digest = None if weights is None else f"missing:{weights}"
    f = tracker.factory
    fp = {"tracker": tracker.name, "factory": f and f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', f)}",
          "weights": digest, "weights_path": None if path is None else str(path), "overrides": tracker.overrides,
          "protocol": protocol, "repetitions": repetitions, "seed": seed}
    return json.loads(json.dumps(fp, sort_keys=True, default=str))  # as it reads back from the file


def _differences(old: dict | None, new: dict) -> str:
    if old is None:
        return "no fingerprint (made by an older gradtrack, or the fingerprint is unreadable)"
    keys = sorted(k for k in set(old) | set(new) if k != "weights_path" and old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _finite_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(boxes).all(1))
    if len(bad):
        raise ValueError(f"sequence {name!r}: the tracker returned a NaN/infinite box at frame {bad[0]}"
                         f"{f' (and {len(bad) - 1} more frames)' if len(bad) > 1 else ''}")
    return boxes


def _run_sequence(tracker, sequence, protocol: str, results_dir, folder: str, repetitions: int, seed: int,
                  fp: dict | None = None) -> None:
    name = sequence.name
    old = _result_paths(results_dir, folder, protocol, name, repetitions)
    if protocol != "ope":  # every repetition of an older run, so that scoring never mixes two runs
        old += old[0].parent.glob(f"{glob.escape(name)}_[0-9][0-9][0-9].txt")
    for path in old:
        path.unlink(missing_ok=True)  # an old result never outlives the fingerprint written next
    if fp is not None:
        R.write_fingerprint(results_dir, folder, name, fp)
    if protocol == "ope":
        _seed(seed)
        boxes, times = run_ope(tracker, sequence)
        R.write_times(R.ope_time_path(results_dir, folder, name), times)
        R.write_boxes(R.ope_result_path(results_dir, folder, name), _finite_boxes(boxes, name))  # last: marks "done"
        return
    all_times = []
    for r in range(1, repetitions + 1):
        _seed(seed + r - 1)
        if protocol == "got10k":
            boxes, times = run_got10k(tracker, sequence)
            R.write_boxes(R.got10k_result_path(results_dir, folder, name, r), _finite_boxes(boxes, name))
        else:
            regions, flags, times = run_vot_supervised(tracker, sequence)
            R.write_vot_run(R.vot_result_path(results_dir, folder, name, r), regions, flags)
        all_times.append(times)
    tpath = R.got10k_time_path if protocol == "got10k" else R.vot_time_path
    R.write_times(tpath(results_dir, folder, name), np.stack(all_times, axis=1))


# ------------------------------------------------------------------------------------------ batched OPE
def _ope_start(sequence, results_dir, folder: str, fp: dict | None) -> np.ndarray:
    """What :func:`_run_sequence` does before tracking an OPE sequence; returns its initial box."""
    name = sequence.name
    for path in _result_paths(results_dir, folder, "ope", name, 1):
        path.unlink(missing_ok=True)
    if fp is not None:
        R.write_fingerprint(results_dir, folder, name, fp)
    init_box = np.asarray(sequence.init_box if hasattr(sequence, "init_box") else sequence.boxes[0], dtype=np.float64)
    if np.isnan(init_box).any():
        raise ValueError(f"sequence {name!r}: frame 0 has no ground truth")
    return init_box


def _run_ope_batched(batched, ds, names: list[str], batch: int, results_dir, folder: str, seed: int,
                     fp: dict | None, errors: list, done) -> None:
    """OPE over ``names`` with up to ``batch`` sequences advanced together by ``batched`` (a
    :class:`gradtrack.trackers.batched.BatchedTracker`).  Each sequence writes exactly the files of
    :func:`_run_sequence`; a finished sequence frees its slot for the next one.  The time of a batched frame
    is the step's time divided by the number of sequences in it (``init`` is timed alone).  The seed is set
    once per started sequence (the batched trackers are deterministic)."""
    import time as _time

    from ..trackers.batched import SlotError

    queue = list(names)
    active: dict[int, dict] = {}  # slot -> {"seq", "i", "boxes", "times"}

    def fail(slot: int, exc: BaseException) -> None:
        st = active.pop(slot)
        batched.release(slot)
        errors.append((st["seq"].name, _problem(exc)))
        done(st["seq"].name)

    def finish(slot: int) -> None:
        st = active.pop(slot)
        batched.release(slot)
        name = st["seq"].name
        try:
            R.write_times(R.ope_time_path(results_dir, folder, name), st["times"])
            R.write_boxes(R.ope_result_path(results_dir, folder, name), _finite_boxes(st["boxes"], name))
        except Exception as exc:  # noqa: BLE001 - reported with the sequence name
            errors.append((name, _problem(exc)))
        done(name)

    while queue or active:
        free = [k for k in range(batch) if k not in active]
        while free and queue:
            name = queue.pop(0)
            slot = free[0]
            try:
                seq = ds[name]
                box = _ope_start(seq, results_dir, folder, fp)
                n = len(seq.boxes)
                boxes, times = np.full((n, 4), np.nan), np.full(n, np.nan)
                _seed(seed)
                frame = seq.frames[0]
                t0 = _time.perf_counter()
                batched.init(slot, frame, box)
                times[0] = _time.perf_counter() - t0
                boxes[0] = box
            except Exception as exc:  # noqa: BLE001 - this sequence fails alone
                batched.release(slot)
                errors.append((name, _problem(exc)))
                done(name)
                continue
            free.pop(0)
            active[slot] = {"seq": seq, "i": 1, "boxes": boxes, "times": times}
            if n == 1:
                finish(slot)
                free.insert(0, slot)
        if not active:
            continue
        frames = {}
        for slot in list(active):
            st = active[slot]
            try:
                frames[slot] = st["seq"].frames[st["i"]]
            except Exception as exc:  # noqa: BLE001 - an unreadable frame fails its sequence alone
                fail(slot, exc)
        while frames:
            try:
                t0 = _time.perf_counter()
                res = batched.update(frames)
                dt = (_time.perf_counter() - t0) / len(frames)
                break
            except SlotError as exc:  # nothing moved: drop that sequence, step the others
                frames.pop(exc.slot, None)
                fail(exc.slot, exc.error)
            except Exception as exc:  # noqa: BLE001 - after a failure inside the step every sequence in it fails
                for slot in list(frames):
                    fail(slot, exc)
                frames = {}
        else:
            continue
        for slot, r in res.items():
            st = active[slot]
            i = st["i"]
            st["boxes"][i], st["times"][i] = np.asarray(r.box, dtype=np.float64).reshape(4), dt
            st["i"] = i + 1
            if st["i"] >= len(st["boxes"]):
                finish(slot)


# ------------------------------------------------------------------------------------------ workers
_WORKER: dict = {}


def _die_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """End this worker as soon as the process that started it is gone (even SIGKILLed): Linux
    ``PR_SET_PDEATHSIG`` plus, everywhere, a daemon thread polling the parent pid."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the watchdog still runs
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(70)

    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(70)
    threading.Thread(target=watch, name="gradtrack-parent-watchdog", daemon=True).start()


def _worker_init(tracker_spec: TrackerSpec, dataset_source, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass
    try:
        _WORKER["tracker"] = tracker_spec.build()
        _WORKER["dataset"] = dataset_source.build() if isinstance(dataset_source, DatasetSpec) else dataset_source
    except Exception as exc:  # noqa: BLE001 - reported by every task (a failing initializer breaks the pool)
        _WORKER["error"] = f"worker setup failed: {_problem(exc)}"


def _worker_task(seq_name: str, protocol: str, results_dir: str, folder: str, repetitions: int, seed: int,
                 fp: dict | None = None):
    if "error" in _WORKER:
        raise RuntimeError(_WORKER["error"])
    t0 = time.perf_counter()
    seq = _WORKER["dataset"][seq_name]
    _run_sequence(_WORKER["tracker"], seq, protocol, results_dir, folder, repetitions, seed, fp)
    return seq_name, time.perf_counter() - t0


def _problem(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else '(no message)'}"


def _versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__}
    for mod in ("torch", "cv2", "gradtrack"):
        try:
            out[mod] = getattr(__import__(mod), "__version__", "?")
        except ImportError:
            out[mod] = None
    return out


def _pool_round(names: list[str], workers: int, tracker: TrackerSpec, source, args: tuple, done, errors) -> list[str]:
    """Run ``names`` in one fresh spawn pool; returns the names whose worker died (``BrokenProcessPool``)."""
    broken = []
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(names)), mp_context=ctx, initializer=_worker_init,
                             initargs=(tracker, source, os.getpid())) as pool:
        futs = {pool.submit(_worker_task, n, *args): n for n in names}
        for fut in as_completed(futs):
            try:
                fut.result()
                done(futs[fut])
            except BrokenProcessPool:
                broken.append(futs[fut])
            except Exception as exc:  # noqa: BLE001 - reported with the sequence name
                errors.append((futs[fut], _problem(exc)))
                done(None)
    return broken


def run_benchmark(
    tracker: TrackerSpec,
    dataset,
    results_dir,
    *,
    protocol: str = "ope",
    workers: int = 1,
    sequences: Iterable[str] | None = None,
    repetitions: int | None = None,
    seed: int = 0,
    progress: bool = True,
    log=None,
    redo: bool = False,
    retries: int = 2,
    batch: int = 1,
) -> dict[str, str]:
    """Run ``protocol`` for every sequence of ``dataset`` (a :class:`DatasetSpec` or an opened dataset)
    and write the results under ``results_dir/<tracker.folder>``.

    Returns ``{sequence: "skipped" | "ran" | "rerun" | "redo"}`` ("rerun": a broken or partial result was
    replaced; "redo": a valid result made with other settings was replaced, only with ``redo=True``).

    * **Resume** skips a sequence only when its results are valid (see :func:`result_problem`: an all-NaN
      file is not) *and* their stored :func:`fingerprint` equals this run's.  Valid results with another or
      no fingerprint raise :class:`ResumeError` before anything runs, unless ``redo=True``.
    * **Failures** (a sequence that cannot be loaded or tracked, a worker that keeps dying) do not stop the
      others; at the end :class:`BenchmarkError` lists every failed sequence with its problem.
    * **Workers** (``workers > 1``) die with this process; a worker that dies (OOM, a signal) fails only its
      pool: the unfinished sequences are run again, one fresh pool per sequence, so that every later death
      is charged to the sequence that caused it (a broken shared pool charges nobody unless one sequence
      was unfinished); a sequence is given up once its own worker has died ``retries + 1`` times.
    ``workers > 1`` needs a :class:`DatasetSpec` or a picklable dataset.
    * **Batch** (``batch > 1``, OPE only, one process): up to ``batch`` sequences run at once through
      :class:`gradtrack.trackers.batched.BatchedTracker` (one backbone forward per step for all of them);
      the result files, fingerprints and resume are those of the one-by-one run (boxes equal within
      float rounding).  A tracker without a batched path runs its slots one by one (said on ``log``).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if batch > 1 and protocol != "ope":
        raise ValueError(f"batch > 1 is only available for the OPE protocol (not {protocol!r}); use batch 1")
    if batch > 1 and workers > 1:
        raise ValueError("batch > 1 runs in this process; it cannot be combined with workers > 1")
    root = Path(results_dir) / tracker.folder
    for p in (Path(results_dir), root):
        if p.exists() and not p.is_dir():
            raise ValueError(f"results folder {p} is a file, not a folder")
    ds = dataset.build() if isinstance(dataset, DatasetSpec) else dataset
    names = list(ds.names) if sequences is None else list(sequences)
    unknown = [n for n in names if n not in ds]
    if unknown:
        raise KeyError(f"unknown sequence(s) {', '.join(unknown)}; the dataset has {len(ds)} sequences")
    folder = tracker.folder
    say = log or (lambda msg: print(msg, file=sys.stderr))
    local_tracker = None
    if repetitions is None:
        if protocol == "ope":
            repetitions = 1
        else:
            local_tracker = tracker.build()
            repetitions = repetitions_for(local_tracker, protocol)
    fp = fingerprint(tracker, protocol, repetitions, seed)
    if tracker.factory is None:
        # the precision the tracker resolved here ("auto" is bf16 on some CPUs, fp32 on others): part of what
        # made the results, so a folder is not resumed in another precision.  A tracker that cannot be
        # built here fails below, per sequence, with its own message (after the resume checks)
        try:
            local_tracker = local_tracker or tracker.build()
        except Exception:  # noqa: BLE001 - reported where the sequences run
            local_tracker = None
        if isinstance(getattr(local_tracker, "precision", None), str):
            fp["precision"] = local_tracker.precision
    status: dict[str, str] = {}
    errors: list[tuple[str, str]] = []
    todo, mismatched = [], []
    for name in names:
        try:
            n = len(ds[name].boxes)
        except Exception as exc:  # noqa: BLE001 - a sequence that cannot be loaded fails alone
            errors.append((name, _problem(exc)))
            status[name] = "failed"
            continue
        problem = result_problem(results_dir, folder, protocol, name, n, repetitions)
        old = R.read_fingerprint(results_dir, folder, name)
        if problem is None and old == fp:
            status[name] = "skipped"
            continue
        todo.append(name)
        if problem is None:
            mismatched.append((name, _differences(old, fp)))
            status[name] = "redo"
        elif any(p.exists() for p in _result_paths(results_dir, folder, protocol, name, repetitions)):
            status[name] = "rerun"
            say(f"{folder}: {name}: rerun ({problem})")
        else:
            status[name] = "ran"
    if mismatched and not redo:
        shown = "; ".join(f"{n}: {d}" for n, d in mismatched[:3]) + (" ..." if len(mismatched) > 3 else "")
        raise ResumeError(
            f"{root}: {len(mismatched)} sequence(s) already have results made with other settings ({shown}); "
            "use another results folder (or --label), or --redo to replace them")
    for name, diff in mismatched:
        say(f"{folder}: {name}: redo (results made with other settings: {diff})")
    root.mkdir(parents=True, exist_ok=True)
    info = {
        "tracker": {k: v for k, v in asdict(tracker).items() if k != "factory"},
        "fingerprint": fp,
        "protocol": protocol,
        "repetitions": repetitions,
        "seed": seed,
        "box_convention": "0-based float x,y,w,h (gradtrack); export_one_based() for 1-based files",
        "dataset": (
            {k: v for k, v in asdict(dataset).items() if k != "factory"} if isinstance(dataset, DatasetSpec)
            else type(dataset).__name__
        ),
        "versions": _versions(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    R._atomic_write(root / "run_info.json", json.dumps(info, indent=2, default=str) + "\n")
    if not todo and not errors:
        say(f"{folder}: all {len(names)} sequences already have valid results ({protocol})")
        return status
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=f"{folder} {protocol}", unit="seq", disable=not progress, file=sys.stderr)
    if batch > 1 and todo:
        from ..trackers.batched import BatchedTracker

        batched = BatchedTracker(local_tracker or tracker.build())
        if not batched.batched:
            say(f"{folder}: --batch {batch}: {batched.fallback_reason}; the sequences run one by one")
        _run_ope_batched(batched, ds, todo, batch, results_dir, folder, seed, fp, errors, lambda n: bar.update(1))
    elif workers == 1 and todo:
        trk = local_tracker or tracker.build()
        for name in todo:
            try:
                _run_sequence(trk, ds[name], protocol, results_dir, folder, repetitions, seed, fp)
            except Exception as exc:  # noqa: BLE001 - reported with the sequence name below
                errors.append((name, _problem(exc)))
            bar.update(1)
    elif todo:
        source = dataset if isinstance(dataset, DatasetSpec) else ds
        args = (protocol, str(results_dir), folder, repetitions, seed, fp)
        tries = dict.fromkeys(todo, 0)
        pending, isolate = list(todo), False
        while pending:
            broken = []
            for group in ([[n] for n in pending] if isolate else [pending]):
                broken += _pool_round(group, workers, tracker, source, args, lambda n: bar.update(1), errors)
            # a broken shared pool cannot say whose worker died (the others were cut off mid-sequence): its
            # death is charged only when one sequence was unfinished; the rest run again one per pool,
            # where every death is the sequence's own
            for n in broken if (isolate or len(broken) == 1) else []:
                tries[n] += 1
            gave_up = [n for n in broken if tries[n] > retries]
            errors += [(n, f"its worker process died {tries[n]} times (out of memory, or killed by a signal)")
                       for n in gave_up]
            bar.update(len(gave_up))
            pending = [n for n in broken if tries[n] <= retries]
            if pending:
                say(f"{folder}: a worker process died; running {len(pending)} unfinished sequence(s) again"
                    + (" one per worker" if isolate else ""))
            isolate = isolate or bool(broken)
    bar.close()
    for name, _ in errors:
        status[name] = "failed"
    if errors:
        raise BenchmarkError(folder, errors, len(names))
    return status


def default_workers() -> int:
    """A sensible ``--workers`` default: the CPU count, capped at 4."""
    return max(1, min(4, os.cpu_count() or 1))

"""Run a protocol over a dataset: parallel worker processes, resumable, per-frame times.

    from gradtrack.evaluation import TrackerSpec, DatasetSpec, run_benchmark
    run_benchmark(TrackerSpec("gradnet", weights="w.pt", device="cpu"),
                  DatasetSpec("otb", "/data/OTB100"), "results", protocol="ope", workers=4)

* **Workers** (``workers > 1``) are ``spawn``-ed processes; each builds its *own* tracker from the
  :class:`TrackerSpec` (name, weights, device, overrides -- or a picklable module-level ``factory``) and its
  own dataset from the :class:`DatasetSpec`, once per process; nothing unpicklable crosses a process
  boundary.  Workers run with one torch thread each.
* **Resume**: a sequence whose result files are all valid (right number of lines, every line parses) is
  skipped; a missing or broken one is run again (all its repetitions).  Files are written atomically.
* **Repetitions**: OPE 1; VOT 15 and GOT-10k 3 for a tracker with ``is_deterministic = False``, else 1.
  Repetition ``r`` (1-based) seeds ``random``, NumPy and torch with ``seed + r - 1``.
* Layout and file formats: :mod:`gradtrack.evaluation.results` (boxes are 0-based).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import results as R
from .protocols import repetitions_for, run_got10k, run_ope, run_vot_supervised

__all__ = ["TrackerSpec", "DatasetSpec", "run_benchmark", "sequence_done", "PROTOCOLS"]

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


# ------------------------------------------------------------------------------------------ resume check
def sequence_done(results_dir, folder: str, protocol: str, seq_name: str, n_frames: int, repetitions: int) -> bool:
    """True when every result file a protocol writes for this sequence is present and valid."""
    if protocol == "ope":
        return R.valid_box_file(R.ope_result_path(results_dir, folder, seq_name), n_frames)
    if protocol == "got10k":
        return all(
            R.valid_box_file(R.got10k_result_path(results_dir, folder, seq_name, r), n_frames)
            for r in range(1, repetitions + 1)
        )
    if protocol == "vot":
        return all(
            R.valid_vot_file(R.vot_result_path(results_dir, folder, seq_name, r), n_frames)
            for r in range(1, repetitions + 1)
        )
    raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _run_sequence(tracker, sequence, protocol: str, results_dir, folder: str, repetitions: int, seed: int) -> None:
    name = sequence.name
    if protocol == "ope":
        _seed(seed)
        boxes, times = run_ope(tracker, sequence)
        R.write_times(R.ope_time_path(results_dir, folder, name), times)
        R.write_boxes(R.ope_result_path(results_dir, folder, name), boxes)  # result last: it marks "done"
        return
    all_times = []
    for r in range(1, repetitions + 1):
        _seed(seed + r - 1)
        if protocol == "got10k":
            boxes, times = run_got10k(tracker, sequence)
            R.write_boxes(R.got10k_result_path(results_dir, folder, name, r), boxes)
        else:
            regions, flags, times = run_vot_supervised(tracker, sequence)
            R.write_vot_run(R.vot_result_path(results_dir, folder, name, r), regions, flags)
        all_times.append(times)
    tpath = R.got10k_time_path if protocol == "got10k" else R.vot_time_path
    R.write_times(tpath(results_dir, folder, name), np.stack(all_times, axis=1))


# ------------------------------------------------------------------------------------------ workers
_WORKER: dict = {}


def _worker_init(tracker_spec: TrackerSpec, dataset_source) -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    _WORKER["tracker"] = tracker_spec.build()
    _WORKER["dataset"] = dataset_source.build() if isinstance(dataset_source, DatasetSpec) else dataset_source


def _worker_task(seq_name: str, protocol: str, results_dir: str, folder: str, repetitions: int, seed: int):
    t0 = time.perf_counter()
    seq = _WORKER["dataset"][seq_name]
    _run_sequence(_WORKER["tracker"], seq, protocol, results_dir, folder, repetitions, seed)
    return seq_name, time.perf_counter() - t0


def _versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__}
    for mod in ("torch", "cv2", "gradtrack"):
        try:
            out[mod] = getattr(__import__(mod), "__version__", "?")
        except ImportError:
            out[mod] = None
    return out


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
) -> dict[str, str]:
    """Run ``protocol`` for every sequence of ``dataset`` (a :class:`DatasetSpec` or an opened dataset)
    and write the results under ``results_dir/<tracker.folder>``.

    Returns ``{sequence: "skipped" | "ran" | "rerun"}`` ("rerun": a broken or partial result was replaced).
    ``workers > 1`` needs a :class:`DatasetSpec` or a picklable dataset.  Errors in a sequence are raised
    (with the sequence name) after the other running sequences finish.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    ds = dataset.build() if isinstance(dataset, DatasetSpec) else dataset
    names = list(ds.names) if sequences is None else list(sequences)
    unknown = [n for n in names if n not in ds]
    if unknown:
        raise KeyError(f"unknown sequence(s) {', '.join(unknown)}; the dataset has {len(ds)} sequences")
    folder = tracker.folder
    local_tracker = None
    if repetitions is None:
        if protocol == "ope":
            repetitions = 1
        else:
            local_tracker = tracker.build()
            repetitions = repetitions_for(local_tracker, protocol)
    status: dict[str, str] = {}
    todo = []
    for name in names:
        n = len(ds[name].boxes)
        if sequence_done(results_dir, folder, protocol, name, n, repetitions):
            status[name] = "skipped"
        else:
            partial = (
                R.ope_result_path(results_dir, folder, name).exists()
                or R.got10k_result_path(results_dir, folder, name).exists()
                or R.vot_result_path(results_dir, folder, name).exists()
            )
            status[name] = "rerun" if partial else "ran"
            todo.append(name)
    root = Path(results_dir) / folder
    root.mkdir(parents=True, exist_ok=True)
    info = {
        "tracker": {k: v for k, v in asdict(tracker).items() if k != "factory"},
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
    (root / "run_info.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    say = log or (lambda msg: print(msg, file=sys.stderr))
    if not todo:
        say(f"{folder}: all {len(names)} sequences already have valid results ({protocol})")
        return status
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=f"{folder} {protocol}", unit="seq", disable=not progress, file=sys.stderr)
    errors = []
    if workers == 1:
        trk = local_tracker or tracker.build()
        for name in todo:
            try:
                _run_sequence(trk, ds[name], protocol, results_dir, folder, repetitions, seed)
            except Exception as exc:  # noqa: BLE001 - reported with the sequence name below
                errors.append((name, exc))
            bar.update(1)
    else:
        source = dataset if isinstance(dataset, DatasetSpec) else ds
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_worker_init,
                                 initargs=(tracker, source)) as pool:
            futs = {pool.submit(_worker_task, n, protocol, str(results_dir), folder, repetitions, seed): n for n in todo}
            for fut in as_completed(futs):
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001
                    errors.append((futs[fut], exc))
                bar.update(1)
    bar.close()
    if errors:
        name, exc = errors[0]
        more = f" (and {len(errors) - 1} more sequence(s))" if len(errors) > 1 else ""
        raise RuntimeError(f"{folder}: sequence {name!r} failed: {type(exc).__name__}: {exc}{more}") from exc
    return status


def default_workers() -> int:
    """A sensible ``--workers`` default: the CPU count, capped at 4."""
    return max(1, min(4, os.cpu_count() or 1))

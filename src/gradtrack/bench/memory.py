"""Resident memory of live trackers, each measured in a fresh Python process.

Measured in the bench's own process, a tracker's figure depended on what ran before it: the C allocator
keeps the memory an earlier tracker freed and hands it to the next one, so a tracker measured third looked
up to 60 MB lighter than the same tracker measured first.  Here every run gets a new interpreter
(:func:`measure`), which

1. loads the libraries and pays their one-time costs first (a small torch convolution, onnxruntime's set-up
   when installed: a user pays them once per process, whatever they track);
2. builds the tracker, runs ``init`` and ``MEMORY_FRAMES`` updates on the bench's frames, and records the
   growth of the resident set (peak over the steps) from just before the build: ``first``, what one live
   tracker costs a process;
3. builds a second one of the same kind beside it and does the same: ``another``, what each further live
   tracker adds (the working memory of the first is reused; graphs on the same ONNX files share their
   onnxruntime sessions).

The frames travel through a temporary ``.npz``; the child (:func:`gradtrack.bench.core.memory_child`, which
knows how to build each kind of run) prints one JSON line.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

MEMORY_FRAMES = 5
TIMEOUT_S = 600


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux ``/proc``; else the peak from ``resource``)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def _steps(run, frames: list[np.ndarray], box: np.ndarray) -> float:
    """Peak resident MiB over building-done, ``init`` and the updates of ``run``."""
    peak = rss_mb()
    run.init(frames[0], box)
    peak = max(peak, rss_mb())
    for f in frames[1:1 + MEMORY_FRAMES]:
        run.update(f)
        peak = max(peak, rss_mb())
    return peak


def probe(build: Callable[[], object], frames: list[np.ndarray], box: np.ndarray,
          threads: int | None = None) -> dict:
    """In this (fresh) process: ``{"first": MiB, "another": MiB}`` for the runs ``build()`` makes (objects
    with ``init(frame, box)`` and ``update(frame)``)."""
    import gc

    import torch

    if threads:
        torch.set_num_threads(int(threads))
    with torch.no_grad():  # the convolution libraries, loaded once per process whatever is tracked
        torch.nn.functional.conv2d(torch.zeros(1, 3, 64, 64), torch.zeros(8, 3, 3, 3))
    from ..deploy.onnx import OnnxBackendError, warm_runtime

    with contextlib.suppress(OnnxBackendError):
        warm_runtime()
    gc.collect()
    before = rss_mb()
    first = build()
    peak1 = _steps(first, frames, box)
    gc.collect()
    mid = rss_mb()
    second = build()
    peak2 = _steps(second, frames, box)
    del first, second
    return {"first": max(0.0, peak1 - before), "another": max(0.0, peak2 - mid)}


def read_frames(frames_file: str) -> tuple[list[np.ndarray], np.ndarray]:
    """``(frames, box)`` as :func:`measure` wrote them for the child."""
    with np.load(frames_file) as d:
        return [d[f"f{i}"] for i in range(len(d.files) - 1)], d["box"]


def measure(spec: dict, frames: list[np.ndarray], box: np.ndarray, threads: int | None = None,
            timeout: float = TIMEOUT_S) -> tuple[dict | None, str | None]:
    """``(figures, None)`` from :func:`probe` run in a fresh interpreter on the run ``spec`` describes
    (:attr:`gradtrack.bench.core.Run.rebuild`), or ``(None, why)`` if it failed."""
    spec = {**spec, "threads": threads}
    pkg_root = str(Path(__file__).resolve().parents[2])  # the folder holding the gradtrack package
    env = dict(os.environ)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory(prefix="gradtrack-bench-mem-") as tmp:
        data = Path(tmp) / "frames.npz"
        np.savez(data, box=np.asarray(box, np.float64),
                 **{f"f{i}": f for i, f in enumerate(frames[:1 + MEMORY_FRAMES])})
        code = "import sys; from gradtrack.bench.core import memory_child; memory_child(sys.argv[1], sys.argv[2])"
        try:
            out = subprocess.run([sys.executable, "-c", code, json.dumps(spec), str(data)], env=env,
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"the memory probe took more than {timeout:.0f} s"
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"the memory probe failed (exit {out.returncode}): {err[:300]}"
    return json.loads(lines[-1]), None

"""``gradtrack bench``: tracking speed measured side by side (see :mod:`gradtrack.bench.core`)."""
from __future__ import annotations

from .core import BenchError, BenchResult, load_source, run_bench

__all__ = ["BenchError", "BenchResult", "load_source", "run_bench"]

"""Evaluation: metrics with explicit conventions, protocols (OPE, VOT reset-based, GOT-10k), a parallel
resumable runner, scoring of result folders, reports and the ``eval`` / ``report`` CLI subcommands.

Result boxes are 0-based ``x, y, w, h`` (see :mod:`gradtrack.evaluation.results`).
"""
from . import metrics
from .protocols import run_got10k, run_ope, run_vot_supervised
from .results import export_one_based
from .runner import DatasetSpec, TrackerSpec, run_benchmark
from .scoring import score_got10k, score_ope, score_results, score_vot

__all__ = [
    "metrics",
    "run_ope",
    "run_got10k",
    "run_vot_supervised",
    "export_one_based",
    "DatasetSpec",
    "TrackerSpec",
    "run_benchmark",
    "score_ope",
    "score_got10k",
    "score_vot",
    "score_results",
]

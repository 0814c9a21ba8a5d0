"""Scores from result folders and ground truth: OPE (OTB / UAV / LaSOT style), GOT-10k, VOT.

Each ``score_*`` function reads ``results_dir/<tracker>`` (layout in :mod:`gradtrack.evaluation.results`),
compares with the dataset's ground truth, and returns a JSON-ready dict::

    {"protocol": ..., "tracker": ..., "conventions": {...}, "overall": {...},
     "per_sequence": {name: {...}}, "per_attribute": {attr: {...}}, "fps": float}

Conventions are arguments with the defaults of :mod:`gradtrack.evaluation.metrics` and are echoed in the
output so that every number says how it was computed.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from . import metrics as M
from . import results as R

__all__ = ["score_ope", "score_got10k", "score_vot", "score_results", "to_jsonable"]


def to_jsonable(obj):
    """numpy arrays / scalars -> lists / floats, NaN -> None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if np.isnan(v) or np.isinf(v) else v
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _names(dataset, sequences: Iterable[str] | None) -> list[str]:
    return list(dataset.names) if sequences is None else list(sequences)


def _seq_fps(times, mode: str) -> float:
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    return M.fps(t, mode)


def _overall_fps(per_seq_fps: list[float]) -> float:
    v = np.asarray([f for f in per_seq_fps if f is not None and np.isfinite(f)], dtype=np.float64)
    return float(v.mean()) if len(v) else float("nan")


def score_ope(
    results_dir,
    tracker: str,
    dataset,
    *,
    sequences: Iterable[str] | None = None,
    iou_convention: str = "continuous",
    center: str = "pixel_inclusive",
    invalid_frames: str = "exclude",
    norm_prec_score: str = "auc_0_0.5",
    fps_mode: str = "mean_of_inverse",
    use_absent_flags: bool = False,
) -> dict:
    """OPE scores (got10k conventions by default): success AUC (mean of the 21-point strict curve),
    success rate (IoU > 0.5), precision at 20 px, normalised precision; curves averaged over sequences.

    Frames without ground truth are the NaN rows of ``Sequence.boxes`` (got10k); with
    ``use_absent_flags`` also the frames flagged in ``Sequence.absent`` (e.g. LaSOT full occlusion /
    out-of-view, when a reader keeps a box there).
    A sequence's fps is ``fps(times)`` over its time file; the overall fps is the mean over sequences
    (got10k).  Per attribute: the same summary over the sequences carrying ``Sequence.attributes``.
    """
    per_seq_curves, per_seq, attrs = {}, {}, {}
    fps_list = []
    for name in _names(dataset, sequences):
        seq = dataset[name]
        gt = np.asarray(seq.boxes, dtype=np.float64)
        pred = R.read_boxes(R.ope_result_path(results_dir, tracker, name), len(gt))
        valid = ~np.asarray(seq.absent, dtype=bool) if use_absent_flags and getattr(seq, "absent", None) is not None \
            else None
        res = M.ope_sequence(pred, gt, valid=valid, iou_convention=iou_convention, center=center,
                             invalid_frames=invalid_frames)
        per_seq_curves[name] = res
        tpath = R.ope_time_path(results_dir, tracker, name)
        f = _seq_fps(R.read_times(tpath), fps_mode) if tpath.is_file() else float("nan")
        fps_list.append(f)
        npv = M._norm_prec_value(res["norm_precision"], norm_prec_score) if res["n_valid"] else float("nan")
        per_seq[name] = {
            "success_auc": M.auc(res["success"]) if res["n_valid"] else float("nan"),
            "success_rate": float(res["success"][10]),
            "precision": float(res["precision"][20]),
            "norm_precision": npv,
            "n_frames": res["n_frames"],
            "n_valid": res["n_valid"],
            "fps": f,
            "attributes": list(getattr(seq, "attributes", []) or []),
        }
        attrs[name] = per_seq[name]["attributes"]
    overall = M.ope_summary(per_seq_curves.values(), norm_prec_score=norm_prec_score)
    per_attr = M.attribute_breakdown(per_seq_curves, attrs, norm_prec_score=norm_prec_score)
    per_attr = {
        a: {k: v for k, v in s.items() if k in ("success_auc", "success_rate", "precision", "norm_precision", "n_sequences")}
        for a, s in per_attr.items()
    }
    return {
        "protocol": "ope",
        "tracker": tracker,
        "conventions": {
            "iou_convention": iou_convention,
            "center": center,
            "invalid_frames": invalid_frames,
            "invalid_frame_definition": "NaN GT rows" + (" or Sequence.absent" if use_absent_flags else ""),
            "norm_prec_score": norm_prec_score,
            "success_thresholds": "linspace(0,1,21), IoU > thr (strict); AUC = mean of the curve",
            "precision_thresholds": "0..50 px, error <= thr; score at 20 px",
            "aggregation": "curves averaged over sequences (got10k)",
            "first_frame": "prediction replaced by GT (got10k boxes[0] = anno[0])",
            "fps": f"{fps_mode} per sequence, mean over sequences",
        },
        "overall": overall,
        "per_sequence": per_seq,
        "per_attribute": per_attr,
        "fps": _overall_fps(fps_list),
    }


def _got10k_run_files(results_dir, tracker: str, name: str) -> list:
    d = R.got10k_result_path(results_dir, tracker, name).parent
    files = sorted(d.glob(f"{name}_[0-9][0-9][0-9].txt"))
    if not files:
        raise R.ResultFileError(f"no GOT-10k result files {d}/{name}_NNN.txt")
    return files


def score_got10k(results_dir, tracker: str, dataset, *, sequences: Iterable[str] | None = None,
                 clip_mode: str = "got10k") -> dict:
    """GOT-10k AO / SR0.5 / SR0.75: frame 0 dropped, boxes clipped to the image, ``cover == 0`` frames
    dropped, IoUs pooled over repetitions and sequences (see :func:`metrics.got10k_ious`).  fps as got10k:
    ``mean(1 / t)`` over all positive times of all sequences and repetitions."""
    pooled, per_seq, all_times = [], {}, []
    for name in _names(dataset, sequences):
        seq = dataset[name]
        gt = np.asarray(seq.boxes, dtype=np.float64)
        cover = getattr(seq, "cover", None)
        runs = [M.got10k_ious(R.read_boxes(f, len(gt)), gt, seq.image_size, cover, clip_mode=clip_mode)
                for f in _got10k_run_files(results_dir, tracker, name)]
        s = M.got10k_summary(runs)
        tpath = R.got10k_time_path(results_dir, tracker, name)
        t = R.read_times(tpath).reshape(-1) if tpath.is_file() else np.zeros(0)
        all_times.append(t)
        per_seq[name] = {"ao": s["ao"], "sr50": s["sr50"], "sr75": s["sr75"], "n_frames": s["n_frames"],
                         "repetitions": len(runs), "fps": M.fps(t) if len(t) else float("nan")}
        pooled.extend(runs)
    overall = M.got10k_summary(pooled)
    times = np.concatenate(all_times) if all_times else np.zeros(0)
    return {
        "protocol": "got10k",
        "tracker": tracker,
        "conventions": {
            "frames": "frame 0 excluded; cover == 0 excluded; NaN-GT excluded",
            "clip": f"boxes clipped to the image ({clip_mode})",
            "aggregation": "IoUs pooled over frames of all sequences and repetitions",
            "sr": "IoU > 0.5 / > 0.75 (strict)",
            "fps": "mean(1/t) over all positive times (got10k)",
        },
        "overall": overall,
        "per_sequence": per_seq,
        "per_attribute": {},
        "fps": M.fps(times),
    }


def _gt_regions(seq) -> np.ndarray:
    polys = getattr(seq, "polygons", None)
    boxes = np.asarray(seq.boxes, dtype=np.float64)
    if polys is None:
        return boxes
    polys = np.asarray(polys, dtype=np.float64)
    # frames without a polygon fall back to the box, as an 8-value rectangle
    from gradtrack.geometry.boxes import xywh_to_polygon

    fallback = xywh_to_polygon(boxes)
    return np.where(np.isnan(polys).any(1, keepdims=True), fallback, polys)


def score_vot(results_dir, tracker: str, dataset, *, sequences: Iterable[str] | None = None, burnin: int = 10,
              sensitivity: float = 30.0, eao_interval="vot2016", eao_index_base: str = "vot_toolkit",
              experiment: str = "baseline") -> dict:
    """VOT supervised scores (vot-toolkit conventions): accuracy, failures, AR robustness, EAO; overlaps
    are continuous polygon overlaps bounded by the image (vot-toolkit rasterises; see the cross-check
    tests for the size of that difference).  Per-tag accuracy / failures from ``Sequence.tags``."""
    runs_per_seq, tags, times = {}, {}, []
    for name in _names(dataset, sequences):
        seq = dataset[name]
        gt = _gt_regions(seq)
        files = sorted(R.vot_result_path(results_dir, tracker, name, 1, experiment).parent.glob(f"{name}_[0-9][0-9][0-9].txt"))
        if not files:
            raise R.ResultFileError(f"no VOT result files for {name} under {results_dir}/{tracker}/{experiment}")
        runs = []
        for f in files:
            regions, flags = R.read_vot_run(f, len(gt))
            runs.append({"overlaps": M.vot_overlaps(regions, flags, gt, seq.image_size), "flags": flags})
        runs_per_seq[name] = runs
        if getattr(seq, "tags", None):
            tags[name] = seq.tags
        tpath = R.vot_time_path(results_dir, tracker, name, experiment)
        if tpath.is_file():
            times.append(R.read_times(tpath).reshape(-1))
    summary = M.vot_summary(runs_per_seq, burnin=burnin, sensitivity=sensitivity, eao_interval=eao_interval,
                            eao_index_base=eao_index_base)
    per_seq = summary.pop("per_sequence")
    return {
        "protocol": "vot",
        "tracker": tracker,
        "conventions": {
            "burnin": burnin,
            "sensitivity": sensitivity,
            "eao_interval": summary["eao_interval"],
            "eao_index_base": eao_index_base,
            "overlap": "continuous polygon IoU bounded by the image [0,W]x[0,H]",
            "aggregation": "per sequence mean over repetitions; overall weighted by sequence length",
        },
        "overall": summary,
        "per_sequence": per_seq,
        "per_attribute": M.vot_tag_breakdown(runs_per_seq, tags, burnin=burnin) if tags else {},
        "fps": M.fps(np.concatenate(times)) if times else float("nan"),
    }


def score_results(results_dir, tracker: str, dataset, *, protocol: str | None = None, **kwargs) -> dict:
    """Dispatch on ``protocol`` (default: detected from the folder layout)."""
    protocol = protocol or R.detect_protocol(results_dir, tracker)
    fn = {"ope": score_ope, "got10k": score_got10k, "vot": score_vot}.get(protocol)
    if fn is None:
        raise ValueError(f"unknown protocol {protocol!r}")
    return fn(results_dir, tracker, dataset, **kwargs)

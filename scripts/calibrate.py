#!/usr/bin/env python
"""Fit the confidence calibrator of a tracker on held-out sequences and store it in its weights file.

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python scripts/calibrate.py --tracker siamfc_effnet

Runs the tracker (its raw score: the calibrator already in the file is ignored) on the ``holdout`` split of
``configs/splits/train_holdout.json`` (train-split sequences the shipped weights never trained on; fitting
on ``val`` is refused), at most ``--max-frames-per-seq`` frames each, collects (raw score, IoU > 0.5,
absent or IoU < 0.1) per frame, fits an isotonic (default) or logistic calibrator and writes it to
``meta["calibration"]`` of the weights file (``--weights``, default the shipped ``weights/NAME.pt``) unless
``--dry-run``.  See :mod:`gradtrack.trackers.calibration`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from gradtrack.data.readers.folder import FolderDataset  # noqa: E402
from gradtrack.evaluation.longterm import collect_confidence  # noqa: E402
from gradtrack.trackers import build_tracker  # noqa: E402
from gradtrack.trackers.calibration import expected_calibration_error, fit_calibrator, write_to_checkpoint  # noqa: E402
from gradtrack.trackers.common import shipped_weights  # noqa: E402


def collect(tracker_name, weights, root, split, splits, max_frames, device="cpu", log=print):
    tracker = build_tracker(tracker_name, weights=weights, device=device)
    tracker.calibrator = None  # always fit on the raw score
    ds = FolderDataset(root, split=split, splits=splits)
    out = []
    for name in ds.names:
        t0 = time.perf_counter()
        seq = ds[name] if not isinstance(name, int) else ds[name]
        d = collect_confidence(tracker, seq, max_frames)
        out.append(d)
        log(f"  {name}: {len(d['raw'])} frames, {d['absent'].sum()} absent, mean IoU {d['iou'].mean():.3f} "
            f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return tracker, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracker", required=True)
    ap.add_argument("--weights", default=None, help="weights file (default: the shipped weights/NAME.pt)")
    ap.add_argument("--split", default="holdout")
    ap.add_argument("--splits", default=str(REPO / "configs/splits/train_holdout.json"))
    ap.add_argument("--root", default=str(REPO.parent / "shared/data/sequences"))
    ap.add_argument("--max-frames-per-seq", type=int, default=300)
    ap.add_argument("--method", choices=("isotonic", "logistic"), default="isotonic")
    ap.add_argument("--dry-run", action="store_true", help="fit and report, do not write the weights file")
    a = ap.parse_args(argv)
    if a.split == "val":
        ap.error("refusing to fit a calibrator on 'val' (it is for reporting only); use the holdout split")
    weights = Path(a.weights) if a.weights else shipped_weights(a.tracker)
    if not weights.is_file():
        ap.error(f"weights file not found: {weights}")
    t0 = time.perf_counter()
    print(f"calibrating {a.tracker} ({weights}) on split {a.split!r} of {a.splits}, <= {a.max_frames_per_seq} frames/seq")
    _, data = collect(a.tracker, str(weights), a.root, a.split, a.splits, a.max_frames_per_seq)
    raw = np.concatenate([d["raw"] for d in data])
    iou = np.concatenate([d["iou"] for d in data])
    absent = np.concatenate([d["absent"] for d in data])
    correct = (iou > 0.5) & ~absent
    lost_target = absent | (iou < 0.1)
    info = {"tracker": a.tracker, "split": a.split, "splits_file": Path(a.splits).name,
            "sequences": [d["name"] for d in data], "frames": int(raw.size),
            "max_frames_per_seq": a.max_frames_per_seq, "positives": int(correct.sum()),
            "lost_frames": int(lost_target.sum()), "absent_frames": int(absent.sum()),
            "fitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    cal = fit_calibrator(raw, correct.astype(float), lost_target, kind=a.method, info=info)
    p = cal.predict(raw)
    summary = {"frames": int(raw.size), "positive_rate": float(correct.mean()),
               "ece_raw_holdout": expected_calibration_error(np.clip(raw, 0, 1), correct),
               "ece_fit_holdout": expected_calibration_error(p, correct), "lost_threshold": cal.lost_threshold,
               "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(summary, indent=1))
    if not a.dry_run:
        write_to_checkpoint(weights, cal)
        print(f"wrote meta['calibration'] ({cal.kind}, {len(cal.params.get('x', []))} knots) into {weights}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""VOT long-term F-score of a tracker with and without ``long_term=True`` on the sequences with absent
frames (reporting only).

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python scripts/eval_longterm.py --tracker siamfc --split val

For each sequence of ``--split`` that has absent frames (val: ``uav123/car14``, ``tld/04_pedestrian2``),
runs the tracker on a window of ``--max-frames-per-seq`` frames around the first absence (initialised on
the window's first frame; ``gradtrack.evaluation.longterm.absence_window``) in the default mode and with
``long_term=True``, and reports tracking precision, recall and F (best over the confidence threshold,
:func:`gradtrack.evaluation.longterm.longterm_fscore`; confidence = ``TrackResult.score``, calibrated when the
weights carry a calibrator).  Writes ``docs/results/calibration/longterm_NAME_SPLIT.json``.
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
from gradtrack.evaluation.longterm import absence_window, collect_confidence, longterm_fscore  # noqa: E402
from gradtrack.trackers import build_tracker  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracker", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--split", default="val")
    ap.add_argument("--splits", default=None)
    ap.add_argument("--root", default=str(REPO.parent / "shared/data/sequences"))
    ap.add_argument("--max-frames-per-seq", type=int, default=120)
    ap.add_argument("--out", default=str(REPO / "docs/results/calibration"))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    ds = FolderDataset(a.root, split=a.split, splits=a.splits)
    seqs = []
    for name in ds.names:
        s = ds[name]
        if np.isnan(np.asarray(s.boxes, dtype=np.float64)).any(1).any():
            seqs.append(s)
    if not seqs:
        ap.error(f"split {a.split!r} has no sequence with absent frames")
    res = {"tracker": a.tracker, "split": a.split, "max_frames_per_seq": a.max_frames_per_seq,
           "sequences": [s.name for s in seqs], "modes": {}}
    print(f"{a.tracker}: {len(seqs)} sequences with absences, windows of <= {a.max_frames_per_seq} frames")
    for mode, lt in (("default", False), ("long_term", True)):
        tracker = build_tracker(a.tracker, weights=a.weights, device="cpu", long_term=lt)
        per = []
        for s in seqs:
            start = absence_window(s, a.max_frames_per_seq)
            d = collect_confidence(tracker, s, a.max_frames_per_seq, start=start)
            per.append(d)
            print(f"  {mode} {s.name}: frames {start}..{start + d['frames'] - 1}, {int(d['absent'].sum())} absent, "
                  f"mean IoU on present {d['iou'][~d['absent']].mean():.3f}, lost {int(d['lost'].sum())}, "
                  f"max search scale {d['search_scale'].max():.2f}", flush=True)
        f = longterm_fscore(per)
        f.update(per_sequence={d["name"]: longterm_fscore([d]) for d in per},
                 calibrated=bool(all(d["calibrated"] for d in per)),
                 mean_iou_present=float(np.mean(np.concatenate([d["iou"][~d["absent"]] for d in per]))))
        res["modes"][mode] = f
    res["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"longterm_{a.tracker}_{a.split}.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

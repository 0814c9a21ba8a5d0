#!/usr/bin/env python
"""Calibration of a tracker's confidence on a split (reporting only; nothing is fitted here).

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python scripts/eval_calibration.py --tracker siamfc --split val

Runs the tracker on every sequence of ``--split`` (``../shared/data/sequences``, its ``splits.json``), at most
``--max-frames-per-seq`` frames each: sequences with absent frames are run on a window of that many frames
around their first absence (initialised on the window's first frame), the others from frame 0.  Reports the
expected calibration error of ``score`` against ``IoU > 0.5`` (10 equal-width bins) with a 95% bootstrap
interval over sequences, the same for the raw score, and the precision / recall of ``TrackResult.lost``
against frames where the target is absent or IoU < 0.1.  Writes a reliability diagram
``docs/results/calibration/NAME_SPLIT.png`` and ``NAME_SPLIT.json``.
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
from gradtrack.evaluation.longterm import absence_window, collect_confidence  # noqa: E402
from gradtrack.trackers import build_tracker  # noqa: E402
from gradtrack.trackers.calibration import expected_calibration_error, reliability_bins  # noqa: E402

OUT = REPO / "docs/results/calibration"


def bootstrap_ece(per_seq, key, reps=1000, seed=0):
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(reps):
        pick = rng.integers(0, len(per_seq), len(per_seq))
        p = np.concatenate([np.clip(per_seq[i][key], 0, 1) for i in pick])
        y = np.concatenate([per_seq[i]["correct"] for i in pick])
        vals.append(expected_calibration_error(p, y))
    return [float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))]


def lost_pr(pred, target):
    tp = float((pred & target).sum())
    return {"precision": tp / pred.sum() if pred.sum() else float("nan"),
            "recall": tp / target.sum() if target.sum() else float("nan"),
            "flagged": int(pred.sum()), "target_frames": int(target.sum())}


def run(tracker_name, split, root, splits, max_frames, weights=None, tracker_kwargs=None, log=print):
    tracker = build_tracker(tracker_name, weights=weights, device="cpu", **(tracker_kwargs or {}))
    ds = FolderDataset(root, split=split, splits=splits)
    per = []
    for name in ds.names:
        t0 = time.perf_counter()
        seq = ds[name]
        start = absence_window(seq, max_frames)
        d = collect_confidence(tracker, seq, max_frames, start=start)
        d["correct"] = ((d["iou"] > 0.5) & ~d["absent"]).astype(float)
        d["lost_target"] = d["absent"] | (d["iou"] < 0.1)
        per.append(d)
        log(f"  {name}: frames {start}..{start + d['frames'] - 1}, {int(d['absent'].sum())} absent, "
            f"mean IoU {d['iou'].mean():.3f}, mean score {d['score'].mean():.3f} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return per


def summarise(per, name, split, max_frames):
    cat = lambda k: np.concatenate([d[k] for d in per])  # noqa: E731
    p, raw, y = cat("score"), np.clip(cat("raw"), 0, 1), cat("correct")
    lost, lt = cat("lost"), cat("lost_target")
    absent_seqs = [d for d in per if d["absent"].any()]
    res = {"tracker": name, "split": split, "sequences": len(per), "frames": int(p.size),
           "max_frames_per_seq": max_frames, "calibrated": bool(all(d["calibrated"] for d in per)),
           "positive_rate": float(y.mean()), "mean_score": float(p.mean()),
           "ece": expected_calibration_error(np.clip(p, 0, 1), y), "ece_ci95": bootstrap_ece(per, "score"),
           "ece_raw": expected_calibration_error(raw, y), "ece_raw_ci95": bootstrap_ece(per, "raw"),
           "lost_all": lost_pr(lost, lt)}
    if absent_seqs:
        res["lost_on_sequences_with_absence"] = lost_pr(np.concatenate([d["lost"] for d in absent_seqs]),
                                                        np.concatenate([d["lost_target"] for d in absent_seqs]))
        res["sequences_with_absence"] = [d["name"] for d in absent_seqs]
    return res


def diagram(per, res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cat = lambda k: np.concatenate([d[k] for d in per])  # noqa: E731
    y = cat("correct")
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, key, title, e in ((axes[0], "score", "score" + (" (calibrated)" if res["calibrated"] else " (uncalibrated)"),
                               res["ece"]), (axes[1], "raw", "raw score", res["ece_raw"])):
        conf, acc, cnt = reliability_bins(np.clip(cat(key), 0, 1), y)
        centers = (np.arange(10) + 0.5) / 10
        ax.bar(centers, np.nan_to_num(acc), width=0.1, edgecolor="k", alpha=0.7, label="fraction IoU > 0.5")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.plot(conf, acc, "o-", color="C3", label="bin: (mean confidence, accuracy)")
        for c, n in zip(centers, cnt):
            if n:
                ax.text(c, 0.02, str(n), ha="center", fontsize=6, rotation=90)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"{title}: ECE {e:.3f}")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{res['tracker']} on {res['split']} ({res['sequences']} seqs, {res['frames']} frames, "
                 f"<= {res['max_frames_per_seq']} per seq)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracker", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--split", default="val")
    ap.add_argument("--splits", default=None, help="splits file (default: the root's splits.json)")
    ap.add_argument("--root", default=str(REPO.parent / "shared/data/sequences"))
    ap.add_argument("--max-frames-per-seq", type=int, default=60)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(f"{a.tracker} on {a.split}: <= {a.max_frames_per_seq} frames per sequence (capped; windows around the "
          "first absence where there is one)")
    per = run(a.tracker, a.split, a.root, a.splits, a.max_frames_per_seq, a.weights)
    res = summarise(per, a.tracker, a.split, a.max_frames_per_seq)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.tracker}_{a.split}.json").write_text(json.dumps(res, indent=1) + "\n")
    diagram(per, res, out / f"{a.tracker}_{a.split}.png")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Why does (or doesn't) GradNet's online update help?  Per-sequence log of what the update does.

Runs a GradNet tracker over sequences of the folder dataset and records, per sequence:
- how many frames were judged reliable, how many rescue and periodic updates ran;
- for every update, the matching loss of the sample *before* (template of the previous state) and *after*
  (the new template) on the sample it was computed from, and the relative distance of the template from
  the initial one, ``|T - T0| / |T0|``;
- the success AUC of the run and, with ``--compare``, of the same network without the online update
  (``online_update=false``), and with ``--fusion-weight 0`` in the official fusion (the ensemble's GradNet
  share off: only the fixed SiamFC template tracks, so the comparison separates the fusion constants from
  the update itself).

    python scripts/diagnose_gradnet.py --weights runs/gradnet_effnet/final.pt --split holdout \\
        --splits-file configs/splits/train_holdout.json --compare --json out/diag.json

Use held-out sequences (never `val`) when the results feed a decision.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import gradtrack
from gradtrack.data.readers.folder import FolderDataset
from gradtrack.evaluation.metrics import auc, box_iou, success_curve
from gradtrack.models.labels import balanced_logistic_loss


def _instrument(tracker) -> list[dict]:
    """Wrap the tracker's update step once so every update is logged (the tracker's code is unchanged);
    returns the log, emptied for a new sequence."""
    if hasattr(tracker, "_diag_log"):
        tracker._diag_log.clear()
        return tracker._diag_log
    log: list[dict] = []
    inner = tracker._update_from

    def logged(sample, keep):
        st = tracker.state
        if st.frame == 0 and not log:  # reference: the first template (already updated once by init)
            tracker._t0 = st.template.clone()
        label, weight = tracker._label
        if sample.features is None:
            sample.features = tracker._features(sample.crop)
        with torch.no_grad():
            before = float(balanced_logistic_loss(tracker.model.score(st.template, sample.features), label, weight))
        inner(sample, keep)
        with torch.no_grad():
            after = float(balanced_logistic_loss(tracker.model.score(st.template, sample.features), label, weight))
        t0 = tracker._t0
        drift = float((st.template - t0).norm() / t0.norm().clamp_min(1e-12))
        log.append({"frame": st.frame, "keep": keep, "loss_before": before, "loss_after": after, "drift": drift,
                    "sample_frame": sample.frame})

    tracker._update_from = logged
    tracker._diag_log = log
    return log


def run_sequence(tracker, seq, max_frames: int) -> dict:
    frames = seq.frames
    gt = np.asarray(seq.boxes, dtype=float)
    if not np.all(np.isfinite(gt[0])):
        raise ValueError(f"{seq.name}: no box in the first frame")
    n = min(len(gt), max_frames) if max_frames else len(gt)
    log = _instrument(tracker) if hasattr(tracker, "_update_from") else []
    preds, flags = [], {"reliable": 0, "rescued": 0, "updated": 0}
    for i in range(n):
        image = frames[i]
        if i == 0:
            tracker.init(image, gt[0])
            preds.append(gt[0])
            continue
        res = tracker.update(image)
        preds.append(res.box)
        for k in flags:
            flags[k] += bool(res.extra.get(k, False))
    preds = np.asarray(preds)
    valid = np.all(np.isfinite(gt[:n]), axis=1)
    ious = box_iou(preds, gt[:n])
    s = auc(success_curve(ious, valid=valid))
    upd = [r for r in log]
    return {"frames": n, "auc": s, **flags, "updates": len(upd),
            "loss_before": float(np.mean([r["loss_before"] for r in upd])) if upd else None,
            "loss_after": float(np.mean([r["loss_after"] for r in upd])) if upd else None,
            "drift_final": upd[-1]["drift"] if upd else 0.0,
            "drift_max": max((r["drift"] for r in upd), default=0.0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracker", default="gradnet")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--root", default="../shared/data/sequences")
    ap.add_argument("--splits-file", default="configs/splits/train_holdout.json")
    ap.add_argument("--split", default="holdout")
    ap.add_argument("--max-frames", type=int, default=0, help="frames per sequence (0 = all)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="tracker setting (YAML value)")
    ap.add_argument("--compare", action="store_true", help="also run without the update and with fusion_weight 0")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.split == "val":
        print("note: val is for reporting; do not tune on these figures", file=sys.stderr)
    import yaml

    base = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    ds = FolderDataset(args.root, args.split, splits=args.splits_file)
    variants = {"update": base}
    if args.compare:
        variants["no_update"] = {**base, "online_update": False}
        variants["fusion_w0"] = {**base, "fusion_weight": 0.0, "online_update": False}
    out: dict = {name: {} for name in variants}
    for name, overrides in variants.items():
        tracker = gradtrack.build_tracker(args.tracker, weights=args.weights, **overrides)
        for seq in ds:
            out[name][seq.name] = r = run_sequence(tracker, seq, args.max_frames)
            print(f"{name:10s} {seq.name:24s} auc {r['auc']:.3f} upd {r['updates']:3d} rel {r['reliable']:4d}/"
                  f"{r['frames'] - 1:<4d} resc {r['rescued']:2d} loss {r['loss_before'] or 0:.3f}->"
                  f"{r['loss_after'] or 0:.3f} drift {r['drift_final']:.3f} (max {r['drift_max']:.3f})", flush=True)
    names = sorted(out["update"])
    for name in variants:
        print(f"{name}: mean AUC {np.mean([out[name][s]['auc'] for s in names]):.3f} over {len(names)} sequences")
    if args.compare:
        rng = np.random.default_rng(0)
        for other in ("no_update", "fusion_w0"):
            d = np.array([out["update"][s]["auc"] - out[other][s]["auc"] for s in names])
            boots = d[rng.integers(0, len(d), (10000, len(d)))].mean(1)
            lo, hi = np.percentile(boots, [5, 95])
            print(f"update - {other}: {d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] (90 % bootstrap over sequences; "
                  f"wins/losses > 0.05: {(d > 0.05).sum()}/{(d < -0.05).sum()})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

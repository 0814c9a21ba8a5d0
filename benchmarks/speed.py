"""Per-frame speed of the SiamFC, GradNet and SiamMLG trackers on a real sequence.

Decodes the whole video first (OpenCV, BGR -> RGB), so decoding is excluded; initialises with the
first ground-truth box (OTB files are 1-based: x, y - 1); times every ``tracker.update(frame)`` with
``time.perf_counter`` (CUDA is synchronised after each update) and reports the median.  Weights default
to each tracker's shipped weights (``--weights random``: untrained networks, same timings, meaningless
boxes).  The ``agree`` column is the mean IoU between the bf16-autocast run and the
fp32 run of the same tracker (1.0 = identical boxes), i.e. how much bf16 changes the output.  With
random weights the response maps are nearly flat, so bf16's ~0.3 % relative error already moves the
argmax and the two runs drift apart; judge bf16 accuracy with the trained weights.

    .venv/bin/python benchmarks/speed.py                       # all trackers, fp32 and bf16, CPU/CUDA auto
    .venv/bin/python benchmarks/speed.py --device cpu --frames 60 --threads 2 --no-amp
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import gradtrack
from gradtrack.geometry import iou

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SEQ = REPO.parent / "shared" / "data" / "sequences" / "otb" / "Crossing"

VARIANTS = [
    ("siamfc", {}),
    ("gradnet", {"fusion": "official"}),
    ("gradnet", {"fusion": "paper"}),
    ("siammlg", {"box_source": "mask"}),
    ("siammlg", {"box_source": "boxhead"}),
]


def load_sequence(seq_dir: Path, max_frames: int | None):
    video = seq_dir / "video.mp4"
    gt_file = seq_dir / "groundtruth.txt"
    if not video.is_file() or not gt_file.is_file():
        sys.exit(f"sequence not found: need {video} and {gt_file}")
    cap = cv2.VideoCapture(str(video))
    frames = []
    while max_frames is None or len(frames) < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    if len(frames) < 2:
        sys.exit(f"could not decode at least 2 frames from {video}")
    first = gt_file.read_text().splitlines()[0].replace("\t", ",").replace(" ", ",")
    x, y, w, h = (float(v) for v in first.split(",") if v)
    return frames, np.array([x - 1, y - 1, w, h])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequence", type=Path, default=DEFAULT_SEQ, help="folder with video.mp4 and groundtruth.txt")
    ap.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    ap.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    ap.add_argument("--weights", default=None,
                    help="default: each tracker's shipped weights; 'random' or a checkpoint path (applies to all)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--no-amp", action="store_true", help="skip the bf16 autocast runs")
    ap.add_argument("--warmup", type=int, default=3, help="updates run (and discarded) before timing")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    frames, box = load_sequence(args.sequence, args.frames)
    print(f"sequence {args.sequence.name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, "
          f"init box {box.tolist()} (0-based)")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    if args.weights == "random":
        print("NOTE: weights='random' (untrained networks): timings are real, the boxes are meaningless.")

    # All variants process each frame in turn (round robin), so load from other processes on a shared
    # machine hits every variant alike and the medians stay comparable.
    runs = []
    for name, kw in VARIANTS:
        for amp in ([False] if args.no_amp else [False, True]):
            try:
                tracker = gradtrack.build_tracker(name, weights=args.weights, device=args.device, amp=amp, **kw)
            except (FileNotFoundError, ValueError) as exc:  # no shipped weights, or no box head in them
                print(f"skipping {name} {kw}: {exc}")
                break
            if args.warmup:
                tracker.init(frames[0], box)
                for f in frames[1:1 + args.warmup]:
                    tracker.update(f)
            tracker.init(frames[0], box)
            label = name + (f" ({', '.join(str(v) for v in kw.values())})" if kw else "")
            runs.append({"label": label, "amp": amp, "tracker": tracker, "times": [], "boxes": [box.copy()]})
    for frame in frames[1:]:
        for run in runs:
            dev = run["tracker"].device
            t0 = time.perf_counter()
            res = run["tracker"].update(frame)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            run["times"].append(time.perf_counter() - t0)
            run["boxes"].append(res.box)
    rows = []
    ref = {}
    for run in runs:
        times, boxes = np.asarray(run["times"]), np.asarray(run["boxes"])
        if not run["amp"]:
            ref[run["label"]] = boxes
            agree = float("nan")
        else:
            agree = float(np.nanmean(iou(boxes, ref[run["label"]])[1:])) if run["label"] in ref else float("nan")
        med = float(np.median(times))
        rows.append((run["label"], "bf16" if run["amp"] else "fp32", run["tracker"].device.type, med * 1e3,
                     float(np.percentile(times, 90)) * 1e3, 1.0 / med, agree))

    print(f"\n{'tracker':<22} {'prec':<5} {'dev':<5} {'median ms':>10} {'p90 ms':>8} {'fps':>7} {'agree':>6}")
    for label, prec, dev, med, p90, fps, agree in rows:
        agree_s = "-" if np.isnan(agree) else f"{agree:.3f}"
        print(f"{label:<22} {prec:<5} {dev:<5} {med:>10.1f} {p90:>8.1f} {fps:>7.1f} {agree_s:>6}")


if __name__ == "__main__":
    main()

"""Per-target cost of MultiTracker vs N separate trackers, and of the batched eval vs one by one.

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/multi_target.py [--tracker siamfc] [--frames 20]

Prints ms per frame (all targets) and ms per target for N = 1, 4, 16 targets on one procedural video
(preloaded frames), then the per-sequence cost of ``BatchedTracker`` over N sequences vs one by one.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import gradtrack
from gradtrack.data import synthetic
from gradtrack.trackers.batched import BatchedTracker


def _targets(seq, n):
    b0 = np.asarray(seq.boxes[0], float)
    rng = np.random.default_rng(0)
    w, h = seq.frames[0].shape[1], seq.frames[0].shape[0]
    out = [b0]
    while len(out) < n:
        bw, bh = b0[2], b0[3]
        out.append(np.array([rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh]))
    return out


def multi_vs_separate(name, frames, boxes):
    mt = gradtrack.MultiTracker(name, device="cpu")
    mt.init(frames[0], boxes)
    t0 = time.perf_counter()
    for f in frames[1:]:
        mt.update(f)
    t_multi = (time.perf_counter() - t0) / (len(frames) - 1)
    trackers = [gradtrack.build_tracker(name, device="cpu") for _ in boxes]
    for t, b in zip(trackers, boxes):
        t.init(frames[0], b)
    t0 = time.perf_counter()
    for f in frames[1:]:
        for t in trackers:
            t.update(f)
    t_sep = (time.perf_counter() - t0) / (len(frames) - 1)
    return t_multi, t_sep


def eval_batched_vs_one(name, seqs):
    tracker = gradtrack.build_tracker(name, device="cpu")
    t0 = time.perf_counter()
    for s in seqs:
        tracker.track(list(s.frames), s.boxes[0])
    t_one = (time.perf_counter() - t0) / len(seqs)
    bt = BatchedTracker(tracker)
    t0 = time.perf_counter()
    for k, s in enumerate(seqs):
        bt.init(k, s.frames[0], s.boxes[0])
    for i in range(1, len(seqs[0].frames)):
        bt.update({k: s.frames[i] for k, s in enumerate(seqs)})
    t_bat = (time.perf_counter() - t0) / len(seqs)
    return t_bat, t_one


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracker", default="siamfc")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--targets", default="1,4,16")
    ap.add_argument("--sequences", type=int, default=4)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), tracker {a.tracker}, CPU")
    seq = synthetic.preset("distractors", seed=0, num_frames=a.frames, size=(320, 240))
    frames = [np.asarray(seq.frames[i]) for i in range(len(seq.frames))]
    print("targets  multi ms/frame  separate ms/frame  multi ms/target  separate ms/target  speed-up")
    for n in (int(v) for v in a.targets.split(",")):
        tm, ts = multi_vs_separate(a.tracker, frames, _targets(seq, n))
        print(f"{n:7d}  {tm * 1e3:14.1f}  {ts * 1e3:17.1f}  {tm * 1e3 / n:15.1f}  {ts * 1e3 / n:18.1f}  {ts / tm:8.2f}")
    seqs = [synthetic.preset("demo", seed=k, num_frames=a.frames, size=(320, 240)) for k in range(a.sequences)]
    tb, to = eval_batched_vs_one(a.tracker, seqs)
    print(f"eval, {a.sequences} sequences of {a.frames} frames: batched {tb * 1e3:.0f} ms/sequence, one by one "
          f"{to * 1e3:.0f} ms/sequence ({to / tb:.2f}x)")


if __name__ == "__main__":
    main()

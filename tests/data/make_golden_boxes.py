"""Record the boxes that the shipped trackers give, for ``tests/test_golden_boxes.py``.

The golden file pins tracking behaviour across refactors: every shipped tracker (default settings, shipped
weights, CPU, fp32) on (a) the first frames of the procedural ``demo`` sequence and (b) the first frames of
the real OTB ``Crossing`` video from ``../shared/data/sequences`` (decoded with OpenCV directly, so the
test does not depend on gradtrack's own frame readers).

Regenerate (only when a behaviour change is intended; say so in the commit) with the code whose boxes are
the reference on the path, e.g. the pre-refactor commit 0f8b567 checked out in /tmp/base::

    PYTHONPATH=/tmp/base/src .venv/bin/python tests/data/make_golden_boxes.py

or, from the current tree, ``PYTHONPATH=src .venv/bin/python tests/data/make_golden_boxes.py``.  The script
uses only the public tracker contract (``build_tracker``, ``init``, ``update``), so it runs on both.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden_boxes.json"
SHARED = Path(os.environ.get("GRADTRACK_SHARED", HERE.parents[1].parent / "shared"))
TRACKERS = ("siamfc", "gradnet", "gradnet_alexnet", "siammlg")
NUM_FRAMES = 40
REAL_SEQUENCE = "otb/Crossing"


def demo_sequence() -> tuple[list[np.ndarray], np.ndarray]:
    from gradtrack.data import synthetic

    seq = synthetic.preset("demo", seed=0, num_frames=NUM_FRAMES)
    return [np.asarray(f) for f in seq.frames], np.asarray(seq.boxes[0], dtype=np.float64)


def real_sequence(shared: Path = SHARED) -> tuple[list[np.ndarray], np.ndarray] | None:
    """First ``NUM_FRAMES`` RGB frames of the real sequence and its first box (0-based), or None if absent."""
    folder = shared / "data" / "sequences" / REAL_SEQUENCE
    if not (folder / "video.mp4").is_file():
        return None
    cap = cv2.VideoCapture(str(folder / "video.mp4"))
    frames = []
    while len(frames) < NUM_FRAMES:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    first = (folder / "groundtruth.txt").read_text().splitlines()[0]
    box = np.array([float(v) for v in first.replace("\t", ",").split(",")], dtype=np.float64)
    box[:2] -= 1.0  # OTB stores 1-based top-left corners
    return frames, box


def track(name: str, frames: list[np.ndarray], box: np.ndarray) -> np.ndarray:
    """Boxes of frames 1.. (frame 0 is the given box) with ``build_tracker(name)`` on the CPU, fp32 (the
    trackers whose default precision is "auto" would run bf16 on CPUs that have it)."""
    from gradtrack import build_tracker

    tracker = build_tracker(name, device="cpu", precision="fp32")
    tracker.init(frames[0], box)
    return np.asarray([tracker.update(f).box for f in frames[1:]], dtype=np.float64)


def main() -> int:
    torch.set_num_threads(1)
    inputs = {"demo": demo_sequence(), "real": real_sequence()}
    if inputs["real"] is None:
        print(f"no {REAL_SEQUENCE} under {SHARED}/data/sequences", file=sys.stderr)
        return 1
    out = {"num_frames": NUM_FRAMES, "real_sequence": REAL_SEQUENCE, "boxes": {}}
    for name in TRACKERS:
        for seq, (frames, box) in inputs.items():
            out["boxes"][f"{name}/{seq}"] = [[round(float(v), 6) for v in b] for b in track(name, frames, box)]
            print(name, seq, out["boxes"][f"{name}/{seq}"][-1])
    GOLDEN.write_text(json.dumps(out, indent=None) + "\n")
    print(f"wrote {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

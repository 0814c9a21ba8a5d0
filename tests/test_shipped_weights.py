"""The weights shipped in ``src/gradtrack/weights/`` load with no argument and really track.

Each tracker follows three procedural sequences that no training run saw (training used synthetic seeds
1000 and up; these are "easy" seeds 3 and 4 and "demo" seed 8) and must reach a mean IoU of 0.55 and keep
a lead of 0.2 over the same network with random weights, so a file of untrained or mis-loaded weights
fails here.  (Random AlexNet features follow the "easy" targets surprisingly well, hence the "demo"
sequence.)  Measured when the files were committed: SiamFC 0.829 vs 0.401 random, GradNet 0.835 vs 0.559,
SiamMLG 0.610 vs 0.133 (it loses the "demo" sequence: 0.111).  This is a smoke test of the files, not an
accuracy measurement; that is the val-split evaluation in the README.  No ``../shared`` data needed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gradtrack.checkpoint import read_checkpoint
from gradtrack.data import synthetic
from gradtrack.geometry import iou
from gradtrack.trackers import build_tracker
from gradtrack.trackers.common import shipped_weights

SHIPPED = ("siamfc", "siamfc_effnet", "gradnet", "gradnet_alexnet", "siammlg")
MIN_IOU = 0.55
MIN_LEAD = 0.2


@pytest.fixture(scope="module")
def sequences():
    return [synthetic.preset(name, seed=seed, num_frames=40) for name, seed in (("easy", 3), ("easy", 4), ("demo", 8))]


def mean_iou(tracker, seq) -> float:
    frames = [np.asarray(f) for f in seq.frames]
    boxes = np.asarray(seq.boxes, dtype=np.float64)
    tracker.init(frames[0], boxes[0])
    out = [tracker.update(f).box for f in frames[1:]]
    valid = np.isfinite(boxes[1:]).all(1)
    return float(np.mean(iou(np.asarray(out)[valid], boxes[1:][valid])))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_by_default_and_track(name, sequences):
    path = shipped_weights(name)
    assert path.is_file(), f"no shipped weights for {name}"
    ckpt = read_checkpoint(path)
    assert ckpt["model"] == {"siamfc_effnet": "siamfc", "gradnet_alexnet": "gradnet"}.get(name, name)
    stored = getattr(torch, ckpt.get("meta", {}).get("stored_dtype", "float16"))  # fp32 where fp16 lost too much
    assert all(v.dtype == stored for v in ckpt["state_dict"].values() if v.is_floating_point())
    torch.manual_seed(0)
    tracker = build_tracker(name, device="cpu")
    assert not tracker.untrained and tracker.weights_source == str(path)
    if getattr(tracker.model, "backend", "torch") == "torch":
        assert next(tracker.model.parameters()).dtype == torch.float32
    else:  # siamfc's default on CPUs without AMX: the shipped int8 graphs of these weights
        assert name == "siamfc" and tracker.precision == "int8"
    trained = np.mean([mean_iou(tracker, seq) for seq in sequences])
    # the same architecture with random weights (the shipped SiamMLG and GradNet are not their defaults)
    extra = {"model": ckpt["config"]} if name in ("siammlg", "gradnet") else {}
    untrained = build_tracker(name, weights="random", device="cpu", **extra)
    random = np.mean([mean_iou(untrained, seq) for seq in sequences])
    assert trained > MIN_IOU, (name, trained)
    assert trained > random + MIN_LEAD, (name, trained, random)

"""Confidence calibration, the ``lost`` flag, long-term mode and the VOT long-term F-score."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gradtrack.data.synthetic import generate
from gradtrack.evaluation.longterm import longterm_curves, longterm_fscore
from gradtrack.trackers import build_tracker
from gradtrack.trackers.calibration import (Calibrator, expected_calibration_error, fit_calibrator, fit_isotonic,
                                            fit_logistic, for_source, pav, write_to_checkpoint)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_pav_pools_violators():
    vals, starts, ends = pav([1.0, 3.0, 2.0, 4.0])
    assert np.allclose(vals, [1.0, 2.5, 4.0])
    assert starts.tolist() == [0, 1, 3] and ends.tolist() == [0, 2, 3]
    vals, _, _ = pav([3.0, 2.0, 1.0], [1.0, 1.0, 2.0])
    assert np.allclose(vals, [7.0 / 4.0])  # weighted mean of all


def test_isotonic_fit_is_monotone_and_calibrated():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 4000)
    true_p = x ** 2  # the raw score over-states the probability
    y = (rng.uniform(0, 1, x.size) < true_p).astype(float)
    cal = fit_calibrator(x, y, kind="isotonic")
    grid = np.linspace(0, 1, 201)
    p = cal.predict(grid)
    assert np.all(np.diff(p) >= -1e-12) and p.min() >= 0 and p.max() <= 1
    assert np.abs(cal.predict(np.array([0.3, 0.5, 0.8])) - np.array([0.09, 0.25, 0.64])).max() < 0.08
    assert expected_calibration_error(cal.predict(x), y) < expected_calibration_error(x, y)
    params = fit_isotonic(x, y)
    assert len(params["x"]) == len(params["y"])
    back = Calibrator.from_dict(cal.to_dict())
    assert np.allclose(back.predict(grid), p)


def test_logistic_fit_recovers_platt_parameters():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.02, 0.98, 6000)
    logit = np.log(x / (1 - x))
    y = (rng.uniform(0, 1, x.size) < 1 / (1 + np.exp(-(-1.0 + 2.0 * logit)))).astype(float)
    prm = fit_logistic(x, y)
    assert abs(prm["a"] + 1.0) < 0.2 and abs(prm["b"] - 2.0) < 0.25
    p = Calibrator("logistic", prm).predict(x)
    assert np.all((p > 0) & (p < 1))


def test_ece_on_known_input_and_bad_input():
    # bin [0.2, 0.3): confidence 0.25, accuracy 0.5; bin [0.9, 1]: confidence 0.95, accuracy 1
    p = np.array([0.25, 0.25, 0.95, 0.95])
    y = np.array([1, 0, 1, 1])
    assert expected_calibration_error(p, y) == pytest.approx(0.5 * 0.25 + 0.5 * 0.05)
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1, 0])) == 0.0
    with pytest.raises(ValueError, match="probabilities"):
        expected_calibration_error(np.array([1.5]), np.array([1]))
    with pytest.raises(ValueError, match="0 or 1"):
        fit_isotonic([0.1, 0.2], [0.5, 1.0])


def test_lost_threshold_is_fitted_from_targets():
    raw = np.r_[np.full(50, 0.2), np.full(50, 0.9)]
    correct = np.r_[np.zeros(50), np.ones(50)]
    cal = fit_calibrator(raw, correct, lost_target=correct == 0)
    assert cal.predict(0.2) < cal.lost_threshold <= cal.predict(0.9)


@pytest.fixture(scope="module")
def seq():
    return generate(num_frames=14, size=(160, 120), seed=3, speed=1.0, noise=1.0)


def _run(tracker, seq, n=None):
    n = len(seq) if n is None else n
    tracker.init(seq.frames[0], seq.boxes[0])
    return [tracker.update(seq.frames[i]) for i in range(1, n)]


def test_tracker_without_calibrator_reports_raw(seq):
    t = build_tracker("siamfc", weights="random", device="cpu")
    assert t.calibrator is None
    for r in _run(t, seq, 4):
        assert r.extra["calibrated"] is False and r.score == r.extra["raw_score"]
        assert r.lost == (r.extra["raw_score"] < 0.5)


def test_calibrated_tracker_and_checkpoint_meta(seq, tmp_path):
    from gradtrack.checkpoint import load_model, save_model
    from gradtrack.models import build_model

    torch.manual_seed(0)
    path = save_model(tmp_path / "w.pt", "siamfc", build_model("siamfc"))
    assert for_source(path) is None
    cal = Calibrator("isotonic", {"x": [0.0, 0.5, 0.5, 1.0], "y": [0.05, 0.05, 0.9, 0.9]}, lost_threshold=0.3)
    write_to_checkpoint(path, cal)
    torch.load(path, weights_only=True)  # still plain data
    load_model(path, expected="siamfc")
    assert for_source(path).to_dict()["params"] == cal.to_dict()["params"]
    t = build_tracker("siamfc", weights=str(path), device="cpu")
    for r in _run(t, seq, 4):
        assert r.extra["calibrated"] is True
        assert r.score == pytest.approx(cal.predict(r.extra["raw_score"]))
        assert r.lost == (r.score < 0.3)


def test_opencv_lost_is_not_ok(seq):
    t = build_tracker("opencv_kcf")
    for r in _run(t, seq, 4):
        assert r.extra["calibrated"] is False and r.lost == (not r.extra["opencv_ok"])


def _always(lost: bool) -> Calibrator:
    return Calibrator("isotonic", {"x": [0.0, 1.0], "y": [0.5, 0.5]}, lost_threshold=1.0 if lost else 0.0)


@pytest.mark.parametrize("name", ["siamfc", "gradnet"])
def test_long_term_grows_search_while_lost_and_recovers(seq, name):
    t = build_tracker(name, weights="random", device="cpu", long_term=True)
    t.LT_MAX_INSTANCE = 351  # keep the test fast
    base = t.geom.instance_size
    t.init(seq.frames[0], seq.boxes[0])
    t.calibrator = _always(lost=True)
    updates = t.state.updates if name == "gradnet" else None
    gains, sizes = [], []
    for i in range(1, 6):
        r = t.update(seq.frames[i])
        assert r.lost and np.isfinite(r.box).all()
        gains.append(r.extra["search_scale"])
        sizes.append(t.geom.instance_size)
    assert gains[0] == 1.0 and all(b >= a for a, b in zip(gains, gains[1:])) and gains[-1] > 1.0
    assert base < sizes[-1] <= 351 and t.window_influence == 0.0
    if name == "gradnet":  # the periodic update due on frame 5 was skipped: no template update while lost
        assert t.state.updates == updates
    t.calibrator = _always(lost=False)
    r = t.update(seq.frames[6])
    assert not r.lost and r.extra["search_scale"] > 1.0  # this frame still searched the large region
    assert t.geom.instance_size == base and t.window_influence > 0
    r = t.update(seq.frames[7])
    assert r.extra["search_scale"] == 1.0
    t.init(seq.frames[0], seq.boxes[0])  # a new sequence starts in normal mode
    assert t.geom.instance_size == base


def test_long_term_off_keeps_boxes(seq):
    a = build_tracker("siamfc", weights="random", device="cpu")
    b = build_tracker("siamfc", weights="random", device="cpu", long_term=False)
    b.calibrator = _always(lost=True)
    for ra, rb in zip(_run(a, seq, 5), _run(b, seq, 5)):
        assert np.array_equal(ra.box, rb.box) and "search_scale" not in rb.extra


def test_longterm_fscore_hand_made():
    # sequence A: 4 frames, target present in the first 2 (IoU 0.8, 0.6), absent in the last 2
    a = {"iou": np.array([0.8, 0.6, 0.0, 0.0]), "score": np.array([0.9, 0.7, 0.2, 0.8]),
         "absent": np.array([False, False, True, True])}
    c = longterm_curves([a], thresholds=[0.0, 0.5, 0.75])
    # tau 0: Pr = 1.4 / 4, Re = 1.4 / 2; tau 0.5: frames 0, 1, 3 -> Pr = 1.4 / 3, Re = 0.7; tau 0.75: frames 0, 3
    assert np.allclose(c["precision"], [0.35, 1.4 / 3, 0.4])
    assert np.allclose(c["recall"], [0.7, 0.7, 0.4])
    f = 2 * c["precision"] * c["recall"] / (c["precision"] + c["recall"])
    assert np.allclose(c["f"], f)
    best = longterm_fscore([a], thresholds=[0.0, 0.5, 0.75])
    assert best["threshold"] == 0.5 and best["f"] == pytest.approx(f[1])
    # a perfect tracker that reports low confidence exactly where the target is absent: F = mean IoU-ish 1
    b = {"iou": np.array([1.0, 1.0, 0.0]), "score": np.array([0.9, 0.9, 0.1]), "absent": np.array([False, False, True])}
    assert longterm_fscore([b], thresholds=[0.5])["f"] == pytest.approx(1.0)

"""Golden tests for gradtrack.evaluation.metrics: every expected value is computed by hand in a comment."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradtrack.evaluation import metrics as M

B = np.array([[0.0, 0.0, 10.0, 10.0]])


# ------------------------------------------------------------------------------------------ OTB
def test_gt_as_prediction_scores_20_of_21():
    rng = np.random.default_rng(0)
    gt = np.c_[rng.uniform(0, 100, (50, 2)), rng.uniform(5, 50, (50, 2))]
    res = M.ope_sequence(gt, gt)
    # IoU = 1 > thr for the 20 thresholds 0 .. 0.95, not for 1.0 (strict): 20/21
    assert M.auc(res["success"]) == pytest.approx(20 / 21, abs=1e-15)
    assert res["success"][-1] == 0.0 and np.all(res["success"][:-1] == 1.0)
    assert res["precision"][20] == 1.0 and res["precision"][0] == 1.0  # error 0 <= 0
    s = M.ope_summary([res, res])
    assert s["success_auc"] == pytest.approx(20 / 21)
    assert s["norm_precision"] == 1.0 and s["success_rate"] == 1.0


def test_success_curve_hand_case():
    # (0,0,10,10) vs (5,0,10,10): intersection 5*10 = 50, union 100+100-50 = 150 -> IoU 1/3
    iou = M.box_iou([[5.0, 0, 10, 10]], B)
    assert iou[0] == pytest.approx(1 / 3)
    curve = M.success_curve(iou)
    # thresholds 0, .05, ..., .30 are < 1/3 (7 of them); .35 .. 1 are not
    assert curve.sum() == 7 and M.auc(curve) == pytest.approx(7 / 21)
    # strictness: IoU exactly 0.5 does not pass the 0.5 threshold
    half = M.box_iou([[0.0, 0, 10, 5]], B)  # 50 / 100
    assert half[0] == 0.5 and M.success_curve(half)[10] == 0.0 and M.success_curve(half)[9] == 1.0


def test_precision_curve_hand_case_and_inclusive_threshold():
    # centres 3-4-5 triangle: error exactly 5 px passes thresholds 5..50 (<=), not 0..4
    err = M.center_error([[3.0, 4.0, 10, 10]], B)
    assert err[0] == pytest.approx(5.0)
    curve = M.precision_curve(err)
    assert curve[4] == 0.0 and curve[5] == 1.0 and curve[20] == 1.0


def test_invalid_frames_conventions():
    gt = np.array([[0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10], [50, 50, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    ex = M.ope_sequence(pred, gt, invalid_frames="exclude")
    fail = M.ope_sequence(pred, gt, invalid_frames="count_as_failure")
    # exclude: frames 0, 2 succeed, 3 fails -> 2/3 at thr 0 ; failure: 2/4
    assert ex["success"][0] == pytest.approx(2 / 3) and fail["success"][0] == pytest.approx(2 / 4)
    assert ex["n_valid"] == 3 and fail["n_frames"] == 4
    # precision at 20 px: frame 3 is 50*sqrt(2) px away -> exclude 2/3, failure 2/4, pysot success 3/4
    assert ex["precision"][20] == pytest.approx(2 / 3)
    assert fail["precision"][20] == pytest.approx(2 / 4)
    ok = M.precision_curve(M.center_error(pred, gt), valid=~np.isnan(gt).any(1), invalid_frames="count_as_success")
    assert ok[20] == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="invalid_frames"):
        M.success_curve([0.5], invalid_frames="count_as_success")


def test_nan_prediction_is_a_failure_not_excluded():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [np.nan] * 4])
    res = M.ope_sequence(pred, gt, force_first_frame_gt=False)
    assert res["success"][0] == 0.5 and res["precision"][50] == 0.5


def test_force_first_frame_gt():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[90, 90, 10, 10], [0, 0, 10, 10]], float)
    assert M.ope_sequence(pred, gt)["success"][0] == 1.0
    assert M.ope_sequence(pred, gt, force_first_frame_gt=False)["success"][0] == 0.5


def test_conventions_that_cancel_for_xywh_boxes():
    """pytracking's pixel-inclusive IoU (-1 on the right edge, +1 on the intersection) and got10k's
    (w-1)/2 centre equal the continuous ones for x,y,w,h boxes: pinned so nobody "fixes" numbers by
    flipping a switch that changes nothing."""
    rng = np.random.default_rng(1)
    a = np.c_[rng.uniform(0, 50, (100, 2)), rng.uniform(1, 40, (100, 2))]
    b = np.c_[rng.uniform(0, 50, (100, 2)), rng.uniform(1, 40, (100, 2))]
    np.testing.assert_allclose(M.box_iou(a, b, convention="pixel_inclusive"), M.box_iou(a, b), atol=1e-12)
    np.testing.assert_allclose(M.center_error(a, b, center="continuous"), M.center_error(a, b), atol=1e-12)
    # ...but the centres themselves differ by half a pixel
    np.testing.assert_allclose(M.centers(a, "continuous") - M.centers(a, "pixel_inclusive"), 0.5)


def test_normalized_precision_both_scores():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [1, 0, 10, 10]], float)  # frame 1: 1 px / width 10 = 0.1
    res = M.ope_sequence(pred, gt)
    ne = M.normalized_center_error(pred, gt)
    assert ne[1] == pytest.approx(0.1)
    # frame 0 passes every threshold, frame 1 passes thresholds >= 0.1 (indices 10..50: 41 of 51)
    curve = res["norm_precision"]
    assert curve[9] == 0.5 and curve[10] == 1.0
    auc = M.ope_summary([res], norm_prec_score="auc_0_0.5")["norm_precision"]
    assert auc == pytest.approx((51 + 41) / 2 / 51)
    assert M.ope_summary([res], norm_prec_score="at_0.2")["norm_precision"] == 1.0
    # normalisation by max(1, gt size): a 0.5 px wide GT is normalised by 1
    tiny = M.normalized_center_error([[2.0, 0, 0.5, 10]], [[0.0, 0, 0.5, 10]])
    assert tiny[0] == pytest.approx(2.0)


def test_sequence_average_not_frame_pool():
    # seq A: 1 frame, IoU 1 ; seq B: 3 frames, IoU 0 -> sequence average at thr 0 = (1 + 0) / 2
    a = M.ope_sequence(B, B)
    b = M.ope_sequence(np.repeat([[0.0, 0, 10, 10]], 3, 0), np.array([[0.0, 0, 10, 10], [50, 50, 5, 5], [50, 50, 5, 5]]),
                       force_first_frame_gt=False)
    s = M.ope_summary([a, b])
    # b: frame 0 IoU 1, frames 1-2 IoU 0 -> 1/3 at thr 0
    assert s["success_curve"][0] == pytest.approx((1 + 1 / 3) / 2)


def test_attribute_breakdown():
    good = M.ope_sequence(B, B)
    bad = M.ope_sequence(np.array([[0.0, 0, 10, 10], [80, 80, 5, 5]]), np.array([[0.0, 0, 10, 10], [0, 0, 10, 10]]))
    out = M.attribute_breakdown({"a": good, "b": bad}, {"a": ["IV", "OCC"], "b": ["OCC"]})
    assert out["IV"]["success_auc"] == pytest.approx(20 / 21)
    assert out["OCC"]["n_sequences"] == 2
    assert out["OCC"]["success_auc"] == pytest.approx((20 / 21 + 10 / 21) / 2)


# ------------------------------------------------------------------------------------------ GOT-10k
def test_got10k_ao_sr_hand_case():
    gt = np.array([[0, 0, 10, 10]] * 5, float)
    pred = np.array([
        [90, 90, 5, 5],  # frame 0: ignored
        [0, 0, 10, 10],  # IoU 1
        [0, 0, 10, 6],  # IoU 0.6
        [0, 0, 10, 8],  # IoU 0.8 but cover 0 -> ignored
        [50, 50, 10, 10],  # IoU 0
    ], float)
    ious = M.got10k_ious(pred, gt, (100, 100), cover=[8, 8, 3, 0, 8])
    np.testing.assert_allclose(ious, [1.0, 0.6, 0.0])
    s = M.got10k_summary([ious])
    assert s["ao"] == pytest.approx(1.6 / 3)
    assert s["sr50"] == pytest.approx(2 / 3) and s["sr75"] == pytest.approx(1 / 3)
    # pooled over runs (frames), not averaged per run: run 2 has 1 frame of IoU 1
    s2 = M.got10k_summary([ious, [1.0]])
    assert s2["ao"] == pytest.approx(2.6 / 4)


def test_got10k_clip_quirk():
    # a box 10 px out on the left: got10k moves it to x=0 keeping w=30, exact clipping cuts it to w=20
    pred, gt = np.array([[-10.0, 0, 30, 10]]), np.array([[0.0, 0, 20, 10]])
    assert M.box_iou(pred, gt, bound=(100, 100), clip_mode="got10k")[0] == pytest.approx(200 / 300)
    assert M.box_iou(pred, gt, bound=(100, 100), clip_mode="exact")[0] == pytest.approx(1.0)
    np.testing.assert_allclose(M.clip_boxes([[90.0, 95, 20, 20]], (100, 100)), [[90, 95, 10, 5]])


# ------------------------------------------------------------------------------------------ polygons
def test_polygon_iou_hand_cases():
    diamond = [5, 0, 10, 5, 5, 10, 0, 5]  # area 50 inside the 10x10 box
    assert M.region_iou(diamond, [0, 0, 10, 10]) == pytest.approx(0.5)
    assert M.region_iou([0, 0, 10, 10], diamond) == pytest.approx(0.5)
    # clockwise vs counter-clockwise orientation does not matter
    cw = np.array(diamond, float).reshape(-1, 2)[::-1].reshape(-1)
    assert M.region_iou(cw, [0, 0, 10, 10]) == pytest.approx(0.5)
    # bounded by the image: the part left of x=0 does not count
    assert M.region_iou([-5, 0, 10, 10], [0, 0, 5, 10], bound=(100, 100)) == pytest.approx(1.0)
    assert M.region_iou([-5, 0, 10, 10], [0, 0, 5, 10]) == pytest.approx(0.5)
    # disjoint, fully outside the image, NaN
    assert M.region_iou([0, 0, 5, 5], [20, 20, 5, 5]) == 0.0
    assert M.region_iou([-50, -50, 10, 10], [-50, -50, 10, 10], bound=(100, 100)) == 0.0
    assert np.isnan(M.region_iou([np.nan] * 4, [0, 0, 1, 1]))
    # a square rotated by 45 deg around the centre of another: octagon intersection
    s = 10 / np.sqrt(2)
    rot = [5, 5 - s, 5 + s, 5, 5, 5 + s, 5 - s, 5]
    # area each 100; the intersection is the square minus 4 corner triangles of legs (10 - 10/sqrt2)... :
    leg = 5 + s - 10  # how far each rotated vertex sticks out of the square
    inter = 100 - 4 * leg * leg
    assert M.region_iou(rot, [0, 0, 10, 10]) == pytest.approx(inter / (200 - inter))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-20, 120, allow_nan=False), min_size=4, max_size=4),
       st.lists(st.floats(-20, 120, allow_nan=False), min_size=4, max_size=4))
def test_region_iou_of_boxes_equals_box_iou(a, b):
    a = [a[0], a[1], abs(a[2]) + 0.5, abs(a[3]) + 0.5]
    b = [b[0], b[1], abs(b[2]) + 0.5, abs(b[3]) + 0.5]
    poly_a = [a[0], a[1], a[0] + a[2], a[1], a[0] + a[2], a[1] + a[3], a[0], a[1] + a[3]]
    ref = M.box_iou([a], [b], bound=(100, 100))[0]
    assert M.region_iou(a, b, (100, 100)) == pytest.approx(ref, abs=1e-9)
    assert M.region_iou(poly_a, b, (100, 100)) == pytest.approx(ref, abs=1e-9)


# ------------------------------------------------------------------------------------------ VOT
def test_vot_accuracy_burnin_and_labels():
    flags = [1, -1, -1, 2, 0, 0, 0, 0, 1, -1, -1]
    ov = [0, 0.9, 0.5, 0, 0, 0, 0, 0, 0, 0.7, 0.3]
    # burn-in 2: frames 0,1 and 8,9 excluded; 3 failure; 4-7 skipped -> frames 2 and 10: (0.5 + 0.3)/2
    assert M.vot_accuracy(ov, flags, burnin=2) == (pytest.approx(0.4), 2)
    # burn-in 1 (only the init frame): frames 1, 2, 9, 10
    assert M.vot_accuracy(ov, flags, burnin=1)[0] == pytest.approx((0.9 + 0.5 + 0.7 + 0.3) / 4)
    # burn-in 10 removes everything -> (0, 0) as vot-toolkit
    assert M.vot_accuracy(ov, flags, burnin=10) == (0.0, 0)
    assert M.vot_failures(flags) == 1


def test_eao_hand_case_and_index_base():
    flags = [1, -1, -1, 2, 0, 0, 0, 0, 1, -1]
    ov = [0, 1.0, 0.5, 0, 0, 0, 0, 0, 0, 1.0]
    segs = M.vot_segments(ov, flags)
    # init 0 .. failure 3 (excluded) -> [0, 1, .5] failed ; init 8 .. end -> [0, 1] successful
    assert [(list(s), ok) for s, ok in segs] == [([0, 1.0, 0.5], False), ([0, 1.0], True)]
    curve = M.eao_curve(segs)
    # length 1: both segments, mean(o[1:2]) = 1 each -> 1 ; length 2: only the failed one counts,
    # mean(1, .5) = .75 ; index 0: the init overlaps -> 0
    np.testing.assert_allclose(curve, [0.0, 1.0, 0.75])
    assert M.eao_score(curve, 1, 2) == pytest.approx(0.875)  # vot-toolkit: curve[1:3]
    assert M.eao_score(curve, 1, 2, index_base="pysot") == pytest.approx(0.5)  # pysot: curve[0:2]
    # a failed segment is zero-padded: with a longer successful segment, the failed one counts as 0 there
    segs2 = [(np.array([0, 1.0]), False), (np.array([0, 1.0, 1.0, 1.0]), True)]
    # L=3: failed mean(1,0,0)=1/3, successful 1 -> (1/3 + 1)/2
    assert M.eao_curve(segs2)[3] == pytest.approx((1 / 3 + 1) / 2)
    # a run that never fails is one successful segment
    assert [ok for _, ok in M.vot_segments([0, 1, 1], [1, -1, -1])] == [True]
    # failure close to the end without re-init: no trailing segment
    assert len(M.vot_segments([0, 1, 0, 0], [1, -1, 2, 0])) == 1


def test_vot_summary_robustness_numbers():
    run_a = {"overlaps": np.r_[0, np.full(99, 0.5)], "flags": np.r_[1, np.full(99, -1)]}
    flags_b = np.r_[1, np.full(49, -1), 2, np.zeros(4), 1, np.full(44, -1)]
    run_b = {"overlaps": np.where(flags_b == -1, 0.8, 0.0), "flags": flags_b}
    s = M.vot_summary({"a": [run_a], "b": [run_b, run_a]}, eao_interval=(1, 10))
    # seq b: failures mean over 2 runs = 0.5; lengths 100 and 100 -> length-weighted F = 0.25
    assert s["per_sequence"]["b"]["failures"] == 0.5
    assert s["failures"] == pytest.approx(0.25)
    assert s["ar_robustness"] == pytest.approx(np.exp(-30 * 0.25 / 100))
    assert s["failures_total"] == 0.5 and s["failures_per_100_frames"] == pytest.approx(100 * 0.5 / 200)
    # accuracy: a = 0.5 (after burn-in); b = mean(run_b 0.8, run_a 0.5) = 0.65 -> (0.5 + 0.65) / 2
    assert s["accuracy"] == pytest.approx((0.5 + 0.65) / 2)
    assert s["eao"] > 0 and s["eao_interval"] == [1, 10]
    assert M.EAO_INTERVALS["vot2016"] == (108, 371) and M.EAO_INTERVALS["vot2019"] == (46, 291)
    assert M.EAO_INTERVALS["vot2017"] == M.EAO_INTERVALS["vot2018"] == (100, 356)


def test_vot_tag_breakdown():
    flags = np.r_[1, np.full(19, -1)]
    ov = np.r_[0, np.full(19, 0.6)]
    ov[15:] = 0.2
    tag = np.zeros(20, bool)
    tag[15:] = True
    out = M.vot_tag_breakdown({"s": [{"overlaps": ov, "flags": flags}]}, {"s": {"occ": tag, "none": ~tag}})
    assert out["occ"]["accuracy"] == pytest.approx(0.2) and out["occ"]["frames"] == 5
    assert out["none"]["accuracy"] == pytest.approx(0.6)  # frames 10..14 (after burn-in)


def test_vot_overlaps_specials_are_zero():
    gt = np.array([[0, 0, 10, 10]] * 3, float)
    ov = M.vot_overlaps([None, np.array([0, 0, 10, 10.0]), None], [1, -1, 2], gt, (100, 100))
    np.testing.assert_allclose(ov, [0, 1, 0])


# ------------------------------------------------------------------------------------------ fps
def test_fps_conventions():
    t = [0.1, 0.2, 0.0, np.nan]
    assert M.fps(t) == pytest.approx((10 + 5) / 2)  # got10k mean(1/t) over positive times
    assert M.fps(t, "frames_over_time") == pytest.approx(2 / 0.3)
    assert np.isnan(M.fps([0.0]))


def test_vot_overlaps_vectorised_path_equals_polygon_path():
    rng = np.random.default_rng(0)
    n = 400
    gt = np.c_[rng.uniform(-20, 300, (n, 2)), rng.uniform(5, 60, (n, 2))]
    gt[5] = np.nan
    reg = [gt[i] + rng.normal(0, 5, 4) for i in range(n)]
    reg[7] = np.array([np.nan] * 4)
    reg[8] = np.array([10.0, 10.0, -3.0, 5.0])  # negative width: empty
    flags = np.where(rng.random(n) < 0.8, -1, 0)
    flags[[7, 8]] = -1
    fast = M.vot_overlaps(reg, flags, gt, (320, 240))  # N x 4 boxes: vectorised
    slow = M.vot_overlaps(reg, flags, list(gt), (320, 240))  # per-frame polygon path
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    assert np.isnan(fast[5]) and fast[7] == 0.0 and fast[8] == 0.0

"""Cross-checks: gradtrack's scores on synthetic result files vs the reference toolkits on the SAME files.

* OTB / UAV123 success AUC, success rate, precision, fps: ``got10k`` (PyPI 0.1.3) ``ExperimentOTB.report`` and
  ``ExperimentUAV123.report`` (the real report code reads our result folder; only its dataset is faked and
  its plotting disabled).
* GOT-10k AO, SR0.5, SR0.75 (= the toolkit's 101-bin success curve at 0.75), fps:
  ``ExperimentGOT10k.report`` (subset ``val``) on a fake GOT-10k dataset with cover labels.
* VOT accuracy, failures, AR robustness, EAO: ``vot-toolkit`` (PyPI 0.9.0) ``vot.analysis.supervised``
  (``AccuracyRobustness``, ``AverageAccuracyRobustness``, ``EAOCurve``, ``EAOScore``) on trajectories read by
  ``vot.region.io.read_trajectory`` from our VOT result files.
* LaSOT normalised precision: got10k 0.1.3 (the only PyPI release) has no LaSOT experiment and no
  normalised-error function, so that cross-check is skipped unless a got10k with ``ExperimentLaSOT`` is
  installed; golden hand-computed values are in test_metrics.py.

Documented, deliberate differences are asserted as such (NaN predictions under GOT-10k; vot-toolkit's
rasterised overlaps for non-integer / rotated regions).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from gradtrack.data.sequence import Sequence, SequenceDataset, InMemoryDataset
from gradtrack.evaluation import metrics as M
from gradtrack.evaluation import results as R
from gradtrack.evaluation.protocols import run_vot_supervised
from gradtrack.evaluation.scoring import score_got10k, score_ope, score_vot
from gradtrack.trackers.base import Tracker, TrackResult


@pytest.fixture
def got10k_toolkit():
    return pytest.importorskip("got10k", reason="pip install -r requirements-test.txt (got10k toolkit)")


# ------------------------------------------------------------------------------------------ fixtures
class FakeFrames:
    """A frame source without pixels: evaluation never decodes frames."""

    def __init__(self, n, size=(320, 240)):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        img = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        img[0, 0, 0], img[0, 0, 1] = i % 256, i // 256  # the frame index, for the test trackers
        return img




def random_walk(rng, n, size, integer=False):
    w_img, h_img = size
    wh = rng.uniform(20, 60, 2)
    xy = rng.uniform([0, 0], [w_img - wh[0], h_img - wh[1]])
    boxes = []
    for _ in range(n):
        xy = xy + rng.normal(0, 3, 2)
        wh = np.clip(wh * np.exp(rng.normal(0, 0.03, 2)), 8, 80)
        xy = np.clip(xy, [-10, -10], [w_img - wh[0] + 10, h_img - wh[1] + 10])
        boxes.append(np.r_[xy, wh])
    b = np.asarray(boxes)
    return np.round(b) if integer else b


def noisy_predictions(rng, gt, size, nan_rows=True):
    """GT + noise, with lost frames (far away), boxes leaving the image, some exact hits, NaN rows."""
    n = len(gt)
    g = np.where(np.isnan(gt), np.nanmean(gt, 0), gt)
    pred = g + rng.normal(0, 1, (n, 4)) * np.r_[4, 4, 3, 3]
    pred[:, 2:] = np.abs(pred[:, 2:]) + 1
    lost = rng.random(n) < 0.15
    pred[lost, :2] = rng.uniform(-50, max(size) + 50, (lost.sum(), 2))
    exact = rng.random(n) < 0.1
    pred[exact] = g[exact]
    if nan_rows:
        pred[rng.random(n) < 0.05] = np.nan
    pred[0] = g[0]
    return pred


def make_ope_setup(tmp_path, rng, with_nan_gt, name="gtrk"):
    size = (320, 240)
    seqs = []
    for k in range(5):
        n = int(rng.integers(40, 90))
        gt = random_walk(rng, n, size)
        if with_nan_gt:
            absent = rng.random(n) < 0.12
            absent[0] = False
            gt[absent] = np.nan
        if k == 4 and with_nan_gt:  # a sequence that is mostly absent
            gt[1:-3] = np.nan
        seqs.append(Sequence(f"seq{k}", FakeFrames(n, size), gt, dataset="synthetic",
                             attributes=["IV", "SV"] if k % 2 else ["OCC"]))
        pred = noisy_predictions(rng, gt, size)
        R.write_boxes(R.ope_result_path(tmp_path, name, f"seq{k}"), pred)
        times = rng.uniform(0.005, 0.05, n)
        times[rng.random(n) < 0.05] = 0.0  # zero times are dropped by both
        R.write_times(R.ope_time_path(tmp_path, name, f"seq{k}"), times)
    return InMemoryDataset(seqs)


class Got10kStyleDataset:
    """What got10k's experiments iterate over: ``(img_files, anno[, meta])`` plus ``seq_names``."""

    def __init__(self, seqs, with_meta=False):
        self.seqs = seqs
        self.seq_names = [s.name for s in seqs]
        self.return_meta = with_meta

    def __len__(self):
        return len(self.seqs)

    def _item(self, s):
        files = [f"{s.name}/{i:08d}.jpg" for i in range(len(s))]
        if self.return_meta:
            meta = {"cover": s.cover, "resolution": str(tuple(s.image_size))}
            return files, s.boxes.copy(), meta
        return files, s.boxes.copy()

    def __getitem__(self, key):
        if isinstance(key, str):
            key = self.seq_names.index(key)
        return self._item(self.seqs[key])

    def __iter__(self):
        for s in self.seqs:
            yield self._item(s)


def _experiment(cls, tmp_path, dataset, **attrs):
    exp = cls.__new__(cls)  # the constructor would look for (and download) the real dataset
    exp.dataset = dataset
    exp.result_dir = str(tmp_path)
    exp.report_dir = str(tmp_path / "got10k_reports")
    exp.plot_curves = lambda *a, **k: None
    for k, v in attrs.items():
        setattr(exp, k, v)
    return exp


# ------------------------------------------------------------------------------------------ OTB / UAV123
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_otb_success_precision_match_got10k(got10k_toolkit, tmp_path, seed):
    from got10k.experiments import ExperimentOTB

    rng = np.random.default_rng(seed)
    ds = make_ope_setup(tmp_path, rng, with_nan_gt=False)
    exp = _experiment(ExperimentOTB, tmp_path, Got10kStyleDataset(list(ds)), nbins_iou=21, nbins_ce=51)
    ref = exp.report(["gtrk"])["gtrk"]
    ours = score_ope(tmp_path, "gtrk", ds)
    o = ours["overall"]
    assert o["success_auc"] == pytest.approx(ref["overall"]["success_score"], abs=1e-12)
    assert o["precision"] == pytest.approx(ref["overall"]["precision_score"], abs=1e-12)
    assert o["success_rate"] == pytest.approx(ref["overall"]["success_rate"], abs=1e-12)
    np.testing.assert_allclose(o["success_curve"], ref["overall"]["success_curve"], atol=1e-12)
    np.testing.assert_allclose(o["precision_curve"], ref["overall"]["precision_curve"], atol=1e-12)
    assert ours["fps"] == pytest.approx(ref["overall"]["speed_fps"], rel=1e-12)
    for name, s in ref["seq_wise"].items():
        assert ours["per_sequence"][name]["success_auc"] == pytest.approx(s["success_score"], abs=1e-12)
        assert ours["per_sequence"][name]["precision"] == pytest.approx(s["precision_score"], abs=1e-12)
        assert ours["per_sequence"][name]["fps"] == pytest.approx(s["speed_fps"], rel=1e-12)
    # sanity: the synthetic predictions are neither perfect nor useless
    assert 0.2 < o["success_auc"] < 0.9


@pytest.mark.parametrize("seed", [3, 4])
def test_uav_invalid_frames_excluded_match_got10k(got10k_toolkit, tmp_path, seed):
    """UAV123 / LaSOT style: NaN-GT frames leave numerator and denominator (got10k ExperimentUAV123)."""
    from got10k.experiments import ExperimentUAV123

    rng = np.random.default_rng(seed)
    ds = make_ope_setup(tmp_path, rng, with_nan_gt=True)
    exp = _experiment(ExperimentUAV123, tmp_path, Got10kStyleDataset(list(ds)), nbins_iou=21, nbins_ce=51)
    ref = exp.report(["gtrk"])["gtrk"]
    ours = score_ope(tmp_path, "gtrk", ds, invalid_frames="exclude")
    assert ours["overall"]["success_auc"] == pytest.approx(ref["overall"]["success_score"], abs=1e-12)
    assert ours["overall"]["precision"] == pytest.approx(ref["overall"]["precision_score"], abs=1e-12)
    np.testing.assert_allclose(ours["overall"]["success_curve"], ref["overall"]["success_curve"], atol=1e-12)
    # the other convention really is different on these files (pysot-style denominators)
    other = score_ope(tmp_path, "gtrk", ds, invalid_frames="count_as_failure")
    assert other["overall"]["success_auc"] < ours["overall"]["success_auc"] - 1e-3


def test_lasot_normalized_precision_match_got10k(got10k_toolkit, tmp_path):
    experiments = pytest.importorskip("got10k.experiments")
    if not hasattr(experiments, "ExperimentLaSOT"):
        pytest.skip("got10k 0.1.3 (PyPI) has no ExperimentLaSOT / normalised precision; golden values in test_metrics")
    from got10k.experiments import ExperimentLaSOT  # pragma: no cover - only with a newer got10k

    rng = np.random.default_rng(5)  # pragma: no cover
    ds = make_ope_setup(tmp_path, rng, with_nan_gt=True)  # pragma: no cover
    exp = _experiment(ExperimentLaSOT, tmp_path, Got10kStyleDataset(list(ds)), nbins_iou=21, nbins_ce=51)
    ref = exp.report(["gtrk"])["gtrk"]["overall"]  # pragma: no cover
    ours = score_ope(tmp_path, "gtrk", ds)["overall"]  # pragma: no cover
    assert ours["norm_precision"] == pytest.approx(ref["normalized_precision_score"], abs=1e-9)


# ------------------------------------------------------------------------------------------ GOT-10k
def make_got10k_setup(tmp_path, rng, name="gtrk", reps=3, nan_pred=False):
    size = (320, 240)
    seqs = []
    for k in range(4):
        n = int(rng.integers(30, 70))
        gt = random_walk(rng, n, size)
        cover = rng.integers(0, 9, n)
        cover[rng.random(n) < 0.3] = 0
        cover[0] = 8
        seqs.append(Sequence(f"GOT-10k_Val_{k:06d}", FakeFrames(n, size), gt, dataset="got10k", cover=cover))
        times = []
        for r in range(1, reps + 1):
            pred = noisy_predictions(rng, gt, size, nan_rows=nan_pred)
            R.write_boxes(R.got10k_result_path(tmp_path, name, seqs[-1].name, r), pred)
            times.append(rng.uniform(0.01, 0.1, n))
        R.write_times(R.got10k_time_path(tmp_path, name, seqs[-1].name), np.stack(times, 1))
    return InMemoryDataset(seqs)


@pytest.mark.parametrize("seed", [0, 1])
def test_got10k_ao_sr_match_got10k(got10k_toolkit, tmp_path, seed):
    from got10k.experiments import ExperimentGOT10k

    rng = np.random.default_rng(seed)
    ds = make_got10k_setup(tmp_path, rng)
    exp = _experiment(ExperimentGOT10k, tmp_path, Got10kStyleDataset(list(ds), with_meta=True), subset="val",
                      nbins_iou=101, repetitions=3)
    ref = exp.report(["gtrk"])["gtrk"]
    ours = score_got10k(tmp_path, "gtrk", ds)
    o = ours["overall"]
    assert o["ao"] == pytest.approx(ref["overall"]["ao"], abs=1e-12)
    assert o["sr50"] == pytest.approx(ref["overall"]["sr"], abs=1e-12)
    # the toolkit does not report SR0.75; its 101-bin success curve at index 75 is mean(IoU > 0.75)
    assert M.GOT10K_THRESHOLDS[75] == 0.75
    assert o["sr75"] == pytest.approx(ref["overall"]["succ_curve"][75], abs=1e-12)
    np.testing.assert_allclose(o["success_curve"], ref["overall"]["succ_curve"], atol=1e-12)
    assert ours["fps"] == pytest.approx(ref["overall"]["speed_fps"], rel=1e-12)
    for name, s in ref["seq_wise"].items():
        assert ours["per_sequence"][name]["ao"] == pytest.approx(s["ao"], abs=1e-12)
        assert ours["per_sequence"][name]["sr50"] == pytest.approx(s["sr"], abs=1e-12)
    # the clip quirk matters on these files: exact clipping gives a different AO
    exact = score_got10k(tmp_path, "gtrk", ds, clip_mode="exact")
    assert exact["overall"]["ao"] != pytest.approx(o["ao"], abs=1e-9)


def test_got10k_nan_prediction_documented_difference(got10k_toolkit, tmp_path):
    """Deliberate difference: a NaN prediction row makes the toolkit's AO NaN; gradtrack counts IoU 0."""
    from got10k.experiments import ExperimentGOT10k

    rng = np.random.default_rng(7)
    ds = make_got10k_setup(tmp_path, rng, reps=1)
    seq = ds[ds.names[0]]
    path = R.got10k_result_path(tmp_path, "gtrk", seq.name, 1)
    pred = R.read_boxes(path)
    k = int(np.flatnonzero(seq.cover[1:] > 0)[0]) + 1
    pred[k] = np.nan
    R.write_boxes(path, pred)
    exp = _experiment(ExperimentGOT10k, tmp_path, Got10kStyleDataset(list(ds), with_meta=True), subset="val",
                      nbins_iou=101, repetitions=1)
    with np.errstate(invalid="ignore"):
        ref = exp.report(["gtrk"])["gtrk"]
    assert np.isnan(ref["overall"]["ao"])
    ours = score_got10k(tmp_path, "gtrk", ds)["overall"]
    pred_zero = pred.copy()
    pred_zero[k] = [-1e6, -1e6, 1, 1]  # a box certain to have IoU 0 (after clipping it is empty)
    R.write_boxes(path, pred_zero)
    ref2 = exp.report(["gtrk"])["gtrk"]
    assert ours["ao"] == pytest.approx(ref2["overall"]["ao"], abs=1e-12)


def test_polygon_iou_matches_got10k_shapely(got10k_toolkit):
    """Our pure-NumPy polygon clipping vs got10k ``poly_iou`` (shapely), bounded by the image."""
    from got10k.utils.metrics import poly_iou

    rng = np.random.default_rng(11)
    n = 300
    c = rng.uniform(-20, 340, (n, 2))
    ang = rng.uniform(0, np.pi, n)
    wh = rng.uniform(5, 80, (n, 2))
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    polys = []
    for i in range(n):
        rot = np.array([[np.cos(ang[i]), -np.sin(ang[i])], [np.sin(ang[i]), np.cos(ang[i])]])
        polys.append((c[i] + (corners * wh[i]) @ rot.T).reshape(-1))
    polys = np.asarray(polys)
    boxes = np.c_[c + rng.normal(0, 15, (n, 2)) - 20, rng.uniform(5, 60, (n, 2))]
    bound = (320, 240)
    ref = poly_iou(polys.copy(), np.c_[boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2], boxes[:, 1],
                                       boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3], boxes[:, 0],
                                       boxes[:, 1] + boxes[:, 3]], bound=bound)
    ours = np.array([M.region_iou(p, b, bound) for p, b in zip(polys, boxes)])
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    assert (ref > 0).sum() > 30  # the case exercises real overlaps
    ref_pp = poly_iou(polys[:-1].copy(), polys[1:].copy(), bound=bound)
    ours_pp = np.array([M.region_iou(a, b, bound) for a, b in zip(polys[:-1], polys[1:])])
    np.testing.assert_allclose(ours_pp, ref_pp, atol=1e-9)


# ------------------------------------------------------------------------------------------ VOT
def _vot():
    pytest.importorskip("vot", reason="pip install -r requirements-test.txt (vot-toolkit, --no-deps)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from vot.analysis import supervised
        from vot.region.io import read_trajectory
        from vot.region.shapes import Polygon, Rectangle
    return supervised, read_trajectory, Rectangle, Polygon


class JitterTracker(Tracker):
    """Reports the GT box with integer jitter, and every so often a box far away (a failure)."""

    is_deterministic = False

    def __init__(self, gt, seed, lose_prob=0.04, integer=True):
        super().__init__()
        self.gt, self.rng, self.lose_prob, self.integer = gt, np.random.default_rng(seed), lose_prob, integer

    def _init(self, image, box):
        assert np.array_equal(box, self.gt[int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])])

    def _update(self, image):
        g = self.gt[int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])]
        if self.rng.random() < self.lose_prob:
            b = np.array([g[0] + 200.0, g[1] + 150.0, g[2], g[3]])
        else:
            b = g + self.rng.normal(0, 2.5, 4)
            b[2:] = np.maximum(b[2:], 3)
        if self.integer:
            b = np.round(b)
        return TrackResult(box=b, score=1.0)


class FakeVotSequence:
    def __init__(self, regions, rectangles, size, n):
        self._gt = [rectangles(*r) for r in regions]
        self.size = size
        self.n = n

    def groundtruth(self):
        return self._gt

    def __len__(self):
        return self.n


class FakeTrajectory:
    def __init__(self, regions):
        self._regions = regions

    def regions(self):
        return self._regions


class FakeExperiment:
    def __init__(self, trajectories):
        self.trajectories = trajectories

    def gather(self, tracker, sequence):
        return self.trajectories[sequence]


def make_vot_setup(tmp_path, seed, reps=3, integer=True):
    size = (320, 240)
    rng = np.random.default_rng(seed)
    seqs = []
    for k in range(4):
        n = int(rng.integers(150, 220))
        gt = random_walk(rng, n, size, integer=True)
        seq = Sequence(f"vot{k}", FakeFrames(n, size), gt, dataset="vot",
                       tags={"occlusion": rng.random(n) < 0.3, "camera_motion": rng.random(n) < 0.5})
        seqs.append(seq)
        times = []
        for r in range(1, reps + 1):
            trk = JitterTracker(gt, 100 * k + r, lose_prob=(0.005, 0.02, 0.04, 0.08)[k], integer=integer)
            regions, flags, t = run_vot_supervised(trk, seq)
            R.write_vot_run(R.vot_result_path(tmp_path, "gtrk", seq.name, r), regions, flags)
            times.append(t)
        R.write_times(R.vot_time_path(tmp_path, "gtrk", seq.name), np.stack(times, 1))
    return InMemoryDataset(seqs)


@pytest.mark.parametrize("seed", [0, 1])
def test_vot_accuracy_robustness_eao_match_vot_toolkit(tmp_path, seed):
    supervised, read_trajectory, Rectangle, _ = _vot()
    from vot.utilities.data import Grid

    ds = make_vot_setup(tmp_path, seed)
    # ---- vot-toolkit on our files
    trajs, vseqs = {}, []
    for seq in ds:
        vs = FakeVotSequence(seq.boxes, Rectangle, seq.image_size, len(seq))
        files = sorted(R.vot_result_path(tmp_path, "gtrk", seq.name, 1).parent.glob(f"{seq.name}_0*.txt"))
        trajs[vs] = [FakeTrajectory(read_trajectory(str(f))) for f in files]
        vseqs.append(vs)
    exp = FakeExperiment(trajs)
    ar = supervised.AccuracyRobustness()
    per_seq = [ar.subcompute(exp, None, vs, []) for vs in vseqs]
    agg = supervised.AverageAccuracyRobustness().aggregate(None, vseqs, per_seq)
    curve = supervised.EAOCurve().subcompute(exp, None, vseqs, [])[0]
    grid = Grid(1, 1)
    grid[0, 0] = (curve,)
    lo, hi = 20, 150  # the VOT stacks' intervals need longer sequences than a fast test can afford
    eao_ref = supervised.EAOScore(low=lo, high=hi).compute(exp, [None], vseqs, [grid])[0, 0][0]
    # ---- gradtrack
    ours = score_vot(tmp_path, "gtrk", ds, eao_interval=(lo, hi))
    o = ours["overall"]
    assert o["accuracy"] == pytest.approx(agg[0], abs=1e-6)
    assert o["failures"] == pytest.approx(agg[1], abs=1e-9)
    assert o["ar_robustness"] == pytest.approx(agg[2][0], abs=1e-9)
    for vs, name, ref in zip(vseqs, ds.names, per_seq):
        assert ours["per_sequence"][name]["accuracy"] == pytest.approx(ref[0], abs=1e-6)
        assert ours["per_sequence"][name]["failures"] == pytest.approx(ref[1], abs=1e-12)
    assert len(o["eao_curve"]) == len(curve) > hi  # the whole EAO window lies on the curve
    np.testing.assert_allclose(o["eao_curve"], curve, atol=1e-6)  # the toolkit works in float32
    assert o["eao"] == pytest.approx(eao_ref, abs=1e-6)
    assert o["failures_total"] > 0 and 0.3 < o["accuracy"] < 1.0  # failures and re-inits really happened
    # index-base switch: pysot's window is one lower; for a curve this long the two are close but differ
    pysot = M.eao_score(np.asarray(o["eao_curve"]), lo, hi, index_base="pysot")
    assert pysot == pytest.approx(float(np.mean(np.asarray(o["eao_curve"])[lo - 1 : hi])), abs=1e-12)


def test_vot_overlaps_raster_difference_documented(tmp_path):
    """Deliberate difference: vot-toolkit rasterises regions on the pixel grid (rounding coordinates);
    gradtrack computes exact continuous overlaps.  Identical for integer boxes (the test above); for
    rotated polygons and sub-pixel boxes the two differ by a pixel's worth of area."""
    supervised, read_trajectory, Rectangle, Polygon = _vot()
    from vot.region import calculate_overlaps

    rng = np.random.default_rng(3)
    n = 200
    size = (320, 240)
    gt_boxes = random_walk(rng, n, size)
    pred = gt_boxes + rng.normal(0, 3, (n, 4))
    ours = np.array([M.region_iou(p, g, size) for p, g in zip(pred, gt_boxes)])
    ref = np.array(calculate_overlaps([Rectangle(*p) for p in pred], [Rectangle(*g) for g in gt_boxes], size))
    diff = np.abs(ours - ref)
    assert diff.max() > 1e-3  # they do differ...
    assert diff.mean() < 0.05  # ...by a pixel's worth of area on 8..80 px boxes
    # integer boxes: identical
    gi, pi = np.round(gt_boxes), np.round(pred)
    ours_i = np.array([M.region_iou(p, g, size) for p, g in zip(pi, gi)])
    ref_i = np.array(calculate_overlaps([Rectangle(*p) for p in pi], [Rectangle(*g) for g in gi], size))
    np.testing.assert_allclose(ours_i, ref_i, atol=1e-12)


def test_vot_eao_curve_matches_toolkit_on_float_overlaps():
    """The EAO aggregation itself (compute_eao_curve) on arbitrary float overlaps, failed and successful
    segments of different lengths."""
    supervised, *_ = _vot()
    rng = np.random.default_rng(9)
    segs = []
    for _ in range(25):
        ln = int(rng.integers(2, 60))
        o = rng.random(ln)
        o[0] = 0.0
        segs.append((o, bool(rng.random() < 0.5)))
    ref = supervised.compute_eao_curve([s for s, _ in segs], [1] * len(segs), [ok for _, ok in segs])
    ours = M.eao_curve(segs)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_vot_result_files_parse_with_vot_toolkit(tmp_path):
    """Our VOT result format is what vot-toolkit reads: labels 1/2/0 become its special regions."""
    supervised, read_trajectory, Rectangle, _ = _vot()
    from vot.region import Special

    regions = [None, np.array([1.5, 2.25, 10.0, 20.0]), None, None, None, None, None, None,
               np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])]
    flags = [1, -1, 2, 0, 0, 0, 0, 1, -1]
    p = tmp_path / "x_001.txt"
    R.write_vot_run(p, regions, flags)
    traj = read_trajectory(str(p))
    assert [r.code if isinstance(r, Special) else -1 for r in traj] == [1, -1, 2, 0, 0, 0, 0, 1, -1]
    assert supervised.count_failures(traj)[0] == 1
    back_regions, back_flags = R.read_vot_run(p)
    assert list(back_flags) == flags
    np.testing.assert_array_equal(back_regions[1], regions[1])
    np.testing.assert_array_equal(back_regions[8], regions[8])
    json.dumps(list(map(int, back_flags)))

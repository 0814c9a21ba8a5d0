"""Paired comparison of two result sets (gradtrack.evaluation.compare) and ``gradtrack report --compare``."""
from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from gradtrack.data.sequence import InMemoryDataset, Sequence
from gradtrack.evaluation import results as R
from gradtrack.evaluation.compare import (
    SequenceMismatchError, compare_results, compare_values, markdown_comparison, paired_bootstrap, verdict, win_loss,
)
from gradtrack.evaluation.scoring import score_ope


# ---------------------------------------------------------------------------------------------- statistics
def _slow_bootstrap(diffs, level, n, seed):
    """Reference: one resample at a time, exact sums, the percentile by hand (linear interpolation between
    order statistics, as numpy's default)."""
    rng = np.random.default_rng(seed)
    k = len(diffs)
    means = []
    for _ in range(n):
        idx = rng.integers(0, k, size=k)
        means.append(math.fsum(diffs[i] for i in idx) / k)
    means.sort()

    def pct(q):
        h = (n - 1) * q
        lo = math.floor(h)
        hi = min(lo + 1, n - 1)
        return means[lo] + (h - lo) * (means[hi] - means[lo])

    return pct((1 - level) / 2), pct((1 + level) / 2)


@pytest.mark.parametrize("k,n,level,seed", [(7, 3000, 0.9, 0), (12, 2001, 0.8, 5), (700, 4000, 0.9, 3)])
def test_bootstrap_matches_slow_reference(k, n, level, seed):
    # k=700, n=4000: the fast version draws in several chunks; the stream must not depend on it
    diffs = list(np.random.default_rng(100 + k).normal(0.02, 0.1, k))
    boot = paired_bootstrap(diffs, level=level, n=n, seed=seed)
    lo, hi = _slow_bootstrap(diffs, level, n, seed)
    assert boot["low"] == pytest.approx(lo, rel=1e-12, abs=1e-15)
    assert boot["high"] == pytest.approx(hi, rel=1e-12, abs=1e-15)
    assert boot["mean"] == pytest.approx(math.fsum(diffs) / k, rel=1e-12)
    assert boot["n"] == k and boot["n_resamples"] == n and boot["level"] == level and boot["seed"] == seed


def test_bootstrap_is_seeded_and_close_to_the_normal_interval():
    d = np.random.default_rng(1).normal(0.3, 1.0, 400)
    a, b = paired_bootstrap(d), paired_bootstrap(d)
    assert a == b  # fixed seed 0 by default
    c = paired_bootstrap(d, seed=1)
    assert (c["low"], c["high"]) != (a["low"], a["high"])
    # for a large sample the percentile interval is close to mean +- 1.645 standard errors
    se = d.std() / np.sqrt(len(d))
    assert a["low"] == pytest.approx(d.mean() - 1.6449 * se, abs=0.15 * se)
    assert a["high"] == pytest.approx(d.mean() + 1.6449 * se, abs=0.15 * se)
    wider = paired_bootstrap(d, level=0.99)
    assert wider["low"] < a["low"] < a["high"] < wider["high"]


def test_bootstrap_degenerate_and_invalid_input():
    z = paired_bootstrap(np.zeros(9))
    assert (z["mean"], z["low"], z["high"]) == (0.0, 0.0, 0.0)
    one = paired_bootstrap([0.25])
    assert (one["low"], one["high"]) == (0.25, 0.25)
    for bad in ([], [0.1, float("nan")]):
        with pytest.raises(ValueError):
            paired_bootstrap(bad)
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap([0.1, 0.2], level=1.0)
    with pytest.raises(ValueError, match="n must"):
        paired_bootstrap([0.1, 0.2], n=0)


def test_win_loss_margin_and_raw_counts():
    d = [0.06, 0.05, -0.051, 0.0, -0.2, 0.01]
    c = win_loss(d, margin=0.05)
    assert (c["wins"], c["losses"], c["ties"]) == (1, 2, 3)  # |d| == 0.05 is a tie
    assert (c["positive"], c["negative"], c["zero"]) == (3, 2, 1)
    lower = win_loss(d, margin=0.05, higher_is_better=False)  # e.g. failures: negative differences favour A
    assert (lower["wins"], lower["losses"], lower["ties"]) == (2, 1, 3)
    assert win_loss(d, margin=0.0)["ties"] == 1


def test_verdict_rules():
    assert verdict(0.01, 0.2, n=10) == "A better than B"
    assert verdict(-0.2, -0.01, n=10) == "B better than A"
    assert verdict(0.0, 0.2, n=10) == "not distinguishable"  # touching zero does not exclude it
    assert verdict(-0.1, 0.1, n=10) == "not distinguishable"
    assert verdict(-0.2, -0.01, n=10, higher_is_better=False) == "A better than B"
    assert verdict(0.01, 0.2, n=10, label_a="gradnet", label_b="siamfc") == "gradnet better than siamfc"
    assert verdict(0.01, 0.2, n=4).startswith("too few sequences")


def test_identical_sets_give_zero_and_not_distinguishable():
    vals = {f"s{i}": v for i, v in enumerate(np.linspace(0.2, 0.8, 8))}
    m = compare_values(vals, dict(vals))
    assert m["n"] == 8 and m["mean_a"] == m["mean_b"] == pytest.approx(0.5)
    assert (m["diff"]["mean"], m["diff"]["low"], m["diff"]["high"]) == (0.0, 0.0, 0.0)
    assert m["verdict"] == "not distinguishable"
    assert (m["counts"]["wins"], m["counts"]["losses"], m["counts"]["ties"], m["counts"]["zero"]) == (0, 0, 8, 8)


def test_better_on_every_sequence_excludes_zero():
    rng = np.random.default_rng(2)
    b = {f"s{i}": float(v) for i, v in enumerate(rng.uniform(0.1, 0.8, 10))}
    a = {k: v + 0.1 for k, v in b.items()}
    m = compare_values(a, b)
    assert m["diff"]["mean"] == pytest.approx(0.1) and m["diff"]["low"] > 0.09
    assert m["verdict"] == "A better than B"
    assert m["counts"]["wins"] == 10 and m["counts"]["positive"] == 10
    assert compare_values(b, a)["verdict"] == "B better than A"
    # mixed: +0.1 on half, -0.1 on the other half -> the interval straddles zero
    mixed = {k: v + (0.1 if i % 2 else -0.1) for i, (k, v) in enumerate(b.items())}
    mm = compare_values(mixed, b)
    assert mm["diff"]["low"] < 0 < mm["diff"]["high"] and mm["verdict"] == "not distinguishable"
    assert (mm["counts"]["wins"], mm["counts"]["losses"]) == (5, 5)
    # sorted per-sequence list, best for A first
    diffs = [r["diff"] for r in mm["per_sequence"]]
    assert diffs == sorted(diffs, reverse=True)


def test_undefined_values_are_left_out_and_listed():
    a = {"s0": 0.5, "s1": None, "s2": 0.7, "s3": float("nan")}
    b = {"s0": 0.4, "s1": 0.3, "s2": 0.6, "s3": 0.2}
    m = compare_values(a, b, min_sequences=1)
    assert m["n"] == 2 and m["undefined"] == ["s1", "s3"]
    assert m["mean_a"] == pytest.approx(0.6) and m["diff"]["mean"] == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------- result sets
class NoFrames:
    def __init__(self, n, size=(200, 150)):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.zeros((self.size[1], self.size[0], 3), np.uint8)


def _ope_sets(root, n_seq=8, n=25):
    """A = ground truth with small noise, B = the same boxes shifted 12 px on every frame after the first."""
    rng = np.random.default_rng(0)
    seqs = []
    for k in range(n_seq):
        gt = np.c_[rng.uniform(30, 120, (n, 2)), rng.uniform(20, 40, (n, 2))]
        attrs = ["OCC"] if k < 6 else ["SV"]
        seqs.append(Sequence(f"s{k}", NoFrames(n), gt, attributes=attrs))
        a = gt + rng.normal(0, 1.0, gt.shape)
        b = gt + [12.0, 0, 0, 0]
        R.write_boxes(R.ope_result_path(root, "good", f"s{k}"), a)
        R.write_boxes(R.ope_result_path(root, "shifted", f"s{k}"), b)
    return InMemoryDataset(seqs)


def test_compare_results_ope_means_match_scoring_and_attributes(tmp_path):
    ds = _ope_sets(tmp_path)
    cmp = compare_results(tmp_path / "good", (tmp_path, "shifted"), ds)
    assert cmp["a"] == "good" and cmp["b"] == "shifted" and cmp["protocol"] == "ope"
    assert cmp["sequences"] == [f"s{k}" for k in range(8)]
    sa, sb = score_ope(tmp_path, "good", ds), score_ope(tmp_path, "shifted", ds)
    auc = cmp["metrics"]["success_auc"]
    # mean over sequences == the overall score (curves averaged over sequences)
    assert auc["mean_a"] == pytest.approx(sa["overall"]["success_auc"])
    assert auc["mean_b"] == pytest.approx(sb["overall"]["success_auc"])
    assert cmp["metrics"]["precision"]["mean_a"] == pytest.approx(sa["overall"]["precision"])
    per = {r["sequence"]: r["diff"] for r in auc["per_sequence"]}
    for name in ds.names:
        assert per[name] == pytest.approx(sa["per_sequence"][name]["success_auc"] - sb["per_sequence"][name]["success_auc"])
    assert auc["verdict"] == "good better than shifted" and auc["diff"]["low"] > 0
    assert set(cmp["metrics"]) == {"success_auc", "precision", "norm_precision"}
    assert cmp["group_kind"] == "attribute" and set(cmp["groups"]) == {"OCC", "SV"}
    occ = cmp["groups"]["OCC"]["metrics"]["success_auc"]
    assert occ["n"] == 6 and occ["mean_a"] == pytest.approx(np.mean([sa["per_sequence"][f"s{k}"]["success_auc"]
                                                                       for k in range(6)]))
    assert cmp["groups"]["SV"]["metrics"]["success_auc"]["verdict"].startswith("too few sequences (2")
    md = markdown_comparison(cmp)
    assert "## Per attribute: success AUC" in md and "## Per sequence" in md
    row = next(line for line in md.splitlines() if line.startswith("| success AUC |"))
    assert f"| {auc['mean_a']:.3f} | {auc['mean_b']:.3f} |" in row and "good better than shifted" in row


def test_compare_results_mismatch_and_intersect(tmp_path):
    ds = _ope_sets(tmp_path)
    R.ope_result_path(tmp_path, "shifted", "s3").unlink()
    with pytest.raises(SequenceMismatchError, match=r"only good has results for 1 sequence\(s\): s3") as exc:
        compare_results(tmp_path / "good", tmp_path / "shifted", ds)
    assert exc.value.only_a == ["s3"] and exc.value.only_b == []
    cmp = compare_results(tmp_path / "good", tmp_path / "shifted", ds, intersect=True)
    assert len(cmp["sequences"]) == 7 and "s3" not in cmp["sequences"] and cmp["only_a"] == ["s3"]
    assert cmp["metrics"]["success_auc"]["n"] == 7
    assert "--intersect: 7 common sequence(s)" in markdown_comparison(cmp)
    with pytest.raises(SequenceMismatchError, match="s3"):
        compare_results(tmp_path / "good", tmp_path / "shifted", ds, sequences=["s2", "s3"])


def test_compare_results_vot_tags_and_lower_is_better(tmp_path):
    n = 30
    seqs = []
    for k in range(5):
        gt = np.tile([[10.0 + k, 10.0, 30.0, 30.0]], (n, 1))
        occ = np.zeros(n, bool)
        occ[15:25] = True
        seqs.append(Sequence(f"v{k}", NoFrames(n), gt, tags={"occlusion": occ}))
        flags = np.r_[1, np.full(n - 1, -1)]
        R.write_vot_run(R.vot_result_path(tmp_path, "exact", f"v{k}"), [None] + list(gt[1:]), flags)
        shifted = gt + [10.0, 0, 0, 0]  # IoU 20*30 / (2*900 - 600) = 0.5
        R.write_vot_run(R.vot_result_path(tmp_path, "half", f"v{k}"), [None] + list(shifted[1:]), flags)
    ds = InMemoryDataset(seqs)
    cmp = compare_results(tmp_path / "exact", tmp_path / "half", ds)
    acc = cmp["metrics"]["accuracy"]
    assert acc["mean_a"] == pytest.approx(1.0) and acc["mean_b"] == pytest.approx(0.5)
    assert acc["diff"]["low"] == pytest.approx(0.5) and acc["verdict"] == "exact better than half"
    fails = cmp["metrics"]["failures"]
    assert fails["higher_is_better"] is False and fails["verdict"] == "not distinguishable"  # no failures at all
    assert cmp["group_kind"] == "tag"
    tag = cmp["groups"]["occlusion"]["metrics"]["accuracy"]
    assert tag["n"] == 5 and tag["mean_b"] == pytest.approx(0.5)
    assert "## Per tag: accuracy" in markdown_comparison(cmp)


def test_compare_results_got10k_ao_per_sequence(tmp_path):
    n = 21
    seqs = []
    for k in range(6):
        gt = np.tile([[10.0, 10.0 + k, 30.0, 30.0]], (n, 1))
        seqs.append(Sequence(f"g{k}", NoFrames(n), gt, cover=np.full(n, 8)))
        R.write_boxes(R.got10k_result_path(tmp_path, "exact", f"g{k}"), gt)
        pred = gt.copy()
        pred[1 + k:] += [15.0, 0, 0, 0]  # IoU 1/3 from frame 1 + k on: the later, the better
        R.write_boxes(R.got10k_result_path(tmp_path, "late", f"g{k}"), pred)
    cmp = compare_results(tmp_path / "exact", tmp_path / "late", InMemoryDataset(seqs))
    ao = cmp["metrics"]["ao"]
    expected = [(k * 1.0 + (20 - k) / 3) / 20 for k in range(6)]  # frames 1..20
    assert [r["b"] for r in sorted(ao["per_sequence"], key=lambda r: r["sequence"])] == pytest.approx(expected)
    assert ao["mean_a"] == pytest.approx(1.0) and ao["mean_b"] == pytest.approx(np.mean(expected))
    assert ao["verdict"] == "exact better than late" and cmp["groups"] == {}
    assert set(cmp["metrics"]) == {"ao", "sr50", "sr75"}


# ---------------------------------------------------------------------------------------------- CLI
class _StaticTracker:
    """Reports the initial box moved by ``offset`` px per frame (deterministic, no frames needed)."""

    def __init__(self, offset):
        self.offset = float(offset)

    def init(self, frame, box):
        self.box = np.asarray(box, dtype=np.float64)

    def update(self, frame):
        self.box = self.box + [self.offset, 0, 0, 0]
        return SimpleNamespace(box=self.box.copy())


def _static(offset):
    def factory(weights=None, device=None, **kw):
        return _StaticTracker(offset)

    return factory


def _folder_pool(root, n_seq=6, n=12):
    import cv2

    rng = np.random.default_rng(4)
    for k in range(n_seq):
        folder = root / "pool" / f"c{k}"
        folder.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(folder / f"{i + 1:04d}.png"), np.full((48, 64, 3), 10 * i, np.uint8))
        x0 = rng.uniform(5, 20)
        rows = [f"{x0 + (0.5 + 0.3 * k) * i!r},10,16,16" for i in range(n)]  # moves right, speed by sequence
        (folder / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return root / "pool"


def test_cli_compare_end_to_end(tmp_path, capsys):
    """Two result sets written by the real runner (run_info.json included) on a tiny image-folder pool;
    ``gradtrack report --compare`` reads the dataset from run_info.json, prints Markdown, writes JSON."""
    from gradtrack.cli import main
    from gradtrack.data.readers import build_dataset
    from gradtrack.evaluation.runner import DatasetSpec, TrackerSpec, run_benchmark

    pool = _folder_pool(tmp_path)
    spec = DatasetSpec("folder", str(pool))
    res = tmp_path / "results"
    run_benchmark(TrackerSpec("follow", label="follow", factory=_static(0.8)), spec, res, progress=False,
                  log=lambda m: None)
    run_benchmark(TrackerSpec("still", label="still", factory=_static(0.0)), spec, res, progress=False,
                  log=lambda m: None)
    js = tmp_path / "cmp.json"
    mdf = tmp_path / "cmp.md"
    assert main(["report", "--compare", str(res / "follow"), str(res / "still"), "--json", str(js),
                 "--markdown", str(mdf)]) == 0
    out = capsys.readouterr().out
    data = json.loads(js.read_text())
    ds = build_dataset("folder", pool)
    sa, sb = score_ope(res, "follow", ds), score_ope(res, "still", ds)
    auc = data["metrics"]["success_auc"]
    assert data["sequences"] == ds.names and auc["n"] == 6
    assert auc["mean_a"] == pytest.approx(sa["overall"]["success_auc"])
    assert auc["mean_b"] == pytest.approx(sb["overall"]["success_auc"])
    diffs = [sa["per_sequence"][s]["success_auc"] - sb["per_sequence"][s]["success_auc"] for s in ds.names]
    ref = paired_bootstrap(diffs)
    assert (auc["diff"]["low"], auc["diff"]["high"]) == pytest.approx((ref["low"], ref["high"]))
    # "follow" (0.8 px/frame) is nearer than "still" to targets moving 0.5..2.0 px/frame on every sequence
    assert all(d > 0 for d in diffs) and ref["low"] > 0
    expected = "follow better than still"
    assert auc["verdict"] == expected
    assert f"**Verdict (success AUC): {expected}**" in out
    assert mdf.read_text().strip() == out.strip()
    assert re.search(r"\| success AUC \| 6 \| [0-9.]+ \| [0-9.]+ \| [+-][0-9.]+ \[[+-][0-9.]+, [+-][0-9.]+\] \|", out)
    # the same comparison by tracker names inside RESULTS; the reverse order flips the sign
    assert main(["report", str(res), "--compare", "still", "follow", "--json", str(js)]) == 0
    capsys.readouterr()
    rev = json.loads(js.read_text())["metrics"]["success_auc"]
    assert rev["diff"]["mean"] == pytest.approx(-auc["diff"]["mean"])
    # identical sets: zero difference, zero-width interval, not distinguishable
    assert main(["report", str(res), "--compare", "still", str(res / "still"), "--json", str(js)]) == 0
    capsys.readouterr()
    same = json.loads(js.read_text())["metrics"]["success_auc"]
    assert (same["diff"]["mean"], same["diff"]["low"], same["diff"]["high"]) == (0.0, 0.0, 0.0)
    assert same["verdict"] == "not distinguishable"


def test_cli_compare_mismatch_intersect_and_errors(tmp_path, capsys):
    from gradtrack.cli import main

    ds = _ope_sets(tmp_path / "res")
    assert len(ds) == 8
    pool = tmp_path / "pool"  # the same ground truth as a folder pool, for the CLI
    import cv2

    for seq in ds:
        folder = pool / seq.name
        folder.mkdir(parents=True)
        for i in range(len(seq)):
            cv2.imwrite(str(folder / f"{i + 1:04d}.png"), np.zeros((150, 200, 3), np.uint8))
        R.write_boxes(folder / "groundtruth.txt", seq.boxes)
    pool_args = ["--dataset", "folder", "--root", str(pool)]
    res = tmp_path / "res"
    R.ope_result_path(res, "shifted", "s5").unlink()
    assert main(["report", str(res), "--compare", "good", "shifted", *pool_args]) == 2
    err = capsys.readouterr().err
    assert "only good has results for 1 sequence(s): s5" in err and "--intersect" in err
    js = tmp_path / "i.json"
    assert main(["report", str(res), "--compare", "good", "shifted", "--intersect", "--json", str(js), *pool_args]) == 0
    cap = capsys.readouterr()
    assert "compared on the 7 common sequence(s)" in cap.err and "--intersect: 7 common sequence(s)" in cap.out
    data = json.loads(js.read_text())
    assert data["only_a"] == ["s5"] and len(data["sequences"]) == 7
    assert data["metrics"]["success_auc"]["verdict"] == "good better than shifted"
    assert main(["report", str(res), "--compare", "good", "nope", *pool_args]) == 2
    assert "result set not found: nope" in capsys.readouterr().err
    assert main(["report", str(res), "--compare", "good", "shifted"]) == 2
    assert "no dataset recorded" in capsys.readouterr().err
    assert main(["report", str(res), "--intersect"]) == 2
    assert "go with --compare" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "give the RESULTS folder" in capsys.readouterr().err

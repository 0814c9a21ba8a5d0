"""Reports (plots, Markdown, JSON) and the eval / report CLI, with an end-to-end smoke test on real data."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gradtrack.data.sequence import Sequence, SequenceDataset, InMemoryDataset
from gradtrack.evaluation import results as R
from gradtrack.evaluation.report import build_report
from gradtrack.evaluation.scoring import score_ope


class NoFrames:
    def __init__(self, n, size=(200, 150)):
        self.n, self.size = n, size

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.zeros((self.size[1], self.size[0], 3), np.uint8)




def setup_two_trackers(tmp_path):
    rng = np.random.default_rng(0)
    seqs = []
    for k, attrs in enumerate([["IV", "OCC"], ["OCC"], ["SV"]]):
        n = 30
        gt = np.c_[rng.uniform(20, 100, (n, 2)), rng.uniform(10, 40, (n, 2))]
        seqs.append(Sequence(f"s{k}", NoFrames(n), gt, attributes=attrs))
        R.write_boxes(R.ope_result_path(tmp_path, "perfect", f"s{k}"), gt)
        R.write_times(R.ope_time_path(tmp_path, "perfect", f"s{k}"), np.full(n, 0.01))
        noisy = gt + rng.normal(0, 4, gt.shape)
        R.write_boxes(R.ope_result_path(tmp_path, "noisy", f"s{k}"), noisy)
        R.write_times(R.ope_time_path(tmp_path, "noisy", f"s{k}"), np.full(n, 0.04))
    return InMemoryDataset(seqs)


def test_report_two_trackers(tmp_path):
    res = tmp_path / "results"
    ds = setup_two_trackers(res)
    rep = build_report(res, ds, tmp_path / "rep", title="synthetic")
    names = sorted(p.name for p in rep["files"])
    assert names == ["precision_plot.png", "precision_plot.svg", "report.md", "success_plot.png",
                     "success_plot.svg", "summary.json"]
    for p in rep["files"]:
        assert p.stat().st_size > 500
    assert (tmp_path / "rep" / "success_plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    perfect, noisy = summary["trackers"]["perfect"], summary["trackers"]["noisy"]
    assert perfect["overall"]["success_auc"] == pytest.approx(20 / 21)
    assert perfect["fps"] == pytest.approx(100.0) and noisy["fps"] == pytest.approx(25.0)
    ref = score_ope(res, "noisy", ds)
    assert noisy["overall"]["success_auc"] == pytest.approx(ref["overall"]["success_auc"])
    assert noisy["overall"]["success_auc"] < perfect["overall"]["success_auc"]
    assert set(noisy["per_sequence"]) == {"s0", "s1", "s2"}
    assert noisy["per_attribute"]["OCC"]["n_sequences"] == 2
    # legend carries the score (SVG text kept as text)
    svg = (tmp_path / "rep" / "success_plot.svg").read_text()
    assert "perfect [AUC 0.952]" in svg and f"noisy [AUC {noisy['overall']['success_auc']:.3f}]" in svg
    md = (tmp_path / "rep" / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| perfect |"))
    assert "| 0.952 | 1.000 |" in row and "| 100.0 |" in row
    # sorted by AUC: perfect first
    assert md.index("| perfect |") < md.index("| noisy |")
    assert "### Success AUC per attribute" in md and re.search(r"\| OCC \| [0-9.]+ \| [0-9.]+ \| 2 \|", md)


def test_report_got10k_and_vot(tmp_path):
    res = tmp_path / "results"
    n = 20
    gt = np.tile([[10.0, 10.0, 30.0, 30.0]], (n, 1))
    seq = Sequence("g", NoFrames(n), gt, cover=np.full(n, 8))
    ds = InMemoryDataset([seq])
    pred = gt.copy()
    pred[10:] += [15.0, 0, 0, 0]  # IoU 15*30/(2*900-450) = 1/3 on frames 10..19
    R.write_boxes(R.got10k_result_path(res, "got", "g"), pred)
    flags = np.r_[1, np.full(n - 1, -1)]
    R.write_vot_run(R.vot_result_path(res, "vot", "g"), [None] + [b for b in pred[1:]], flags)
    rep = build_report(res, ds, tmp_path / "rep", eao_interval=(1, 15))
    names = {p.name for p in rep["files"]}
    assert {"got10k_success_plot.svg", "eao_curve.png", "report.md", "summary.json"} <= names
    got = rep["scores"]["got"]["overall"]
    assert got["ao"] == pytest.approx((9 * 1.0 + 10 / 3) / 19)  # frames 1..19
    vot = rep["scores"]["vot"]["overall"]
    assert vot["accuracy"] == pytest.approx(1 / 3)  # burn-in 10 leaves frames 10..19, all at IoU 1/3
    assert vot["failures"] == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## GOT-10k" in md and "## VOT" in md


def test_cli_errors(tmp_path, capsys):
    from gradtrack.cli import main

    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "results folder not found" in capsys.readouterr().err
    (tmp_path / "r" / "t").mkdir(parents=True)
    assert main(["report", str(tmp_path / "r")]) == 2
    assert "no dataset recorded" in capsys.readouterr().err
    assert main(["eval", "--tracker", "nope", "--dataset", "folder", "--root", str(tmp_path / "missing"),
                 "--results", str(tmp_path)]) == 2
    assert "dataset root not found" in capsys.readouterr().err


@pytest.mark.shared
def test_end_to_end_ope_resume_report(shared_data, tmp_path, capsys):
    """gradtrack eval (OpenCV CSRT, one real sequence via the folder reader) twice -> the second run skips;
    gradtrack report -> PNG / SVG / MD / JSON."""
    from gradtrack.cli import main

    root = shared_data / "sequences" / "otb"
    if not (root / "Crossing" / "groundtruth.txt").is_file():
        pytest.skip("needs sequences/otb/Crossing in the shared data")
    res = tmp_path / "results"
    args = ["eval", "--tracker", "opencv_csrt", "--dataset", "folder", "--root", str(root), "--sequences", "Crossing",
            "--results", str(res), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 sequence(s) run, 0 skipped" in out and "success AUC" in out
    boxes = R.read_boxes(res / "opencv_csrt" / "Crossing.txt")
    assert boxes.shape == (120, 4)
    mtime = (res / "opencv_csrt" / "Crossing.txt").stat().st_mtime_ns
    assert main(args) == 0
    out2 = capsys.readouterr().out
    assert "0 sequence(s) run, 1 skipped" in out2
    assert (res / "opencv_csrt" / "Crossing.txt").stat().st_mtime_ns == mtime
    auc1 = float(re.search(r"success AUC ([0-9.]+)", out).group(1))
    assert auc1 == float(re.search(r"success AUC ([0-9.]+)", out2).group(1))
    assert auc1 > 0.5  # CSRT follows the pedestrian in Crossing (KCF loses it)
    # report: dataset taken from run_info.json
    assert main(["report", str(res), "--out", str(tmp_path / "rep")]) == 0
    for f in ("success_plot.png", "success_plot.svg", "precision_plot.png", "precision_plot.svg", "report.md",
              "summary.json"):
        assert (tmp_path / "rep" / f).is_file(), f
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["sequences"] == ["Crossing"] and "Walking2" in summary["sequences_without_results"]
    assert summary["trackers"]["opencv_csrt"]["overall"]["success_auc"] == pytest.approx(auc1, abs=5e-4)
    assert summary["trackers"]["opencv_csrt"]["fps"] > 0

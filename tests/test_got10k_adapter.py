"""``Got10kTracker`` under the got10k toolkit: ``ExperimentOTB`` runs and reports on a tiny local OTB root.

got10k's ``OTB(download=True)`` (what ``ExperimentOTB`` builds) downloads unless a folder exists for every
sequence of the version, and then reads only the folders holding ``groundtruth*.txt``.  So the root holds
two generated sequences under real tb50 names in the OTB layout (``img/0001.jpg...``,
``groundtruth_rect.txt``) and empty folders for the other tb50 names: the three lines a user writes run
unchanged and offline.  The boxes got10k records must be the ones gradtrack's own one-pass run gives on
the same frames (same decoder input; got10k hands PIL RGB images, gradtrack decodes with OpenCV).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

got10k = pytest.importorskip("got10k", reason="the got10k toolkit is not installed (pip install got10k)")

SEQS = ("Basketball", "Bolt")  # tb50 names without got10k's special frame ranges


def _otb_root(root):
    import cv2
    from got10k.datasets import OTB

    from gradtrack.data.synthetic import generate

    names = OTB._OTB__version_dict["tb50"]  # the names got10k checks for
    for n in names:
        (root / n).mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(SEQS):
        s = generate(num_frames=12, size=(128, 96), seed=20 + k, speed=3.0, scale_change=0.2)
        assert np.isfinite(s.boxes).all()
        (root / name / "img").mkdir()
        for i, f in enumerate(s.frames):
            assert cv2.imwrite(str(root / name / "img" / f"{i + 1:04d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 95])
        np.savetxt(root / name / "groundtruth_rect.txt", s.boxes, fmt="%.4f", delimiter=",")


def test_experiment_otb_runs_and_reports(tmp_path):
    from got10k.experiments import ExperimentOTB

    from gradtrack import build_tracker
    from gradtrack.evaluation.adapters import Got10kTracker
    from gradtrack.evaluation.protocols import run_ope
    from gradtrack.data.sequence import Sequence
    from gradtrack.io.frames import ImageFolderFrames

    root = tmp_path / "OTB"
    _otb_root(root)
    tracker = Got10kTracker(build_tracker("siamfc", device="cpu"))
    assert tracker.name == "siamfc" and tracker.is_deterministic

    # the three lines of docs/vot_and_got10k.md
    experiment = ExperimentOTB(str(root), version="tb50", result_dir=str(tmp_path / "results"),
                               report_dir=str(tmp_path / "reports"))
    experiment.run(tracker)
    experiment.report([tracker.name])

    perf = json.loads((tmp_path / "reports" / "OTBtb50" / "siamfc" / "performance.json").read_text())["siamfc"]
    assert sorted(perf["seq_wise"]) == sorted(SEQS)
    overall = perf["overall"]
    assert 0.5 < overall["success_score"] <= 1.0, overall["success_score"]  # easy sequences: siamfc tracks them
    assert overall["precision_score"] > 0.9

    # got10k's recorded boxes are gradtrack's own OPE boxes on the same files
    for name in SEQS:
        got = np.loadtxt(tmp_path / "results" / "OTBtb50" / "siamfc" / f"{name}.txt", delimiter=",")
        boxes = np.loadtxt(root / name / "groundtruth_rect.txt", delimiter=",")
        seq = Sequence(name, ImageFolderFrames(root / name / "img"), boxes)
        own, _ = run_ope(tracker.tracker, seq)  # the same gradtrack tracker, run directly
        np.testing.assert_allclose(got, own, atol=2e-3, err_msg=f"{name}: got10k run differs from gradtrack's")


def test_adapter_converts_pil_images():
    from PIL import Image

    from gradtrack.evaluation.adapters import Got10kTracker, pil_to_rgb

    class Fake:
        name, is_deterministic = "fake", True

        def init(self, image, box):
            assert image.dtype == np.uint8 and image.shape == (10, 12, 3)
            self.box = box

        def update(self, image):
            assert image.shape == (10, 12, 3)
            from gradtrack.trackers.base import TrackResult
            return TrackResult(box=self.box + 1, score=1.0)

    t = Got10kTracker(Fake())
    gray = Image.fromarray(np.full((10, 12), 7, np.uint8))
    t.init(gray, [1, 2, 3, 4])
    np.testing.assert_allclose(t.update(Image.fromarray(np.zeros((10, 12, 3), np.uint8)).convert("P")), [2, 3, 4, 5])
    assert pil_to_rgb(gray)[0, 0].tolist() == [7, 7, 7]

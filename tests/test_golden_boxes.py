"""The shipped trackers give the same boxes as the recorded reference (``tests/data/golden_boxes.json``,
recorded at 0f8b567, before the tracker plumbing was shared; the siammlg entries re-recorded when its
weights changed to the EfficientNet-Lite0 model, 2 Dec 2026, all entries when siamfc and gradnet were
retrained on the new train split, 2 Dec 2026, the siammlg entries again for its continued training (3,600
steps), 2 Dec 2026, and for its default window_influence 0.15, 3 Dec 2026; the gradnet entries when the
default gradnet became the EfficientNet-Lite0 one, 3 Dec 2026, the AlexNet GradNet's entries kept as
gradnet_alexnet; see
``tests/data/make_golden_boxes.py`` for how to regenerate it).  Default settings but precision fp32,
shipped weights, CPU, one thread (as recorded), so the boxes must agree to 1e-3 px (siammlg: 1e-2 px, see
``TOL``); the real sequence is skipped where ``../shared`` is absent."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parent / "data"
_spec = importlib.util.spec_from_file_location("make_golden_boxes", DATA / "make_golden_boxes.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)
EXPECTED = json.loads(golden.GOLDEN.read_text())
# px.  fp32 on the CPU is not bitwise portable: oneDNN picks its kernels (and so the order of each sum) by
# the CPU's instruction set.  siamfc and gradnet_alexnet stay within 5e-7 px of the recording (made on an Intel
# AMX CPU) on an AMD Zen 4 one; siammlg's box branch amplifies those last-bit differences on the real
# sequence to 1.4e-3 px at frames 33-35 (1e-5 px elsewhere; measured on that AMD CPU and on CI's), and the
# state feeds back, so it gets 1e-2 px; so does the EfficientNet-Lite0 gradnet (the same backbone, recorded
# on the AMD CPU).  A behaviour change moves boxes by tenths of a pixel or more.
TOL = {"siamfc": 1e-3, "gradnet_alexnet": 1e-3, "gradnet": 1e-2, "siammlg": 1e-2}


@pytest.fixture(scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def demo():
    return golden.demo_sequence()


@pytest.fixture(scope="module")
def real(shared_dir):
    seq = golden.real_sequence(shared_dir)
    if seq is None:
        pytest.skip(f"needs {golden.REAL_SEQUENCE} in {shared_dir}/data/sequences")
    return seq


def check(name: str, key: str, frames, box) -> None:
    expected = np.asarray(EXPECTED["boxes"][f"{name}/{key}"])
    assert len(frames) == EXPECTED["num_frames"] and expected.shape == (len(frames) - 1, 4)
    got = golden.track(name, frames, box)
    err = np.abs(got - expected).max(1)
    bad = np.flatnonzero(err > TOL[name])
    assert not len(bad), f"{name} on {key}: first differing frame {bad[0] + 1} (max error {err.max():.4g} px)"


@pytest.mark.parametrize("name", golden.TRACKERS)
def test_golden_boxes_demo(name, demo, one_thread):
    check(name, "demo", *demo)


@pytest.mark.parametrize("name", golden.TRACKERS)
def test_golden_boxes_real(name, real, one_thread):
    check(name, "real", *real)

"""MultiTracker and `gradtrack track --box A --box B`: one pass, per-target files, same boxes as one tracker each."""
import numpy as np
import pytest
import torch

import gradtrack
from gradtrack.data import synthetic
from gradtrack.trackers.common import resolve_precision

# The torch precision "auto" picks here (siamfc's auto may be int8 through onnxruntime, which is not batched).
TORCH_AUTO = resolve_precision("auto", False, torch.device("cpu"))


def test_multitracker_matches_single_trackers():
    s = synthetic.preset("distractors", seed=0, num_frames=5, size=(192, 144))
    b0 = np.asarray(s.boxes[0], float)
    boxes = [b0, b0 + np.array([20.0, 10.0, 0, 0])]
    mt = gradtrack.MultiTracker("siamfc", device="cpu", precision=TORCH_AUTO)
    assert mt.batched
    mt.init(s.frames[0], boxes)
    got = [[b] for b in boxes]
    for i in range(1, len(s.frames)):
        res = mt.update(s.frames[i])
        assert len(res) == 2
        for k, r in enumerate(res):
            got[k].append(r.box)
    single = gradtrack.build_tracker("siamfc", device="cpu", precision=TORCH_AUTO)
    for k, b in enumerate(boxes):
        ref, _ = single.track([s.frames[i] for i in range(len(s.frames))], b)
        assert np.abs(np.stack(got[k]) - ref).max() < 1e-3


def test_multitracker_rejects_bad_box_before_starting():
    s = synthetic.preset("demo", seed=0, num_frames=2, size=(96, 96))
    mt = gradtrack.MultiTracker("siamfc", device="cpu")
    with pytest.raises(ValueError, match="box 1"):
        mt.init(s.frames[0], [s.boxes[0], (500.0, 500.0, 10.0, 10.0)])
    with pytest.raises(RuntimeError):
        mt.update(s.frames[1])


def test_track_cli_several_boxes(tmp_path):
    from gradtrack.cli import main
    import cv2

    s = synthetic.preset("demo", seed=0, num_frames=4, size=(128, 96))
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(len(s.frames)):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(np.asarray(s.frames[i]), cv2.COLOR_RGB2BGR))
    x, y, w, h = (float(v) for v in s.boxes[0])
    out = tmp_path / "o.mp4"
    # the second box is outside the frame: nothing may be created
    rc = _run(main, ["track", str(folder), "--tracker", "siamfc", "--box", f"{x},{y},{w},{h}", "--box", "900,900,5,5",
                     "--out", str(out), "-q"])
    assert rc == 2 and not list(tmp_path.glob("o*"))
    rc = _run(main, ["track", str(folder), "--tracker", "siamfc", "--box", f"{x},{y},{w},{h}", "--box",
                     f"{x + 5},{y + 5},{w},{h}", "--out", str(out), "-q", "--no-video"])
    assert rc == 0
    for k in (0, 1):
        rows = np.loadtxt(tmp_path / f"o.{k}.txt", delimiter=",")
        assert rows.shape == (4, 4)
    assert not (tmp_path / "o.txt").exists()
    rc = _run(main, ["track", str(folder), "--tracker", "siamfc", "--select", "--box", "1,1,5,5", "--out", str(out)])
    assert rc == 2


def test_select_headless_error(monkeypatch):
    from gradtrack.cli import _select_unavailable

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert "display" in _select_unavailable()


def _run(main, argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_latest_frames_drops_when_the_consumer_is_slow():
    import time

    from gradtrack.io.frames import LatestFrames

    def source():  # a fake camera: 40 frames, one every 2 ms
        for i in range(40):
            time.sleep(0.002)
            yield np.full((4, 4, 3), i, np.uint8)

    live = LatestFrames(source())
    got = []
    for f in live:
        got.append(int(f[0, 0, 0]))
        time.sleep(0.02)  # a tracker 10x slower than the source
    assert got == sorted(got) and got[-1] == 39  # newest frames, in order, the last one included
    assert live.dropped > 0 and live.dropped + len(got) == 40

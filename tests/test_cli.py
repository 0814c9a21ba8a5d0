"""The ``gradtrack`` command line and the drawing helpers it uses."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from gradtrack import cli
from gradtrack.checkpoint import save_model
from gradtrack.models import build_model
from gradtrack.visualize import DrawError, draw_box, draw_mask, draw_polygon, draw_result

W, H, N = 96, 72, 10
BOX = (10.0, 20.0, 20.0, 20.0)


def _frame(i: int) -> np.ndarray:
    """RGB frame ``i``: a red square moving right by 3 px per frame on grey, with some texture."""
    f = np.full((H, W, 3), 70, np.uint8)
    f[::8, :] = 90
    x = 10 + 3 * i
    f[20:40, x:x + 20] = (230, 30, 30)
    return f


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vid") / "tiny.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert writer.isOpened()
    for i in range(N):
        writer.write(cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _run(args, capsys):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _read_boxes(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    return np.array([[float(v) for v in line.split(",")] for line in lines])


def _count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    n, size = 0, None
    while True:
        ok, f = cap.read()
        if not ok:
            break
        n, size = n + 1, (f.shape[1], f.shape[0])
    cap.release()
    return n, size


# ------------------------------------------------------------------------------------------ track


def test_track_video_writes_annotated_video_and_boxes(video, tmp_path, capsys):
    out, boxes = tmp_path / "out" / "t.mp4", tmp_path / "out" / "t.txt"
    rc, stdout, _ = _run(["track", video, "--box", "10,20,20,20", "--weights", "random", "--device", "cpu",
                          "--out", out, "--boxes", boxes, "--show-fps", "-q"], capsys)
    assert rc == 0
    b = _read_boxes(boxes)
    assert b.shape == (N, 4)
    np.testing.assert_array_equal(b[0], BOX)  # line 1 is the given box
    assert np.isfinite(b).all() and (b[:, 2:] > 0).all()
    assert _count_frames(out) == (N, (W, H))
    assert "fps" in stdout and "median update" in stdout
    assert f"tracked {N} frames" in stdout


def test_track_image_folder_with_max_frames_and_no_video(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    boxes = tmp_path / "b.txt"
    rc, stdout, _ = _run(["track", folder, "--box", "10 20 20 20", "--weights", "random", "--device", "cpu",
                          "--boxes", boxes, "--no-video", "--max-frames", "4", "-q", "--tracker", "siamfc"], capsys)
    assert rc == 0
    assert _read_boxes(boxes).shape == (4, 4)
    assert "video:" not in stdout


@pytest.mark.parametrize("args, fragment", [
    (["{missing}", "--box", "10,20,20,20"], "source not found"),
    (["{video}", "--box", "10,20,20"], "--box"),
    (["{video}", "--box", "a,b,c,d"], "cannot parse box"),
    (["{video}", "--box", "10,20,-5,20"], "width/height"),
    (["{video}", "--box", "500,500,10,10"], "outside the 96x72 image"),
    (["{video}", "--box", "10,20,20,20", "--tracker", "nosuch"], "unknown tracker 'nosuch'"),
    (["{video}", "--box", "10,20,20,20", "--weights", "{missing_weights}"], "weights file not found"),
    (["{video}", "--box", "10,20,20,20", "--weights", "{not_a_checkpoint}"], "not a readable gradtrack checkpoint"),
    (["{text_video}", "--box", "10,20,20,20"], "cannot open video"),
    (["{video}", "--box", "10,20,20,20", "--max-frames", "0"], "--max-frames must be >= 1"),
])
def test_track_user_errors_exit_2_with_one_line(args, fragment, video, tmp_path, capsys):
    text_video = tmp_path / "broken.mp4"
    text_video.write_text("not a video\n")
    not_ckpt = tmp_path / "junk.pt"
    not_ckpt.write_bytes(b"\x00" * 100)
    subs = {"{missing}": tmp_path / "nope.mp4", "{video}": video, "{missing_weights}": tmp_path / "w.pt",
            "{not_a_checkpoint}": not_ckpt, "{text_video}": text_video}
    argv = ["track"] + [str(subs.get(a, a)) for a in args]
    if "--weights" not in argv:
        argv += ["--weights", "random"]
    argv += ["--device", "cpu", "--out", str(tmp_path / "o.mp4"), "--boxes", str(tmp_path / "o.txt"), "-q"]
    rc, stdout, stderr = _run(argv, capsys)
    assert rc == 2
    lines = [ln for ln in stderr.splitlines() if ln.startswith("gradtrack")]
    assert len(lines) == 1 and lines[0].startswith("gradtrack track: error: "), stderr
    assert fragment in lines[0]
    assert "Traceback" not in stderr
    assert not (tmp_path / "o.txt").exists()  # nothing half-written


def test_missing_shipped_weights_is_a_clear_error(video, tmp_path, capsys, monkeypatch):
    import gradtrack.trackers.common as common

    monkeypatch.setattr(common, "WEIGHTS_DIR", tmp_path / "no_weights")  # as if none were shipped
    assert cli._shipped_weights("gradnet") is None
    rc, _, stderr = _run(["track", video, "--box", "10,20,20,20", "--device", "cpu", "-q",
                          "--boxes", tmp_path / "o.txt", "--no-video"], capsys)
    assert rc == 2 and "no trained weights are shipped" in stderr and "Traceback" not in stderr


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["track", "x.mp4"])  # --box is required
    assert exc.value.code == 2
    assert "--box" in capsys.readouterr().err


def test_module_entry_point_exit_codes(tmp_path):
    env_cmd = [sys.executable, "-m", "gradtrack"]
    ok = subprocess.run(env_cmd + ["--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "track" in ok.stdout and "demo" in ok.stdout
    bad = subprocess.run(env_cmd + ["track", str(tmp_path / "none.mp4"), "--box", "1,2,3,4"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("gradtrack track: error: source not found")
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------------ demo / list / info


def test_demo_short_sequence(tmp_path, capsys):
    rc, stdout, stderr = _run(["demo", "--frames", "6", "--out", tmp_path, "--device", "cpu", "-q"], capsys)
    assert rc == 0, stderr
    assert "mean IoU vs ground truth" in stdout and "fps" in stdout
    iou_line = next(ln for ln in stdout.splitlines() if ln.startswith("mean IoU"))
    assert 0.0 <= float(iou_line.rsplit(":", 1)[1]) <= 1.0
    videos, texts = list(tmp_path.glob("*.mp4")), list(tmp_path.glob("*.txt"))
    assert len(videos) == 1 and len(texts) == 1
    assert len(texts[0].read_text().splitlines()) == 6
    assert _count_frames(videos[0])[0] == 6
    if cli._shipped_weights("gradnet") is None:
        assert "RANDOM weights" in stderr  # the loud notice


def test_demo_rejects_bad_arguments(tmp_path, capsys):
    rc, _, stderr = _run(["demo", "--frames", "1", "--out", tmp_path], capsys)
    assert rc == 2 and "--frames must be >= 2" in stderr
    rc, _, stderr = _run(["demo", "--tracker", "nosuch", "--weights", "random", "--out", tmp_path], capsys)
    assert rc == 2 and "unknown tracker" in stderr


def test_list(capsys):
    rc, stdout, _ = _run(["list"], capsys)
    assert rc == 0
    assert "trackers:" in stdout and "datasets:" in stdout
    section = stdout.split("trackers:")[1].split("models:")[0]
    assert "gradnet" in section and "siamfc" in section


def test_info(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("siamfc", {"backbone": {"channels": [8, 16, 16, 16, 16]}})
    path = save_model(tmp_path / "small.pt", "siamfc", model, meta={"trained_on": "unit test", "epochs": 2})
    (tmp_path / "small.md").write_text("# Model card\nA tiny test model.\n")
    rc, stdout, _ = _run(["info", path], capsys)
    assert rc == 0
    assert "model: siamfc" in stdout and "trained_on: unit test" in stdout
    assert "channels: [8, 16, 16, 16, 16]" in stdout
    assert "A tiny test model." in stdout
    rc, _, stderr = _run(["info", tmp_path / "none.pt"], capsys)
    assert rc == 2 and "gradtrack info: error: checkpoint not found" in stderr


def test_optional_subcommand_failure_is_reported_only_when_used(capsys):
    parser = argparse.ArgumentParser(prog="t")
    sub = parser.add_subparsers(dest="command")
    cli._add_optional(sub, "gradtrack.no_such_module", ("frob",), ("frob things",))
    args, extra = parser.parse_known_args(["frob", "--anything", "x"])
    assert args._placeholder
    with pytest.raises(cli.UsageError, match="'frob' subcommand is unavailable.*gradtrack.no_such_module"):
        args.func(args)
    # and the real parser builds whatever the optional parts can do
    names = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert {"track", "demo", "list", "info", "eval", "report", "train"} <= names


# ------------------------------------------------------------------------------------------ drawing


def test_draw_box_outline_and_input_untouched():
    img = np.zeros((40, 50, 3), np.uint8)
    out = draw_box(img, (10, 10, 20, 10), color=(255, 0, 0), thickness=1)
    assert img.max() == 0  # input not modified
    assert out[10, 20, 0] > 100 and out[19, 20, 0] > 100  # top and bottom edges (pixel rows 10 and 19)
    assert out[15, 10, 0] > 100 and out[15, 29, 0] > 100  # left and right edges
    assert out[15, 20].max() == 0 and out[5, 5].max() == 0  # inside and outside untouched
    draw_box(img, (-100, -100, 20, 20))  # fully outside: nothing drawn, no error
    with pytest.raises(DrawError, match="NaN"):
        draw_box(img, (np.nan, 0, 5, 5))


def test_draw_mask_blends_exactly_and_checks_shape():
    img = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 5:15] = True
    out = draw_mask(img, mask, color=(200, 0, 100), alpha=0.5, contour=False)
    np.testing.assert_array_equal(out[10, 10], [150, 50, 100])
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    with pytest.raises(DrawError, match="mask has shape"):
        draw_mask(img, np.zeros((10, 10), bool))
    with pytest.raises(DrawError, match="bool"):
        draw_mask(img, np.full((20, 30), 0.5))


def test_draw_polygon_and_result():
    img = np.zeros((40, 40, 3), np.uint8)
    out = draw_polygon(img, [20, 5, 35, 20, 20, 35, 5, 20], color=(0, 255, 0), thickness=1)
    assert out[5, 19:21, 1].max() > 100 and out[20, 20, 1] == 0  # a vertex lit, the centre not
    with pytest.raises(DrawError, match="even number >= 6"):
        draw_polygon(img, [1, 2, 3, 4])

    class Result:
        box = np.array([5.0, 5.0, 10.0, 10.0])
        score = 0.75
        polygon = None
        mask = np.zeros((40, 40), bool)

    annotated = draw_result(img, Result(), index=3, fps=12.5, gt=(20, 20, 10, 10))
    assert annotated.shape == img.shape and annotated.dtype == np.uint8
    assert annotated[30, 25].max() > 0  # ground-truth bottom edge
    assert annotated[:12].max() > 0  # text strip
    with pytest.raises(Exception, match="frame"):
        draw_result(np.zeros((4, 4), np.float32), Result())


def test_run_tracking_draws_polygon_and_mask(tmp_path):
    """The annotated video carries the mask and polygon of a TrackResult (a scripted tracker, no network)."""
    from gradtrack.trackers.base import Tracker, TrackResult

    class Scripted(Tracker):
        def _init(self, image, box):
            self.box = np.asarray(box, float)

        def _update(self, image):
            self.box = self.box + (3.0, 0.0, 0.0, 0.0)
            mask = np.zeros(image.shape[:2], bool)
            x, y, w, h = self.box.astype(int)
            mask[y:y + h, x:x + w] = True
            poly = np.array([x, y, x + w, y, x + w, y + h, x, y + h], float)
            return TrackResult(box=self.box.copy(), score=0.5, polygon=poly, mask=mask)

    frames = [np.zeros((H, W, 3), np.uint8) for _ in range(5)]
    video, boxes_txt = tmp_path / "v" / "s.mp4", tmp_path / "s.txt"
    boxes, times = cli.run_tracking(Scripted(), frames, BOX, out_video=video, out_boxes=boxes_txt, fps_out=10.0,
                                    progress=False)
    assert boxes.shape == (5, 4) and times.shape == (4,)
    np.testing.assert_allclose(boxes[:, 0], [10, 13, 16, 19, 22])
    assert len(boxes_txt.read_text().splitlines()) == 5
    cap = cv2.VideoCapture(str(video))
    for _ in range(4):
        ok, last = cap.read()
        assert ok
    cap.release()
    last = cv2.cvtColor(last, cv2.COLOR_BGR2RGB).astype(int)
    inside = last[30, 25]  # inside the mask of frame 3 (x 19..39, y 20..40): blended blue
    assert inside[2] > 80 and inside[2] > inside[0] + 40
    assert last[60, 80].max() < 30  # far from everything: still black


def test_bad_device_is_a_usage_error(video, tmp_path, capsys):
    common = ["track", video, "--box", "10,20,20,20", "--weights", "random", "--boxes", tmp_path / "o.txt", "-q"]
    rc, _, stderr = _run(common + ["--device", "bogus"], capsys)
    assert rc == 2 and "invalid --device 'bogus'" in stderr
    if not torch.cuda.is_available():
        rc, _, stderr = _run(common + ["--device", "cuda"], capsys)
        assert rc == 2 and "CUDA is not available" in stderr


def test_demo_with_a_tracker_that_needs_no_weights(tmp_path, capsys):
    if "opencv_kcf" not in cli._tracker_api()[1]():
        pytest.skip("opencv_kcf is not registered")
    rc, stdout, stderr = _run(["demo", "--tracker", "opencv_kcf", "--frames", "12", "--out", tmp_path, "-q"], capsys)
    assert rc == 0, stderr
    assert "NOTICE" not in stderr and "RANDOM" not in stderr  # no false alarm about missing trained weights
    iou_line = next(ln for ln in stdout.splitlines() if ln.startswith("mean IoU"))
    assert float(iou_line.rsplit(":", 1)[1]) > 0.2  # KCF follows the easy demo target for 12 frames
    rc, _, stderr = _run(["track", tmp_path / "demo_demo-0_opencv_kcf.mp4", "--box", "10,10,30,30", "--tracker",
                          "opencv_kcf", "--weights", tmp_path, "-q", "--no-video", "--boxes", tmp_path / "b.txt"], capsys)
    assert rc == 2 and "opencv_kcf has no weights" in stderr

"""``gradtrack track`` under bad input and faults (issue 12): one line ``gradtrack track: error: ...`` naming
the file or option, exit 2, no traceback, and no output file left behind looking complete."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from gradtrack import cli

W, H, N = 96, 72, 40
TRACKER = ["--tracker", "opencv_kcf", "-q"]  # fast and needs no weights: these tests are about the CLI


def _frame(i: int) -> np.ndarray:
    f = np.full((H, W, 3), 70, np.uint8)
    f[::8, :] = 90
    f[20:40, 10 + i % 50:30 + i % 50] = (230, 30, 30)
    return f


def _write(path: Path, n: int = N, fourcc: str = "MJPG") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (W, H))
    assert writer.isOpened()
    for i in range(n):
        writer.write(cv2.cvtColor(_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def video(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    return _write(tmp_path / "in" / "video.avi")


def _run(args, capsys):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_error_line(rc, err, *fragments) -> str:
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("gradtrack")]
    assert len(lines) == 1 and lines[0].startswith("gradtrack track: error: "), err
    for f in fragments:
        assert str(f) in lines[0], (f, lines[0])
    return lines[0]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------ boxes


def test_a_huge_box_is_refused_before_any_output_is_created(video, tmp_path, capsys):
    out = tmp_path / "out"
    rc, _, err = _run(["track", video, "--box", "0,0,1e155,1e155", "--out", out / "v.mp4"] + TRACKER, capsys)
    _one_error_line(rc, err, "--box", "1e+155")
    assert not out.exists() and _files(tmp_path) == ["in/video.avi"]


@pytest.mark.parametrize("argv", [["--box", "-5,10,20,20"], ["--box=-5,10,20,20"], ["--box", "-5;10;20;20"]])
def test_a_box_starting_with_a_minus_sign_works(argv, video, tmp_path, capsys):
    boxes = tmp_path / "b.txt"
    rc, _, err = _run(["track", video, *argv, "--boxes", boxes, "--no-video", "--max-frames", "3"] + TRACKER, capsys)
    assert rc == 0, err
    assert boxes.read_text().splitlines()[0] == "-5.00,10.00,20.00,20.00"


# ------------------------------------------------------------------------------------------ where outputs go


def test_outputs_in_an_unwritable_or_impossible_place_are_one_line_errors(video, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    rc, _, err = _run(["track", video, "--box", "10,20,20,20", "--out", a_file / "v.mp4"] + TRACKER, capsys)
    _one_error_line(rc, err, f"{a_file} is a file, not a folder")
    if os.geteuid() == 0:  # root writes anywhere but in sysfs
        locked = Path("/sys/gradtrack-test.mp4")
    else:
        (tmp_path / "locked").mkdir(mode=0o555)
        locked = tmp_path / "locked" / "v.mp4"
    rc, _, err = _run(["track", video, "--box", "10,20,20,20", "--out", locked, "--boxes", tmp_path / "b.txt"]
                      + TRACKER, capsys)
    _one_error_line(rc, err, f"cannot write video {locked}")
    assert not (tmp_path / "b.txt").exists() and not (tmp_path / "b.partial.txt").exists()


@pytest.mark.parametrize("flag", ["--boxes", "--out"])
def test_an_output_that_is_a_directory_is_refused(flag, video, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = _run(["track", video, "--box", "10,20,20,20", flag, "."] + TRACKER, capsys)
    _one_error_line(rc, err, f"{flag} . is a directory")
    assert _files(tmp_path) == ["in/video.avi"]


def test_default_outputs_go_beside_out_or_beside_the_input_never_the_current_folder(video, tmp_path, capsys,
                                                                                   monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    rc, stdout, err = _run(["track", video, "--box", "10,20,20,20", "--out", tmp_path / "res" / "a.mp4"] + TRACKER,
                           capsys)
    assert rc == 0, err
    assert sorted(_files(tmp_path / "res")) == ["a.mp4", "a.txt"] and f"boxes: {tmp_path / 'res' / 'a.txt'}" in stdout
    rc, _, err = _run(["track", video, "--box", "10,20,20,20", "--no-video"] + TRACKER, capsys)
    assert rc == 0, err
    assert (video.parent / "video.opencv_kcf.txt").is_file()
    other = _write((tmp_path / "other").mkdir() or tmp_path / "other" / "video.avi")  # same name, other folder
    rc, _, err = _run(["track", other, "--box", "10,20,20,20"] + TRACKER, capsys)
    assert rc == 0, err
    assert _files(cwd) == []
    assert sorted(_files(tmp_path / "other")) == ["video.avi", "video.opencv_kcf.mp4", "video.opencv_kcf.txt"]


def test_existing_outputs_are_never_overwritten_without_force(video, tmp_path, capsys):
    boxes = tmp_path / "b.txt"
    argv = ["track", video, "--box", "10,20,20,20", "--boxes", boxes, "--no-video", "--max-frames", "3"] + TRACKER
    assert _run(argv, capsys)[0] == 0
    boxes.write_text("mine\n")
    rc, _, err = _run(argv, capsys)
    _one_error_line(rc, err, f"output {boxes} already exists", "--force")
    assert boxes.read_text() == "mine\n"
    rc, _, err = _run(argv + ["--force"], capsys)
    assert rc == 0, err
    assert len(boxes.read_text().splitlines()) == 3


# ------------------------------------------------------------------------------------------ faults mid-run


def _truncated(tmp_path: Path, how: str) -> Path:
    if how == "avi cut in half":
        data = _write(tmp_path / "full.avi", 120).read_bytes()
        path = tmp_path / "cut.avi"
        path.write_bytes(data[: len(data) // 2])
    else:  # an mp4 with a flipped 4 KB block
        data = bytearray(_write(tmp_path / "full.mp4", 120, "mp4v").read_bytes())
        o = len(data) // 3
        data[o:o + 4096] = bytes(b ^ 0xFF for b in data[o:o + 4096])
        path = tmp_path / "flipped.mp4"
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["avi cut in half", "mp4 with a flipped block"])
def test_a_truncated_video_is_an_error_unless_allowed(how, tmp_path, capsys):
    src = _truncated(tmp_path, how)
    out = tmp_path / "out"
    argv = ["track", src, "--box", "10,20,20,20", "--out", out / "t.mp4"] + TRACKER
    rc, _, err = _run(argv, capsys)
    line = _one_error_line(rc, err, str(src), "decoding stopped after", "of the 120 frames", "--allow-truncated",
                           out / "t.partial.txt")
    tracked = int(line.split("decoding stopped after ")[1].split()[0])
    assert 0 < tracked < 120
    assert _files(out) == ["t.partial.mp4", "t.partial.txt"]  # nothing that looks complete
    assert len((out / "t.partial.txt").read_text().splitlines()) == tracked

    rc, stdout, err = _run(argv + ["--allow-truncated"], capsys)
    assert rc == 0, err
    assert f"tracked {tracked} frames" in stdout
    assert f"claims 120 frames but decoding stopped after {tracked}" in err and "Traceback" not in err
    assert _files(out) == ["t.mp4", "t.txt"] and len((out / "t.txt").read_text().splitlines()) == tracked


def test_max_frames_below_the_claimed_count_is_not_truncation(tmp_path, capsys):
    src = _truncated(tmp_path, "avi cut in half")
    rc, _, err = _run(["track", src, "--box", "10,20,20,20", "--max-frames", "5", "--no-video",
                       "--boxes", tmp_path / "b.txt"] + TRACKER, capsys)
    assert rc == 0, err


def test_an_error_mid_run_leaves_only_partial_files_and_says_so(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(8):
        img = _frame(i) if i != 5 else np.zeros((H + 8, W, 3), np.uint8)  # frame 5 has another size
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    rc, _, err = _run(["track", folder, "--box", "10,20,20,20", "--out", out / "r.mp4"] + TRACKER, capsys)
    _one_error_line(rc, err, folder / "005.png", "partial output of 5 frame(s)", out / "r.partial.txt",
                    out / "r.partial.mp4")
    assert _files(out) == ["r.partial.mp4", "r.partial.txt"]
    assert len((out / "r.partial.txt").read_text().splitlines()) == 5

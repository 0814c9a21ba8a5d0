"""`gradtrack track URL` (rtsp/http/udp streams through the frame-dropping reader) and `--show` (live window,
q/Esc stops, clear error when headless).  No network and no display are used: the capture and the window
calls are replaced by fakes."""
import cv2
import numpy as np
import pytest

from gradtrack.cli import main
from gradtrack.data import synthetic
from gradtrack.io import frames as frames_mod


def _run(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.fixture(scope="module")
def seq():
    return synthetic.preset("demo", seed=0, num_frames=8, size=(128, 96))


def _box(s):
    return ",".join(f"{float(v):.1f}" for v in s.boxes[0])


class _FakeCapture:
    """What cv2.VideoCapture gives for a reachable stream: BGR frames, then end of stream."""

    def __init__(self, rgb_frames):
        self._frames = [cv2.cvtColor(np.asarray(f), cv2.COLOR_RGB2BGR) for f in rgb_frames]
        self.released = False

    def isOpened(self):
        return not self.released

    def read(self):
        if self.released or not self._frames:
            return False, None
        return True, self._frames.pop(0)

    def get(self, prop):
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released = True


def test_stream_url_goes_through_the_frame_dropping_reader(seq, tmp_path, monkeypatch, capsys):
    opened = []

    def fake_open(target, what, why="x"):
        opened.append((target, what))
        cap = _FakeCapture([seq.frames[i] for i in range(len(seq.frames))])
        opened.append(cap)
        return cap

    monkeypatch.setattr(frames_mod, "_open_capture", fake_open)
    made = []
    real_latest = frames_mod.LatestFrames

    def spy_latest(source):
        made.append(real_latest(source))
        return made[-1]

    monkeypatch.setattr(frames_mod, "LatestFrames", spy_latest)
    monkeypatch.chdir(tmp_path)
    url = "rtsp://admin:s3cret@cam.local:554/live?token=abc"
    rc = _run(["track", url, "--tracker", "siamfc", "--box", _box(seq), "--no-video", "-q"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert opened[0][0] == url  # OpenCV gets the real URL ...
    assert "s3cret" not in opened[0][1] and "abc" not in opened[0][1]  # ... messages only the masked one
    assert "s3cret" not in out + err and "token=abc" not in out + err
    assert len(made) == 1 and opened[1].released  # the real-time reader was used and closed the capture
    files = list(tmp_path.glob("stream-*.siamfc.txt"))
    assert [f.name for f in files] == ["stream-cam.local_554.siamfc.txt"]
    rows = np.loadtxt(files[0], delimiter=",", ndmin=2)
    assert rows.shape[1] == 4 and 1 <= len(rows) <= len(seq.frames)
    assert len(rows) + made[0].dropped == len(seq.frames)  # every frame either tracked or counted as dropped
    assert f"{made[0].dropped} frame(s) of the stream were dropped" in out


@pytest.mark.parametrize("url", ["http://user:hunter2@10.0.0.9:8080/video.mjpg", "udp://239.0.0.1:1234"])
def test_unopenable_stream_is_a_one_line_error(url, tmp_path, monkeypatch, capsys):
    class Unopenable:
        def __init__(self, target, *a):
            self.target = target

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Unopenable)
    monkeypatch.chdir(tmp_path)
    rc = _run(["track", url, "--tracker", "siamfc", "--box", "1,1,10,10", "-q"])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradtrack track: error: cannot open stream ")
    assert frames_mod.mask_url(url) in lines[0] and "hunter2" not in err
    assert "OpenCV could not open it" in lines[0]
    assert not list(tmp_path.iterdir())  # nothing created


def test_parse_source_and_mask_url():
    from gradtrack.cli import UsageError, _parse_source

    assert _parse_source("rtsp://h/x") == "rtsp://h/x"
    assert _parse_source("HTTPS://h:1/a.m3u8") == "HTTPS://h:1/a.m3u8"
    with pytest.raises(UsageError, match="unsupported stream URL scheme 'ftp'.*u:\\*\\*\\*@h"):
        _parse_source("ftp://u:pw@h/x")
    with pytest.raises(UsageError, match="source not found"):
        _parse_source("no/such/file.mp4")
    assert frames_mod.mask_url("rtsp://u:p@w:d@h:554/s?x=1&password=zz") == "rtsp://u:***@h:554/s?x=1&password=***"
    assert frames_mod.mask_url("rtsp://h/s") == "rtsp://h/s" and frames_mod.mask_url("a/b.mp4") == "a/b.mp4"


def _folder(seq, tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(len(seq.frames)):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(np.asarray(seq.frames[i]), cv2.COLOR_RGB2BGR))
    return folder


@pytest.mark.parametrize("env", [{}, {"DISPLAY": ":0"}])
def test_show_headless_is_a_clear_error_before_any_file(env, seq, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from gradtrack.cli import _gui_unavailable

    if env and not _gui_unavailable("--show", ""):
        pytest.skip("this OpenCV build has a GUI")
    folder = _folder(seq, tmp_path)
    out = tmp_path / "o.mp4"
    rc = _run(["track", str(folder), "--tracker", "siamfc", "--box", _box(seq), "--show", "--out", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("gradtrack track: error: --show needs ")
    assert ("display" if not env else "GUI") in err[0] and "--no-video" in err[0] and "--out" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq"]  # nothing created


@pytest.mark.parametrize("key", [ord("q"), 27])
def test_show_displays_frames_and_q_or_esc_stops_cleanly(key, seq, tmp_path, monkeypatch, capsys):
    import gradtrack.cli as cli

    monkeypatch.setattr(cli, "_gui_unavailable", lambda option, instead: "")
    shown, keys = [], iter([-1, -1, key])
    monkeypatch.setattr(cv2, "imshow", lambda title, img: shown.append((title, img.shape, img.dtype)))
    monkeypatch.setattr(cv2, "waitKey", lambda delay=0: next(keys, -1))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda title, prop: 1.0)
    destroyed = []
    monkeypatch.setattr(cv2, "destroyWindow", lambda title: destroyed.append(title))
    folder = _folder(seq, tmp_path)
    out = tmp_path / "o.mp4"
    rc = _run(["track", str(folder), "--tracker", "siamfc", "--box", _box(seq), "--show", "--out", str(out), "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert len(shown) == 3 and shown[0][1] == (96, 128, 3) and shown[0][2] == np.uint8
    assert destroyed == [shown[0][0]]
    assert np.loadtxt(tmp_path / "o.txt", delimiter=",", ndmin=2).shape == (3, 4)  # finalised, not .partial
    assert out.exists() and len(frames_mod.VideoFrames(out)) == 3
    assert not list(tmp_path.glob("*.partial.*"))
    assert "stopped by the user" in captured.err

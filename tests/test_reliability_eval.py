"""Issue 12, evaluation faults: symlinked sequence folders, resume that checks what made a result, workers
that die with their parent or alone, and per-sequence errors reported as one line each."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from gradtrack.cli import main
from gradtrack.data.readers import build_dataset
from gradtrack.data.sequence import InMemoryDataset, Sequence
from gradtrack.evaluation import results as R
from gradtrack.evaluation.runner import (BenchmarkError, DatasetSpec, ResumeError, TrackerSpec, result_problem,
                                         run_benchmark)
from gradtrack.io import write_video
from gradtrack.trackers.base import Tracker, TrackResult


# ------------------------------------------------------------------------------------------ helpers
class Frames:
    """``n`` 64x48 frames; frame 2 SIGKILLs the process reading it when ``crash`` is "always", or the first
    time only (a marker file in ``crash``'s folder) when it is a path; ``delay`` seconds per frame."""

    size = (64, 48)

    def __init__(self, n, crash=None, delay=0.0):
        self.n, self.crash, self.delay = n, crash, delay

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == 2 and self.crash and (self.crash == "always" or not Path(self.crash).exists()):
            if self.crash != "always":
                Path(self.crash).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.delay)
        return np.full((48, 64, 3), 60 + i, np.uint8)


class Still(Tracker):
    name = "still"

    def _init(self, image, box):
        self.box = box.copy()

    def _update(self, image):
        return TrackResult(box=self.box.copy(), score=1.0)


def make_still(weights=None, device=None, piddir=None, **kw):
    """Picklable factory; in a worker it records its pid and thread settings in ``piddir``."""
    if piddir:
        import torch

        Path(piddir, f"{os.getpid()}.json").write_text(
            json.dumps({"cv2": cv2.getNumThreads(), "torch": torch.get_num_threads()}))
    return Still()


def seq(name, n=6, **kw):
    return Sequence(name, Frames(n, **kw), np.tile([10.0, 10.0, 20.0, 20.0], (n, 1)), dataset="t")


def crash_dataset(root, **kw):
    return InMemoryDataset([seq("good"), seq("flaky", crash=str(Path(root) / "flaky.marker")),
                            seq("bad", crash="always")])


def slow_dataset(root, **kw):
    return InMemoryDataset([seq(f"s{k}", n=400, delay=0.05) for k in range(4)])


def write_seq(root: Path, name, n=4, gt=None, size=(64, 48)):
    s = root / name
    s.mkdir(parents=True)
    for i in range(n):
        img = np.full((size[1], size[0], 3), 40, np.uint8)
        img[10 + i:30 + i, 10 + i:30 + i] = 200
        cv2.imwrite(str(s / f"{i:04d}.jpg"), img)
    (s / "groundtruth.txt").write_text(gt if gt is not None else "".join(f"{10 + i},{10 + i},20,20\n" for i in range(n)))
    return s


# ------------------------------------------------------------------------------------------ symlinks
def test_symlinked_sequence_folders_are_found_and_bad_links_reported(tmp_path):
    real, root = tmp_path / "real", tmp_path / "root"
    for k in range(3):
        write_seq(real, f"s{k}", n=2)
    root.mkdir()
    for k in range(2):
        os.symlink(real / f"s{k}", root / f"s{k}")
    (root / "nested").mkdir()
    os.symlink(real / "s2", root / "nested" / "s2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_dataset("folder", str(root)).names == ["nested/s2", "s0", "s1"]  # a root of symlinks
    write_seq(root, "plain", n=2)  # a mixed root
    os.symlink(tmp_path / "gone", root / "dead")
    os.symlink(root, root / "nested" / "loop")
    with pytest.warns(UserWarning, match=r"skipped 2 path\(s\):.*dead \(broken symlink.*loop \(a symlink to"):
        ds = build_dataset("folder", str(root))
    assert ds.names == ["nested/s2", "plain", "s0", "s1"]
    assert [Path(p).name for p, _ in ds.skipped] == ["dead", "loop"]
    assert len(ds["s1"].frames) == 2


# ------------------------------------------------------------------------------------------ resume
def test_all_nan_result_is_not_a_valid_result(tmp_path):
    ds = InMemoryDataset([seq("a"), seq("b")])
    spec = TrackerSpec("still", factory=make_still)
    run_benchmark(spec, ds, tmp_path, progress=False)
    R.write_boxes(R.ope_result_path(tmp_path, "still", "a"), np.full((6, 4), np.nan))
    assert "frame 0" in result_problem(tmp_path, "still", "ope", "a", 6, 1)
    logs = []
    assert run_benchmark(spec, ds, tmp_path, progress=False, log=logs.append) == {"a": "rerun", "b": "skipped"}
    assert "a: rerun" in logs[0] and "not the initial box" in logs[0]
    assert np.isfinite(R.read_boxes(R.ope_result_path(tmp_path, "still", "a"))).all()


def test_resume_refuses_results_of_other_settings_weights_or_unknown(tmp_path):
    ds = InMemoryDataset([seq("a"), seq("b")])
    w = tmp_path / "w.pt"
    w.write_bytes(b"weights v1")
    base = TrackerSpec("still", weights=str(w), factory=make_still)
    run_benchmark(base, ds, tmp_path / "r", progress=False)
    info = (tmp_path / "r" / "still" / "run_info.json").read_text()
    other = TrackerSpec("still", weights=str(w), factory=make_still, overrides={"x": 2})
    with pytest.raises(ResumeError, match=r"2 sequence\(s\) .*other settings.*overrides \{\} -> \{'x': 2\}.*--redo"):
        run_benchmark(other, ds, tmp_path / "r", progress=False)
    assert (tmp_path / "r" / "still" / "run_info.json").read_text() == info  # not rewritten to claim x=2
    with pytest.raises(ResumeError, match="seed 0 -> 3"):
        run_benchmark(base, ds, tmp_path / "r", seed=3, progress=False)
    w.write_bytes(b"weights v2")  # same path, other content
    with pytest.raises(ResumeError, match="weights 'sha256:"):
        run_benchmark(base, ds, tmp_path / "r", progress=False)
    logs = []
    assert run_benchmark(base, ds, tmp_path / "r", progress=False, redo=True, log=logs.append) == \
        {"a": "redo", "b": "redo"}
    assert any("a: redo" in m and "weights" in m for m in logs)
    assert run_benchmark(base, ds, tmp_path / "r", progress=False) == {"a": "skipped", "b": "skipped"}
    R.fingerprint_path(tmp_path / "r", "still", "b").write_text("{broken")
    with pytest.raises(ResumeError, match="b: no fingerprint"):
        run_benchmark(base, ds, tmp_path / "r", progress=False)


# ------------------------------------------------------------------------------------------ per-sequence errors
@pytest.fixture(scope="module")
def bad_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "data"
    write_seq(root, "good")
    write_seq(root, "rows", gt="10,10,20,20\n" * 5)
    write_seq(root, "nanbox", gt="nan,nan,nan,nan\n" + "10,10,20,20\n" * 3)
    write_seq(root, "zerobox", gt="10,10,0,0\n" + "10,10,20,20\n" * 3)
    write_seq(root, "outside", gt="100,100,20,20\n" + "10,10,20,20\n" * 3)
    (write_seq(root, "corrupt") / "0002.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(write_seq(root, "mixed") / "0002.jpg"), np.zeros((30, 30, 3), np.uint8))
    for name, data in (("emptyvid", b""), ("textvid", b"hello\n" * 100)):
        (root / name).mkdir()
        (root / name / "video.mp4").write_bytes(data)
        (root / name / "groundtruth.txt").write_text("10,10,20,20\n" * 3)
    (root / "truncvid").mkdir()
    video = root / "truncvid" / "video.avi"  # MJPG in AVI decodes up to the cut (an mp4 loses its index)
    write_video(video, [np.full((48, 64, 3), 9 * i, np.uint8) for i in range(24)], fourcc="MJPG")
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    (root / "truncvid" / "groundtruth.txt").write_text("10,10,20,20\n" * 24)
    return root


PROBLEMS = {"rows": "5 rows in groundtruth.txt but 4 images", "nanbox": "first frame has no box",
            "zerobox": "below 1.0 pixel", "outside": "lies outside the 64x48 image",
            "corrupt": "cannot decode image .*0002.jpg", "mixed": "0002.jpg is 30x30 but the sequence is 64x48",
            "emptyvid": "cannot open video", "textvid": "cannot open video", "truncvid": r"video\.avi (has no decodable frames|has \d+ frames but the annotations have 24 rows)"}


def test_each_bad_sequence_fails_alone_with_its_problem(bad_root, tmp_path):
    with pytest.raises(BenchmarkError) as err:
        run_benchmark(TrackerSpec("still", factory=make_still), DatasetSpec("folder", str(bad_root)), tmp_path,
                      progress=False)
    failures = dict(err.value.failures)
    assert sorted(failures) == sorted(PROBLEMS)
    for name, pattern in PROBLEMS.items():
        assert re.search(pattern, failures[name]), (name, failures[name])
    assert R.valid_box_file(R.ope_result_path(tmp_path, "still", "good"), 4)
    assert str(err.value).splitlines()[-1] == f"still: {len(PROBLEMS)} of {len(PROBLEMS) + 1} sequence(s) failed"


def test_eval_cli_one_line_per_failed_sequence_and_exit_2(bad_root, tmp_path, capsys):
    rc = main(["eval", "--tracker", "opencv_kcf", "--dataset", "folder", "--root", str(bad_root),
               "--results", str(tmp_path / "res"), "-q"])
    out, err = capsys.readouterr()
    assert rc == 2 and "Traceback" not in err + out
    lines = [ln for ln in err.splitlines() if ln.startswith("gradtrack eval: error:")]
    assert len(lines) == len(PROBLEMS) + 1
    for name in PROBLEMS:
        assert sum(f"sequence '{name}' failed" in ln for ln in lines) == 1


def test_eval_and_report_cli_errors_are_one_line(bad_root, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    common = ["--tracker", "opencv_kcf", "--dataset", "folder", "--root", str(bad_root), "--sequences", "good", "-q"]
    assert main(["eval", *common, "--results", str(f)]) == 2
    assert "--results" in capsys.readouterr().err
    assert main(["eval", *common, "--results", str(tmp_path / "res"), "--no-score"]) == 0
    assert main(["eval", *common, "--results", str(tmp_path / "res"), "--set", "psr=1", "--no-score"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "--redo" in err and "Traceback" not in err
    info = tmp_path / "res" / "opencv_kcf" / "run_info.json"
    for text, fragment in (('{"dataset": ', "not valid JSON"), ("[1, 2]", "no dataset recorded"),
                           ('{"dataset": {"root": "/x"}}', "no dataset recorded")):
        info.write_text(text)
        assert main(["report", str(tmp_path / "res")]) == 2
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ workers
def test_dead_worker_is_retried_and_a_persistent_crash_reported(tmp_path):
    piddir = tmp_path / "pids"
    piddir.mkdir()
    spec = TrackerSpec("still", factory=make_still, overrides={"piddir": str(piddir)})
    logs = []
    with pytest.raises(BenchmarkError) as err:
        run_benchmark(spec, DatasetSpec("crash", str(tmp_path), factory=crash_dataset), tmp_path / "r", workers=2,
                      retries=1, progress=False, log=logs.append)
    assert [n for n, _ in err.value.failures] == ["bad"]
    assert "worker process died 2 times" in err.value.failures[0][1]
    for name in ("good", "flaky"):
        assert R.valid_box_file(R.ope_result_path(tmp_path / "r", "still", name), 6)
    assert any("worker process died" in m for m in logs)
    threads = [json.loads(p.read_text()) for p in piddir.glob("*.json")]
    assert len(threads) >= 3 and all(t == {"cv2": 1, "torch": 1} for t in threads)


def in_flight_dataset(root, **kw):
    # "slow" crashes its worker the first time it reaches frame 2, two seconds in; "bad" kills its worker
    # at once, cutting "slow" off mid-sequence in the shared pool
    return InMemoryDataset([seq("slow", crash=str(Path(root) / "slow.marker"), delay=1.0), seq("bad", crash="always")])


def test_a_sequence_cut_off_by_another_workers_death_is_not_charged_for_it(tmp_path):
    spec = TrackerSpec("still", factory=make_still)
    with pytest.raises(BenchmarkError) as err:
        run_benchmark(spec, DatasetSpec("inflight", str(tmp_path), factory=in_flight_dataset), tmp_path / "r",
                      workers=2, retries=1, progress=False, log=lambda m: None)
    # "slow" died once of its own (retried, then fine); "bad" twice on its own: given up
    assert [n for n, _ in err.value.failures] == ["bad"]
    assert "worker process died 2 times" in err.value.failures[0][1]
    assert R.valid_box_file(R.ope_result_path(tmp_path / "r", "still", "slow"), 6)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_workers_die_with_a_sigkilled_parent(tmp_path):
    piddir = tmp_path / "pids"
    piddir.mkdir()
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_reliability_eval import make_still, slow_dataset
        from gradtrack.evaluation.runner import DatasetSpec, TrackerSpec, run_benchmark
        if __name__ == "__main__":
            run_benchmark(TrackerSpec("still", factory=make_still, overrides={{"piddir": {str(piddir)!r}}}),
                          DatasetSpec("slow", None, factory=slow_dataset), {str(tmp_path / "r")!r}, workers=2,
                          progress=False)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while len(list(piddir.glob("*.json"))) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        pids = [int(p.stem) for p in piddir.glob("*.json")]
        assert len(pids) == 2 and proc.poll() is None
        time.sleep(0.5)
        proc.kill()
        proc.wait()
        deadline = time.time() + 10
        while any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
        assert not list((tmp_path / "r").glob("still/s*.txt"))  # nothing finished, nothing written later
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in piddir.glob("*.json"):
            if _alive(int(p.stem)):
                os.kill(int(p.stem), signal.SIGKILL)


def test_redo_with_fewer_repetitions_leaves_no_old_repetition_behind(tmp_path):
    ds = InMemoryDataset([seq("a")])
    spec = TrackerSpec("still", factory=make_still)
    run_benchmark(spec, ds, tmp_path, protocol="got10k", repetitions=3, progress=False)
    with pytest.raises(ResumeError, match="repetitions 3 -> 1"):
        run_benchmark(spec, ds, tmp_path, protocol="got10k", repetitions=1, progress=False)
    assert run_benchmark(spec, ds, tmp_path, protocol="got10k", repetitions=1, redo=True, progress=False) == {"a": "redo"}
    assert sorted(p.name for p in (tmp_path / "still" / "a").glob("a_*.txt")) == ["a_001.txt", "a_time.txt"]

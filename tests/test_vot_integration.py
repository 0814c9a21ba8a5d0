"""End to end with the VOT toolkit (vot-toolkit 0.9 + vot-trax, the ``vot`` extra): ``gradtrack vot-workspace``
over two tiny procedural sequences in the VOT layout (one with rectangles, one with rotated polygons), then
``vot evaluate`` and ``vot analysis`` offline, compared with ``gradtrack eval --protocol vot`` on the same files.

Both sides run the same protocol (reset-based, failure when the bounded overlap is <= 0, re-initialisation
5 frames after a failure, accuracy without the 10 frames from each initialisation, sequence-length
weighting, area-preserving box for a polygon initialisation), so the per-frame labels (init / failure /
skipped) and the failure counts must be identical and the boxes equal up to TraX's float32 transport.
The one difference is the overlap: the toolkit rasterises both regions to pixel masks, gradtrack computes
the continuous polygon IoU.  On ~20 px targets that moves one frame's IoU by a few hundredths at most and
the mean by about 0.01 (measured: 0.0014 here, 0.008 on two easier sequences), hence the 0.03 tolerance on accuracy; the test also recomputes the
toolkit's rasterised accuracy from gradtrack's own boxes and requires it to match the toolkit's to 1e-3,
which pins the whole accuracy difference on the overlap definition.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

VOT_EXE = Path(sys.executable).parent / "vot"
TRACKER = "siamfc"
IDENT = f"gradtrack_{TRACKER}"


def _write_vot_source(root: Path) -> list[str]:
    import cv2

    from gradtrack.data.synthetic import generate

    specs = {
        # fast and blurred: one failure for siamfc (probed), rectangles in groundtruth.txt
        "fast": (dict(speed=14.0, motion_blur=1.0, seed=2), False),
        # identical distractors + a large occluder, rotating target: polygons in groundtruth.txt
        "rotating": (dict(speed=6.0, distractors=4, distractor_similarity=1.0, occlusion=1.3, rotation=15.0, seed=1), True),
    }
    for name, (kw, polygons) in specs.items():
        s = generate(num_frames=20, size=(128, 96), name=name, **kw)
        assert np.isfinite(s.boxes).all() and np.isfinite(s.polygons).all(), "the test sequences must keep the target in view"
        folder = root / name
        (folder / "color").mkdir(parents=True)
        for i, f in enumerate(s.frames):
            assert cv2.imwrite(str(folder / "color" / f"{i + 1:08d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        regions = s.polygons if polygons else s.boxes
        (folder / "groundtruth.txt").write_text("\n".join(",".join(f"{v:.4f}" for v in r) for r in regions) + "\n")
        (folder / "sequence").write_text("channels.color=color/%08d.png\nfps=30\n")
    (root / "list.txt").write_text("\n".join(specs) + "\n")
    return list(specs)


def _run(argv, cwd, timeout=480):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _raster_accuracy(regions, flags, gt_lines, size, burnin=10):
    """The toolkit's accuracy (vot.region.calculate_overlap, rasterised) of gradtrack's own boxes."""
    from vot.region import calculate_overlap
    from vot.region.io import parse_region
    from vot.region.shapes import Rectangle

    use = flags == -1
    for i in np.flatnonzero(flags == 1):
        use[i : i + burnin] = False
    ovs = [calculate_overlap(Rectangle(*np.asarray(regions[i], dtype=float)), parse_region(gt_lines[i]), size)
           for i in np.flatnonzero(use)]
    return float(np.mean(ovs)) if ovs else 0.0


@pytest.mark.skipif(not VOT_EXE.is_file(), reason=f"no vot command next to {sys.executable}")
def test_vot_evaluate_and_analysis_match_gradtrack_eval(tmp_path):
    pytest.importorskip("vot", reason="vot-toolkit is not installed (pip install 'gradtrack[vot]')")
    pytest.importorskip("trax", reason="vot-trax is not installed (pip install 'gradtrack[vot]')")
    from vot.region import Special
    from vot.region.io import read_trajectory

    from gradtrack.cli import main as gradtrack_main
    from gradtrack.evaluation import results as R
    from gradtrack.integrations.workspace import write_workspace

    src = tmp_path / "src"
    names = _write_vot_source(src)
    ws = tmp_path / "ws"
    info = write_workspace(ws, TRACKER, src, repetitions=1)
    assert info["identifier"] == IDENT and info["sequences"] == names and info["layout"] == "vot"
    assert (ws / "sequences" / "fast" / "color" / "00000001.png").is_symlink()  # frames linked, not copied

    out = _run([str(VOT_EXE), "evaluate", "--workspace", str(ws), IDENT], cwd=tmp_path)
    assert "Evaluation concluded" in out and "interrupted" not in out, out[-2000:]  # the toolkit exits 0 on tracker errors
    _run([str(VOT_EXE), "analysis", "--workspace", str(ws), "--format", "json", "--name", "ar", IDENT], cwd=tmp_path)
    report = json.loads((ws / "analysis" / "ar.json").read_text())["results"]["baseline"]["results"]
    tk_acc, tk_fail, _, _ = report[0][0]
    tk_cum_fail = report[1][0][0]

    rc = gradtrack_main(["eval", "--tracker", TRACKER, "--dataset", "vot", "--root", str(ws / "sequences"),
                         "--results", str(tmp_path / "gres"), "--protocol", "vot", "--json", str(tmp_path / "g.json"), "-q"])
    assert rc == 0
    g = json.loads((tmp_path / "g.json").read_text())
    g_acc, g_fail = g["overall"]["accuracy"], g["overall"]["failures"]

    raster, lengths, total_fail, cut = [], [], 0, 0
    for name in names:
        tk = read_trajectory(str(ws / "results" / IDENT / "baseline" / name / f"{name}_001.bin"))
        regions, flags = R.read_vot_run(R.vot_result_path(tmp_path / "gres", TRACKER, name), len(tk))
        tk_flags = np.array([r.code if isinstance(r, Special) else -1 for r in tk])
        gt_lines = (ws / "sequences" / name / "groundtruth.txt").read_text().split()
        differ = np.flatnonzero(tk_flags != flags)
        if differ.size:
            # The one allowed difference: the toolkit declares a failure where gradtrack's continuous overlap
            # is tiny but positive and the toolkit's rasterised overlap of gradtrack's own box is 0 (a target
            # sliver under one pixel); after it the two runs re-initialise at different frames.
            i = int(differ[0])
            assert tk_flags[i] == 2 and flags[i] == -1, f"{name} frame {i + 1}: {tk_flags[i]} vs {flags[i]}"
            from vot.region import calculate_overlap
            from vot.region.io import parse_region
            from vot.region.shapes import Rectangle

            from gradtrack.evaluation.metrics import region_iou

            box = np.asarray(regions[i], dtype=float)
            gt = np.asarray([float(v) for v in gt_lines[i].split(",")])
            assert calculate_overlap(Rectangle(*box), parse_region(gt_lines[i]), (128, 96)) == 0.0, name
            assert 0.0 < region_iou(box, gt, (128, 96)) < 0.02, name
            tk, tk_flags, flags, regions = tk[:i], tk_flags[:i], flags[:i], regions[:i]
            gt_lines = gt_lines[:i]
            cut += 1
        np.testing.assert_array_equal(tk_flags, flags, err_msg=f"{name}: init / failure / skipped frames differ")
        for i in np.flatnonzero(flags == -1):
            b = tk[i]
            np.testing.assert_allclose([b.x, b.y, b.width, b.height], np.asarray(regions[i], dtype=float), atol=2e-3,
                                       err_msg=f"{name} frame {i + 1}: the toolkit's box differs from gradtrack's")
        total_fail += int((flags == 2).sum())
        raster.append(_raster_accuracy(regions, flags, gt_lines, (128, 96)))
        lengths.append(len(tk))
    raster_acc = float(np.average(raster, weights=lengths))
    print(f"vot-toolkit: accuracy {tk_acc:.4f} failures {tk_fail:.3f} (cumulative {tk_cum_fail:g}); "
          f"gradtrack: accuracy {g_acc:.4f} failures {g_fail:.3f} ({total_fail} in all); "
          f"toolkit overlap on gradtrack's boxes: {raster_acc:.4f}")
    if not cut:  # whole runs compared: the same failures and the same rasterised overlap
        assert tk_cum_fail == total_fail
        assert tk_fail == pytest.approx(g_fail, abs=1e-9)
        assert raster_acc == pytest.approx(tk_acc, abs=1e-3)  # same boxes, same rasterised overlap
    else:  # cut at a sub-pixel sliver the toolkit counts as a failure: it has at least as many
        assert tk_cum_fail >= total_fail and cut <= 1
    assert abs(tk_acc - g_acc) <= 0.03  # rasterised vs continuous overlap (module docstring)


def test_workspace_from_folder_layout_with_video(tmp_path):
    """The folder layout: a video is decoded to PNG once, image folders are symlinked; trackers.ini has an
    absolute python, a timeout and thread settings; a second write needs --force."""
    import configparser

    from gradtrack.data.synthetic import generate
    from gradtrack.errors import UsageError
    from gradtrack.integrations.workspace import write_workspace

    src = tmp_path / "src"
    generate(num_frames=6, size=(64, 48), seed=3).save(src / "clips" / "a", video=True)
    generate(num_frames=5, size=(64, 48), seed=4).save(src / "b", video=False)
    info = write_workspace(tmp_path / "ws", TRACKER, src, threads=2, timeout=90)
    assert info["layout"] == "folder" and info["sequences"] == ["b", "clips_a"] and info["decoded"] == 1
    seqs = tmp_path / "ws" / "sequences"
    assert (seqs / "list.txt").read_text().split() == ["b", "clips_a"]
    assert sorted(p.name for p in (seqs / "clips_a" / "color").iterdir())[-1] == "00000006.png"
    assert not (seqs / "clips_a" / "color" / "00000001.png").is_symlink()
    assert (seqs / "b" / "color" / "00000005.png").is_symlink()
    assert len((seqs / "b" / "groundtruth.txt").read_text().split()) == 5
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(tmp_path / "ws" / "trackers.ini")
    entry = cfg[IDENT]
    assert entry["protocol"] == "trax" and entry["timeout"] == "90"
    assert entry["command"].split()[0] == os.path.abspath(sys.executable)
    assert "vot-client --tracker siamfc" in entry["command"]
    assert entry["env_GRADTRACK_THREADS"] == "2" and entry["env_OMP_NUM_THREADS"] == "2"
    assert "stack: gradtrack_baseline.yaml" in (tmp_path / "ws" / "config.yaml").read_text()
    with pytest.raises(UsageError, match="--force"):
        write_workspace(tmp_path / "ws", TRACKER, src)
    with pytest.raises(UsageError, match="unknown tracker"):
        write_workspace(tmp_path / "ws2", "nope", src)


def test_trax_session_polygon_init_and_threads():
    """The request handling without the transport: a polygon initialises with its area-preserving box,
    frames answer the tracker's box; thread settings are validated."""
    from gradtrack.errors import UsageError
    from gradtrack.geometry import polygon_to_xywh
    from gradtrack.integrations.trax_client import TraxSession, region_to_box, resolve_threads

    class Fake:
        def init(self, image, box):
            self.box = np.asarray(box)

        def update(self, image):
            from gradtrack.trackers.base import TrackResult
            return TrackResult(box=self.box + 1.0, score=0.5)

    poly = [10, 10, 30, 12, 28, 32, 8, 30]
    s = TraxSession(Fake())
    box, conf = s.initialize(np.zeros((48, 64, 3), np.uint8), poly)
    np.testing.assert_allclose(box, polygon_to_xywh(np.asarray(poly, float)))
    box2, conf2 = s.frame(np.zeros((48, 64, 3), np.uint8))
    np.testing.assert_allclose(box2, box + 1.0)
    assert conf == 1.0 and conf2 == 0.5
    np.testing.assert_allclose(region_to_box([1, 2, 3, 4]), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="4 values"):
        region_to_box([1, 2, 3])
    with pytest.raises(ValueError, match="usable box"):
        region_to_box([1, 2, 0, 4])
    assert resolve_threads(None, {"GRADTRACK_THREADS": "3", "OMP_NUM_THREADS": "1"}) == 3
    assert resolve_threads(2, {"GRADTRACK_THREADS": "3"}) == 2
    assert resolve_threads(None, {}) is None
    with pytest.raises(UsageError, match="GRADTRACK_THREADS"):
        resolve_threads(None, {"GRADTRACK_THREADS": "zero"})

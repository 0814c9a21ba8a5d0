"""int8 SiamFC graphs (`gradtrack quantize`, gradtrack.deploy.quantize) and the tracker's int8 path
(skipped without onnx/onnxruntime)."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import gradtrack  # noqa: E402
from gradtrack.cli import main  # noqa: E402
from gradtrack.deploy.onnx import OnnxBackendError, OnnxExportError, export_onnx, load_checkpoint_model  # noqa: E402
from gradtrack.deploy.quantize import _peak_agreement, quantize_siamfc  # noqa: E402
from gradtrack.geometry import iou  # noqa: E402
from gradtrack.quantize import calibration_sequences, quantize_tracker  # noqa: E402
from gradtrack.trackers.siamfc import shipped_int8_dir  # noqa: E402


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory):
    """The shipped siamfc quantised on three short procedural sequences (~15 s)."""
    out = tmp_path_factory.mktemp("int8") / "siamfc"
    man = quantize_tracker("siamfc", out, sequences=3, frames=31, every=5)
    return out, man


@pytest.fixture(scope="module")
def demo():
    from gradtrack.data import synthetic

    seq = synthetic.preset("demo", seed=4, num_frames=30)
    return [seq.frames[i] for i in range(len(seq.frames))], np.asarray(seq.boxes, dtype=np.float64)


def test_manifest_says_int8_and_how_it_was_calibrated(int8_dir):
    out, man = int8_dir
    assert json.loads((out / "manifest.json").read_text()) == man
    assert man["precision"] == "int8" and man["tracker"] == "siamfc"
    q = man["quantization"]
    assert q["format"] == "QDQ" and "procedural" in q["calibration"]
    assert q["calibration_samples"] + q["parity_samples"] == 3 * 6 and q["parity_samples"] == 3
    assert q["fp32_nodes"], "the correlation (template as the conv weight) must stay fp32"
    par = man["graphs"]["search"]["parity"]
    assert 0 < par["rel"] < 0.05 and par["peak_agreement"] >= 0.9


def test_int8_graph_holds_integer_convolutions(int8_dir):
    import onnx

    m = onnx.load(str(int8_dir[0] / "search.onnx"))
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    int8_weights = [i for i in m.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 5  # the five AlexNet convolutions


@pytest.mark.parametrize("shipped", [False, True], ids=["quantised-here", "shipped-graphs"])
def test_int8_tracker_follows_the_fp32_one(int8_dir, demo, shipped):
    frames, gt = demo
    fp32 = gradtrack.build_tracker("siamfc", precision="fp32")
    if shipped:  # the shipped weights' int8 graphs (weights/siamfc_int8/, calibrated on the train split)
        int8 = gradtrack.build_tracker("siamfc", precision="int8")
        assert int8.model.onnx_dir == shipped_int8_dir("siamfc") and int8.model.backend == "onnxruntime"
    else:
        int8 = gradtrack.build_tracker("siamfc", backend="onnxruntime", onnx_dir=int8_dir[0])
    assert int8.precision == "int8"
    for tr in (fp32, int8):
        tr.init(frames[0], gt[0])
    for f in frames[1:]:
        a, b = fp32.update(f), int8.update(f)
        assert b.extra["precision"] == "int8"
        assert iou(a.box, b.box) > 0.8
    assert iou(b.box, gt[-1]) > 0.5


def test_precision_and_graph_mismatches_are_errors(int8_dir):
    with pytest.raises(ValueError, match="gradtrack quantize"):  # no shipped graphs for other weights
        gradtrack.build_tracker("siamfc", weights="random", precision="int8")
    with pytest.raises(ValueError, match="gradtrack quantize"):  # none shipped for siamfc_effnet
        gradtrack.build_tracker("siamfc_effnet", precision="int8")
    with pytest.raises(ValueError, match="are int8"):
        gradtrack.build_tracker("siamfc", backend="onnxruntime", onnx_dir=int8_dir[0], precision="fp32")
    with pytest.raises(ValueError, match="precision"):
        gradtrack.build_tracker("gradnet", precision="int8")


def test_quantize_refuses_what_it_cannot_do(int8_dir, tmp_path):
    with pytest.raises(ValueError, match="siamfc"):
        quantize_tracker("gradnet", tmp_path / "g")
    with pytest.raises(OnnxExportError, match="fp32 export"):  # quantising int8 graphs again
        quantize_siamfc(int8_dir[0], tmp_path / "again", [np.zeros((127, 127, 3), np.uint8)],
                        [(0, np.zeros((3, 255, 255, 3), np.uint8))] * 2)
    model, source, wfile = load_checkpoint_model("siamfc")
    src = tmp_path / "fp32"
    export_onnx("siamfc", model, src, weights_source=source, weights_file=wfile)
    z = np.zeros((127, 127, 3), np.uint8)
    with pytest.raises(ValueError, match="at least one template and two"):
        quantize_siamfc(src, tmp_path / "q", [z], [(0, np.zeros((3, 255, 255, 3), np.uint8))])
    with pytest.raises(ValueError, match="names template 3"):
        quantize_siamfc(src, tmp_path / "q", [z], [(3, np.zeros((3, 255, 255, 3), np.uint8))] * 2)
    with pytest.raises(ValueError, match="uint8 crops"):
        quantize_siamfc(src, tmp_path / "q", [z], [(0, np.zeros((3, 255, 255, 3), np.float32))] * 2)
    with pytest.raises(ValueError, match="method"):
        quantize_siamfc(src, tmp_path / "q", [z], [(0, np.zeros((3, 255, 255, 3), np.uint8))] * 2, method="mse")


def test_changed_int8_graph_is_refused(int8_dir, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(int8_dir[0], d)
    with open(d / "search.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(OnnxBackendError, match="corrupt or was changed"):
        gradtrack.build_tracker("siamfc", backend="onnxruntime", onnx_dir=d)


def test_peak_agreement():
    a = np.zeros((2, 5, 5))
    a[0, 2, 2] = a[1, 0, 0] = 1
    b = np.zeros((2, 5, 5))
    b[0, 3, 3] = b[1, 4, 4] = 1
    assert _peak_agreement(a, b) == 0.5


def test_calibration_sequences_validate_and_describe():
    seqs, desc = calibration_sequences(None, sequences=2, frames=5)
    assert len(seqs) == 2 and "procedural" in desc
    name, frames, start, box = seqs[0]
    assert start == 0 and len(frames) >= 5 and box.shape == (4,)
    with pytest.raises(ValueError, match="sequence"):
        calibration_sequences(None, sequences=0)


def test_calibration_sequences_from_a_folder_dataset(tmp_path):
    """A folder dataset's split: sequences spread over the sorted names, each from its first annotated
    frame; a sequence with no usable box is passed over, an empty pick is an error."""
    import cv2

    root = tmp_path / "pool"
    for name, rows in {"a": ["nan,nan,nan,nan", "2,2,5,5", "3,3,5,5"], "b": ["1,1,4,4", "1,1,4,4"],
                       "c": ["0,0,0,0", "0,0,0,0"]}.items():
        (root / name / "img").mkdir(parents=True)
        for k in range(len(rows)):
            assert cv2.imwrite(str(root / name / "img" / f"{k + 1:04d}.png"), np.full((16, 20, 3), 40 * k, np.uint8))
        (root / name / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    (root / "splits.json").write_text(json.dumps({"train": ["a", "b", "c"], "val": ["c"]}))
    seqs, desc = calibration_sequences(root, "train", sequences=3, frames=10)
    assert [s[0] for s in seqs] == ["a", "b"] and "split 'train'" in desc and "a, b" in desc
    name, frames, start, box = seqs[0]
    from gradtrack.data.readers import FolderDataset

    assert start == 1 and box.tolist() == FolderDataset(root)["a"].boxes[1].tolist() and box[2] == 5
    assert calibration_sequences(root, "train", sequences=1, frames=10)[0][0][0] == "a"
    with pytest.raises(ValueError, match="annotated frame"):
        calibration_sequences(root, "val", sequences=1, frames=10)


def test_cli_reports_errors_cleanly(tmp_path, capsys):
    assert main(["quantize", "--tracker", "siamfc", "--calibration", str(tmp_path / "nowhere"), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "gradtrack quantize: error:" in err and "nowhere" in err


def test_bench_runs_given_int8_graphs(int8_dir):
    from gradtrack.bench.core import BenchError, run_bench

    res = run_bench(["siamfc"], precision="int8", onnx_dir=int8_dir[0], source="demo", frames=6, repeats=1,
                    warmup=1, flops=False, memory=False)
    (row,) = res.rows
    assert row["label"] == "siamfc [onnxruntime] int8" and row["precision"] == "int8" and row["fps"] > 0
    with pytest.raises(BenchError, match="--backend onnxruntime"):
        run_bench(["siamfc"], precision="fp32", onnx_dir=int8_dir[0], source="demo", frames=4, repeats=1)


def test_shipped_int8_graphs_say_how_they_were_made():
    """The shipped graphs belong to the shipped weights (the backend checks the state hash), were calibrated
    on the train split (never val) and are what the bench times for --precision int8."""
    from gradtrack.bench.core import int8_graphs
    from gradtrack.deploy.onnx import read_manifest

    d = shipped_int8_dir("siamfc")
    man = read_manifest(d)
    q = man["quantization"]
    assert man["precision"] == "int8" and "split 'train'" in q["calibration"] and "val" not in q["calibration"]
    assert man["graphs"]["search"]["parity"]["peak_agreement"] >= 0.95
    assert int8_graphs("siamfc") == d and shipped_int8_dir("siamfc_effnet") is None


def test_sessions_do_not_spin_between_frames(int8_dir):
    """ORT pool threads must not busy-wait after a run (they took the cores from the tracker's Python work
    and from whatever ran beside it: the bench's reference loop lost 40 % of its speed)."""
    from gradtrack.deploy.onnx import _session

    opts = _session(int8_dir[0] / "search.onnx", threads=2).get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert not opts.enable_mem_pattern  # one planned block per run beside the arena: 7 MB more, no faster


def test_auto_precision_picks_int8_only_on_cpus_without_amx(monkeypatch):
    """precision="auto" (the default): the shipped int8 graphs for the shipped weights on a CPU without AMX,
    with onnxruntime installed; the torch path otherwise, and whenever anything else is asked for."""
    import gradtrack.trackers.siamfc as sf
    from gradtrack import MultiTracker

    monkeypatch.setattr(sf, "cpu_bf16_flags", lambda: ("avx512_bf16",))  # an AMD Zen 4
    t = gradtrack.build_tracker("siamfc")
    assert t.precision == "int8" and t.model.onnx_dir == shipped_int8_dir("siamfc")
    for kw in ({"precision": "fp32"}, {"precision": "bf16"}, {"amp": True}, {"weights": "random"},
               {"backend": "onnxruntime"}):
        assert gradtrack.build_tracker("siamfc", **kw).precision != "int8", kw
    assert gradtrack.build_tracker("siamfc_effnet").precision == "fp32"  # no int8 graphs shipped for it
    multi = MultiTracker("siamfc")
    assert not multi.batched and "precision='bf16'" in multi.fallback_reason
    assert MultiTracker("siamfc", precision="fp32").batched
    for flags in (("amx_bf16", "avx512_bf16"), None):  # AMX (bf16 is faster there) / flags unreadable
        monkeypatch.setattr(sf, "cpu_bf16_flags", lambda flags=flags: flags)
        assert gradtrack.build_tracker("siamfc").precision in ("bf16", "fp32")
    monkeypatch.setattr(sf, "cpu_bf16_flags", lambda: ())
    monkeypatch.setattr(sf.importlib.util, "find_spec", lambda name, *a: None)  # onnxruntime not installed
    assert gradtrack.build_tracker("siamfc").precision in ("bf16", "fp32")


def test_bench_warms_onnxruntime_before_measuring_memory():
    """warm_runtime builds and runs a one-node graph this onnxruntime accepts (an IR version too new for it
    failed here once), so the bench does not charge the runtime's one-time set-up to the first tracker."""
    from gradtrack.deploy.onnx import warm_runtime

    warm_runtime()


def test_shipped_int8_tracker_loads_no_torch_copy_of_its_weights(demo, tmp_path, monkeypatch):
    """The shipped int8 graphs hold every weight the SiamFC backend runs and their manifest records the
    shipped file's SHA-256: the tracker is built from the checkpoint's config alone (14 MB less per
    tracker).  A checkpoint with the same weights in another file takes the general path (the torch model
    is loaded and its state hash compared) and tracks to the same boxes; other weights are refused."""
    import torch

    import gradtrack.trackers.common as common
    from gradtrack.trackers.common import shipped_weights

    frames, gt = demo
    loaded = []
    real_load = common.load_model
    monkeypatch.setattr(common, "load_model", lambda *a, **k: loaded.append(a[0]) or real_load(*a, **k))
    lean = gradtrack.build_tracker("siamfc", precision="int8")
    assert loaded == [] and lean.model.cfg.geometry().instance_size == 255  # no torch network was built
    ckpt = torch.load(shipped_weights("siamfc"), weights_only=True)
    ckpt["meta"] = {**ckpt.get("meta", {}), "copied": True}  # same weights, another file (another SHA-256)
    torch.save(ckpt, tmp_path / "copy.pt")
    full = gradtrack.build_tracker("siamfc", weights=tmp_path / "copy.pt", backend="onnxruntime",
                                   onnx_dir=shipped_int8_dir("siamfc"))
    assert loaded == [tmp_path / "copy.pt"] and full.precision == lean.precision == "int8"
    for tr in (lean, full):
        tr.init(frames[0], gt[0])
    for f in frames[1:8]:
        assert np.array_equal(lean.update(f).box, full.update(f).box)
    ckpt["state_dict"] = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, tmp_path / "other.pt")
    with pytest.raises(OnnxBackendError, match="other weights"):
        gradtrack.build_tracker("siamfc", weights=tmp_path / "other.pt", backend="onnxruntime",
                                onnx_dir=shipped_int8_dir("siamfc"))

"""ONNX export of SiamFC, the onnxruntime backend and its checks (skipped without onnx/onnxruntime)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import gradtrack  # noqa: E402
from gradtrack.checkpoint import save_model  # noqa: E402
from gradtrack.deploy.onnx import (OnnxBackendError, OnnxExportError, export_onnx, graph_specs,  # noqa: E402
                                   load_backend, load_checkpoint_model, read_manifest)

FRAMES = 8


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped siamfc weights exported once for the module (about 3 s)."""
    model, source, wfile = load_checkpoint_model("siamfc")
    out = tmp_path_factory.mktemp("onnx") / "siamfc"
    man = export_onnx("siamfc", model, out, weights_source=source, weights_file=wfile)
    return out, man, model


@pytest.fixture(scope="module")
def demo():
    from gradtrack.data import synthetic

    seq = synthetic.preset("demo", seed=0, num_frames=FRAMES)
    return [seq.frames[i] for i in range(len(seq.frames))], np.asarray(seq.boxes[0], dtype=np.float64)


def _track(tracker, frames, box):
    tracker.init(frames[0], box)
    return np.array([tracker.update(f).box for f in frames[1:]])


def test_manifest_records_what_the_backend_checks(exported):
    out, man, model = exported
    assert read_manifest(out) == json.loads((out / "manifest.json").read_text()) == man
    assert man["tracker"] == "siamfc" and man["model"] == "siamfc" and man["opset"] >= 13
    assert set(man["graphs"]) == {"template", "search"}
    assert man["graphs"]["template"]["inputs"] == {"z": [1, 3, 127, 127]}
    assert man["graphs"]["search"]["inputs"]["x"] == [3, 3, 255, 255]
    assert man["geometry"]["score_size"] == 17
    assert len(man["weights"]["file_sha256"]) == 64 and len(man["weights"]["state_sha256"]) == 64
    assert man["versions"]["gradtrack"] == gradtrack.__version__


def test_graphs_match_torch_on_other_inputs(exported):
    """Fresh inputs (not the export's examples), batch 5 (the dynamic scale axis), under onnxruntime."""
    out, _, model = exported
    gen = torch.Generator().manual_seed(7)
    z = torch.rand(1, 3, 127, 127, generator=gen) * 255
    x = torch.rand(5, 3, 255, 255, generator=gen) * 255
    with torch.no_grad():
        zf = model.embed(z)
        ref = model.score(zf, model.embed(x)).numpy()
    zf_ort = ort.InferenceSession(str(out / "template.onnx")).run(None, {"z": z.numpy()})[0]
    got = ort.InferenceSession(str(out / "search.onnx")).run(None, {"x": x.numpy(), "zf": zf_ort})[0]
    assert got.shape == ref.shape == (5, 1, 17, 17)
    assert np.abs(zf_ort - zf.numpy()).max() <= 1e-4 * float(zf.max() - zf.min())
    assert np.abs(got - ref).max() <= 1e-4 * float(ref.max() - ref.min())


def test_ort_tracker_tracks_like_torch(exported, demo):
    out, _, _ = exported
    frames, box = demo
    ref = _track(gradtrack.build_tracker("siamfc", device="cpu", precision="fp32"), frames, box)  # ORT runs fp32
    tr = gradtrack.build_tracker("siamfc", device="cpu", backend="onnxruntime", onnx_dir=out)
    assert tr.model.backend == "onnxruntime" and tr.precision == "fp32"
    got = _track(tr, frames, box)
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert np.abs(got - ref).max() <= 1e-2
    # it did move: the demo target travels more than the tolerance
    assert np.abs(ref[-1] - ref[0]).max() > 1.0


def test_other_weights_are_a_clear_error(exported, tmp_path):
    out, _, model = exported
    other = gradtrack.build_tracker("siamfc", weights="random", device="cpu").model
    with pytest.raises(OnnxBackendError, match="exported from other weights"):
        load_backend("siamfc", other, out)
    ck = save_model(tmp_path / "other.pt", "siamfc", other)
    with pytest.raises(OnnxBackendError, match="other weights"):
        gradtrack.build_tracker("siamfc", weights=ck, device="cpu", backend="onnxruntime", onnx_dir=out)
    with pytest.raises(OnnxBackendError, match="tracker 'siamfc', not 'siamfc_effnet'"):
        load_backend("siamfc_effnet", model, out)


def test_corrupt_or_missing_graph_is_a_clear_error(exported, tmp_path):
    out, _, model = exported
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    data = bytearray((bad / "search.onnx").read_bytes())
    (bad / "search.onnx").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(OnnxBackendError, match=r"search\.onnx is corrupt"):
        load_backend("siamfc", model, bad)
    # a corrupt file whose hash was (wrongly) recorded: onnxruntime's own error, reworded
    man = json.loads((bad / "manifest.json").read_text())
    from gradtrack.deploy.onnx import file_sha256

    man["graphs"]["search"]["sha256"] = file_sha256(bad / "search.onnx")
    (bad / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(OnnxBackendError, match="onnxruntime cannot load this graph"):
        load_backend("siamfc", model, bad)
    (bad / "template.onnx").unlink()
    with pytest.raises(OnnxBackendError, match="template.onnx is missing"):
        load_backend("siamfc", model, bad)
    with pytest.raises(OnnxBackendError, match="no exported graphs"):
        load_backend("siamfc", model, tmp_path / "empty")


def test_backend_argument_is_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        gradtrack.build_tracker("siamfc", weights="random", device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="onnx_dir is only used"):
        gradtrack.build_tracker("siamfc", weights="random", device="cpu", onnx_dir="x")
    with pytest.raises(OnnxExportError, match="SiamMLG is not exported"):
        graph_specs("siammlg", None)


def test_gradnet_ort_backend_from_the_cache(monkeypatch, tmp_path, demo):
    """GradNet, ``onnx_dir=None``: exported into the cache folder on first use and reused afterwards; the
    forward pieces and the whole update (analytic gradient, U2, U1) run in onnxruntime (random weights).  The
    init already makes two gradient updates (the first template and the periodic update on frame 0)."""
    monkeypatch.setenv("GRADTRACK_CACHE", str(tmp_path))
    frames, box = demo
    tr = gradtrack.build_tracker("gradnet", weights="random", device="cpu", backend="onnxruntime")
    cached = list((tmp_path / "onnx").iterdir())
    assert len(cached) == 1 and tr.model.onnx_dir == cached[0] and (cached[0] / "manifest.json").is_file()
    man = tr.model.manifest
    # AlexNet's U1 is Conv/BN/ReLU: the update's gradient is exported too (analytic), nothing is torch-only
    assert {"gradient", "update", "features", "score"} <= set(man["graphs"]) and not man["torch_only"]
    ref_tr = gradtrack.build_tracker("gradnet", weights="random", device="cpu", precision="fp32")
    ref, got = _track(ref_tr, frames[:4], box), _track(tr, frames[:4], box)
    assert tr.state.updates == ref_tr.state.updates >= 2
    assert np.abs(got - ref).max() <= 1e-2
    assert torch.allclose(tr.state.hid, ref_tr.state.hid, rtol=0, atol=1e-3 * float(ref_tr.state.hid.abs().max()))
    again = gradtrack.build_tracker("gradnet", weights="random", device="cpu", backend="onnxruntime")
    assert again.model.onnx_dir == cached[0] and len(list((tmp_path / "onnx").iterdir())) == 1


def test_analytic_gradient_equals_autograd():
    from gradtrack.deploy.onnx import AnalyticGradient
    from gradtrack.models import build_model
    from gradtrack.models.labels import centered_label

    torch.manual_seed(3)
    model = build_model("gradnet", {}).eval()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    f2 = torch.rand(1, 256, 12, 12) * 3
    xf = torch.randn(2, 256, 22, 22)  # two samples: the loss is their mean
    label, weight = centered_label(17, 2.0)
    g_ref, loss_ref = (t.detach() for t in model.gradient(f2, xf, label, weight))
    with torch.no_grad():
        g, loss = AnalyticGradient(model)(f2, xf, label, weight)
    assert abs(float(loss) - float(loss_ref)) < 1e-5
    assert (g - g_ref).abs().max() <= 1e-5 * float(g_ref.abs().max())


def test_opencv_dnn_runs_the_search_graph(exported):
    pytest.importorskip("cv2")
    from gradtrack.deploy.opencv import check_opencv_search

    out, _, model = exported
    assert "rel" in check_opencv_search(out, model)


def test_cli_export_and_errors(tmp_path, capsys):
    from gradtrack.cli import main

    assert main(["export", "--tracker", "siammlg", "--format", "onnx", str(tmp_path / "m")]) == 2
    assert "SiamMLG is not exported" in capsys.readouterr().err
    assert main(["export", "--tracker", "siamfc", "--weights", str(tmp_path / "nope.pt"), str(tmp_path / "o")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_trackers_on_the_same_graphs_share_their_sessions(exported, demo, tmp_path):
    """Sessions are read-only, so trackers on the same graph files share them (a second live tracker adds
    its state, not another copy of the weights and arena); the template graph, run once per sequence, gets
    the light session; a rewritten file gets a new session; sharing changes no box."""
    import gc
    import weakref

    from gradtrack.deploy.onnx import _SharedSession

    out, _, _ = exported
    frames, box = demo
    a = gradtrack.build_tracker("siamfc", backend="onnxruntime", onnx_dir=out)
    alone = _track(a, frames, box)
    b = gradtrack.build_tracker("siamfc", backend="onnxruntime", onnx_dir=out)
    for g in ("template", "search"):
        assert a.model.graphs[g].session is b.model.graphs[g].session
    a.init(frames[0], box)
    b.init(frames[0], box[[0, 1, 3, 2]] * 0.8)  # another target: the state stays per tracker
    both = np.array([a.update(f).box for f in frames[1:]])
    [b.update(f) for f in frames[1:]]
    np.testing.assert_array_equal(both, alone)
    level = ort.GraphOptimizationLevel
    assert a.model.graphs["template"].session.get_session_options().graph_optimization_level == level.ORT_ENABLE_BASIC
    assert a.model.graphs["search"].session.get_session_options().graph_optimization_level == level.ORT_ENABLE_ALL

    other = tmp_path / "copy"
    shutil.copytree(out, other)
    c = gradtrack.build_tracker("siamfc", backend="onnxruntime", onnx_dir=other)
    assert c.model.graphs["search"].session is not a.model.graphs["search"].session
    held = [weakref.ref(g._shared) for g in c.model.graphs.values()]
    assert all(isinstance(r(), _SharedSession) for r in held)
    del c
    gc.collect()
    assert all(r() is None for r in held)  # freed with their last tracker


def test_search_graph_one_scale_at_a_time_equals_one_batch(exported):
    """The backend runs the search graph one crop at a time (a third of the activation memory): the maps
    equal one batched run."""
    from gradtrack.deploy.onnx import crops_nchw

    out, _, model = exported
    be = load_backend("siamfc", model, out)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 255, 255, 3), dtype=np.uint8)
    zf = be.embed(torch.from_numpy(crops_nchw(crops[:1, 64:191, 64:191])))
    got = be.responses(crops, zf)
    ref = be.graphs["search"].run_numpy(crops_nchw(crops), zf.numpy())[0][:, 0]
    assert got.shape == ref.shape == (3, 17, 17)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())

"""``gradtrack bench``, the stage-timing hooks and the tracker precision option (no timed assertions)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gradtrack.bench import core
from gradtrack.cli import main
from gradtrack.trackers import build_tracker
from gradtrack.trackers import common

FRAMES = 3


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b.json"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["bench", "--tracker", "siamfc", "--source", "demo", "--frames", str(FRAMES), "--repeats", "1",
                   "--warmup", "0", "--compare", "--precision", "fp32", "--json", str(out), "-q"])
    assert rc == 0
    return buf.getvalue(), json.loads(out.read_text())


def _row(data, label):
    return next(r for r in data["rows"] if r["label"] == label)


def test_bench_prints_stages_and_json(bench_out):
    text, data = bench_out
    assert "| siamfc fp32 |" in text and "| run (ms per frame) | crop | backbone | correlation | post | update" in text
    assert data["header"]["frames"] == FRAMES and data["header"]["torch"] == torch.__version__
    flags = common.cpu_bf16_flags()
    assert data["header"]["cpu_bf16"] == ("unknown" if flags is None else " ".join(flags) or "none")
    row = _row(data, "siamfc fp32")
    assert len(row["fps_repeats"]) == 1 and row["fps"] > 0
    st = row["stages_ms"]
    assert set(st) == {"crop", "backbone", "correlation", "post", "update", "other"}
    named = sum(v for k, v in st.items() if k != "other")
    # the hooks cover the update: the named stages are most of it and never more than it
    assert 0.5 * row["stages_total_ms"] <= named <= row["stages_total_ms"] * (1 + 1e-9)
    assert st["backbone"] > 0 and st["crop"] > 0 and st["correlation"] > 0 and st["post"] > 0
    assert abs(row["stages_total_ms"] - row["update_ms_mean"]) <= 1e-6 * row["update_ms_mean"] + 1e-9
    assert 10 < row["gflop_per_frame"] < 25  # AlexNet 3-scale search: ~16.3 GFLOP
    assert row["gflops_achieved"] > 0 and row["rss_added_mb"] >= 0
    assert 0 < row["vs_backbone"] and row["backbone_only_ms"] > 0
    bb = _row(data, "siamfc fp32 backbone-only")
    assert bb["kind"] == "backbone" and "stages_ms" not in bb


def test_bench_times_siammlg_stages_and_its_backbone(tmp_path):
    """SiamMLG has the stage hooks and a backbone-only twin too (shipped weights; 6 frames span the update
    schedule's interval)."""
    out = tmp_path / "m.json"
    assert main(["bench", "--tracker", "siammlg", "--source", "demo", "--frames", "6", "--repeats", "1",
                 "--warmup", "0", "--precision", "fp32", "--json", str(out), "-q"]) == 0
    data = json.loads(out.read_text())
    row = _row(data, "siammlg fp32")
    st = row["stages_ms"]
    assert st["crop"] > 0 and st["backbone"] > 0 and st["correlation"] > 0 and st["post"] > 0
    assert sum(v for k, v in st.items() if k != "other") <= row["stages_total_ms"] * (1 + 1e-9)
    assert row["backbone_only_ms"] > 0 and row["vs_backbone"] > 0
    assert _row(data, "siammlg fp32 backbone-only")["kind"] == "backbone"


def test_bench_compare_has_the_reference(bench_out):
    _, data = bench_out
    labels = [r["label"] for r in data["rows"]]
    assert "reference_siamfc fp32" in labels
    ref = _row(data, "reference_siamfc fp32")
    assert ref["x_reference"] == pytest.approx(1.0)
    assert _row(data, "siamfc fp32")["x_reference"] == pytest.approx(_row(data, "siamfc fp32")["fps"] / ref["fps"])
    # the reference does the same network work per frame
    assert ref["gflop_per_frame"] == pytest.approx(_row(data, "siamfc fp32")["gflop_per_frame"], rel=1e-3)
    for peer in ("nanotrack (OpenCV)", "opencv_csrt (OpenCV)"):
        assert peer in labels or any(n.startswith(peer.split()[0]) for n in data["notes"])


@pytest.mark.parametrize("name, frames", [("siamfc", 3), ("gradnet", 6)])
def test_flop_count_is_positive_and_repeatable(name, frames):
    # gradnet on 6 frames: the count spans its periodic online update (autograd.grad) on frame 5
    imgs, box, _ = core.load_source("demo", frames)
    run = core.gradtrack_run(name, "cpu", "fp32", "torch", weights="random")
    a, b = core.count_flops(run, imgs, box), core.count_flops(run, imgs, box)
    assert a and a > 0 and a == b


@pytest.mark.parametrize("argv, words", [
    (["--frames", "1"], "--frames must be >= 2"),
    (["--tracker", "no_such_tracker"], "unknown tracker 'no_such_tracker'"),
    (["--source", "/no/such/video.mp4"], "no such file or directory"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--precision", "fp16"], "fp16 needs --device cuda"),
    (["--device", "tpu"], "--device must be cpu or cuda"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bad_options_give_one_line_errors(argv, words, capsys):
    rc = main(["bench", "--source", "demo", "--frames", "3", "-q", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("gradtrack bench: error:") and words in err


def test_source_without_groundtruth_needs_a_box(tmp_path, capsys):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:04d}.png"), np.full((40, 50, 3), 30 * i, np.uint8))
    assert main(["bench", "--source", str(tmp_path), "--frames", "3", "-q"]) == 2
    assert "--box" in capsys.readouterr().err
    frames, box, _ = core.load_source(tmp_path, 3, box=[5, 5, 10, 10])
    assert len(frames) == 3 and frames[0].shape == (40, 50, 3) and box.tolist() == [5, 5, 10, 10]


def test_unknown_precision_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--precision", "int4"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_stage_hooks_are_free_when_off_and_do_not_nest():
    assert common.stage("crop") is common._NO_STAGE  # no timer installed: one shared no-op context
    timer = common.StageTimer()
    with common.timing(timer):
        with common.stage("crop"):
            with common.stage("backbone"):  # inside another stage: counted in the outer one
                pass
    assert timer.totals["crop"] > 0 and timer.totals["backbone"] == 0
    assert common.stage("crop") is common._NO_STAGE


def test_bench_auto_precision_is_each_trackers_default():
    auto = core.build_gradtrack("siamfc", "cpu", "auto", "torch", weights="random")
    assert auto.precision == ("bf16" if common.cpu_has_fast_bf16() else "fp32")
    assert core.build_gradtrack("siamfc", "cpu", "fp32", "torch", weights="random").precision == "fp32"
    assert core.build_gradtrack("siamfc_effnet", "cpu", "auto", "torch", weights="random").precision == "fp32"


def test_resolve_precision():
    cpu = torch.device("cpu")
    assert common.resolve_precision("fp32", False, cpu) == "fp32"
    assert common.resolve_precision("fp32", True, cpu) == "bf16"  # amp=True keeps working
    assert common.resolve_precision("bf16", True, cpu) == "bf16"
    assert common.resolve_precision("auto", True, cpu) == "bf16"  # amp=True beside the new default
    assert common.resolve_precision("auto", False, cpu) == ("bf16" if common.cpu_has_fast_bf16() else "fp32")
    flags = common.cpu_bf16_flags()
    assert flags is None or set(flags) <= set(common.BF16_CPU_FLAGS)
    if flags is not None:
        assert common.cpu_has_fast_bf16() == bool(flags)
    with pytest.raises(ValueError, match="fp16"):
        common.resolve_precision("fp16", False, cpu)
    with pytest.raises(ValueError, match="amp=True"):
        common.resolve_precision("fp16", True, cpu)
    with pytest.raises(ValueError, match="precision must be one of"):
        common.resolve_precision("int8", False, cpu)


@pytest.mark.parametrize("name", ["siamfc", "gradnet", "siamfc_effnet"])
def test_tracker_reports_precision_and_folded_net_matches(name):
    # siamfc_effnet: the folded copy must keep EfficientNet-Lite's own conv forward (phase-grid dilated
    # depthwise convs, padding); an earlier fold rebuilt those blocks as plain undilated convs
    frames, box, _ = core.load_source("demo", 3)
    fp32 = build_tracker(name, weights="random", device="cpu", precision="fp32")
    import cv2

    x = common.search_input(np.stack([cv2.resize(f, (255, 255)) for f in frames]), torch.device("cpu"))
    embed = fp32.model.embed if name.startswith("siamfc") else fp32.model.search_features
    with torch.no_grad():
        ref, got = embed(x.contiguous()), fp32._search_net(x)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    bf = build_tracker(name, weights="random", device="cpu", precision="bf16")
    legacy = build_tracker(name, weights="random", device="cpu", amp=True)
    assert (fp32.precision, bf.precision, legacy.precision) == ("fp32", "bf16", "bf16")
    assert next(bf._search_net.parameters()).dtype == torch.bfloat16
    for tr, prec in ((fp32, "fp32"), (bf, "bf16")):
        tr.init(frames[0], box)
        res = tr.update(frames[1])
        assert res.extra["precision"] == prec and np.isfinite(res.box).all()
    if name.startswith("siamfc"):  # bf16 features, fp32 correlation (a bf16 response map flips scale choices)
        crops = bf._search_crops(frames[2], bf.state)
        with torch.no_grad():
            ref = bf.model.score(bf.template, bf._search_features(crops).float())[:, 0].numpy()
        got = bf._responses(crops, bf.template)
        assert got.dtype == np.float32 and np.array_equal(got, ref)
    with pytest.raises(Exception, match="precision"):
        build_tracker(name, weights="random", device="cpu", precision="int8")
    # the default is "auto": bf16 where the CPU computes it natively, else fp32, and says which (siamfc_effnet:
    # fp32, its bf16 was not within 0.01 val AUC of fp32)
    default = build_tracker(name, weights="random", device="cpu")
    if name == "siamfc_effnet":
        assert (default.cfg.precision, default.precision) == ("fp32", "fp32")
    else:
        assert default.cfg.precision == "auto"
        assert default.precision == ("bf16" if common.cpu_has_fast_bf16() else "fp32")


@pytest.mark.parametrize("name", ["siamfc", "siammlg"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fused_conv_activation_gives_the_unfused_features(name, precision, monkeypatch):
    """The per-frame copy turns conv (+ folded BN) + ReLU / ReLU6 into one oneDNN conv with the activation
    as its post-op (``ConvAct``); its features are the unfused path's (the plain conv + activation, what
    ``ConvAct`` runs where the op is missing or autograd is on) to float rounding."""
    # siammlg: the shipped weights (EfficientNet-Lite0; the random-weights default is a ResNet)
    tr = build_tracker(name, weights="random" if name == "siamfc" else None, device="cpu", precision=precision)
    net = tr.fast if name == "siammlg" else tr._search_net
    fused = [m for m in net.modules() if isinstance(m, common.ConvAct)]
    acts = {m.act for m in fused}
    assert len(fused) >= 4 and acts & {"relu", "hardtanh"}
    if name == "siammlg":  # EfficientNet-Lite's ReLU6 blocks and its linear projections, dilated ones too
        assert {"hardtanh", "none"} <= acts and any(m.dilation[0] > 1 for m in fused)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 3, 255, 255, generator=g) * 255).to(common.precision_dtype(precision),
                                                            memory_format=torch.channels_last)
    run = (lambda: net.search(x)[0]) if name == "siammlg" else (lambda: net(x))
    with torch.no_grad():
        got = run().float()
        monkeypatch.setattr(common, "_CONV_ACT", None)
        ref = run().float()
    with torch.enable_grad():  # autograd on: the plain path even with the op present
        monkeypatch.undo()
        graded = run().float().detach()
    tol = (1e-5 if precision == "fp32" else 2e-2) * float(ref.abs().max())
    assert torch.allclose(got, ref, rtol=0, atol=tol)
    assert torch.equal(graded, ref)


def test_conv_act_checks_its_conv():
    with pytest.raises(ValueError, match="zero padding"):
        common.ConvAct(torch.nn.Conv2d(3, 4, 3, padding="same"))
    with pytest.raises(ValueError, match="zero padding"):
        common.ConvAct(torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_inference_net_shares_unchanged_weights_and_leaves_the_module_alone(precision):
    """The folded copy reuses the storage of the tensors it does not change (fp32: all but the folded
    convs; bf16: none) and never touches the original: its parameters keep their values, dtype,
    ``requires_grad`` and memory format, and the original still trains."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), bn, torch.nn.ReLU(),
                                 torch.nn.Conv2d(8, 4, 1), torch.nn.ReLU()).eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    ptrs = {p.data_ptr() for p in module.parameters()}
    net = common.inference_net(module, precision)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]) and v.dtype == before[k].dtype and v.is_contiguous(), k
    assert all(p.requires_grad for p in module.parameters())
    assert all(not p.requires_grad for p in net.parameters())
    assert all(p.dtype == common.precision_dtype(precision) for p in net.parameters())
    shared = [p for p in net.parameters() if p.data_ptr() in ptrs]
    if precision == "fp32":  # the unfolded 1x1 conv's weight and bias; the folded conv has its own
        assert len(shared) == 2 and {tuple(p.shape) for p in shared} == {(4, 8, 1, 1), (4,)}
    else:
        assert not shared
    x = torch.rand(2, 3, 16, 16) * 255
    with torch.no_grad():
        got, ref = net(x.to(common.precision_dtype(precision))).float(), module(x)
    assert torch.allclose(got, ref, rtol=0, atol=(1e-4 if precision == "fp32" else 3e-2) * float(ref.abs().max()))
    module(x).sum().backward()  # the original keeps its autograd
    assert all(p.grad is not None for p in module.parameters())

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_paths(precision):
    frames, box, _ = core.load_source("demo", 4)
    for name in ("siamfc", "gradnet"):
        tr = build_tracker(name, weights="random", device="cuda", precision=precision)
        tr.init(frames[0], box)
        for f in frames[1:]:
            res = tr.update(f)
        assert res.extra["precision"] == precision and np.isfinite(res.box).all()
    res = core.run_bench(["siamfc"], device="cuda", precision=precision, source="demo", frames=4, repeats=1,
                         warmup=0, weights="random")
    row = next(r for r in res.rows if r["label"] == f"siamfc {precision}")
    assert row["fps"] > 0 and sum(row["stages_ms"].values()) > 0 and "gpu" in res.header


def test_memory_is_measured_in_a_fresh_process_per_run(bench_out):
    """Each run's memory comes from its own interpreter (so no run is credited with memory an earlier one
    freed): the first live tracker and a second one beside it, for gradtrack's trackers and the peers."""
    text, data = bench_out
    assert "RSS MB first / another" in text
    for label in ("siamfc fp32", "reference_siamfc fp32"):
        row = _row(data, label)
        assert row["rss_added_mb"] > 0 and row["rss_another_mb"] >= 0
    assert "rss_added_mb" not in _row(data, "siamfc fp32 backbone-only")


def test_memory_probe_that_fails_says_why():
    from gradtrack.bench.memory import measure

    frames = [np.zeros((64, 64, 3), np.uint8)] * 3
    got, why = measure({"tracker": "no_such_tracker", "device": "cpu", "precision": "auto", "backend": "torch"},
                       frames, np.array([10.0, 10, 20, 20]), threads=1)
    assert got is None and "unknown tracker 'no_such_tracker'" in why

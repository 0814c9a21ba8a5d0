"""Model checkpoints: round trip, fp16, and clear errors for every kind of bad file."""
from __future__ import annotations

import os

import pytest
import torch

from gradtrack.checkpoint import (FORMAT, VERSION, CheckpointError, load_model, load_state, read_checkpoint,
                                  save_model)
from gradtrack.models import build_model

SMALL = {"backbone": {"channels": [8, 16, 16, 16, 16]}}


def _model(cfg=SMALL, seed=0):
    torch.manual_seed(seed)
    model = build_model("siamfc", cfg)
    # non-trivial BN statistics so that buffers are part of what is checked
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return model


class Payload:  # a foreign object: weights_only loading must refuse to unpickle it
    def __reduce__(self):
        return (os.getcwd, ())


def test_round_trip(tmp_path):
    model = _model()
    path = save_model(tmp_path / "sub" / "m.pt", "siamfc", model, meta={"epoch": 3, "note": "test"})
    assert path.is_file() and not path.with_suffix(".pt.tmp").exists()
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain data only
    assert raw["format"] == FORMAT and raw["version"] == VERSION and raw["model"] == "siamfc"
    loaded, ckpt = load_model(path, expected="siamfc")
    assert not loaded.training
    assert ckpt["meta"] == {"epoch": 3, "note": "test"}
    assert loaded.cfg == model.cfg
    ref = model.state_dict()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ref[k]), k
    x = torch.rand(1, 3, 127, 127) * 255
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.backbone(x), model.backbone(x))


def test_half_precision_file(tmp_path):
    model = _model()
    path = save_model(tmp_path / "h.pt", "siamfc", model, half=True)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    floats = [v for v in raw["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert raw["state_dict"]["backbone.stem.1.num_batches_tracked"].dtype == torch.int64  # ints untouched
    full = tmp_path / "f.pt"
    save_model(full, "siamfc", model)
    assert path.stat().st_size < 0.7 * full.stat().st_size
    loaded, _ = load_model(path)
    for k, v in loaded.state_dict().items():
        ref = model.state_dict()[k]
        assert v.dtype == ref.dtype, k  # back to the model's own dtype
        if ref.is_floating_point():
            assert torch.equal(v, ref.half().float()), k


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "nope.pt")


def test_wrong_format_files(tmp_path):
    text = tmp_path / "text.pt"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable gradtrack checkpoint"):
        read_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a gradtrack checkpoint"):
        read_checkpoint(other)
    bare = tmp_path / "bare.pt"
    torch.save(_model().state_dict(), bare)  # a bare state_dict is not enough: no config to rebuild from
    with pytest.raises(CheckpointError, match="not a gradtrack checkpoint"):
        load_model(bare)
    future = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1, "model": "siamfc", "config": {}, "state_dict": {}}, future)
    with pytest.raises(CheckpointError, match="version 2 is not supported"):
        read_checkpoint(future)
    partial = tmp_path / "partial.pt"
    torch.save({"format": FORMAT, "version": VERSION, "model": "siamfc", "config": {}}, partial)
    with pytest.raises(CheckpointError, match="no 'state_dict' entry"):
        read_checkpoint(partial)


def test_truncated_file(tmp_path):
    path = save_model(tmp_path / "m.pt", "siamfc", _model())
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: not a readable gradtrack checkpoint"):
        load_model(cut)


def test_pickled_object_is_rejected(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "version": VERSION, "model": "siamfc", "config": {}, "state_dict": {},
                "meta": {"x": Payload()}}, path)
    with pytest.raises(CheckpointError, match="not a readable gradtrack checkpoint"):
        read_checkpoint(path)


def test_mismatched_shapes_are_named(tmp_path):
    path = save_model(tmp_path / "m.pt", "siamfc", _model())
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"] = {"backbone": {"channels": [8, 32, 16, 16, 16]}}  # conv2 wider than the stored tensors
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError) as exc:
        load_model(bad)
    msg = str(exc.value)
    assert "bad.pt does not fit the model" in msg
    assert "shape mismatch" in msg and "backbone.stem.4.weight" in msg
    assert "checkpoint (16, 4, 5, 5) vs model (32, 4, 5, 5)" in msg


def test_missing_and_unexpected_keys_are_named():
    model = _model()
    sd = dict(model.state_dict())
    sd.pop("adjust.bias" if "adjust.bias" in sd else next(iter(sd)))
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing \[.*\].*unexpected \['extra.weight'\]"):
        load_state(model, sd, source="test")


def test_wrong_model_and_bad_config(tmp_path):
    path = save_model(tmp_path / "m.pt", "siamfc", _model())
    with pytest.raises(CheckpointError, match="holds a 'siamfc' model, expected gradnet"):
        load_model(path, expected="gradnet")
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"] = {"backbone": {"chanels": [1]}}
    typo = tmp_path / "typo.pt"
    torch.save(ckpt, typo)
    with pytest.raises(CheckpointError, match=r"cannot rebuild the model from its config: .*unknown key\(s\) \['chanels'\]"):
        load_model(typo)
    ckpt["config"] = [1, 2, 3]
    torch.save(ckpt, typo)
    with pytest.raises(CheckpointError, match="cannot rebuild the model from its config"):
        load_model(typo)
    ckpt["config"], ckpt["model"] = {}, "no-such-model"
    torch.save(ckpt, typo)
    with pytest.raises(CheckpointError, match="unknown model 'no-such-model'"):
        load_model(typo)


def test_malformed_state_dict(tmp_path):
    path = save_model(tmp_path / "m.pt", "siamfc", _model())
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"] = {k: 0.0 for k in ckpt["state_dict"]}  # numbers, not tensors
    bad = tmp_path / "numbers.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="state_dict"):
        load_model(bad)


def test_config_alone_and_legacy_format_files(tmp_path):
    """``read_model_config`` gives the config ``load_model`` rebuilds from (weights unread); a file in
    torch's legacy (pre-zip) format, which cannot be memory-mapped, still loads."""
    from gradtrack.checkpoint import read_model_config

    model = _model()
    path = save_model(tmp_path / "m.pt", "siamfc", model)
    name, cfg = read_model_config(path, expected="siamfc")
    assert name == "siamfc" and cfg == model.cfg
    with pytest.raises(CheckpointError, match="expected gradnet"):
        read_model_config(path, expected="gradnet")
    legacy = tmp_path / "legacy.pt"
    torch.save(torch.load(path, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    loaded, _ = load_model(legacy, expected="siamfc")
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k

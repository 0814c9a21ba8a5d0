"""``gradtrack train --data DIR`` (docs/train_on_your_videos.md): the tutorial's command on a tiny generated
folder, the split, the weights, the before/after scores, and the one-line errors."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from gradtrack.cli import main

TUTORIAL = "docs/train_on_your_videos.md"


def _write_folder(root, n_seq=4, n_frames=8, video_for=()):
    """``n_seq`` procedural sequences in the folder layout (image frames; ``video_for``: indices written as
    ``video.mp4`` instead)."""
    import cv2

    from gradtrack.data import synthetic

    presets = ["easy", "scale", "distractors", "illumination"]
    for k in range(n_seq):
        seq = synthetic.preset(presets[k % len(presets)], seed=10 + k, num_frames=n_frames, size=(160, 120))
        folder = root / f"clip{k}"
        folder.mkdir(parents=True)
        frames = [np.asarray(f) for f in seq.frames]
        if k in video_for:
            w = cv2.VideoWriter(str(folder / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (160, 120))
            for f in frames:
                w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            w.release()
        else:
            for i, f in enumerate(frames):
                cv2.imwrite(str(folder / f"{i + 1:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        rows = [",".join(f"{v:.2f}" for v in b) for b in seq.boxes]
        (folder / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return root


def _tutorial_command() -> list[str]:
    """The ``gradtrack train --data`` line of the tutorial, as argv (without the leading ``gradtrack``)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / TUTORIAL).read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("gradtrack train --data")]
    assert lines, f"{TUTORIAL} shows no `gradtrack train --data` command"
    return lines[0].split()[1:]


def _scores(out: str) -> dict[str, tuple[float, float]]:
    found = re.findall(r"^\s+(.+?)\s+success AUC (\d\.\d{3})\s+precision@20px (\d\.\d{3})", out, re.M)
    return {name.strip(): (float(a), float(p)) for name, a, p in found}


def test_tutorial_command_on_a_tiny_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = _tutorial_command()
    assert argv[:3] == ["train", "--data", "my_videos"], argv
    _write_folder(tmp_path / "my_videos", n_frames=5, video_for=(1,))  # short: tracking dominates the time
    out_dir = tmp_path / "runs" / "my_videos-siamfc"
    # the tutorial's command, shortened: 2 steps of 2 pairs, no progress bar
    rc = main(argv + ["--steps", "2", "--batch-size", "2", "--val-pairs", "4", "--no-progress", "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert rc == 0, out
    split = json.loads((out_dir / "splits.json").read_text())
    assert sorted(split) == ["train", "val"]
    assert len(split["val"]) == 1 and len(split["train"]) == 3
    assert sorted(split["train"] + split["val"]) == [f"clip{k}" for k in range(4)]
    assert f"val (1): {split['val'][0]}" in out
    ckpt = torch.load(out_dir / "final.pt", map_location="cpu", weights_only=True)
    assert ckpt["model"] == "siamfc" and ckpt["training"]["step"] == 2
    shipped = torch.load(_shipped("siamfc"), map_location="cpu", weights_only=True)
    from gradtrack.config import from_dict
    from gradtrack.models import model_config_class

    cls = model_config_class("siamfc")  # the checkpoint's own model config
    assert from_dict(cls, ckpt["config"]) == from_dict(cls, shipped["config"])
    moved = [k for k in shipped["state_dict"]
             if shipped["state_dict"][k].is_floating_point()
             and not torch.allclose(shipped["state_dict"][k].float(), ckpt["state_dict"][k].float())]
    assert moved, "fine-tuning left every weight at its shipped value"
    # before / after on the held-out sequence, as printed and in eval.json
    scores = _scores(out)
    assert set(scores) >= {"shipped siamfc", "fine-tuned"}, out
    summary = json.loads((out_dir / "eval.json").read_text())
    assert summary["val"] == split["val"]
    for name, key in (("shipped siamfc", "start"), ("fine-tuned", "finetuned")):
        auc, prec = scores[name]
        assert 0 <= auc <= 1 and 0 <= prec <= 1
        assert auc == pytest.approx(summary[key]["success_auc"], abs=5e-4)
        assert prec == pytest.approx(summary[key]["precision"], abs=5e-4)
        assert summary[key]["n_sequences"] == 1
    assert "change" in out and f"--weights {out_dir / 'final.pt'}" in out
    # the weights work with the tracker, as the tutorial says
    import gradtrack

    trk = gradtrack.build_tracker("siamfc", weights=str(out_dir / "final.pt"), device="cpu")
    assert trk is not None


def _shipped(name):
    from gradtrack.trackers.common import shipped_weights

    return shipped_weights(name)


def test_the_folders_splits_json_is_used(tmp_path, capsys):
    data = _write_folder(tmp_path / "vids", n_seq=3, n_frames=6)
    (data / "splits.json").write_text(json.dumps({"train": ["clip2", "clip0"], "val": ["clip1"]}))
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "3", "--print-config"])
    assert rc == 0
    cfg = capsys.readouterr().out
    import yaml

    d = yaml.safe_load(cfg)
    assert d["data"]["root"] == str(data.resolve()) and d["data"]["split"] == "train"
    assert d["steps_per_epoch"] * d["epochs"] == 3 and d["siamfc"]["init_from"] == str(_shipped("siamfc"))
    assert d["optim"]["lr"] < 1e-2  # a fine-tune: lower than from scratch
    assert d["data"]["weights"]["synthetic"] == 0
    from gradtrack.training.own_data import plan_finetune

    plan = plan_finetune(data, out=tmp_path / "run2")
    assert plan.split == {"train": ["clip2", "clip0"], "val": ["clip1"]}
    assert json.loads((tmp_path / "run2" / "splits.json").read_text()) == plan.split
    (data / "splits.json").write_text(json.dumps({"train": ["clip0"], "val": ["clip0", "nope"]}))
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "run3")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope" in err[0], err


def test_auto_split_is_deterministic_and_holds_one_out():
    from gradtrack.errors import UsageError
    from gradtrack.training.own_data import auto_split

    names = [f"s{i}" for i in range(10)]
    a = auto_split(names)
    assert a == auto_split(list(names)) and len(a["val"]) == 2 and len(a["train"]) == 8
    assert set(a["train"]) | set(a["val"]) == set(names) and not set(a["train"]) & set(a["val"])
    assert auto_split(names, seed=1) != a
    assert len(auto_split(names[:2])["val"]) == 1 and len(auto_split(names[:3], 0.9)["train"]) == 1
    with pytest.raises(UsageError, match="at least 2 sequences"):
        auto_split(names[:1])


@pytest.mark.parametrize("tracker", ["gradnet", "siammlg"])
def test_shipped_init_starts_from_the_whole_checkpoint(tmp_path, tracker):
    from gradtrack.training.own_data import check_recipe, plan_finetune
    from gradtrack.training.recipes import build_recipe

    data = _write_folder(tmp_path / "v", n_seq=2, n_frames=4)
    plan = plan_finetune(data, tracker=tracker, out=tmp_path / "run", write=False)
    check_recipe(plan)
    model = build_recipe(plan.cfg).build_model()
    sd = torch.load(_shipped(tracker), map_location="cpu", weights_only=True)["state_dict"]
    own = model.state_dict()
    assert own.keys() == sd.keys()
    for k in sd:
        assert torch.equal(own[k], sd[k].to(own[k].dtype)), k
    assert any(p.requires_grad for p in model.parameters())


def test_siamfc_init_from_must_fit_the_model(tmp_path):
    from gradtrack.config import from_dict
    from gradtrack.training.config import TrainConfig
    from gradtrack.training.recipes import build_recipe

    cfg = from_dict(TrainConfig, {"task": "siamfc", "model": {"backbone": {"channels": [8, 16, 16, 16, 16]}},
                                  "siamfc": {"init_from": str(_shipped("siamfc"))}})
    with pytest.raises(ValueError, match="another model config"):
        build_recipe(cfg)
    cfg = from_dict(TrainConfig, {"task": "siamfc", "siamfc": {"init_from": str(_shipped("gradnet"))}})
    with pytest.raises(ValueError, match="holds a 'gradnet' model"):
        build_recipe(cfg)


def _one_line_error(capsys, argv) -> str:
    rc = main(argv)
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert rc == 2, (rc, cap.out, cap.err)
    assert len(lines) == 1 and lines[0].startswith("gradtrack train: error: "), lines
    return lines[0]


def test_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing is written for a refused command (default out: runs/...)
    assert "no such folder" in _one_line_error(capsys, ["train", "--data", str(tmp_path / "missing")])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    assert "no sequence folders" in _one_line_error(capsys, ["train", "--data", str(tmp_path / "empty")])
    data = _write_folder(tmp_path / "v", n_seq=2, n_frames=4)
    msg = _one_line_error(capsys, ["train", "--data", str(data), "--tracker", "nosuch"])
    assert "unknown tracker 'nosuch'" in msg and "siamfc" in msg
    assert "cannot be trained" in _one_line_error(capsys, ["train", "--data", str(data), "--tracker", "opencv_csrt"])
    assert "--init" in _one_line_error(capsys, ["train", "--data", str(data), "--init", "best"])
    assert "gradnet" in _one_line_error(capsys, ["train", "--data", str(data), "--tracker", "gradnet", "--init", "none"])
    one = _write_folder(tmp_path / "one", n_seq=1, n_frames=4)
    assert "at least 2 sequences" in _one_line_error(capsys, ["train", "--data", str(one)])
    assert "not both" in _one_line_error(capsys, ["train", "configs/siamfc.yaml", "--data", str(data)])
    assert "applies to --data" in _one_line_error(capsys, ["train", "configs/siamfc.yaml", "--tracker", "gradnet"])
    assert "--data DIR" in _one_line_error(capsys, ["train"])
    # a tracker without shipped weights
    import gradtrack.trackers.common as common

    monkeypatch.setattr(common, "WEIGHTS_DIR", tmp_path / "no_weights")
    msg = _one_line_error(capsys, ["train", "--data", str(data), "--tracker", "siammlg", "--init", "shipped"])
    assert "no weights are shipped for 'siammlg'" in msg
    assert not (tmp_path / "runs").exists()


def test_imagenet_and_random_starts(tmp_path, capsys):
    import yaml

    from gradtrack.checkpoint import load_model
    from gradtrack.training.own_data import plan_finetune, save_start_weights

    data = _write_folder(tmp_path / "v", n_seq=2, n_frames=4)
    assert main(["train", "--data", str(data), "--init", "imagenet", "--out", str(tmp_path / "r"), "--print-config"]) == 0
    d = yaml.safe_load(capsys.readouterr().out)
    assert d["model"]["backbone"]["name"] == "efficientnet_lite0" and d["model"]["backbone"]["init"] == "imagenet"
    assert d["siamfc"]["init_from"] == "" and d["optim"]["lr"] == 1e-2
    assert not (tmp_path / "r").exists()  # --print-config writes nothing
    msg = _one_line_error(capsys, ["train", "--data", str(data), "--tracker", "siammlg", "--init", "imagenet"])
    assert "only siamfc" in msg
    plan = plan_finetune(data, init="none", out=tmp_path / "run")
    assert plan.start is None and plan.cfg.model == {}
    path = save_start_weights(plan)
    assert path == tmp_path / "run" / "start.pt"
    a, ck = load_model(path, expected="siamfc")
    assert ck["meta"]["init"] == "none"
    b, _ = load_model(save_start_weights(plan))  # the same seed: the same initial weights
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k

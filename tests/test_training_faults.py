"""Training faults (issue 12): resume from the newest intact checkpoint or refuse, no log truncated, no
checkpoint of a later step pruned, one run per folder; ``train`` CLI errors as one line with exit 2."""
from __future__ import annotations

import csv
import logging

import pytest
import torch
import yaml

from gradtrack.checkpoint import CheckpointError, save_model
from gradtrack.cli import main
from gradtrack.config import to_dict
from gradtrack.errors import UsageError
from gradtrack.models import build_model
from gradtrack.training.trainer import _prune, train
from test_training import TINY_BACKBONE, tiny_config

SLIM_MLG = {"backbone": {"channels": [8, 8, 16, 32], "blocks": [1, 1, 1]}, "neck_channels": 32, "head_hidden": 32,
            "sk_cfg": {"groups": 8, "reduction": 4, "min_dim": 8}}


def _steps(out):
    with (out / "metrics.csv").open() as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, caplog):
    cfg = tiny_config(tmp_path, checkpoint_every=2, keep_checkpoints=2)
    out = tmp_path / "run"
    first = train(cfg, out=out, stop_step=6, progress=False)
    want = {k: v.clone() for k, v in first.model.state_dict().items()}
    assert sorted(p.name for p in out.glob("step_*.pt")) == ["step_0000004.pt", "step_0000006.pt"]
    _truncate(out / "last.pt")
    _truncate(out / "step_0000006.pt")
    with caplog.at_level(logging.WARNING, "gradtrack.training"):
        res = train(cfg, out=out, resume=True, stop_step=6, progress=False)
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "step_0000004.pt (step 4)" in msg and "last.pt: not a readable" in msg and "step_0000006.pt: not" in msg
    assert res.step == 6 and _steps(out) == [1, 2, 3, 4, 5, 6]
    for k, v in res.model.state_dict().items():  # steps 5 and 6 redone exactly
        assert torch.equal(v, want[k]), k
    for p in [out / "last.pt", *out.glob("step_*.pt")]:
        _truncate(p)
    with pytest.raises(CheckpointError, match="no intact checkpoint .*last.pt.*step_0000006.pt.*step_0000004.pt"):
        train(cfg, out=out, resume=True, stop_step=6, progress=False)
    assert _steps(out) == [1, 2, 3, 4, 5, 6]  # the refusal touched nothing


def test_resume_without_last_pt_uses_step_checkpoints_and_keeps_the_log(tmp_path, caplog):
    cfg = tiny_config(tmp_path, checkpoint_every=2, keep_checkpoints=2)
    out = tmp_path / "run"
    train(cfg, out=out, stop_step=4, progress=False)
    (out / "last.pt").unlink()
    with pytest.raises(UsageError, match="holds another run .*step_0000004.pt.*--resume"):
        train(cfg, out=out, stop_step=4, progress=False)  # a fresh start would mix two runs
    assert _steps(out) == [1, 2, 3, 4]
    with caplog.at_level(logging.WARNING, "gradtrack.training"):
        res = train(cfg, out=out, resume=True, stop_step=5, progress=False)
    assert "last.pt is missing" in caplog.text and res.step == 5
    assert _steps(out) == [1, 2, 3, 4, 5]
    assert sorted(p.name for p in out.glob("step_*.pt")) == ["step_0000004.pt", "step_0000005.pt"]  # keep 2


def test_prune_never_deletes_a_checkpoint_of_a_later_step(tmp_path):
    for n in (2, 4, 6, 35, 40):
        (tmp_path / f"step_{n:07d}.pt").write_bytes(b"x")
    _prune(tmp_path, 2, 6)
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_0000004.pt", "step_0000006.pt",
                                                                 "step_0000035.pt", "step_0000040.pt"]


# -- the train CLI: one line, exit 2, the file or key named ------------------------------------------------------


def _yaml(tmp_path, cfg, name="c.yaml", **edit):
    d = to_dict(cfg)
    for dotted, value in edit.items():
        *parents, key = dotted.split("__")
        sec = d
        for p in parents:
            sec = sec[p]
        sec[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(d))
    return path


def _run(capsys, *argv):
    rc = main(["train", *map(str, argv), "--no-progress"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if " INFO " not in ln]
    assert rc == 2 and "Traceback" not in err and len(lines) == 1 and lines[0].startswith("gradtrack train: error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def others(tmp_path_factory):
    """Checkpoints of each model family (tiny): a siamfc.init_from, gradnet.init_from or siammlg.init_from of another."""
    d = tmp_path_factory.mktemp("ckpts")
    base = to_dict(tiny_config(d))["model"]
    return {"siamfc": save_model(d / "siamfc.pt", "siamfc", build_model("siamfc", base)),
            "gradnet": save_model(d / "gradnet.pt", "gradnet", build_model("gradnet", {"siamfc": base, "template": TINY_BACKBONE})),
            "siammlg": save_model(d / "siammlg.pt", "siammlg", build_model("siammlg", SLIM_MLG))}


@pytest.mark.parametrize("task,given,says", [("siamfc", "gradnet", "holds a 'gradnet' model"),
                                             ("gradnet", "siammlg", "holds 'siammlg'"),
                                             ("siammlg", "siamfc", "must be a siammlg checkpoint")])
def test_init_from_another_model(tmp_path, capsys, others, task, given, says):
    mlg = {"task": "siammlg", "model": SLIM_MLG, "data__crop": {"search_size": 255}} if task == "siammlg" else {}
    path = _yaml(tmp_path, tiny_config(tmp_path, task=task if not mlg else "siamfc"),
                 **mlg, **{f"{task}__init_from": str(others[given])})
    line = _run(capsys, path, "--out", tmp_path / "o", "--steps", 1)
    assert f"{task}.init_from" in line and str(others[given]) in line and says in line


def test_config_and_argument_errors(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    seq = {"sequences": 0.5, "stills": 0.0, "synthetic": 1.0}
    cases = [({"data__splits_file": str(tmp_path / "nosuch.json"), "data__root": str(tmp_path), "data__weights": seq},
              [], ["data.splits_file", "nosuch.json"]),
             ({"data__format": "bogus", "data__root": str(tmp_path), "data__weights": seq}, [], ["data.format", "'bogus'"]),
             ({"amp": "fp16", "device": "cpu"}, [], ["amp: fp16"]),
             ({}, ["--steps", -1], ["--steps", "-1"]),
             ({}, ["--out", __file__], ["--out", __file__])]
    if not torch.cuda.is_available():
        cases.append(({"device": "cuda"}, [], ["device: cuda", "not available"]))
    for edit, extra, says in cases:
        path = _yaml(tmp_path, cfg, **edit)
        out = ["--out", tmp_path / "o"] if "--out" not in extra else []
        line = _run(capsys, path, "--steps", 1, *out, *extra)
        assert all(s in line for s in says), (edit, extra, line)
        assert not (tmp_path / "o").exists()  # refused before anything was written
    line = _run(capsys, tmp_path / "missing.yaml")
    assert "missing.yaml" in line and "not found" in line
    dup = tmp_path / "dup.yaml"
    dup.write_text(_yaml(tmp_path, cfg).read_text() + "seed: 4\n")
    line = _run(capsys, dup)
    assert "dup.yaml" in line and "duplicate key 'seed'" in line


def test_run_folder_errors(tmp_path, capsys):
    path = _yaml(tmp_path, tiny_config(tmp_path))
    out = tmp_path / "o"
    out.mkdir()
    (out / "step_0000040.pt").write_bytes(b"torn")
    line = _run(capsys, path, "--out", out, "--steps", 1)
    assert str(out) in line and "step_0000040.pt" in line and "--resume" in line
    line = _run(capsys, path, "--out", out, "--steps", 1, "--resume")
    assert "no intact checkpoint" in line and "step_0000040.pt" in line and "last.pt is missing" in line
    assert sorted(p.name for p in out.iterdir()) == ["step_0000040.pt"]


def _two_group_optimizer(order):
    import torch

    a, b = torch.nn.Linear(3, 3), torch.nn.Linear(2, 1, bias=False)
    groups = {"heads": {"params": list(a.parameters()), "lr": 0.1, "name": "heads"},
              "backbone": {"params": list(b.parameters()), "lr": 0.01, "name": "backbone"}}
    opt = torch.optim.SGD([groups[k] for k in order], lr=0.1, momentum=0.9)
    loss = a(torch.ones(1, 3)).sum() + b(torch.ones(1, 2)).sum()
    loss.backward()
    opt.step()
    return opt


@pytest.mark.parametrize("named", [True, False])
def test_resume_matches_optimizer_groups_saved_in_another_order(named):
    """A checkpoint whose optimiser groups were saved in another order (an older version of a recipe) is
    matched by name, or by size where unique; the momentum buffers land on the right parameters."""
    import torch

    from gradtrack.training.trainer import _reorder_groups

    saved_opt = _two_group_optimizer(["backbone", "heads"])
    saved = saved_opt.state_dict()
    if not named:
        for g in saved["param_groups"]:
            g.pop("name")
    now = _two_group_optimizer(["heads", "backbone"])
    now.load_state_dict(_reorder_groups(saved, now.param_groups, "ckpt.pt"))
    lrs = [g["lr"] for g in now.param_groups]
    assert lrs == [0.1, 0.01]
    buf_saved = [saved_opt.state[p]["momentum_buffer"] for p in saved_opt.param_groups[1]["params"]]
    buf_now = [now.state[p]["momentum_buffer"] for p in now.param_groups[0]["params"]]
    assert all(torch.equal(x, y) for x, y in zip(buf_saved, buf_now))


def test_resume_with_other_trainable_parameters_is_a_clear_error():
    import torch

    from gradtrack.checkpoint import CheckpointError
    from gradtrack.training.trainer import _reorder_groups

    saved = _two_group_optimizer(["backbone", "heads"]).state_dict()
    other = torch.optim.SGD([torch.nn.Linear(4, 4).weight], lr=0.1)
    with pytest.raises(CheckpointError, match="parameter groups"):
        _reorder_groups(saved, other.param_groups, "ckpt.pt")

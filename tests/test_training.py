"""Training loop: configs, schedules, loss decrease, exact resume, GradNet's second-order path, export."""
from __future__ import annotations

import csv

import pytest
import torch
import yaml

from gradtrack.checkpoint import load_model, read_checkpoint, save_model
from gradtrack.config import ConfigError, from_dict, from_yaml
from gradtrack.data.samples import CropSamples
from gradtrack.data.sources import PairDataset, build_training_sources, fixed_batches
from gradtrack.models import centered_label
from gradtrack.training.config import TrainConfig, lr_factor
from gradtrack.training.recipes import build_recipe
from gradtrack.training.recipes.siamese import gradnet_losses
from gradtrack.training.trainer import train

TINY_BACKBONE = {"channels": [8, 16, 16, 16, 16]}


def tiny_config(tmp_path, task="siamfc", **over) -> TrainConfig:
    # adjust 0.05: the tiny backbone (16 channels, 2x2 template) correlates ~64 terms, not ~9000
    model = {"backbone": TINY_BACKBONE, "exemplar_size": 95, "instance_size": 175, "adjust_scale": 0.05}
    if task == "gradnet":
        model = {"siamfc": model, "template": TINY_BACKBONE}
    data = {
        "weights": {"sequences": 0.0, "stills": 0.0, "synthetic": 1.0},
        "synthetic": {"count": 3, "presets": ["easy", "scale", "distractors"], "num_frames": 24, "seed": 5},
        "crop": {"exemplar_size": 95, "search_size": 159, "instance_size": 175},
        "splits_file": None, "num_workers": 0, "val_pairs": 0,
    }
    cfg = {"task": task, "model": model, "data": data, "epochs": 2, "steps_per_epoch": 4, "batch_size": 2,
           "seed": 3, "amp": "none", "threads": 1, "checkpoint_every": 3, "val_every": 100, "log_every": 1,
           "out": str(tmp_path / "run")}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return from_dict(TrainConfig, cfg)


def test_unknown_keys_are_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"task": "siamfc", "epoch": 3}))
    with pytest.raises(ConfigError, match="epoch"):
        from_yaml(TrainConfig, p)
    p.write_text(yaml.safe_dump({"task": "siamfc", "optim": {"learning_rate": 0.1}}))
    with pytest.raises(ConfigError, match="learning_rate"):
        from_yaml(TrainConfig, p)
    p.write_text(yaml.safe_dump({"task": "siamfc", "data": {"weights": {"imagenet": 1.0}}}))
    with pytest.raises(ConfigError, match="imagenet"):
        from_yaml(TrainConfig, p)


def test_schedules_match_the_papers(tmp_path):
    cfg = tiny_config(tmp_path, epochs=50, steps_per_epoch=10)
    lr = [cfg.optim.lr * lr_factor(e * 10, cfg) for e in range(50)]
    gamma = (1e-5 / 1e-2) ** (1 / 50)
    assert lr[0] == pytest.approx(1e-2) and lr[1] == pytest.approx(1e-2 * gamma)
    assert lr[49] == pytest.approx(1e-2 * gamma ** 49)
    assert lr_factor(15, cfg) == lr_factor(10, cfg)  # constant within an epoch
    g = tiny_config(tmp_path, epochs=50, steps_per_epoch=10, optim={"schedule": "logspace"})
    import numpy as np

    ref = np.logspace(-2, -5, 50)
    got = [g.optim.lr * lr_factor(e * 10, g) for e in range(50)]
    assert np.allclose(got, ref, rtol=1e-9)
    assert g.optim.lr * lr_factor(10_000, g) == pytest.approx(1e-5)


def _fixed_batch(cfg, n=4):
    sources = build_training_sources(cfg.data)
    ds = PairDataset(sources.mixture, CropSamples(cfg.data.crop), None, seed=0)
    return fixed_batches(ds, n, n)[0]


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config(tmp_path)
    model = build_recipe(cfg).build_model()
    batch = _fixed_batch(cfg)
    step = build_recipe(cfg).step(model, torch.device("cpu"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-2, momentum=0.9)
    model.train()
    first = None
    for _ in range(25):
        loss, _ = step(batch)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
    model.train()
    last = float(step(batch)[0].detach())
    assert last < 0.7 * first, (first, last)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_continues_exactly(tmp_path):
    cfg = tiny_config(tmp_path, checkpoint_every=3)
    full = train(cfg, out=tmp_path / "full", stop_step=6, progress=False)
    part = train(cfg, out=tmp_path / "part", stop_step=3, progress=False)
    assert part.step == 3
    ck = read_checkpoint(tmp_path / "part" / "last.pt")
    assert ck["training"]["step"] == 3 and "rng" in ck["training"] and "optimizer" in ck["training"]
    resumed = train(cfg, out=tmp_path / "part", resume=True, stop_step=6, progress=False)
    assert resumed.step == 6
    a, b = _state(full.model), _state(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the optimiser state matches too, and the metrics log has one row per step, without duplicates
    oa = read_checkpoint(tmp_path / "full" / "last.pt")["training"]["optimizer"]["state"]
    ob = read_checkpoint(tmp_path / "part" / "last.pt")["training"]["optimizer"]["state"]
    for k in oa:
        assert torch.equal(oa[k]["momentum_buffer"], ob[k]["momentum_buffer"])
    with (tmp_path / "part" / "metrics.csv").open() as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == [1, 2, 3, 4, 5, 6]
    # and the run differs from its start (it did train)
    torch.manual_seed(cfg.seed)
    init = build_recipe(cfg).build_model()
    assert any(not torch.equal(v, init.state_dict()[k]) for k, v in a.items() if v.is_floating_point())


def test_a_non_finite_step_is_skipped_and_leaves_the_bn_statistics_alone(tmp_path, monkeypatch):
    """A batch whose forward is NaN: the step is skipped (no weight change) and the running BN statistics
    its forward wrote are put back, so the following steps train on finite weights and statistics."""
    from gradtrack.training.recipes.siamese import SiamFCRecipe

    original = SiamFCRecipe.step
    seen = {"calls": 0, "state": None}

    def poisoned(self, model, device):
        inner = original(self, model, device)

        def step(batch, create_graph=True):
            seen["calls"] += 1
            if seen["calls"] == 3:
                seen["state"] = _state(model)
                batch = {**batch, "x": batch["x"] * float("nan")}
            return inner(batch, create_graph)

        return step

    monkeypatch.setattr(SiamFCRecipe, "step", poisoned)
    cfg = tiny_config(tmp_path, checkpoint_every=100)
    res = train(cfg, out=tmp_path / "run", stop_step=5, progress=False)
    assert res.step == 5 and seen["calls"] == 5
    state = res.model.state_dict()
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    # the statistics right after the skipped step equal those before it: checked through a rerun that stops there
    monkeypatch.setattr(SiamFCRecipe, "step", poisoned)
    seen["calls"] = 0
    at3 = train(cfg, out=tmp_path / "run3", stop_step=3, progress=False).model.state_dict()
    for k, v in seen["state"].items():
        assert torch.equal(at3[k], v), k


def _siamfc_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path)
    model = build_recipe(cfg).build_model()
    return save_model(tmp_path / "siamfc_tiny.pt", "siamfc", model)


def test_gradnet_loss_after_reaches_u2_and_is_second_order(tmp_path):
    ck = _siamfc_checkpoint(tmp_path)
    cfg = tiny_config(tmp_path, task="gradnet", gradnet={"init_from": str(ck), "k": 3})
    model = build_recipe(cfg).build_model()
    model.train()
    model.siamfc.eval()
    torch.manual_seed(0)
    z = torch.rand(6, 3, 95, 95) * 255
    x = torch.rand(6, 3, 159, 159) * 255
    label, weight = centered_label(9, 2)
    grads = {}
    for cg in (True, False):
        model.zero_grad()
        loss0, loss1 = gradnet_losses(model, z, x, label, weight, k=3, grouped=True, create_graph=cg)
        loss1.backward()
        grads[cg] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    g = grads[True]
    assert g["u2.conv.weight"].abs().sum() > 0 and torch.isfinite(g["u2.conv.weight"]).all()
    assert not any(n.startswith("siamfc.") for n in g)  # frozen search branch
    # with create_graph the loss after the update also differentiates through the gradient itself
    head = [n for n in g if n.startswith("template.head") and n.endswith("weight")]
    assert any(not torch.allclose(g[n], grads[False][n]) for n in head)


@pytest.mark.parametrize("variant", ["full", "no_gradient", "no_generalization", "w2u"])
def test_gradnet_variants_train_with_the_search_branch_frozen(tmp_path, variant):
    ck = _siamfc_checkpoint(tmp_path)
    tv = "full" if variant == "w2u" else variant
    cfg = tiny_config(tmp_path, task="gradnet", gradnet={"init_from": str(ck), "k": 2, "variant": tv},
                      optim={"schedule": "logspace"}, batch_size=2)
    if variant == "w2u":
        cfg = tiny_config(tmp_path, task="gradnet", gradnet={"init_from": str(ck), "k": 2},
                          model={**cfg.model, "shared_u1": False}, batch_size=2)
    torch.manual_seed(cfg.seed)  # the same initialisation as train() draws
    start = build_recipe(cfg).build_model().state_dict()
    res = train(cfg, out=tmp_path / variant, stop_step=3, progress=False)
    ref = read_checkpoint(ck)["state_dict"]
    for k, v in res.model.siamfc.state_dict().items():
        assert torch.equal(v, ref[k]), k
    end = res.model.state_dict()
    moved = {k.split(".")[0] for k in end if end[k].is_floating_point() and not torch.equal(end[k], start[k])}
    model, ckpt = load_model(tmp_path / variant / "last.pt", expected="gradnet")
    assert model.cfg.use_gradient is (variant != "no_gradient")
    if variant == "no_gradient":
        assert "u2" not in moved and "template" in moved  # the gradient sub-net is never used
    else:
        assert {"template", "u2"} <= moved
        assert float(read_row(tmp_path / variant, 3)["loss_before"]) > 0
    if variant == "w2u":
        assert "u1_init" in moved and model.u1_init is not None


def test_template_init_from_siamfc_covers_both_u1_of_w2u(tmp_path):
    """init_template_from_siamfc copies SiamFC's conv1-5 into the template branch and, for "w 2U", its
    conv3-5 into the initial template's own U1 as well (otherwise that U1 would start random)."""
    ck = _siamfc_checkpoint(tmp_path)
    cfg = tiny_config(tmp_path, task="gradnet", gradnet={"init_from": str(ck), "k": 2, "init_template_from_siamfc": True})
    cfg = tiny_config(tmp_path, task="gradnet", gradnet={"init_from": str(ck), "k": 2, "init_template_from_siamfc": True},
                      model={**cfg.model, "shared_u1": False})
    model = build_recipe(cfg).build_model()
    ref = read_checkpoint(ck)["state_dict"]
    heads = {k[len("backbone.head."):]: v for k, v in ref.items() if k.startswith("backbone.head.")}
    assert heads and model.u1_init is not None
    for k, v in model.u1_init.state_dict().items():  # U1 = backbone head (+ u1_init_neck)
        assert torch.equal(v, heads[k]), k
    for k, v in model.template.state_dict().items():
        assert torch.equal(v, ref["backbone." + k]), k


def read_row(run, step):
    with (run / "metrics.csv").open() as f:
        for r in csv.DictReader(f):
            if int(r["step"]) == step:
                return r
    raise KeyError(step)


def test_export_fp16_keeps_responses(tmp_path):
    from gradtrack.training.export import export_weights

    cfg = tiny_config(tmp_path)
    train(cfg, out=tmp_path / "r", stop_step=2, progress=False)
    info = export_weights(tmp_path / "r", tmp_path / "w.pt", card=tmp_path / "w.md", hardware="test")
    assert info["fp16_check"]["same_peak"] and info["fp16_check"]["relative"] < 1e-2
    ck = torch.load(tmp_path / "w.pt", map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in ck["state_dict"].values() if v.is_floating_point())
    assert "training" not in ck
    model, _ = load_model(tmp_path / "w.pt", expected="siamfc")
    assert next(model.parameters()).dtype == torch.float32
    card = (tmp_path / "w.md").read_text()
    assert "steps: 2" in card and "fp16" in card


def test_cli_trains_and_resumes(tmp_path):
    import argparse

    from gradtrack.training.cli import register_cli

    cfg = tiny_config(tmp_path)
    from gradtrack.config import to_dict

    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(to_dict(cfg)))
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    register_cli(sub)
    args = ap.parse_args(["train", str(p), "--out", str(tmp_path / "cli"), "--steps", "2", "--no-progress"])
    assert args.func(args) == 0
    args = ap.parse_args(["train", str(p), "--out", str(tmp_path / "cli"), "--steps", "3", "--resume", "--no-progress"])
    assert args.func(args) == 0
    assert read_checkpoint(tmp_path / "cli" / "last.pt")["training"]["step"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: siamfc\nbogus: 1\n")
    args = ap.parse_args(["train", str(bad)])
    assert args.func(args) == 2


# -- configs: composition, resolution, every shipped file ------------------------------------------------
REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((REPO / "configs").rglob("*.yaml"))


def _fingerprint(cfg) -> str:
    import hashlib
    import json

    from gradtrack.config import to_dict

    data = to_dict(cfg)
    if data["siamfc"].get("init_from") == "":  # a field added after the fingerprints were recorded, at its default
        del data["siamfc"]["init_from"]
    if data["siamfc"] == {"freeze": [], "backbone_lr_mult": 1.0}:  # a section added after 0f8b567, at its defaults
        del data["siamfc"]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def test_every_config_builds_its_recipe_and_model(monkeypatch):
    """Every file in configs/ loads (bases composed), builds its recipe and model, and the model's score map on
    the training crops has the size the recipe's labels are made for; the composed files resolve to their
    recorded fingerprints."""
    from gradtrack.models import build_model
    from gradtrack.training.config import load_train_config

    monkeypatch.chdir(REPO)
    assert len(CONFIG_FILES) >= 23 + 3
    got, seen = {}, set()
    for path in CONFIG_FILES:
        cfg = load_train_config(path)
        recipe = build_recipe(cfg)
        model_cfg = getattr(recipe, "model_cfg", None) or recipe.model_dict()
        key = (cfg.task, repr(model_cfg), repr(cfg.data.crop))
        if key not in seen:  # one forward pass per distinct model and crops
            seen.add(key)
            model = build_model(cfg.task, model_cfg)
            c = cfg.data.crop
            score = recipe.responses(model, torch.zeros(1, 3, c.exemplar_size, c.exemplar_size),
                                     torch.zeros(1, 3, c.search_size, c.search_size))["score"]
            assert score.shape[-2:] == (recipe.geometry.score_size,) * 2, path
        name = str(path.relative_to(REPO / "configs"))
        if name in FINGERPRINTS:
            got[name] = _fingerprint(cfg)
    assert got == FINGERPRINTS


def test_print_config_shows_the_resolved_config(tmp_path, capsys):
    from gradtrack.config import to_dict
    from gradtrack.training.cli import main
    from gradtrack.training.config import load_train_config

    path = REPO / "configs" / "gradnet_cpu_finetune_wo_mg.yaml"
    assert main(["train", str(path), "--print-config"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown == to_dict(load_train_config(path))
    assert shown["gradnet"]["variant"] == "no_gradient" and shown["optim"]["lr"] == 1e-3  # leaf, then its base
    assert shown["data"]["filter"]["min_area"] == 100.0  # from the root base


def test_paths_are_resolved_once_against_the_config_folder(tmp_path, monkeypatch):
    from gradtrack.training.config import load_train_config

    work, folder = tmp_path / "work", tmp_path / "cfgs"
    for d in ("seqs", "masks"):
        (folder / d).mkdir(parents=True)
    (folder / "splits.json").write_text("{}")
    (folder / "r34.pth").write_text("")
    (work / "here").mkdir(parents=True)
    monkeypatch.chdir(work)
    (folder / "root.yaml").write_text(yaml.safe_dump({"task": "siammlg", "data": {
        "root": "seqs", "splits_file": "splits.json", "mask_datasets": [{"format": "davis", "root": "masks"}]}}))
    (folder / "run.yaml").write_text("base: root.yaml\nmodel: {backbone: {init: r34.pth}}\nsiammlg: {init_from: here}\n"
                                     "out: runs/x\n")
    cfg = load_train_config(folder / "run.yaml")
    assert cfg.data.root == str(folder / "seqs") and cfg.data.splits_file == str(folder / "splits.json")
    assert cfg.data.mask_datasets[0].root == str(folder / "masks")
    assert cfg.model["backbone"]["init"] == str(folder / "r34.pth")
    assert cfg.siammlg.init_from == "here"  # exists as given (relative to the working directory): kept
    assert cfg.out == "runs/x"  # the run folder is relative to the working directory
    (folder / "other.yaml").write_text(yaml.safe_dump({"task": "siamfc", "data": {"root": "nowhere"},
                                                       "model": {"backbone": {"init": "imagenet"}}}))
    cfg = load_train_config(folder / "other.yaml")
    assert cfg.data.root == "nowhere" and cfg.model["backbone"]["init"] == "imagenet"  # nothing to resolve to


# sha256 (first 12 hex digits) of every resolved config (json, sorted keys).  They were taken when every
# composed file was checked to resolve to its 0f8b567 version (before composition) with the renamed fields
# (siammlg.augment -> data.augment, siammlg.mask_datasets -> data.mask_datasets, siammlg.init_backbone ->
# model.backbone.init); change one only on purpose.  siamfc_cpu.yaml left the list on purpose (2 Dec 2026):
# it now trains on the new train split, and its splits_file resolves to a path inside the checkout.
FINGERPRINTS = {
    "base/gradnet.yaml": "361f192e5c7d",
    "base/gradnet_cpu.yaml": "aa2ae4a2d8a4",
    "base/siamfc.yaml": "6c3938fcc35c",
    "base/siammlg.yaml": "4fd1e47ca59f",
    "base/siammlg_cpu.yaml": "7fefbb0d0be6",
    "gradnet.yaml": "361f192e5c7d",
    "gradnet_cpu.yaml": "aa2ae4a2d8a4",
    "gradnet_cpu_finetune.yaml": "5775811066ab",
    "gradnet_cpu_finetune_w2u.yaml": "f8c4dc455230",
    "gradnet_cpu_finetune_wo_m.yaml": "4fae234d747e",
    "gradnet_cpu_finetune_wo_mg.yaml": "1eaefce57dc0",
    "gradnet_w2u.yaml": "5c2275a13d37",
    "gradnet_wo_m.yaml": "562c7063cd08",
    "gradnet_wo_mg.yaml": "cb07962988ec",
    "siamfc.yaml": "6c3938fcc35c",
    "siammlg_ablation_full_base.yaml": "54155f073fec",
    "siammlg_ablation_full_update.yaml": "e6a059797ffb",
    "siammlg_ablation_gradient_base.yaml": "83d61d8b48cc",
    "siammlg_ablation_gradient_update.yaml": "d16a6bdf5c2e",
    "siammlg_ablation_resnet34.yaml": "ceeddea0aeff",
    "siammlg_ablation_sk.yaml": "7b7bd909f6a0",
    "siammlg_base.yaml": "4fd1e47ca59f",
    "siammlg_base_cpu.yaml": "7fefbb0d0be6",
    "siammlg_gradient_base_cpu.yaml": "1840bc643d71",
    "siammlg_gradient_update_cpu.yaml": "6cd86ff13aba",
    "siammlg_update.yaml": "cd4b51e96b12",
    "siammlg_update_cpu.yaml": "701448f97bad",
}


def test_the_loop_and_the_export_know_no_family_by_name():
    """Family decisions belong to the recipes: the loop and the export never name a task."""
    import re

    for mod in ("trainer.py", "export.py"):
        text = (REPO / "src" / "gradtrack" / "training" / mod).read_text()
        code = re.sub(r'""".*?"""', "", text, flags=re.S)  # docstrings may mention families
        hits = re.findall(r".*(?:siamfc|gradnet|siammlg|task ==|mlg).*", code, flags=re.I)
        assert not hits, f"{mod}: {hits}"


def test_siamfc_fine_tuning_freezes_prefixes_and_scales_the_backbone_lr(tmp_path):
    """siamfc.freeze keeps those parameters (and their BN statistics) fixed; backbone_lr_mult puts the rest
    of the backbone in its own optimiser group at that multiple of lr; the loop leaves frozen ones as they were."""
    cfg = tiny_config(tmp_path, siamfc={"freeze": ["backbone.stem"], "backbone_lr_mult": 0.1})
    recipe = build_recipe(cfg)
    model = recipe.build_model()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("backbone.stem.") or n == "adjust.scale" for n in frozen)
    groups = recipe.param_groups(model)
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone"]["lr"] == pytest.approx(0.1 * cfg.optim.lr) and by_name["heads"]["lr"] == cfg.optim.lr
    assert not any(p is q for g in groups for p in g["params"] for q in model.backbone.stem.parameters())
    recipe.set_train_mode(model)
    bns = [m for m in model.backbone.stem.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and model.backbone.head.training
    one = train(cfg, out=tmp_path / "one", stop_step=1).model  # same seed, so the same initial weights
    three = train(cfg, out=tmp_path / "three", stop_step=3).model
    s1, s3 = one.state_dict(), three.state_dict()
    assert all(torch.equal(s1[k], s3[k]) for k in s1 if k.startswith("backbone.stem."))
    assert not all(torch.equal(s1[k], s3[k]) for k in s1 if k.startswith("backbone.head."))
    with pytest.raises(ValueError, match="siamfc.freeze: 'backbone.nothing' matches no parameter"):
        build_recipe(tiny_config(tmp_path, siamfc={"freeze": ["backbone.nothing"]})).build_model()
    with pytest.raises(ConfigError, match="the siamfc section applies to task: siamfc only"):
        tiny_config(tmp_path, task="gradnet", siamfc={"backbone_lr_mult": 0.5})
    with pytest.raises(ConfigError, match="keep_checkpoints must be >= 0"):
        tiny_config(tmp_path, keep_checkpoints=-1)

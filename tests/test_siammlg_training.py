"""SiamMLG training: pair sampler targets, loss routing, both stages, schedule, configs, CLI end to end."""
from __future__ import annotations

import copy
import csv
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import default_collate

from gradtrack.checkpoint import read_checkpoint, save_model
from gradtrack.config import ConfigError, from_dict, load_yaml, to_dict
from gradtrack.data.augment import AugmentConfig, CropConfig
from gradtrack.data.masks import MaskDatasetConfig, MaskVideo
from gradtrack.data.pairs import BoxFilter
from gradtrack.data.samples import MASK_BOX, MASK_EXACT, MASK_NONE, MaskSamples, score_label
from gradtrack.data.sources import (DataConfig, GroupDataset, PairDataset, PairMixture, build_training_sources,
                                    mask_dataset_videos)
from gradtrack.data.stills import StillConfig, StillImages
from gradtrack.models.heads import decode_ltrb
from gradtrack.models.siammlg import SiamMLGConfig
from gradtrack.training.config import SiamMLGTrainConfig, TrainConfig, load_train_config
from gradtrack.training.recipes.siammlg import SiamMLGRecipe
from gradtrack.training.siammlg_losses import ltrb_targets

REPO = Path(__file__).resolve().parents[1]
SLIM = {"backbone": {"channels": [8, 8, 16, 32], "blocks": [1, 1, 1]}, "neck_channels": 32, "head_hidden": 32,
        "sk_cfg": {"groups": 8, "reduction": 4, "min_dim": 8}}
GEO = SiamMLGConfig().geometry()
CROP = CropConfig(search_size=255)
BUILD = MaskSamples(CROP, GEO)
NO_PHOTO = dict(brightness=0, contrast=0, saturation=0, channel_gain=0, grey_prob=0, blur_prob=0)
MLG_AUG = dict(translate=64.0, stretch=0.18, aspect=0.0, exemplar_translate=4.0, exemplar_stretch=0.05, negative_prob=0.2)


def aug(photometric: bool = True, **over) -> AugmentConfig:
    """SiamMLG's augmentation (the configs' crop part), optionally without the photometric part."""
    return from_dict(AugmentConfig, {**MLG_AUG, **({} if photometric else NO_PHOTO), **over})


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def synth_pool(count: int = 3, frames: int = 16, seed: int = 1000):
    data = from_dict(DataConfig, {"weights": {"sequences": 0.0, "stills": 0.0, "synthetic": 1.0}, "splits_file": None,
                                  "max_gap": 8, "synthetic": {"count": count, "num_frames": frames, "seed": seed,
                                                              "presets": ["easy", "scale", "rotation"]}})
    pool = build_training_sources(data, masks=True).mixture.sources[0]
    assert len(pool) == count and all(isinstance(v, MaskVideo) for v in pool.videos)
    return pool


def still_pool() -> StillImages:
    rng = np.random.default_rng(0)
    stills = StillImages(StillConfig())
    for i in range(3):  # smooth random "photos"
        base = rng.random((12, 16, 3)) * 255
        img = np.asarray(torch.nn.functional.interpolate(torch.tensor(base).permute(2, 0, 1)[None], size=(240, 320),
                                                         mode="bicubic")[0].permute(1, 2, 0).clamp(0, 255)).astype(np.uint8)
        stills.add(f"img{i}", img)
    return stills


def train_cfg(stage: str = "base", model: dict | None = None, augment: dict | None = None, epochs: int = 7,
              steps_per_epoch: int = 10, optim: dict | None = None, **mlg) -> SiamMLGRecipe:
    """The SiamMLG recipe of a small training config (no trainer involved)."""
    cfg = from_dict(TrainConfig, {
        "task": "siammlg", "model": copy.deepcopy(model if model is not None else SLIM),
        "siammlg": {"stage": stage, **mlg}, "optim": {"lr": 1e-2, "warmup_steps": 0, **(optim or {})},
        "data": {"crop": {"search_size": 255}, "augment": {**MLG_AUG, **(augment or {})}},
        "seed": 3, "batch_size": 4, "steps_per_epoch": steps_per_epoch, "epochs": epochs})
    return SiamMLGRecipe(cfg)


def nn_crop(mask: np.ndarray, box_src, box_crop, out: int = 255) -> np.ndarray:
    """Independent nearest-neighbour crop of ``mask``: the window is the one that maps the source box
    (x, y, w, h) onto the crop box (x1, y1, x2, y2)."""
    x, y, w, h = box_src
    kx, ky = (box_crop[2] - box_crop[0]) / w, (box_crop[3] - box_crop[1]) / h
    u = np.arange(out) + 0.5
    sx = x + (u - box_crop[0]) / kx  # continuous source x of each output column centre
    sy = y + (u - box_crop[1]) / ky
    cols, rows = np.floor(sx).astype(int), np.floor(sy).astype(int)
    H, W = mask.shape
    ok = (rows[:, None] >= 0) & (rows[:, None] < H) & (cols[None] >= 0) & (cols[None] < W)
    return np.where(ok, mask[rows.clip(0, H - 1)[:, None], cols.clip(0, W - 1)[None]], False)


# -- pair sampler targets ------------------------------------------------------------------------------
def test_sample_targets_match_the_synthetic_ground_truth():
    pool = synth_pool()
    a = aug(photometric=False, negative_prob=0.0)
    checked = 0
    for i in range(12):
        rng = np.random.default_rng([7, i])
        pair = pool.sample(rng)
        s = BUILD(pair, a, rng)
        assert s["mask_kind"] == MASK_EXACT
        box = s["box"].numpy().astype(np.float64)
        mask = s["mask"][0].numpy().astype(bool)
        # the mask crop equals an independent crop of the ground-truth mask through the box's window
        expect = nn_crop(pair.x_mask, pair.x_box, box)
        assert mask_iou(mask, expect) > 0.95
        # ... and its tight box is the crop box (synthetic masks match their boxes within 1 source px)
        ys, xs = np.nonzero(mask)
        k = (box[2] - box[0]) / pair.x_box[2]
        tol = 1.5 * max(1.0, k) + 0.5
        assert abs(xs.min() - box[0]) < tol and abs(xs.max() + 1 - box[2]) < tol
        assert abs(ys.min() - box[1]) < tol and abs(ys.max() + 1 - box[3]) < tol
        # label: a disc of 13 cells (radius 2) around the cell of the mask's centre (shifted by the augmentation)
        label = s["label"][0].numpy()
        assert label.sum() == 13
        rows, cols = np.nonzero(label)
        peak = (31.5 + 8 * cols.mean(), 31.5 + 8 * rows.mean())
        mc = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        assert np.hypot(peak[0] - mc[0], peak[1] - mc[1]) <= 4 * np.sqrt(2) + 1e-6
        assert abs(xs.mean() + 0.5 - mc[0]) < 3 and abs(ys.mean() + 0.5 - mc[1]) < 3  # symmetric synthetic shapes
        # ltrb targets decode back to the box at every positive cell, and the target cell is positive
        ltrb, pos = ltrb_targets(s["box"][None], GEO.score_size, GEO.stride, GEO.offset)
        default, default_pos = ltrb_targets(s["box"][None])  # SiamMLG's geometry is the heads' default one
        assert torch.equal(ltrb, default) and torch.equal(pos, default_pos)
        dec, pos = decode_ltrb(ltrb)[0], pos[0]
        assert pos.any() and pos[int(round((mc[1] - 31.5) / 8)), int(round((mc[0] - 31.5) / 8))]
        err = (dec[:, pos] - torch.tensor(box, dtype=torch.float32)[:, None]).abs().max()
        assert err < 1.0
        checked += 1
    assert checked == 12


def test_shift_moves_the_label_and_unshifted_label_is_centred():
    centred = score_label((127.5, 127.5), GEO)
    assert centred[12, 12] == 1 and centred.sum() == 13
    from gradtrack.models.labels import centered_label
    assert np.array_equal(centred, centered_label(25, 2.0)[0].numpy())
    moved = score_label((127.5 + 40, 127.5 - 24), GEO)
    assert moved[12 - 3, 12 + 5] == 1 and moved.sum() == 13


def test_negative_pairs_have_no_targets_and_come_from_other_videos():
    pool = synth_pool()
    ds = PairDataset(PairMixture({"s": (1.0, pool)}), BUILD, aug(negative_prob=1.0), seed=1)
    for i in range(4):
        s = ds[i]
        assert s["mask_kind"] == MASK_NONE and s["label"].sum() == 0 and not s["box"].any()
        assert s["mask"].sum() == 0


def test_samples_are_a_pure_function_of_seed_and_index():
    pool = synth_pool()
    ds = PairDataset(PairMixture({"s": (1.0, pool)}), BUILD, aug(), seed=5)
    a, b = ds[3], ds[3]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(ds[4]["x"], a["x"])


# -- routing to the mask losses ------------------------------------------------------------------------
def test_box_only_samples_route_to_the_projection_loss():
    torch.manual_seed(0)
    cfg = train_cfg(augment={"negative_prob": 0.0})
    stills = still_pool()
    crops_only = aug(photometric=False, negative_prob=0.0)
    box_ds = PairDataset(PairMixture({"stills": (1.0, stills)}), BUILD, crops_only, seed=1)
    mask_ds = PairDataset(PairMixture({"s": (1.0, synth_pool())}), BUILD, crops_only, seed=1)
    box_batch = default_collate([box_ds[i] for i in range(3)])
    mask_batch = default_collate([mask_ds[i] for i in range(3)])
    assert (box_batch["mask_kind"] == MASK_BOX).all() and box_batch["mask"].sum() == 0
    assert (mask_batch["mask_kind"] == MASK_EXACT).all() and mask_batch["mask"].sum() > 0
    model = cfg.build_model()
    cfg.set_train_mode(model)
    step = cfg.step(model, torch.device("cpu"))
    loss, _ = step(box_batch)
    assert step.parts["box_mask"] > 0 and step.parts["refine_box_mask"] > 0
    assert step.parts["mask"] == 0 and "refine_mask" not in step.parts
    loss.backward()
    assert model.mask_head.head[-1].weight.grad.abs().sum() > 0  # the projection loss trains the mask head
    model.zero_grad()
    step(mask_batch)
    assert step.parts["mask"] > 0 and step.parts["refine_mask"] > 0
    assert step.parts["box_mask"] == 0 and "refine_box_mask" not in step.parts


def _davis(root: Path, n_frames: int = 6) -> None:
    from PIL import Image
    rng = np.random.default_rng(0)
    for sub in ("JPEGImages/480p/blob", "Annotations/480p/blob", "ImageSets/2017"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets/2017/train.txt").write_text("blob\n")
    (root / "ImageSets/2017/val.txt").write_text("blob\n")
    for t in range(n_frames):
        img = (rng.random((120, 160, 3)) * 60).astype(np.uint8)
        lab = np.zeros((120, 160), np.uint8)
        y0, x0 = 40 + t, 50 + 2 * t
        lab[y0:y0 + 30, x0:x0 + 36] = 1
        img[lab == 1] = (200, 80, 40)
        Image.fromarray(img).save(root / f"JPEGImages/480p/blob/{t:05d}.jpg", quality=95)
        png = Image.fromarray(lab, mode="P")
        png.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
        png.save(root / f"Annotations/480p/blob/{t:05d}.png")


def test_mask_dataset_source_gives_exact_masks_and_refuses_val(tmp_path):
    _davis(tmp_path)
    mcfg = from_dict(MaskDatasetConfig, {"format": "davis", "root": str(tmp_path), "max_gap": 3})
    vids = mask_dataset_videos(mcfg, BoxFilter(min_area=20, min_side=10))
    assert len(vids) == 1 and len(vids[0]) == 6
    pair = vids[0].sample(np.random.default_rng(0), 3)
    s = BUILD(pair, aug(photometric=False, negative_prob=0.0), np.random.default_rng(1))
    assert s["mask_kind"] == MASK_EXACT
    assert mask_iou(s["mask"][0].numpy().astype(bool), nn_crop(pair.x_mask, pair.x_box, s["box"].numpy())) > 0.95
    for opts in ({"split": "val"}, {"subset": "valid"}, {"subset": "val2017"}):
        with pytest.raises(ConfigError, match="validation"):
            from_dict(MaskDatasetConfig, {"format": "davis", "root": str(tmp_path), "options": opts})


def test_training_sources_refuse_the_val_split(shared_data, tmp_path):
    splits = json.loads((shared_data / "splits.json").read_text())
    leak = {"train": [splits["val"][0]] + splits["train"][:1], "val": splits["val"]}
    (tmp_path / "splits.json").write_text(json.dumps(leak))
    data = DataConfig(root=str(shared_data / "sequences"), splits_file=str(tmp_path / "splits.json"),
                      crop=CropConfig(search_size=255), weights={"sequences": 1.0, "stills": 0.0, "synthetic": 0.0})
    with pytest.raises(AssertionError, match="validation sequence"):
        build_training_sources(data, masks=True)
    with pytest.raises(ConfigError):
        from_dict(DataConfig, {"split": "val", "val_split": "val"})


# -- the two stages --------------------------------------------------------------------------------------
def _fixed_batch(n: int = 4, stage: str = "base", k: int = 2):
    pool = PairMixture({"s": (2.0, synth_pool()), "stills": (1.0, still_pool())})
    if stage == "base":
        ds = PairDataset(pool, BUILD, aug(photometric=False, negative_prob=0.25), seed=2)
    else:
        ds = GroupDataset(pool, k, BUILD, aug(photometric=False, translate=4.0, negative_prob=0.0), seed=2)
    return default_collate([ds[i] for i in range(n)])


def test_base_stage_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    cfg = train_cfg(model={**SLIM, "box_head": True})
    batch = _fixed_batch(6)
    kinds = set(batch["mask_kind"].tolist())
    assert MASK_EXACT in kinds and MASK_BOX in kinds
    model = cfg.build_model()
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith(("u2.", "backbone.layer1.")))
    opt = torch.optim.SGD(cfg.param_groups(model), lr=cfg.cfg.optim.lr, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-2, 1e-3])  # backbone x0.1
    cfg.set_train_mode(model)
    assert not model.backbone.layer1[0].bn1.training and model.backbone.layer2[0].bn1.training
    step = cfg.step(model, torch.device("cpu"))
    losses = []
    for _ in range(6):
        loss, before = step(batch)
        assert before is None and "iou" in step.parts
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.02 * abs(losses[0])


@pytest.fixture
def base_ckpt(tmp_path):
    torch.manual_seed(1)
    cfg = train_cfg()
    model = cfg.build_model()
    path = tmp_path / "base.pt"
    save_model(path, "siammlg", model)
    return path


def test_update_stage_trains_only_u2_and_the_score_kernel(base_ckpt):
    cfg = train_cfg("update", init_from=str(base_ckpt), k=2, augment={"translate": 4.0, "negative_prob": 0.0})
    model = cfg.build_model()
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("u2.", "score_head.conv_kernel.")) for n in trained)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ref = read_checkpoint(base_ckpt)["state_dict"]
    assert all(torch.equal(before[k], ref[k]) for k in ref)  # the base weights were loaded
    opt = torch.optim.SGD(cfg.param_groups(model), lr=0.05, momentum=0.9)
    cfg.set_train_mode(model)
    step = cfg.step(model, torch.device("cpu"))
    batch = _fixed_batch(3, "update", k=2)
    assert batch["x"].shape[:2] == (3, 2) and (batch["distinct"] == 2).all()
    losses = []
    for _ in range(8):
        loss, before_update = step(batch)
        assert before_update is not None
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith(("u2.", "score_head.conv_kernel.")) for k in changed)
    assert any(k.startswith("u2.conv") for k in changed) and any(k.startswith("score_head.conv_kernel.0") for k in changed)


def test_update_stage_gradients_are_second_order(base_ckpt):
    cfg = train_cfg("update", init_from=str(base_ckpt), k=2, augment={"translate": 4.0, "negative_prob": 0.0})
    batch = _fixed_batch(2, "update", k=2)
    grads = {}
    for second in (True, False):
        torch.manual_seed(0)
        model = cfg.build_model()
        cfg.set_train_mode(model)
        loss, _ = cfg.step(model, torch.device("cpu"))(batch, create_graph=second)
        loss.backward()
        grads[second] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    kern = "score_head.conv_kernel.0.weight"
    diff = (grads[True][kern] - grads[False][kern]).norm() / grads[True][kern].norm()
    assert diff > 1e-3  # the second-order term through dL0/df2 reaches the template-side kernel
    assert torch.allclose(grads[True]["u2.conv.weight"], grads[False]["u2.conv.weight"], rtol=1e-4, atol=1e-8)


def test_update_stage_needs_a_matching_base_checkpoint(base_ckpt):
    with pytest.raises(ConfigError, match="init_from"):
        from_dict(SiamMLGTrainConfig, {"stage": "update"})
    with pytest.raises(ConfigError, match="no gradient update"):
        from_dict(SiamMLGTrainConfig, {"stage": "update", "variant": "sk", "init_from": "x.pt"})
    cfg = train_cfg("update", model={**SLIM, "box_head": True}, init_from=str(base_ckpt),
                    augment={"negative_prob": 0.0})
    with pytest.raises(ValueError, match="another model config"):
        cfg.build_model()


def test_update_stage_on_a_base_without_u2_starts_a_fresh_u2(tmp_path):
    """The shipped SiamMLG is variant sk (no U2): its update stage loads every base tensor, gives U2 a fresh
    initialisation and takes U2's own settings (u2_scale) from the update stage's model section; any other
    model difference is still refused."""
    torch.manual_seed(1)
    base = train_cfg(variant="sk").build_model()
    assert base.u2 is None
    path = save_model(tmp_path / "sk.pt", "siammlg", base)
    cfg = train_cfg("update", model={**SLIM, "u2_scale": 5.0}, init_from=str(path), k=2,
                    augment={"translate": 4.0, "negative_prob": 0.0})
    model = cfg.build_model()
    assert model.u2 is not None and model.u2.out_scale == 5.0
    own = model.state_dict()
    ref = read_checkpoint(path)["state_dict"]
    assert set(own) - set(ref) == {k for k in own if k.startswith("u2.")}
    assert all(torch.equal(own[k], ref[k]) for k in ref)
    cfg = train_cfg("update", model={**SLIM, "head_hidden": 16}, init_from=str(path), augment={"negative_prob": 0.0})
    with pytest.raises(ValueError, match="another model config"):
        cfg.build_model()


def test_export_writes_fp16_siammlg_weights_the_tracker_loads(tmp_path):
    from gradtrack.models.siammlg import SiamMLG, SiamMLGConfig
    from gradtrack.trackers import build_tracker
    from gradtrack.training.export import export_weights

    torch.manual_seed(0)
    model = SiamMLG(from_dict(SiamMLGConfig, {**SLIM, "box_head": True}))
    src = save_model(tmp_path / "run.pt", "siammlg", model)
    info = export_weights(src, tmp_path / "w.pt", card=tmp_path / "w.md", hardware="test")
    check = info["fp16_check"]
    assert check["same_peak"] and check["relative"] < 1e-2
    assert set(check["outputs"]) == {"score", "mask_corr", "box"}
    ck = torch.load(tmp_path / "w.pt", map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in ck["state_dict"].values() if v.is_floating_point())
    card = (tmp_path / "w.md").read_text()
    assert "siammlg" in card and "SiamMLG" in card and '"box_head": true' in card
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[40:80, 60:100] = 200
    for source in ("mask", "boxhead"):
        tracker = build_tracker("siammlg", weights=str(tmp_path / "w.pt"), box_source=source)
        tracker.init(frame, (60.0, 40.0, 40.0, 40.0))
        assert np.isfinite(tracker.update(frame).box).all()


def test_unfreeze_schedule_starts_layer2_halfway():
    cfg = train_cfg(freeze=["backbone.conv1", "backbone.bn1", "backbone.layer1", "backbone.layer2"],
                    unfreeze=["backbone.layer2"], unfreeze_at=0.5, backbone_lr_mult=0.1,
                    epochs=1, steps_per_epoch=6)  # unfreezes before step 3
    torch.manual_seed(0)
    model = cfg.build_model()
    layer2 = {n for n, _ in model.named_parameters() if n.startswith("backbone.layer2.")}
    assert layer2 and not any(p.requires_grad for n, p in model.named_parameters() if n in layer2)
    groups = cfg.param_groups(model)
    in_opt = {id(p) for g in groups if g["name"] == "backbone" for p in g["params"]}
    assert all(id(p) in in_opt for n, p in model.named_parameters() if n in layer2)
    assert next(g for g in groups if g["name"] == "backbone")["lr"] == pytest.approx(0.1 * cfg.cfg.optim.lr)
    opt = torch.optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=5e-4)
    step = cfg.step(model, torch.device("cpu"))
    batch = _fixed_batch(2)
    cfg.set_train_mode(model)
    snap = {}
    for i in range(5):
        if cfg.before_step(model, i):
            assert i == 3
            cfg.set_train_mode(model)
        snap[i] = {n: p.detach().clone() for n, p in model.named_parameters() if n in layer2}
        bn = next(m for n, m in model.named_modules() if n == "backbone.layer2.0.bn1")
        assert bn.training is (i >= 3)
        loss, _ = step(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(snap[0][n], snap[3][n]) for n in layer2)  # frozen, weight decay included
    assert any(not torch.equal(snap[3][n], snap[4][n]) for n in layer2)
    assert not cfg.before_step(model, 4)  # once only
    with pytest.raises(ValueError, match="not frozen"):
        train_cfg(freeze=["backbone.layer1"], unfreeze=["backbone.layer2"])
    with pytest.raises(ValueError, match="base-stage"):
        train_cfg("update", init_from="x.pt", unfreeze=["backbone.layer1"], augment={"negative_prob": 0.0})


def test_model_switches_come_from_the_variant_only():
    for variant, sk, grad in (("resnet34", "none", False), ("gradient", "none", True), ("sk", "neck", False),
                              ("full", "neck", True)):
        model = train_cfg(variant=variant).build_model()
        assert model.cfg.sk == sk and (model.u2 is not None) == grad
    with pytest.raises(ConfigError, match="variant"):
        train_cfg(model={**SLIM, "sk": "none"}).build_model()


def test_schedule_warmup_then_constant_then_step():
    cfg = train_cfg(lr_milestones=[2.0, 4.0], lr_gamma=0.5, optim={"lr": 1e-3, "schedule": "constant", "warmup_steps": 5})
    f = [cfg.lr_factor(s) for s in range(50)]
    assert f[0] == pytest.approx(0.2) and f[4] == pytest.approx(1.0)
    assert f[5:20] == pytest.approx([1.0] * 15)
    assert f[20:40] == pytest.approx([0.5] * 20) and f[40:] == pytest.approx([0.25] * 10)


def test_init_backbone_loads_a_torchvision_state_dict_safely(tmp_path):
    torch.manual_seed(0)
    from gradtrack.models.resnet import ResNetAtrous

    net = ResNetAtrous()
    tv = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    tv["layer2.0.downsample.0.weight"] = torch.randn(128, 64, 1, 1)
    tv["layer3.0.downsample.0.weight"] = torch.randn(256, 128, 1, 1)
    tv["fc.weight"] = torch.randn(1000, 512)
    torch.save(tv, tmp_path / "resnet34.pth")
    model = train_cfg(model={"backbone": {"init": str(tmp_path / "resnet34.pth")}}).build_model()
    assert torch.equal(model.backbone.conv1.weight, tv["conv1.weight"])
    assert torch.equal(model.backbone.layer2[0].downsample[0].weight[:, :, 1, 1], tv["layer2.0.downsample.0.weight"][:, :, 0, 0])
    torch.save({"conv1.weight": SimpleNamespace()}, tmp_path / "pickle.pth")  # not loadable with weights_only
    with pytest.raises(Exception, match="[Ww]eights only|weights_only"):
        train_cfg(model={"backbone": {"init": str(tmp_path / "pickle.pth")}}).build_model()


# -- configs and the trainer -------------------------------------------------------------------------------
CONFIGS = sorted((REPO / "configs").glob("siammlg*.yaml"))


def test_shipped_configs_load_strictly():
    assert len(CONFIGS) == 20
    seen = {}
    for path in CONFIGS:
        cfg = load_train_config(path)
        assert cfg.task == "siammlg" and cfg.data.crop.search_size == 255
        seen[path.stem] = cfg
        # a base stage that continues a checkpoint (siammlg_effnet_cont_cpu) is built without it: the model
        # section alone decides the architecture checked here
        start = replace(cfg, siammlg=replace(cfg.siammlg, init_from="")) if cfg.siammlg.stage == "base" else None
        model = SiamMLGRecipe(start).build_model() if start is not None else None
        if model is not None and "effnet" in path.stem:  # ImageNet EfficientNet-Lite0 pyramid
            assert model.backbone.channels == (16, 24, 40, 112) and model.cfg.input_norm == "none"
        elif model is not None and "cpu" not in path.stem:
            assert model.cfg.backbone_config().channels == (64, 64, 128, 256)
    shipped_update = seen["siammlg_effnet_update_shipped_cpu"]  # the update stage on the shipped weights
    assert shipped_update.siammlg.stage == "update" and shipped_update.model["u2_scale"] == 20.0
    for name in ("siammlg_base", "siammlg_update"):  # the paper's recipe
        c = seen[name]
        assert (c.epochs, c.optim.lr, c.optim.momentum, c.optim.weight_decay) == (70, 1e-3, 0.9, 5e-4)
        assert c.siammlg.lr_milestones == [20.0] and c.siammlg.lr_gamma == 0.5 and c.optim.warmup_steps > 0
        assert c.batch_size * (c.siammlg.k if c.siammlg.stage == "update" else 1) == 64
    base = seen["siammlg_base"].siammlg  # SiamMask's backbone schedule
    assert base.unfreeze == ["backbone.layer2", "backbone.layer3"] and base.unfreeze_at == 0.5
    assert set(base.unfreeze) < set(base.freeze) and base.backbone_lr_mult == 0.1
    assert seen["siammlg_base_cpu"].model["backbone"]["channels"] == [16, 16, 32, 64]
    assert seen["siammlg_base_cpu"].amp == "bf16"
    # the CPU ablation differs from the shipped CPU recipe only in its variant (and its paths)
    for stage in ("base", "update"):
        a = to_dict(seen[f"siammlg_{stage}_cpu"])
        b = to_dict(seen[f"siammlg_gradient_{stage}_cpu"])
        assert (a["siammlg"].pop("variant"), b["siammlg"].pop("variant")) == ("full", "gradient")
        for d in (a, b):
            d.pop("out")
            d["siammlg"].pop("init_from")
        assert a == b
    variants = {n: c.siammlg.variant for n, c in seen.items() if "ablation" in n}
    assert variants == {"siammlg_ablation_full_base": "full", "siammlg_ablation_full_update": "full",
                        "siammlg_ablation_gradient_base": "gradient", "siammlg_ablation_gradient_update": "gradient",
                        "siammlg_ablation_resnet34": "resnet34", "siammlg_ablation_sk": "sk",
                        "siammlg_effnet_ablation_backbone": "resnet34"}
    bad = load_yaml(REPO / "configs/siammlg_base_cpu.yaml")
    bad["siammlg"]["mask_wieght"] = 1.0
    with pytest.raises(ConfigError, match="mask_wieght"):
        from_dict(TrainConfig, bad)
    bad = load_yaml(REPO / "configs/siamfc_cpu.yaml")
    bad["siammlg"] = {"stage": "base", "mask_weight": 1.0}
    with pytest.raises(ConfigError, match="siammlg"):
        from_dict(TrainConfig, bad)


def _small_cpu_config(tmp_path: Path, shared_data: Path, name: str, val_pairs: int = 0, tag: str = "",
                      **siammlg) -> Path:
    cfg = load_yaml(REPO / f"configs/{name}.yaml")
    cfg["data"].update(root=str(shared_data / "sequences"), splits_file=str(shared_data / "splits.json"),
                       limit_sequences=1, stills_per_sequence=2, package_stills=False, num_workers=0, val_pairs=val_pairs,
                       synthetic={"count": 2, "num_frames": 12, "presets": ["easy", "scale"], "seed": 1000})
    cfg["batch_size"] = 2
    cfg["model"] = {**SLIM}
    cfg.update(log_every=1, checkpoint_every=2, val_every=3, threads=1)
    cfg["siammlg"].update(siammlg)
    path = tmp_path / f"{name}{tag}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _rows(run: Path) -> list[dict]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_cli_trains_both_stages_end_to_end_with_resume(tmp_path, shared_data):
    from gradtrack.cli import main

    with_val = _small_cpu_config(tmp_path, shared_data, "siammlg_base_cpu", val_pairs=4, tag="_val")
    base_cfg = _small_cpu_config(tmp_path, shared_data, "siammlg_base_cpu")  # no validation (its pool is slow)
    run = tmp_path / "base"
    assert main(["train", str(with_val), "--steps", "2", "--out", str(run), "--no-progress"]) == 0
    assert read_checkpoint(run / "last.pt")["training"]["step"] == 2
    assert main(["train", str(base_cfg), "--steps", "4", "--out", str(run), "--resume", "--no-progress"]) == 0
    ckpt = read_checkpoint(run / "last.pt")
    assert ckpt["training"]["step"] == 4 and ckpt["model"] == "siammlg"
    rows = _rows(run)
    assert [int(r["step"]) for r in rows if r["loss"]] == [1, 2, 3, 4]
    assert any(r["val_loss"] for r in rows)
    lrs = [float(r["lr"]) for r in rows if r["loss"]]
    assert lrs == sorted(lrs) and lrs[0] < lrs[-1]  # warm-up
    # resuming reproduces the uninterrupted run
    straight = tmp_path / "straight"
    assert main(["train", str(base_cfg), "--steps", "4", "--out", str(straight), "--no-progress"]) == 0
    a, b = read_checkpoint(straight / "last.pt")["state_dict"], ckpt["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the tracker loads the training checkpoint
    from gradtrack.trackers import build_tracker

    tracker = build_tracker("siammlg", weights=str(run / "last.pt"))
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[40:80, 60:100] = 200
    tracker.init(frame, (60.0, 40.0, 40.0, 40.0))
    assert np.isfinite(tracker.update(frame).box).all()
    # stage 2 from the base checkpoint: only U2 and the score kernel change
    upd_cfg = _small_cpu_config(tmp_path, shared_data, "siammlg_update_cpu", init_from=str(run / "last.pt"), k=2)
    urun = tmp_path / "update"
    assert main(["train", str(upd_cfg), "--steps", "2", "--out", str(urun), "--no-progress"]) == 0
    u = read_checkpoint(urun / "last.pt")["state_dict"]
    changed = {k for k in u if not torch.equal(u[k], b[k])}
    assert changed and all(k.startswith(("u2.", "score_head.conv_kernel.")) for k in changed)
    assert all(r["loss_before"] for r in _rows(urun) if r["loss"])

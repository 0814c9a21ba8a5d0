"""SiamMLG: backbone, SK attention, heads, gradient update, losses and tracker."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gradtrack.checkpoint import load_model, save_model
from gradtrack.geometry import crop_and_resize
from gradtrack.models import build_model
from gradtrack.models.heads import decode_ltrb
from gradtrack.models.resnet import BasicBlock, ResNetAtrous, ResNetConfig, convert_imagenet_resnet34
from gradtrack.models.siammlg import SiamMLG, SiamMLGConfig, ablation_config
from gradtrack.models.sknet import SKConv, SKUnit
from gradtrack.training.siammlg_losses import (box_projection_mask_loss, iou_loss, ltrb_targets, mask_soft_margin_loss,
                                               mask_windows, positive_cells, score_loss, window_boxes)
from gradtrack.trackers import build_tracker
from gradtrack.trackers.siammlg import SiamMLGTracker, SiamMLGTrackerConfig, mask_to_image

SLIM = dict(backbone={"channels": (8, 8, 16, 32), "blocks": (1, 1, 1)}, neck_channels=32, head_hidden=32,
            sk_cfg={"groups": 8, "reduction": 4, "min_dim": 8})


def slim_cfg(**kw) -> SiamMLGConfig:
    from gradtrack.config import from_dict
    return from_dict(SiamMLGConfig, {**SLIM, **kw})


def slim_model(seed: int = 0, **kw) -> SiamMLG:
    torch.manual_seed(seed)
    return SiamMLG(slim_cfg(**kw))


def images(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 255


# -- backbone ---------------------------------------------------------------------------------------------
def test_resnet34_sizes_and_channels_full_width():
    net = ResNetAtrous().eval()
    assert sum(isinstance(m, BasicBlock) for m in net.modules()) == 3 + 4 + 6
    with torch.no_grad():
        fz = net(images(1, 127))
        fx = net(images(1, 255))
    assert [tuple(f.shape[1:]) for f in fz] == [(64, 61, 61), (64, 31, 31), (128, 15, 15), (256, 15, 15)]
    assert [tuple(f.shape[1:]) for f in fx] == [(64, 125, 125), (64, 63, 63), (128, 31, 31), (256, 31, 31)]
    assert net.conv1.padding == (0, 0) and net.conv1.stride == (2, 2)
    assert net.layer2[0].downsample[0].kernel_size == (3, 3)
    assert net.layer3[1].conv1.dilation == (2, 2) and net.layer3[0].conv1.dilation == (1, 1)


def test_resnet_slim_widths():
    net = ResNetAtrous(ResNetConfig(channels=(8, 8, 16, 24), blocks=(1, 2, 1))).eval()
    with torch.no_grad():
        fx = net(images(2, 255))
    assert [tuple(f.shape[1:]) for f in fx] == [(8, 125, 125), (8, 63, 63), (16, 31, 31), (24, 31, 31)]


def test_convert_imagenet_resnet34_moves_1x1_downsample_to_centre_tap():
    torch.manual_seed(0)
    net = ResNetAtrous().eval()
    tv = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in net.state_dict().items()}
    tv["layer2.0.downsample.0.weight"] = torch.randn(128, 64, 1, 1)
    tv["layer3.0.downsample.0.weight"] = torch.randn(256, 128, 1, 1)
    tv["layer4.0.conv1.weight"] = torch.randn(512, 256, 3, 3)
    tv["fc.weight"] = torch.randn(1000, 512)
    sd = convert_imagenet_resnet34(tv, net)
    assert set(sd) == set(net.state_dict())
    k = sd["layer2.0.downsample.0.weight"]
    assert torch.equal(k[:, :, 1, 1], tv["layer2.0.downsample.0.weight"][:, :, 0, 0])
    off = k.clone()
    off[:, :, 1, 1] = 0
    assert off.abs().max() == 0
    assert torch.equal(sd["layer1.2.conv2.weight"], tv["layer1.2.conv2.weight"])
    net.load_state_dict(sd)
    # the converted 3x3 stride-2 unpadded kernel equals the 1x1 projection sampled at odd positions
    x = torch.randn(1, 64, 31, 31)
    with torch.no_grad():
        ours = net.layer2[0].downsample[0](x)
        ref = F.conv2d(x[:, :, 1::2, 1::2], tv["layer2.0.downsample.0.weight"])
    assert torch.allclose(ours, ref[:, :, :15, :15], atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        convert_imagenet_resnet34({"conv1.weight": torch.randn(32, 3, 7, 7)}, net)


# -- SK attention -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("train", [False, True])
def test_sk_batch_one_and_shared_between_sizes(train):
    torch.manual_seed(0)
    sk = SKUnit(32, groups=8, reduction=4, min_dim=8).train(train)
    for size in (15, 31):  # template and search features through the same module
        x = torch.randn(1, 32, size, size)
        y = sk(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
    assert sk.sk.dim == 8  # d = max(32 / 4, 8)


def test_sk_select_is_softmax_over_branches_and_input_dependent():
    torch.manual_seed(0)
    sk = SKConv(64, branches=2, groups=32, reduction=16, min_dim=32).eval()
    assert sk.dim == 32 and sk.split[1][0].dilation == (2, 2) and sk.split[0][0].groups == 32
    with torch.no_grad():
        sk.fc_bn.running_mean.normal_()  # non-trivial running statistics for eval mode
        a = sk.attention(torch.randn(3, 64, 15, 15))
        b = sk.attention(torch.randn(3, 64, 15, 15) * 3 + 1)
    assert a.shape == (3, 2, 64)
    assert torch.allclose(a.sum(1), torch.ones(3, 64), atol=1e-6)
    assert (a > 0).all() and not torch.allclose(a, b)


def test_sk_forward_is_the_attention_weighted_sum_and_trains():
    torch.manual_seed(1)
    sk = SKConv(16, groups=4, reduction=4, min_dim=4)
    x = torch.randn(2, 16, 9, 9)
    feats = sk._branches(x)
    a = sk._weights(feats)
    ref = a[:, 0, :, None, None] * feats[:, 0] + a[:, 1, :, None, None] * feats[:, 1]
    assert torch.allclose(sk(x), ref, atol=1e-6)
    sk(x).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sk.parameters())


# -- model ------------------------------------------------------------------------------------------------
def test_model_sizes_full_width():
    model = SiamMLG(SiamMLGConfig(box_head=True)).eval()
    z, x = images(1, 127), images(1, 255, 1)
    with torch.no_grad():
        f2 = model.f2(z)
        zf = model.u1(f2)
        xf, low = model.search(x)
        out = model.heads(model.kernels(zf), xf)
        pos = [torch.tensor([0]), torch.tensor([12]), torch.tensor([7])]
        m63 = model.mask_logits(out["mask_corr"], *pos)
        m127 = model.refine_mask(low, out["mask_corr"], *pos)
    assert f2.shape == (1, 128, 15, 15) and zf.shape == (1, 256, 7, 7) and xf.shape == (1, 256, 31, 31)
    assert out["score"].shape == (1, 1, 25, 25) and model.cfg.score_size == 25
    assert out["mask"].shape == (1, 63 * 63, 25, 25) and out["box"].shape == (1, 4, 25, 25)
    assert m63.shape == (1, 63, 63) and m127.shape == (1, 1, 127, 127)
    assert torch.allclose(m63.reshape(-1), out["mask"][0, :, 12, 7], rtol=1e-4, atol=1e-2)
    assert (out["box"] > 0).all()


def test_forward_batch_and_template_generalisation():
    model = slim_model(box_head=True).train()
    out = model(images(2, 127), images(4, 255, 1))  # 2 templates, 2 searches each
    assert out["score"].shape == (4, 1, 25, 25) and out["mask"].shape == (4, 3969, 25, 25)
    assert out["box"].shape == (4, 4, 25, 25) and out["loss_init"].ndim == 0
    assert [tuple(t.shape[2:]) for t in out["low"]] == [(125, 125), (63, 63), (31, 31)]


def test_template_crop_is_centred_after_sk():
    model = slim_model().eval()
    with torch.no_grad():
        full = model.sk(model.neck(model.backbone.layer3(model.f2(images(1, 127)))))
        zf = model.template(images(1, 127))
    assert torch.allclose(zf, full[:, :, 4:11, 4:11])


@pytest.mark.parametrize("variant,sk,grad", [("resnet34", "none", False), ("gradient", "none", True),
                                             ("sk", "neck", False), ("full", "neck", True)])
def test_ablation_variants(variant, sk, grad):
    cfg = ablation_config(variant, slim_cfg())
    assert (cfg.sk, cfg.gradient_update) == (sk, grad)
    model = SiamMLG(cfg).eval()
    assert (model.u2 is not None) == grad and isinstance(model.sk, SKUnit) == (sk == "neck")
    with torch.no_grad():
        out = model(images(1, 127), images(1, 255), create_graph=False)
    assert out["score"].shape == (1, 1, 25, 25) and (("loss_init" in out) == grad)
    with pytest.raises(ValueError):
        ablation_config("nope")


def test_sk_inside_layer3():
    model = slim_model(sk="layer3").eval()
    assert all(isinstance(b.conv2, SKConv) for b in model.backbone.layer3)
    assert model.backbone.layer3[0].conv2.split[1][0].dilation == (4, 4)
    with torch.no_grad():
        out = model(images(1, 127), images(1, 255), create_graph=False)
    assert out["score"].shape == (1, 1, 25, 25)


def test_gradient_update_changes_template_and_second_order_reaches_parameters():
    model = slim_model().train()
    with torch.no_grad():  # a non-trivial U2 (the default init makes its output tiny)
        model.u2.conv.weight.normal_(std=0.3)
    z, x = images(2, 127), images(2, 255, 3)
    xf, _ = model.search(x)
    f2 = model.f2(z)
    g, loss0 = model.gradient(f2, xf, create_graph=True)
    assert g.shape == f2.shape and g.abs().sum() > 0 and g.requires_grad
    zf_new, f2_new = model.update(f2, g)
    assert not torch.allclose(zf_new, model.u1(f2))
    label, weight = model.label(25)
    loss = score_loss(model.score(zf_new, xf), label, weight)
    params = [model.u2.conv.weight, model.score_head.head[3].weight, model.backbone.layer3[0].conv1.weight]
    second = torch.autograd.grad(loss, params, retain_graph=True)
    assert all(p.abs().sum() > 0 for p in second)
    # the same loss with the gradient treated as a constant: the score-head gradient differs, i.e. a
    # second-order term flows through dL0/df2 (GradNet's training)
    g_const, _ = model.gradient(f2, xf, create_graph=False)
    zf_c, _ = model.update(f2, g_const)
    first = torch.autograd.grad(score_loss(model.score(zf_c, xf), label, weight), params)
    assert torch.allclose(first[0], second[0], atol=1e-6)  # U2's own weights: no second-order term
    assert not torch.allclose(first[1], second[1], atol=1e-7)


def test_config_errors():
    from gradtrack.config import ConfigError
    with pytest.raises(ConfigError, match="divisible"):
        slim_cfg(sk="layer3", sk_cfg={"groups": 7})
    with pytest.raises(ConfigError, match="unknown key"):
        slim_cfg(sk_place="neck")
    with pytest.raises(ConfigError):
        slim_cfg(sk="everywhere")


def test_model_registry_and_checkpoint_roundtrip(tmp_path):
    model = build_model("siammlg", {**SLIM, "box_head": True, "sk": "layer3"}).eval()
    path = save_model(tmp_path / "m.pt", "siammlg", model)
    loaded, _ = load_model(path, expected="siammlg")
    z, x = images(1, 127), images(1, 255)
    with torch.no_grad():
        a, b = model(z, x, create_graph=False), loaded(z, x, create_graph=False)
    assert torch.allclose(a["score"], b["score"]) and torch.allclose(a["box"], b["box"])


# -- losses -----------------------------------------------------------------------------------------------
def test_score_loss_hand_cases():
    label = torch.zeros(1, 1, 5, 5)
    label[..., 2, 2] = 1
    good = (label * 2 - 1) * 30
    assert score_loss(good, label) < 1e-6
    zero = torch.zeros(1, 1, 5, 5, requires_grad=True)
    loss = score_loss(zero, label)
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-6)  # weights sum to 1
    loss.backward()
    assert zero.grad[0, 0, 2, 2] < 0 and (zero.grad[0, 0, 0] > 0).all()


def test_mask_windows_geometry():
    gt = torch.zeros(1, 1, 255, 255)
    gt[0, 0, 127, 127] = 1  # the crop centre = centre of cell (12, 12) and of its window
    b, r, c = torch.tensor([0, 0]), torch.tensor([12, 12]), torch.tensor([12, 13])
    win = mask_windows(gt, b, r, c)
    assert win.shape == (2, 127, 127) and win[0, 63, 63] == 1 and win[0].sum() == 1
    assert win[1, 63, 55] == 1  # one cell right = 8 pixels left in the window
    corner = mask_windows(gt, torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
    assert corner.sum() == 0  # window of cell (0, 0) covers pixels -32..94


def test_mask_soft_margin_loss_hand_cases():
    target = torch.zeros(2, 127, 127)
    target[:, 40:80, 30:90] = 1
    perfect = (target * 2 - 1) * 30
    assert mask_soft_margin_loss(perfect, target) < 1e-6
    pred = torch.zeros(2, 63, 63, requires_grad=True)  # 63x63 predictions are upsampled to 127
    loss = mask_soft_margin_loss(pred, target)
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-5)
    loss.backward()
    assert pred.grad.abs().sum() > 0
    assert mask_soft_margin_loss(torch.zeros(0, 63, 63, requires_grad=True), target[:0]).item() == 0


@pytest.mark.parametrize("kind", ["dice", "bce"])
def test_box_projection_mask_loss(kind):
    boxes = torch.tensor([[30.0, 40.0, 90.0, 80.0]])
    perfect = torch.full((1, 127, 127), -30.0)
    perfect[0, 40:80, 30:90] = 30.0
    rotated = torch.full((1, 127, 127), -30.0)  # a diamond inside the box has the same projections
    yy, xx = torch.meshgrid(torch.arange(127.0), torch.arange(127.0), indexing="ij")
    rotated[0][(xx + 0.5 - 60).abs() / 30 + (yy + 0.5 - 60).abs() / 20 <= 1] = 30.0
    shifted = torch.roll(perfect, 20, dims=2)
    lp = box_projection_mask_loss(perfect, boxes, kind)
    lr, ls = box_projection_mask_loss(rotated, boxes, kind), box_projection_mask_loss(shifted, boxes, kind)
    assert lp < 1e-3 and ls > lp + 0.05 and lr < ls
    if kind == "dice":  # only the edge columns/rows of the rasterised diamond are missing
        assert lr < 0.05
    pred = torch.zeros(1, 127, 127, requires_grad=True)
    box_projection_mask_loss(pred, boxes, kind).backward()
    assert pred.grad.abs().sum() > 0


def test_window_boxes_and_positive_cells():
    label = torch.zeros(2, 1, 25, 25)
    label[1, 0, 12, 13] = 1
    b, r, c = positive_cells(label)
    assert b.tolist() == [1] and r.tolist() == [12] and c.tolist() == [13]
    boxes = torch.tensor([[0.0, 0, 1, 1], [100.0, 110.0, 150.0, 140.0]])
    wb = window_boxes(boxes, b, r, c)
    # window of cell (12, 13) starts at crop pixel (8 * 13 - 32, 8 * 12 - 32) = (72, 64)
    assert torch.allclose(wb, torch.tensor([[28.0, 46.0, 78.0, 76.0]]))


def test_ltrb_targets_and_iou_loss():
    boxes = torch.tensor([[100.0, 90.0, 160.0, 170.0]])
    t, pos = ltrb_targets(boxes)
    assert t.shape == (1, 4, 25, 25) and pos.dtype == torch.bool
    centres = 31.5 + 8 * torch.arange(25.0)
    inside_x = (centres > 100) & (centres < 160)
    inside_y = (centres > 90) & (centres < 170)
    assert torch.equal(pos[0], inside_y[:, None] & inside_x[None, :])
    dec = decode_ltrb(t)
    assert torch.allclose(dec[0, :, pos[0]], boxes[0][:, None].expand(4, int(pos.sum())), atol=1e-4)
    for kind in ("log", "linear", "giou"):
        assert iou_loss(t, t, pos, kind).item() < 1e-6
    p = torch.tensor([[1.0, 1.0, 1.0, 1.0]], requires_grad=True)
    q = torch.tensor([[2.0, 2.0, 2.0, 2.0]])
    assert math.isclose(iou_loss(p, q, kind="linear").item(), 0.75, rel_tol=1e-6)  # I = 4, U = 16
    assert math.isclose(iou_loss(p, q, kind="log").item(), -math.log(5 / 17), rel_tol=1e-6)
    iou_loss(p, q, kind="giou").backward()
    assert (p.grad < 0).all()  # growing the small box increases the IoU


# -- tracker ----------------------------------------------------------------------------------------------
def moving_rectangle(n: int = 12, size=(160, 200)):
    h, w = size
    frames, boxes = [], []
    for k in range(n):
        img = np.full((h, w, 3), (70, 90, 110), np.uint8)
        x, y = 50 + 4 * k, 60 + 2 * k
        img[y:y + 30, x:x + 24] = (230, 40, 40)
        frames.append(img)
        boxes.append([x, y, 24, 30])
    return frames, np.asarray(boxes, float)


def run(tracker, frames, box):
    tracker.init(frames[0], box)
    return [tracker.update(f) for f in frames[1:]]


@pytest.mark.parametrize("over", [{}, {"box_source": "boxhead", "model": {"box_head": True}},
                                  {"use_refine": False, "model": {"refine": False, "sk": "none"}},
                                  {"amp": True, "model": {"sk": "layer3"}}])
def test_tracker_runs_with_random_weights(over):
    over = dict(over)
    model = {**SLIM, **over.pop("model", {})}
    tracker = build_tracker("siammlg", weights="random", device="cpu", model=model, **over)
    frames, boxes = moving_rectangle()
    results = run(tracker, frames, boxes[0])
    h, w = frames[0].shape[:2]
    for res in results:
        assert res.box.shape == (4,) and np.isfinite(res.box).all() and (res.box[2:] >= 10).all()
        assert res.polygon.shape == (8,) and np.isfinite(res.polygon).all()
        assert res.mask.shape == (h, w) and res.mask.dtype == np.bool_
        assert 0.0 <= res.score <= 1.0
    assert [r.extra["updated"] for r in results] == [(i + 1) % 5 == 0 for i in range(len(results))]


def test_tracker_state_reset_and_determinism():
    tracker = build_tracker("siammlg", weights="random", device="cpu", model=SLIM)
    frames, boxes = moving_rectangle(7)
    first = run(tracker, frames, boxes[0])
    other, oboxes = moving_rectangle(4, size=(120, 150))
    run(tracker, other[::-1], oboxes[-1])
    again = run(tracker, frames, boxes[0])
    assert tracker.frame == len(frames) - 1 and len(tracker.schedule.samples) <= tracker.cfg.buffer_size
    for a, b in zip(first, again):
        assert np.array_equal(a.box, b.box) and np.array_equal(a.mask, b.mask)


def test_tracker_without_gradient_update():
    tracker = build_tracker("siammlg", weights="random", device="cpu", model={**SLIM, "gradient_update": False})
    frames, boxes = moving_rectangle(6)
    results = run(tracker, frames, boxes[0])
    assert not any(r.extra["updated"] for r in results) and not tracker.schedule.samples


def test_tracker_weights_errors(monkeypatch, tmp_path):
    import gradtrack.trackers.common as common

    monkeypatch.setattr(common, "WEIGHTS_DIR", tmp_path)  # as if none were shipped
    with pytest.raises(FileNotFoundError, match="no trained weights"):
        build_tracker("siammlg")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="box_head"):
        build_tracker("siammlg", weights="random", device="cpu", model=SLIM, box_source="boxhead")
    with pytest.raises(Exception, match="unknown key"):
        build_tracker("siammlg", weights="random", device="cpu", windw_influence=0.3)


def test_mask_to_image_inverts_the_crop():
    img = np.zeros((120, 160, 1), np.float32)
    img[40:70, 60:100] = 1
    center, side = (83.0, 52.5), 64.0
    crop = crop_and_resize(img, center, side, 127, pad_color=0.0)[:, :, 0]
    back = mask_to_image(crop, center, side, (160, 120))
    inner = np.zeros((120, 160), bool)
    inner[42:68, 62:98] = True
    assert back[inner].min() > 0.99
    assert back[:, :50].max() == 0 and back[:15].max() == 0  # outside the window: 0


def test_mask_geometry_axis_aligned_and_rotated():
    tracker = SiamMLGTracker(slim_model(), SiamMLGTrackerConfig(min_mask_area=10), device="cpu")
    mask = np.zeros((100, 120), bool)
    mask[10:20, 30:50] = True
    poly, box = tracker._mask_geometry(mask)
    assert np.allclose(box, [30, 10, 20, 10])
    assert np.allclose(sorted(poly[0::2]), [30, 30, 50, 50]) and np.allclose(sorted(poly[1::2]), [10, 10, 20, 20])
    rot = np.zeros((100, 120), np.uint8)
    corners = cv2.boxPoints(((60.0, 50.0), (40.0, 16.0), 30.0))
    cv2.fillPoly(rot, [np.round(corners).astype(np.int32)], 1)
    poly, _ = tracker._mask_geometry(rot.astype(bool))
    (cx, cy), (w, h), _ = cv2.minAreaRect(poly.reshape(4, 2).astype(np.float32))
    assert abs(cx - 60.5) < 1.5 and abs(cy - 50.5) < 1.5 and abs(max(w, h) - 41) < 3 and abs(min(w, h) - 17) < 3
    assert tracker._mask_geometry(np.zeros((50, 50), bool)) == (None, None)


def test_tracker_geometry_with_a_designed_response():
    """Score peak at cell (12, 14) and a 28 x 48 mask square at window pixels x 50..77, y 40..87: the
    tracker must move the target to the mask box, 16 crop pixels right of the old centre plus the square's
    offset, and smooth the size towards the mask box with lr * score."""
    model = slim_model().eval()
    peak = torch.full((1, 1, 25, 25), -10.0)
    peak[0, 0, 12, 14] = 10.0

    def heads(kernels, xf, full_mask=True):
        return {"score": peak.clone(), "mask_corr": torch.zeros(1, 32, 25, 25)}

    def refine_mask(low, corr, b, r, c):
        assert (int(r), int(c)) == (12, 14)
        out = torch.full((1, 1, 127, 127), -10.0)
        out[0, 0, 40:88, 50:78] = 10.0
        return out

    model.heads, model.refine_mask = heads, refine_mask
    cfg = SiamMLGTrackerConfig(window_influence=0.0, gradient_update=False, lr=0.5)
    tracker = SiamMLGTracker(model, cfg, device="cpu")
    img = np.zeros((400, 400, 3), np.uint8)
    tracker.init(img, [168.0, 168.0, 64.0, 64.0])  # centre (200, 200), search side 255 * 128 / 127
    res = tracker.update(img)
    s = 128 / 127  # image pixels per crop pixel
    cell_x = 200 + 16 * s
    exp_cx, exp_cy = cell_x + (64 - 63.5) * s, 200 + (64 - 63.5) * s
    cx, cy = res.box[0] + res.box[2] / 2, res.box[1] + res.box[3] / 2
    assert abs(cx - exp_cx) < 1.0 and abs(cy - exp_cy) < 1.0
    conf = 1 / (1 + math.exp(-10))
    lr = 0.5 * conf
    assert abs(res.box[2] - ((1 - lr) * 64 + lr * 28 * s)) < 1.0
    assert abs(res.box[3] - ((1 - lr) * 64 + lr * 48 * s)) < 1.0
    assert abs(res.mask.sum() - 28 * 48 * s * s) < 0.1 * 28 * 48
    xs, ys = res.polygon[0::2], res.polygon[1::2]
    assert abs(xs.min() - (cell_x + (50 - 63.5) * s)) < 1.5 and abs(ys.max() - (200 + (88 - 63.5) * s)) < 1.5
    assert math.isclose(res.score, conf, rel_tol=1e-6)


def test_gradient_scale_does_not_depend_on_template_batch():
    model = slim_model().eval()
    z, x = images(2, 127), images(2, 255, 5)
    with torch.no_grad():
        f2 = model.f2(z)
        xf, _ = model.search(x)
    g_batch, _ = model.gradient(f2, xf)
    g_single, _ = model.gradient(f2[1:], xf[1:])
    assert torch.allclose(g_batch[1:], g_single, rtol=1e-4, atol=1e-8) and g_single.abs().max() > 0


def test_training_step_end_to_end_reduces_the_losses():
    """A few optimiser steps on one synthetic batch (second-order update, score + mask + box losses)."""
    torch.manual_seed(0)
    model = slim_model(box_head=True).train()
    z = torch.full((2, 3, 127, 127), 100.0)
    x = torch.full((2, 3, 255, 255), 100.0)
    z[:, 0, 48:80, 40:88] = 250
    x[:, 0, 112:144, 104:152] = 250
    gt = torch.zeros(2, 1, 255, 255)
    gt[:, :, 112:144, 104:152] = 1
    box = torch.tensor([[104.0, 112.0, 152.0, 144.0]] * 2)
    label, weight = model.label(25)
    t_ltrb, t_pos = ltrb_targets(box)
    b, r, c = positive_cells(label.expand(2, 1, 25, 25))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def losses():
        out = model(z, x, create_graph=True)
        mask = out["mask"][b, :, r, c].reshape(-1, 63, 63)
        return (score_loss(out["score"], label, weight), mask_soft_margin_loss(mask, mask_windows(gt, b, r, c)),
                box_projection_mask_loss(mask, window_boxes(box, b, r, c) * 63 / 127),
                iou_loss(out["box"], t_ltrb, t_pos))

    first = [v.item() for v in losses()]
    for _ in range(12):
        opt.zero_grad()
        sum(losses()).backward()
        assert model.u2.conv.weight.grad.abs().sum() > 0
        opt.step()
    last = [v.item() for v in losses()]
    assert all(math.isfinite(v) for v in first + last)
    assert last[0] < first[0] and last[1] < first[1] and last[3] < first[3] and sum(last) < 0.8 * sum(first)


def test_refine_windows_are_centred_on_the_cell():
    """conv1 index k is centred on crop pixel 2k+3, layer1 on 4k+3, layer2 on 8k+7; cell j on 31+8j."""
    from gradtrack.models.heads import Refine
    i, j = 5, 17
    levels = [(125, 16, 61, 4, lambda p: (p - 3) // 2), (63, 8, 31, 2, lambda p: (p - 3) // 4),
              (31, 4, 15, 1, lambda p: (p - 7) // 8)]
    for size, pad, win, step, index in levels:
        feat = torch.zeros(1, 1, size, size)
        feat[0, 0, index(31 + 8 * i), index(31 + 8 * j)] = 1
        w = Refine._windows(feat, pad, win, step, torch.tensor([0]), torch.tensor([i]), torch.tensor([j]))
        assert w.shape == (1, 1, win, win) and w[0, 0, win // 2, win // 2] == 1


def test_training_u2_alone_lowers_the_loss_after_the_update():
    """GradNet's second stage: everything frozen but U2; the loss after the update drops below the
    (unchanged) loss before it."""
    torch.manual_seed(0)
    model = slim_model().train()
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.u2.parameters():
        p.requires_grad_(True)
    z = torch.full((2, 3, 127, 127), 100.0)
    x = torch.full((2, 3, 255, 255), 100.0)
    z[:, 0, 48:80, 40:88] = 250
    x[:, 0, 112:144, 104:152] = 250
    x[:, 1, 60:90, 30:70] = 250  # a distractor
    label, weight = model.label(25)
    opt = torch.optim.Adam(model.u2.parameters(), lr=1e-2)
    inits, afters = [], []
    for _ in range(8):
        out = model(z, x, create_graph=True)
        after = score_loss(out["score"], label, weight)
        opt.zero_grad()
        after.backward()
        opt.step()
        inits.append(out["loss_init"].item())
        afters.append(after.item())
    assert max(inits) - min(inits) < 1e-4  # frozen: the loss before the update does not move
    assert afters[-1] < 0.8 * inits[-1]


# ------------------------------------------------------------------------- EfficientNet-Lite backbone
EFFNET = dict(backbone={"name": "efficientnet_lite0", "frozen_bn": True}, input_norm="none", template_crop=8,
              neck_channels=32, head_hidden=32, sk_cfg={"groups": 8, "reduction": 4, "min_dim": 8}, box_head=True)


def test_efficientnet_pyramid_levels_rebuild_the_forward():
    from gradtrack.models.efficientnet_lite import EfficientNetLite, EfficientNetLiteConfig
    net = EfficientNetLite(EfficientNetLiteConfig()).eval()
    x = images(1, 255)
    with torch.no_grad():
        low = net.shallow(x)
        top = net.deep(low[-1])
        assert torch.equal(top, net(x))
    assert net.channels == (16, 24, 40, 112)
    assert [tuple(t.shape[1:]) for t in low] == [(16, 128, 128), (24, 64, 64), (40, 32, 32)]


def test_siammlg_on_efficientnet_has_the_resnet_score_geometry():
    cfg = slim_cfg(**EFFNET)
    cfg.validate()
    resnet = slim_cfg()
    assert cfg.geometry() == resnet.geometry() and cfg.score_size == 25
    model = SiamMLG(cfg).eval()
    with torch.no_grad():
        out = model(images(2, 127), images(4, 255, 1), create_graph=False)
        zf = model.template(images(1, 127))
    assert out["score"].shape == (4, 1, 25, 25) and out["box"].shape == (4, 4, 25, 25)
    assert zf.shape == (1, 32, 8, 8) and out["xf"].shape == (4, 32, 32, 32)
    assert [t.shape[1] for t in out["low"]] == [16, 24, 40]


def test_siammlg_on_efficientnet_response_peaks_follow_the_target_shift():
    # cell (i, j) of the map sits at crop pixel 31.5 + 8 j: a template pasted 8k px off the search centre
    # must move the correlation peak of an identity-like feature by k cells.  Checked on the raw neck
    # features (no trained heads needed): the best-matching position of the template feature.
    torch.manual_seed(0)
    model = SiamMLG(slim_cfg(**EFFNET)).eval()
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 255, (400, 400, 3)).astype(np.float32)
    z = torch.from_numpy(scene[136:263, 136:263].copy()).permute(2, 0, 1)[None]
    for dy, dx in [(0, 0), (16, -24)]:
        top, left = 72 - dy, 72 - dx  # the search window whose centre is 8k px away from the template's
        x = torch.from_numpy(scene[top:top + 255, left:left + 255].copy()).permute(2, 0, 1)[None]
        with torch.no_grad():
            zf = model.template(z)
            xf, _ = model.search(x)
            corr = F.conv2d(xf, zf)[0, 0] - 0.5 * F.conv2d(xf ** 2, torch.ones_like(zf))[0, 0]
        i, j = np.unravel_index(int(corr.argmax()), corr.shape)
        assert corr.shape == (25, 25) and (i - 12, j - 12) == (dy // 8, dx // 8)


def test_siammlg_on_efficientnet_rejects_double_normalisation_and_sk_inside_layer3():
    with pytest.raises(ValueError, match="input_norm"):
        slim_cfg(**{**EFFNET, "input_norm": "imagenet"}).validate()
    with pytest.raises(ValueError, match="layer3"):
        slim_cfg(**{**EFFNET, "sk": "layer3"}).validate()
    with pytest.raises(ValueError, match="template_crop"):
        slim_cfg(**{**EFFNET, "template_crop": 7}).validate()
    with pytest.raises(ValueError, match="feature-pyramid"):
        slim_cfg(**{**EFFNET, "backbone": {"name": "alexnet"}}).validate()


def test_siammlg_tracker_runs_on_an_efficientnet_model(tmp_path):
    torch.manual_seed(0)
    model = SiamMLG(slim_cfg(**EFFNET))
    path = save_model(tmp_path / "m.pt", "siammlg", model)
    trk = build_tracker("siammlg", weights=str(path))
    img = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    trk.init(img, np.array([100.0, 80.0, 40.0, 30.0]))
    res = trk.update(img)
    assert np.all(np.isfinite(res.box)) and res.box[2] > 0 and res.box[3] > 0


@pytest.mark.parametrize("weights", [None, "random"])  # shipped = EfficientNet-Lite0 (phase-grid dilated), random = ResNet
def test_tracker_per_frame_network_is_folded_and_matches_the_model(weights):
    """The tracker's BN-folded, channels-last per-frame copy gives the model's own search features and head
    outputs in fp32; bf16 (or the older amp switch) runs that copy in bfloat16; bad precisions are errors."""
    from gradtrack.trackers import build_tracker
    from gradtrack.trackers.common import search_input

    tr = build_tracker("siammlg", weights=weights, device="cpu", precision="fp32")
    g = tr.geom
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (g.instance_size, g.instance_size, 3), dtype=np.uint8)
    zcrop = rng.integers(0, 256, (g.exemplar_size, g.exemplar_size, 3), dtype=np.uint8)
    x = search_input(crop, torch.device("cpu"))
    z = search_input(zcrop, torch.device("cpu")).contiguous()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in tr.fast.modules())
    assert n_bn < sum(isinstance(m, torch.nn.BatchNorm2d) for m in tr.model.modules())  # something was folded
    with torch.no_grad():
        kernels = tr.model.kernels(tr.model.u1(tr.model.f2(z)))
        ref_xf, ref_low = tr.model.search(x.contiguous())
        got_xf, got_low = tr.fast.search(x)
        ref, got = tr.model.heads(kernels, ref_xf, full_mask=False), tr.fast.heads(kernels, got_xf, full_mask=False)
    for a, b in [(ref_xf, got_xf), *zip(ref_low, got_low), *((ref[k], got[k]) for k in ref)]:
        assert torch.allclose(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max())), a.shape
    bf = build_tracker("siammlg", weights=weights, device="cpu", precision="bf16")
    legacy = build_tracker("siammlg", weights=weights, device="cpu", amp=True)
    assert (tr.precision, bf.precision, legacy.precision) == ("fp32", "bf16", "bf16")
    assert next(bf.fast.parameters()).dtype == torch.bfloat16 and next(bf.model.parameters()).dtype == torch.float32
    frames = [rng.integers(0, 256, (200, 240, 3), dtype=np.uint8) for _ in range(3)]
    for t, prec in ((tr, "fp32"), (bf, "bf16")):
        t.init(frames[0], np.array([90.0, 70.0, 50.0, 40.0]))
        for f in frames[1:]:
            res = t.update(f)
            assert res.extra["precision"] == prec and np.isfinite(res.box).all()
    with pytest.raises(Exception, match="precision"):
        build_tracker("siammlg", weights=weights, device="cpu", precision="int8")

"""GradNet tracker: tracking loop, gradient-guided template updates, sample buffer, state, checkpoints.

Uses the pixel-correlation backbone of ``test_trackers_siamfc.py`` for both branches, with
``f2`` = the pixel features of the exemplar, ``U1`` = identity and ``U2`` = a *descent step*:
``U2(g) = tanh(BN(conv(s g)))`` with the conv set to ``-c * identity`` (centre tap only, no bias) and BN
to the identity in eval mode (running mean 0, running var ``1 - eps``), so ``f2' = f2 - tanh(c s g)``.
Since tanh is odd and increasing, ``<g, -tanh(c s g)> < 0``: the update is a (nonlinear) gradient-descent
step on the loss it was computed from, i.e. what a trained U2 is supposed to approximate.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import gradtrack
from gradtrack.checkpoint import CheckpointError, save_model
from gradtrack.config import ConfigError, from_dict
from gradtrack.geometry import iou
from gradtrack.io import ImageError
from gradtrack.models import GradNet, GradNetConfig, SiamFCConfig
from gradtrack.models.gradnet import GradientUpdate
from gradtrack.models.labels import balanced_logistic_loss, centered_label
from gradtrack.trackers.gradnet import GradNetTracker, GradNetTrackerConfig
from test_trackers_siamfc import TINY, BlindFeatures, PixelFeatures, make_sequence

STEP = 60.0  # c: with s = 44 and |g| ~ 1e-4 this moves f2 by ~0.25 (features are ~1)


def descent_u2(channels: int, step: float, grad_scale: float = 44.0) -> GradientUpdate:
    u2 = GradientUpdate(channels, 3, grad_scale)
    with torch.no_grad():
        u2.conv.weight.zero_()
        u2.conv.weight[:, :, 1, 1] = -step * torch.eye(channels)
        u2.conv.bias.zero_()
        u2.bn.running_mean.zero_()
        u2.bn.running_var.fill_(1.0 - u2.bn.eps)
        u2.bn.weight.fill_(1.0)
        u2.bn.bias.zero_()
    return u2.eval()


def pixel_gradnet(step: float = STEP, features: nn.Module | None = None) -> GradNet:
    model = GradNet(GradNetConfig(siamfc=SiamFCConfig(backbone=TINY), template=TINY))
    model.siamfc.backbone = features or PixelFeatures()
    model.template.stem = features or PixelFeatures()
    model.template.head = nn.Identity()
    model.u2 = descent_u2(48, step)
    with torch.no_grad():
        model.adjust.scale.fill_(1.0 / 500.0)
        model.siamfc.adjust.scale.fill_(1.0 / 500.0)
    return model.eval()


def tracker(fusion="official", step=STEP, features=None, cls=GradNetTracker, **cfg) -> GradNetTracker:
    c = from_dict(GradNetTrackerConfig, {"fusion": fusion, **cfg})
    return cls(pixel_gradnet(step, features), c, device="cpu")


class FlippedGradNet(GradNetTracker):
    def _displacement(self, r, crop_side):
        return -super()._displacement(r, crop_side)


@pytest.fixture(scope="module")
def seq():
    return make_sequence(seed=0)


@pytest.mark.parametrize("fusion, seed", [("official", 0), ("paper", 1)])
def test_follows_target(fusion, seed):
    frames, boxes = make_sequence(seed=seed)
    t = tracker(fusion)
    out, _ = t.track(frames, boxes[0])
    ious = iou(out, boxes)
    assert ious[1:].mean() > 0.65, ious.round(2)
    assert ious[-5:].min() > 0.45, ious.round(2)
    # init update, frame-0 periodic update, frames 5, 10, ..., 35, plus any rescue
    assert t.state.updates == 2 + 7 + t.state.schedule.rescues


@pytest.mark.parametrize("fusion", ["official", "paper"])
def test_broken_variant_fails(seq, fusion):
    frames, boxes = seq
    out, _ = tracker(fusion, cls=FlippedGradNet).track(frames[:25], boxes[0])
    assert iou(out, boxes[:25])[1:].mean() < 0.35


def test_paper_fusion_uses_the_gradnet_template(seq):
    """In "paper" mode an image-blind search branch leaves the tracker blind, whatever the template;
    in "official" mode the fixed SiamFC template decides the scale and 85 % of the map."""
    frames, boxes = seq
    out, _ = tracker("paper", features=BlindFeatures()).track(frames[:25], boxes[0])
    assert iou(out, boxes[:25])[1:].mean() < 0.5
    t = tracker("official")
    t.init(frames[0], boxes[0])
    sia = t.state.template_sia
    t.update(frames[1])
    assert t.state.template_sia is sia  # never updated
    assert tracker("paper").state is None
    p = tracker("paper")
    p.init(frames[0], boxes[0])
    assert p.state.template_sia is None


def _loss(model, f2, xf):
    label, weight = centered_label(xf.shape[-1] - 5, 2.0)
    with torch.no_grad():
        return float(balanced_logistic_loss(model.score(model.u1(f2), xf), label, weight))


def test_init_template_is_gradient_updated_twice_and_lowers_loss(seq):
    """hid = h1 + 0.6 (f2'' - h1) with h1 = f2 + U2(g(f2)), f2'' = h1 + U2(g(h1)); template = U1(f2'')."""
    frames, boxes = seq
    t = tracker("official")
    t.init(frames[0], boxes[0])
    m = t.model
    z = torch.from_numpy(t._exemplar_crop(frames[0], t.state.target)).permute(0, 3, 1, 2).float()
    xf0 = t.state.schedule.samples[0].features
    f2 = m.f2(z)
    label, weight = centered_label(17, 2.0)
    g0, loss0 = m.gradient(f2, xf0, label, weight)
    _, h1 = m.update(f2, g0)
    g1, loss1 = m.gradient(h1, xf0, label, weight)
    tmpl, f2b = m.update(h1, g1)
    loss0, loss1 = loss0.detach(), loss1.detach()
    torch.testing.assert_close(t.state.hid, 0.4 * h1 + 0.6 * f2b)
    torch.testing.assert_close(t.state.template, tmpl)
    assert not torch.allclose(t.state.template, m.u1(f2))
    # each descent step lowers the loss on the frame-0 crop
    assert float(loss1) < float(loss0)
    assert _loss(m, f2b, xf0) < float(loss1)
    assert _loss(m, t.state.hid, xf0) < float(loss0)
    # without the frame-0 periodic update the state is h1
    t2 = tracker("official", init_periodic_update=False)
    t2.init(frames[0], boxes[0])
    torch.testing.assert_close(t2.state.hid, h1)
    assert len(t.state.schedule.samples) == 1 and t.state.schedule.samples[0].score == 0.0 and t.state.schedule.samples[0].frame == 0


def test_ascent_u2_raises_loss(seq):
    """Control for the test above: with the opposite sign U2 makes the loss worse."""
    frames, boxes = seq
    t = tracker("official", step=-STEP, init_periodic_update=False)
    t.init(frames[0], boxes[0])
    m, xf0 = t.model, t.state.schedule.samples[0].features
    z = torch.from_numpy(t._exemplar_crop(frames[0], t.state.target)).permute(0, 3, 1, 2).float()
    assert _loss(m, t.state.hid, xf0) > _loss(m, m.f2(z), xf0)


def test_threshold_buffer_and_periodic_updates(seq):
    frames, boxes = seq
    t = tracker("official")
    t.init(frames[0], boxes[0])
    peaks, updated = [], []
    for i in range(1, 13):
        hid_before = t.state.hid.clone()
        res = t.update(frames[i])
        peaks.append(res.extra["peak"])
        updated.append(res.extra["updated"])
        assert len(t.state.schedule.samples) <= 5
        if i < 5:
            assert t.state.schedule.f_thr == 0.0 and res.extra["reliable"]  # threshold 0 before frame 5
        if res.extra["updated"] and not res.extra["rescued"]:
            best = max(t.state.schedule.samples, key=lambda s: s.score)
            assert best.features is not None  # computed once and cached
            fresh = t._features(best.crop)
            torch.testing.assert_close(best.features, fresh)
            label, weight = centered_label(17, 2.0)
            g, _ = t.model.gradient(hid_before, fresh, label, weight)
            tmpl, f2n = t.model.update(hid_before, g)
            torch.testing.assert_close(t.state.hid, 0.4 * hid_before + 0.6 * f2n)
            torch.testing.assert_close(t.state.template, tmpl)
    assert t.state.schedule.f_thr == pytest.approx(np.mean(peaks[:5]))
    assert [i + 1 for i, u in enumerate(updated) if u] == [5, 10]
    assert 0.5 < t.state.schedule.f_thr <= 1.0  # sigmoid peaks
    assert [s.frame for s in t.state.schedule.samples] == list(range(8, 13))  # FIFO of the 5 latest reliable frames


def test_rescue_update_on_lost_target(seq):
    """Frame 7 is the photographic negative: the template correlates negatively, the peak collapses
    below 0.4 F_thr, the sample is unreliable and (i < 10) an immediate update blends 0.3 / 0.7.
    Raw peaks (logits) are used: the negative's best logit (~1) is far below 0.4 x the target's (~5),
    while their sigmoids (0.73 vs 0.99) are not."""
    frames, boxes = seq
    t = tracker("official", reliability_score="raw")
    t.init(frames[0], boxes[0])
    for i in range(1, 7):
        assert not t.update(frames[i]).extra["rescued"]
    n_samples = len(t.state.schedule.samples)
    hid_before = t.state.hid.clone()
    res = t.update(255 - frames[7])
    assert res.extra["peak"] < 0.4 * t.state.schedule.f_thr and not res.extra["reliable"] and res.extra["rescued"]
    assert len(t.state.schedule.samples) == n_samples and t.state.schedule.rescues == 1
    crop = t._search_crops(255 - frames[7], t.state.target, factors=[1.0])  # re-cut at the new position
    label, weight = centered_label(17, 2.0)
    g, _ = t.model.gradient(hid_before, t._features(crop), label, weight)
    tmpl, f2n = t.model.update(hid_before, g)
    torch.testing.assert_close(t.state.hid, 0.3 * hid_before + 0.7 * f2n)
    torch.testing.assert_close(t.state.template, tmpl)
    # the same collapse after frame 10 is not rescued
    t2 = tracker("official", reliability_score="raw")
    t2.track(frames[:12], boxes[0])
    assert not t2.update(255 - frames[12]).extra["rescued"]


@pytest.mark.parametrize("enabled", [True, False])
def test_no_window_heuristic(seq, enabled):
    """Optional official heuristic: window influence 0 for exactly one frame, when the last reliable
    sample is 9 frames old.  Frames 6+ are negatives (unreliable with raw scores): last sample = frame 5."""
    frames, boxes = seq
    t = tracker("official", reliability_score="raw", no_window_heuristic=enabled)
    t.init(frames[0], boxes[0])
    used = []
    for i in range(1, 17):
        res = t.update(frames[i] if i <= 5 else 255 - frames[i])
        used.append(res.extra["window_influence"])
        if i > 5:
            assert not res.extra["reliable"]
    assert t.state.schedule.samples[-1].frame == 5
    expected = [0.25] * 16
    if enabled:
        expected[14 - 1] = 0.0
    assert used == expected


@pytest.mark.parametrize("fusion", ["official", "paper"])
def test_reinit_gives_identical_results(seq, fusion):
    frames, boxes = seq
    t = tracker(fusion)
    a, _ = t.track(frames[:11], boxes[0])  # includes the periodic updates at frames 0, 5 and 10
    other, oboxes = make_sequence(n=6, seed=7)
    t.track(other, oboxes[0])
    b, _ = t.track(frames[:11], boxes[0])
    np.testing.assert_array_equal(a, b)
    t.reset()
    with pytest.raises(RuntimeError, match="before init"):
        t.update(frames[0])


def test_fusion_defaults_and_overrides():
    off = gradtrack.build_tracker("gradnet", weights="random", device="cpu")
    pap = gradtrack.build_tracker("gradnet", weights="random", device="cpu", fusion="paper")
    assert np.isclose(off.scale_factors[2], 1.04) and off.window_influence == 0.25
    assert off.scale_penalties[0] == pytest.approx(0.97)
    assert np.isclose(pap.scale_factors[2], 1.0375) and pap.window_influence == 0.176
    custom = gradtrack.build_tracker("gradnet", weights="random", device="cpu", window_influence=0.1, fusion_weight=0.3)
    assert custom.window_influence == 0.1 and custom.cfg.fusion_weight == 0.3
    for bad in ({"fusion": "mixed"}, {"fusion_weight": 2.0}, {"update_interval": 0}, {"periodic_keep": -1.0},
                {"reliability_score": "logit"}, {"unknown": 1}):
        with pytest.raises(ConfigError):
            gradtrack.build_tracker("gradnet", weights="random", device="cpu", **bad)


def test_untrained_gradnet_runs_on_odd_frames():
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = GradNet(GradNetConfig(siamfc=SiamFCConfig(backbone=TINY), template=TINY))
    t = GradNetTracker(model, device="cpu")
    gray = np.random.default_rng(0).integers(0, 256, (30, 26), dtype=np.uint8)  # smaller than any crop
    t.init(gray, (5, 6, 10, 12))
    for _ in range(6):
        res = t.update(np.dstack([gray] * 3 + [gray]))  # RGBA
        assert np.isfinite(res.box).all() and 0 <= res.score <= 1
    with pytest.raises(ImageError):
        t.update(gray.astype(np.float32))


def test_checkpoint_round_trip_and_mismatch(tmp_path, seq):
    frames, boxes = seq
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = GradNet(GradNetConfig(siamfc=SiamFCConfig(backbone=TINY), template=TINY)).eval()
    path = save_model(tmp_path / "gradnet_tiny.pt", "gradnet", model)
    built = gradtrack.build_tracker("gradnet", weights=str(path), device="cpu", fusion="paper")
    direct = GradNetTracker(model, GradNetTrackerConfig(fusion="paper"), device="cpu")
    a, _ = built.track(frames[:7], boxes[0])
    b, _ = direct.track(frames[:7], boxes[0])
    np.testing.assert_allclose(a, b)
    with pytest.raises(CheckpointError, match="holds a 'gradnet' model, expected siamfc"):
        gradtrack.build_tracker("siamfc", weights=path, device="cpu")
    wrong = GradNet(GradNetConfig(siamfc=SiamFCConfig(backbone=TINY), template=TINY, u2_kernel=5))
    wrong.cfg = model.cfg  # claims a 3x3 U2 but stores a 5x5 one
    bad = save_model(tmp_path / "bad.pt", "gradnet", wrong)
    with pytest.raises(CheckpointError, match="u2.conv.weight"):
        gradtrack.build_tracker("gradnet", weights=bad, device="cpu")


def test_online_update_off_keeps_the_initial_template():
    """online_update=False is the paper's "w/o U": the template is U1(f2(z)) and never changes."""
    from gradtrack.trackers.common import crops_to_tensor

    seq, boxes = make_sequence(seed=3, n=12)
    tr = gradtrack.build_tracker("gradnet", weights="random", device="cpu", online_update=False)
    tr.init(seq[0], boxes[0])
    with torch.no_grad():
        z = crops_to_tensor(tr._exemplar_crop(seq[0], tr.state.target), tr.device)
        expected = tr.model.u1(tr.model.f2(z)).float()
    assert torch.equal(tr.state.template, expected)
    for frame in seq[1:]:
        res = tr.update(frame)
        assert not res.extra["updated"]
    assert torch.equal(tr.state.template, expected) and tr.state.updates == 0
    on = gradtrack.build_tracker("gradnet", weights="random", device="cpu")
    on.init(seq[0], boxes[0])
    assert not torch.equal(on.state.template, expected)  # the default builds the template by a gradient step

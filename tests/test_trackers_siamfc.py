"""SiamFC tracker, tracker registry and the public API.

The tracking tests use a *pixel-correlation backbone*: a fixed, parameter-free network whose features are
the 2x-downsampled, centred image rearranged into 48 channels at stride 8 (space-to-depth), cut so that
127 -> 6 x 6 and 255 -> 22 x 22 cells like SiamFC's AlexNet.  Cross-correlating such features is plain
(unnormalised) image correlation, so the tracking loop can be checked without trained weights: a
textured patch moving and growing over a cluttered background must be followed, and deliberately broken
variants of the tracker (flipped displacement, image-blind features) must fail the same check.

``make_sequence`` and ``pixel_siamfc`` are imported by ``test_trackers_gradnet.py``.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import gradtrack
from gradtrack.checkpoint import CheckpointError, save_model
from gradtrack.config import ConfigError
from gradtrack.geometry import BoxError, iou
from gradtrack.io import ImageError
from gradtrack.models import AlexNetConfig, SiamFC, SiamFCConfig
from gradtrack.trackers import TRACKERS
from gradtrack.trackers.common import WeightsNotFoundError
from gradtrack.trackers.siamfc import SiamFCTracker, SiamFCTrackerConfig

TINY = AlexNetConfig(channels=(8, 8, 8, 8, 8))
MARGIN = 39  # feature cell g covers crop pixels [39 + 8g, 47 + 8g): centre 8g + 43 (AlexNet: 8g + 43.5)


class PixelFeatures(nn.Module):
    """``(img - 128) / 64`` -> 2x2 average pool -> space-to-depth 4: 48 channels at stride 8."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = (x.shape[-1] - 2 * MARGIN) // 8
        m = (x.shape[-2] - 2 * MARGIN) // 8
        x = x[..., MARGIN:MARGIN + 8 * m, MARGIN:MARGIN + 8 * n]
        return F.pixel_unshuffle(F.avg_pool2d((x - 128.0) / 64.0, 2), 4)


class BlindFeatures(nn.Module):
    """Broken backbone: same shapes as PixelFeatures but independent of the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = (x.shape[-1] - 2 * MARGIN) // 8
        return torch.ones(x.shape[0], 48, n, n, dtype=x.dtype, device=x.device)


def pixel_siamfc(features: nn.Module | None = None) -> SiamFC:
    model = SiamFC(SiamFCConfig(backbone=TINY))
    model.backbone = features or PixelFeatures()
    with torch.no_grad():
        model.adjust.scale.fill_(1.0 / 500.0)  # self-correlation of a textured 6x6 template ~ 2e3 -> logit ~ 4
    return model.eval()


def make_sequence(n: int = 40, seed: int = 0, size=(320, 240), start=(80.0, 70.0), wh=(40.0, 32.0),
                  velocity=(3.0, 1.6), growth: float = 0.45):
    """Frames (RGB uint8) and 0-based ground-truth boxes of a textured patch on cluttered texture.

    Background: blurred colour noise at two scales plus random rectangles (std ~35).  Target: a 6 x 5
    grid of random high-contrast colours, drawn at the rounded box; it moves along a wavy path and its
    size grows linearly by ``growth`` (45 %) over the sequence.
    """
    rng = np.random.default_rng(seed)
    w_img, h_img = size
    coarse = cv2.resize(rng.normal(0, 1, (h_img // 16, w_img // 16, 3)).astype(np.float32), (w_img, h_img),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h_img, w_img, 3)).astype(np.float32), (0, 0), 2.0)
    bg = 128 + 25 * coarse + 40 * fine
    for _ in range(30):
        x0, y0 = rng.integers(0, w_img - 10), rng.integers(0, h_img - 10)
        ww, hh = rng.integers(6, 30, size=2)
        bg[y0:y0 + hh, x0:x0 + ww] += rng.normal(0, 30, 3)
    bg = np.clip(bg, 0, 255).astype(np.uint8)
    tex = rng.choice([15, 70, 185, 240], size=(5, 6, 3)).astype(np.uint8)
    frames, boxes = [], []
    for t in range(n):
        s = 1.0 + growth * t / max(1, n - 1)
        w, h = wh[0] * s, wh[1] * s
        cx = start[0] + wh[0] / 2 + velocity[0] * t + 8 * np.sin(t / 5)
        cy = start[1] + wh[1] / 2 + velocity[1] * t
        x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
        x1, y1 = int(round(cx + w / 2)), int(round(cy + h / 2))
        img = bg.copy()
        img[y0:y1, x0:x1] = cv2.resize(tex, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        frames.append(img)
        boxes.append([x0, y0, x1 - x0, y1 - y0])
    return frames, np.asarray(boxes, dtype=np.float64)


def run(tracker, frames, boxes) -> np.ndarray:
    out, _ = tracker.track(frames, boxes[0])
    return iou(out, boxes)


class FlippedSiamFC(SiamFCTracker):
    """Broken on purpose: moves away from the peak."""

    def _displacement(self, r, crop_side):
        return -super()._displacement(r, crop_side)


@pytest.fixture(scope="module")
def seq():
    return make_sequence()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_follows_moving_growing_target(seed):
    frames, boxes = make_sequence(seed=seed)
    ious = run(SiamFCTracker(pixel_siamfc(), device="cpu"), frames, boxes)
    assert ious[1:].mean() > 0.7, ious.round(2)
    assert ious[-5:].min() > 0.5, ious.round(2)  # still on target at the end (moved ~120 px, grew 45 %)


def test_scale_estimation_follows_growth(seq):
    frames, boxes = seq
    tracker = SiamFCTracker(pixel_siamfc(), device="cpu")
    out, _ = tracker.track(frames, boxes[0])
    grown = out[-1, 2] / out[0, 2]
    assert 1.15 < grown < 1.7, grown  # ground truth grows 1.45x; without scale search it would stay 1.0


@pytest.mark.parametrize("broken", ["flipped_sign", "blind_features"])
def test_broken_variants_fail(seq, broken):
    frames, boxes = seq
    if broken == "flipped_sign":
        tracker = FlippedSiamFC(pixel_siamfc(), device="cpu")
    else:
        tracker = SiamFCTracker(pixel_siamfc(BlindFeatures()), device="cpu")
    ious = run(tracker, frames, boxes)
    assert ious[1:].mean() < 0.35, ious.round(2)


@pytest.mark.parametrize("shift", [(13.0, -7.0), (-20.0, 9.0), (0.0, 0.0)])
def test_single_step_displacement_is_exact(shift):
    """One update with no window and one scale recovers a known shift to within a pixel or two."""
    frames, boxes = make_sequence(n=1, seed=3, start=(120.0, 90.0))
    img0, box = frames[0], boxes[0]
    dx, dy = shift
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    img1 = cv2.warpAffine(img0, m, (img0.shape[1], img0.shape[0]), borderMode=cv2.BORDER_REFLECT)
    cfg = gradtrack.config.from_dict(SiamFCTrackerConfig, {"scale_num": 1, "window_influence": 0.0})
    tracker = SiamFCTracker(pixel_siamfc(), cfg, device="cpu")
    tracker.init(img0, box)
    out = tracker.update(img1).box
    err = (out[:2] + out[2:] / 2) - (box[:2] + box[2:] / 2 + np.array([dx, dy]))
    assert np.abs(err).max() < 1.5, err
    flipped = FlippedSiamFC(pixel_siamfc(), cfg, device="cpu")
    flipped.init(img0, box)
    out_f = flipped.update(img1).box
    err_f = (out_f[:2] + out_f[2:] / 2) - (box[:2] + box[2:] / 2 + np.array([dx, dy]))
    if dx or dy:
        assert np.abs(err_f).max() > 10, err_f


class CraftedResponse(SiamFCTracker):
    """Feeds a hand-made raw response (two peaks) into the normal update path."""

    def _responses(self, crops, template):
        yy, xx = np.mgrid[:17, :17]
        bump = lambda r, c: np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 2.0 ** 2))  # noqa: E731
        raw = np.zeros((len(crops), 17, 17), np.float32)
        # a smooth peak at the previous position and a 5 % stronger one 6 cells (48 crop px) to the right
        raw[len(crops) // 2] = 1.0 * bump(8, 8) + 1.05 * bump(8, 14)
        return raw


@pytest.mark.parametrize("influence, expected_cells", [(0.176, 0), (0.0, 6)])
def test_window_prefers_previous_position(influence, expected_cells):
    img = np.full((300, 300, 3), 90, np.uint8)
    tracker = CraftedResponse(pixel_siamfc(), SiamFCTrackerConfig(window_influence=influence), device="cpu")
    tracker.init(img, (130, 130, 40, 40))
    x_sz = tracker.state.x_sz
    out = tracker.update(img).box
    dx = out[0] + out[2] / 2 - 150
    # upsampled peak lands within half a cell of the raw peak; convert cells -> image px
    assert abs(dx - expected_cells * 8 * x_sz / 255) < 0.5 * 8 * x_sz / 255, dx
    assert abs(out[1] + out[3] / 2 - 150) < 0.5 * 8 * x_sz / 255


def test_reinit_resets_state(seq):
    frames, boxes = seq
    tracker = SiamFCTracker(pixel_siamfc(), device="cpu")
    a, _ = tracker.track(frames[:12], boxes[0])
    other, oboxes = make_sequence(n=6, seed=9)
    tracker.track(other, oboxes[0])
    b, _ = tracker.track(frames[:12], boxes[0])
    np.testing.assert_array_equal(a, b)


# ---- input handling -------------------------------------------------------------------------------

@pytest.fixture()
def tiny_tracker():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = SiamFC(SiamFCConfig(backbone=TINY))
    return SiamFCTracker(model.eval(), device="cpu")


@pytest.mark.parametrize("box", [(400, 10, 20, 20), (-50, -50, 20, 20), (10, 10, 0, 20), (10, 10, 20, -3),
                                 (np.nan, 10, 20, 20), (10, 10, np.inf, 5), (1, 2, 3)])
def test_bad_boxes_rejected(tiny_tracker, box):
    img = np.zeros((100, 120, 3), np.uint8)
    with pytest.raises(BoxError):
        tiny_tracker.init(img, box)


def test_update_before_init_raises(tiny_tracker):
    with pytest.raises(RuntimeError, match="before init"):
        tiny_tracker.update(np.zeros((50, 50, 3), np.uint8))


@pytest.mark.parametrize("kind", ["gray2d", "gray3d", "rgba", "uint16", "bool"])
def test_accepted_frame_formats(tiny_tracker, kind):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (90, 110, 3), dtype=np.uint8)
    frame = {"gray2d": rgb[:, :, 0], "gray3d": rgb[:, :, :1], "rgba": np.dstack([rgb, rgb[:, :, :1]]),
             "uint16": rgb.astype(np.uint16) * 257, "bool": rgb[:, :, 0] > 128}[kind]
    tiny_tracker.init(frame, (30, 30, 20, 25))
    res = tiny_tracker.update(frame)
    assert res.box.shape == (4,) and np.isfinite(res.box).all() and 0.0 <= res.score <= 1.0
    if kind == "uint16":  # uint16 is converted by >> 8, i.e. identical to the 8-bit frame
        ref = SiamFCTracker(tiny_tracker.model, device="cpu")
        ref.init(rgb, (30, 30, 20, 25))
        np.testing.assert_allclose(ref.update(rgb).box, res.box)


@pytest.mark.parametrize("frame", [np.zeros((50, 50, 3), np.float32), np.zeros((50, 50, 3), np.float64),
                                   np.zeros((50, 50, 2), np.uint8), np.zeros((0, 5, 3), np.uint8), [[1, 2]]])
def test_rejected_frames(tiny_tracker, frame):
    with pytest.raises(ImageError):
        tiny_tracker.init(frame, (1, 1, 3, 3))


def test_frame_smaller_than_crops(tiny_tracker):
    """A 24 x 20 frame is far smaller than the 127/255 crops: mean-colour padding, box stays finite."""
    img = np.random.default_rng(1).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    tiny_tracker.init(img, (4, 5, 12, 9))
    for _ in range(3):
        res = tiny_tracker.update(img)
        cx, cy = res.box[:2] + res.box[2:] / 2
        assert 0 <= cx <= 24 and 0 <= cy <= 20 and res.box[2] > 0 and res.box[3] > 0


def test_centre_clipped_and_min_size(seq):
    """Whatever the responses, the centre stays inside the image and the target keeps >= 10 px."""
    frames, boxes = seq
    tracker = FlippedSiamFC(pixel_siamfc(), device="cpu")
    out, _ = tracker.track(frames, boxes[0])
    cx, cy = out[:, 0] + out[:, 2] / 2, out[:, 1] + out[:, 3] / 2
    assert (cx >= 0).all() and (cx <= 320).all() and (cy >= 0).all() and (cy <= 240).all()
    assert out[:, 2:].min() >= 10.0 - 1e-9


def test_scale_clamped_for_tiny_target():
    tracker = SiamFCTracker(pixel_siamfc(BlindFeatures()), device="cpu")
    img = np.full((60, 60, 3), 100, np.uint8)
    tracker.init(img, (20, 20, 6, 8))  # smaller than min_target_size: never shrinks below its own size
    for _ in range(20):
        box = tracker.update(img).box
    assert box[2] >= 6 - 1e-9 and box[3] >= 8 - 1e-9


# ---- registry, build_tracker, config, weights ------------------------------------------------------

def test_registry_and_public_api():
    names = gradtrack.list_trackers()
    assert {"siamfc", "gradnet"} <= set(names) and names == sorted(names)
    assert "siamfc" in TRACKERS
    with pytest.raises(KeyError, match="unknown tracker 'nope'"):
        gradtrack.build_tracker("nope", weights="random")


def test_missing_shipped_weights_message(monkeypatch, tmp_path):
    import gradtrack.trackers.common as common

    monkeypatch.setattr(common, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsNotFoundError, match="no trained weights are shipped.*weights=PATH.*random"):
        gradtrack.build_tracker("siamfc")
    with pytest.raises(FileNotFoundError):  # the CLI catches FileNotFoundError
        gradtrack.build_tracker("gradnet")


def test_random_weights_are_explicit_and_repeatable():
    a = gradtrack.build_tracker("siamfc", weights="random", device="cpu")
    b = gradtrack.build_tracker("siamfc", weights="random", device="cpu")
    assert a.untrained and a.weights_source == "random"
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    assert a.device.type == "cpu"


def test_device_default_and_invalid():
    t = gradtrack.build_tracker("siamfc", weights="random")
    assert t.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="invalid device"):
        gradtrack.build_tracker("siamfc", weights="random", device="nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            gradtrack.build_tracker("siamfc", weights="random", device="cuda")


@pytest.mark.parametrize("overrides, match", [
    ({"window_influence": "0.2"}, "expected a number"), ({"no_such_key": 1}, "unknown key"),
    ({"scale_num": 2}, "odd"), ({"window_influence": 1.5}, r"\[0, 1\]"), ({"scale_lr": -0.1}, "scale_lr"),
    ({"min_scale": 2.0}, "min_scale"), ({"instance_size": 250}, "multiple"), ({"amp": 1}, "true/false"),
])
def test_overrides_validated(overrides, match):
    with pytest.raises(ConfigError, match=match):
        gradtrack.build_tracker("siamfc", weights="random", device="cpu", **overrides)


def test_overrides_applied():
    t = gradtrack.build_tracker("siamfc", weights="random", device="cpu", window_influence=0.3, scale_num=5)
    assert t.cfg.window_influence == 0.3 and len(t.scale_factors) == 5
    assert t.scale_factors[2] == 1.0 and np.isclose(t.scale_factors[3], 1.0375)


def test_checkpoint_round_trip(tmp_path, seq):
    frames, boxes = seq
    with torch.random.fork_rng():
        torch.manual_seed(5)
        model = SiamFC(SiamFCConfig(backbone=TINY)).eval()
    path = save_model(tmp_path / "siamfc_tiny.pt", "siamfc", model)
    tracker = gradtrack.build_tracker("siamfc", weights=path, device="cpu")
    assert tracker.weights_source == str(path) and not tracker.untrained
    assert tuple(tracker.model.cfg.backbone["channels"]) == TINY.channels
    for (k, v), (k2, v2) in zip(model.state_dict().items(), tracker.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    direct = SiamFCTracker(model, device="cpu")
    a, _ = tracker.track(frames[:5], boxes[0])
    b, _ = direct.track(frames[:5], boxes[0])
    np.testing.assert_allclose(a, b)


def test_mismatched_checkpoints(tmp_path):
    model = SiamFC(SiamFCConfig(backbone=TINY))
    path = save_model(tmp_path / "siamfc.pt", "siamfc", model)
    with pytest.raises(CheckpointError, match="holds a 'siamfc' model, expected gradnet"):
        gradtrack.build_tracker("gradnet", weights=path, device="cpu")
    # state dict of one width under the config of another: the rebuilt model does not fit
    wide = SiamFC(SiamFCConfig(backbone=AlexNetConfig(channels=(8, 16, 8, 8, 8))))
    wide.cfg = SiamFCConfig(backbone=TINY)
    bad = save_model(tmp_path / "bad.pt", "siamfc", wide)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        gradtrack.build_tracker("siamfc", weights=bad, device="cpu")
    with pytest.raises(CheckpointError, match="not found"):
        gradtrack.build_tracker("siamfc", weights=tmp_path / "missing.pt", device="cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        gradtrack.build_tracker("siamfc", weights=junk, device="cpu")
    with pytest.raises(TypeError, match="weights must be"):
        gradtrack.build_tracker("siamfc", weights=3, device="cpu")


def test_amp_bf16_close_to_fp32(seq):
    frames, boxes = seq
    fp32 = SiamFCTracker(pixel_siamfc(), SiamFCTrackerConfig(precision="fp32"), device="cpu")
    bf16 = SiamFCTracker(pixel_siamfc(), SiamFCTrackerConfig(amp=True), device="cpu")
    a, _ = fp32.track(frames[:15], boxes[0])
    b, _ = bf16.track(frames[:15], boxes[0])
    assert iou(a, b).mean() > 0.85

"""Training pairs: box filters, pair sampling (gap, usable frames, split), crops, still pairs, mixtures."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradtrack.data.augment import AugmentConfig, CropConfig, crop_exemplar, crop_search, exemplar_window
from gradtrack.data.pairs import BoxFilter, CuratedVideo, Pair, sample_pair_indices, usable_frames
from gradtrack.data.samples import CropSamples
from gradtrack.data.sources import (DataConfig, GroupDataset, PairDataset, PairMixture, VideoPool, _open_split,
                                    assert_no_val, split_names)
from gradtrack.data.stills import StillConfig, random_affine, still_pair, transform_box
from gradtrack.models import centered_label


def test_box_filter_rules():
    flt = BoxFilter()  # siamfc-pytorch defaults
    W, H = 640, 480
    boxes = np.array([
        [100, 100, 50, 60],      # fine
        [100, 100, 15, 60],      # a side below 20
        [100, 100, 520, 200],    # a side above 500
        [100, 100, 30, 200],     # aspect 0.15 < 0.25
        [100, 100, 330, 100],    # width > 50 % of the image
        [620, 100, 60, 60],      # only a third inside the image
        [np.nan] * 4,            # absent
        [10, 10, 40, 40],        # fine, but flagged absent below
        [0, 0, 0, 30],           # degenerate
    ], dtype=float)
    absent = np.zeros(len(boxes), bool)
    absent[7] = True
    ok = usable_frames(boxes, (W, H), flt, absent)
    assert ok.tolist() == [True, False, False, False, False, False, False, False, False]
    # loosening a rule lets the matching box through
    loose = BoxFilter(min_side=10, min_inside=0.3)
    ok2 = usable_frames(boxes, (W, H), loose)
    assert ok2[1] and ok2[5] and ok2[7] and not ok2[6]


@settings(max_examples=60, deadline=None)
@given(mask=st.lists(st.booleans(), min_size=1, max_size=80), gap=st.integers(0, 30), seed=st.integers(0, 10**6))
def test_pair_indices_respect_gap_and_usable(mask, gap, seed):
    mask = np.array(mask)
    idx = np.flatnonzero(mask)
    rng = np.random.default_rng(seed)
    if len(idx) == 0:
        with pytest.raises(ValueError):
            sample_pair_indices(idx, gap, rng)
        return
    for _ in range(5):
        z, x = sample_pair_indices(idx, gap, rng)
        assert mask[z] and mask[x]
        assert abs(x - z) <= gap
        has_neighbour = np.any((np.abs(idx - z) <= gap) & (idx != z))
        assert (x != z) == bool(has_neighbour)


def _square_frames(n=12, size=(200, 150), side=24, seed=0):
    rng = np.random.default_rng(seed)
    frames, boxes = [], []
    for _ in range(n):
        img = np.full((size[1], size[0], 3), 90, np.uint8)
        x = rng.uniform(20, size[0] - side - 20)
        y = rng.uniform(20, size[1] - side - 20)
        img[int(round(y)):int(round(y)) + side, int(round(x)):int(round(x)) + side] = (250, 20, 20)
        frames.append(img)
        boxes.append([round(x), round(y), side, side])
    return frames, np.array(boxes, float)


def test_curated_video_keeps_target_centred_and_box_exact():
    frames, boxes = _square_frames()
    usable = np.ones(len(boxes), bool)
    usable[3] = False
    crop = CropConfig()
    v = CuratedVideo("toy", iter(frames), boxes, usable, crop, cache_size=287, margin=1.125, quality=95)
    assert len(v) == len(boxes) - 1 and 3 not in v.frame_numbers.tolist()
    for j in range(len(v)):
        img = v.images[j]
        bx, by, bw, bh = v.boxes[j]
        assert abs(bx + bw / 2 - 143.5) < 1e-6 and abs(by + bh / 2 - 143.5) < 1e-6
        red = (img[:, :, 0] > 180) & (img[:, :, 1] < 90)
        ys, xs = np.nonzero(red)
        assert abs(xs.mean() + 0.5 - 143.5) < 1.0 and abs(ys.mean() + 0.5 - 143.5) < 1.0
        # the scaled box matches the red area's extent
        assert abs((xs.max() - xs.min() + 1) - bw) < 2.5
    pair = v.sample(np.random.default_rng(0), max_gap=2)
    assert pair.video == "toy"


def test_crop_search_translation_and_exemplar_scale():
    img = np.full((400, 400, 3), 60, np.uint8)
    img[196:204, 196:204] = 255  # an 8 px white target centred at (200, 200)
    box = np.array([196, 196, 8, 8], float)
    crop = CropConfig()
    aug = AugmentConfig(stretch=0.0, translate=6.0)
    rng = np.random.default_rng(3)
    x, (dx, dy) = crop_search(img, box, crop, aug, rng)
    assert x.shape == (239, 239, 3)
    ys, xs = np.nonzero(x[:, :, 0] > 150)
    cx, cy = xs.mean() + 0.5, ys.mean() + 0.5
    assert abs(cx - (119.5 + dx)) < 0.75 and abs(cy - (119.5 + dy)) < 0.75
    z = crop_exemplar(img, box, crop, None, None)
    ys, xs = np.nonzero(z[:, :, 0] > 150)
    k = 127 / exemplar_window(box, 0.5)  # output px per source px
    assert abs((xs.max() - xs.min() + 1) - 8 * k) < 2.0
    # exemplar_translate moves the target off the exemplar centre by the drawn output pixels (SiamMLG's
    # template shift), and with its own isotropic exemplar_stretch the draws are (stretch, dx, dy)
    aug = AugmentConfig(exemplar_stretch=0.0, exemplar_translate=5.0)
    z = crop_exemplar(img, box, crop, aug, np.random.default_rng(4))
    draws = np.random.default_rng(4).uniform(-1, 1, size=3)
    ys, xs = np.nonzero(z[:, :, 0] > 150)
    assert abs(xs.mean() + 0.5 - (63.5 + 5 * draws[1])) < 0.75 and abs(ys.mean() + 0.5 - (63.5 + 5 * draws[2])) < 0.75


def test_still_pair_ground_truth_follows_the_transform():
    img = np.full((300, 400, 3), 40, np.uint8)
    rng = np.random.default_rng(5)
    cfg = StillConfig(rotate=8, scale=0.2, translate=0.3, candidates=1)
    box = np.array([150, 100, 60, 40], float)
    for _ in range(5):
        m = random_affine(rng, cfg, (180, 120), box[2:])
        t = transform_box(box, m)
        c = m[:, :2] @ np.array([180.0, 120.0]) + m[:, 2]
        assert np.allclose([t[0] + t[2] / 2, t[1] + t[3] / 2], c)
    # end to end: the marker at the chosen region's centre lands at the transformed centre
    from gradtrack.data.stills import random_region

    for seed in range(3):
        b = random_region(img, np.random.default_rng(seed), cfg)
        cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
        marked = img.copy()
        marked[int(cy) - 2:int(cy) + 3, int(cx) - 2:int(cx) + 3] = 255
        pair = still_pair(marked, np.random.default_rng(seed), cfg, "m")
        assert np.allclose(pair.z_box, b)
        ys, xs = np.nonzero(pair.x_image[:, :, 0] > 150)
        gx, gy = pair.x_box[0] + pair.x_box[2] / 2, pair.x_box[1] + pair.x_box[3] / 2
        # the marker's centre is the pixel centre int(c) + 0.5, i.e. within half a pixel of the box centre
        assert abs(xs.mean() + 0.5 - gx) < 1.6 and abs(ys.mean() + 0.5 - gy) < 1.6


def test_labels_are_centred_and_balanced():
    label, weight = centered_label(15, 2)
    assert label.shape == (15, 15) and int(label.sum()) == 13
    assert label[7, 7] == 1 and label[7, 9] == 1 and label[7, 10] == 0 and label[6, 6] == 1 and label[5, 5] == 0
    assert torch.isclose(weight.sum(), torch.tensor(1.0))
    assert torch.isclose((weight * label).sum(), torch.tensor(0.5))


class _Const:
    """A source returning a fixed pair tagged with its name."""

    def __init__(self, name, n=1):
        self.name, self.n = name, n

    def __len__(self):
        return self.n

    def sample(self, rng, exclude=None):
        img = np.full((100, 100, 3), 100, np.uint8)
        key = f"{self.name}:{int(rng.integers(self.n))}"
        return Pair(img, np.array([40, 40, 20, 20.0]), img, np.array([40, 40, 20, 20.0]), key)


def test_mixture_follows_weights():
    mix = PairMixture({"a": (3.0, _Const("a")), "b": (1.0, _Const("b")), "c": (0.0, _Const("c")), "d": (1.0, _Const("d", 0))})
    assert mix.names == ["a", "b"]
    rng = np.random.default_rng(0)
    names = [mix.sample(rng)[0] for _ in range(4000)]
    frac = names.count("a") / len(names)
    assert 0.72 < frac < 0.78
    with pytest.raises(ValueError):
        PairMixture({"a": (0.0, _Const("a"))})


def test_datasets_are_deterministic_and_groups_use_distinct_videos():
    frames, boxes = _square_frames(n=10)
    crop = CropConfig(exemplar_size=95, search_size=159, instance_size=175)
    vids = [CuratedVideo(f"v{i}", iter(frames), boxes, np.ones(len(boxes), bool), crop) for i in range(5)]
    mix = PairMixture({"sequences": (1.0, VideoPool(vids, max_gap=3))})
    ds = PairDataset(mix, CropSamples(crop), AugmentConfig(), seed=7)
    a, b = ds[11], ds[11]
    assert torch.equal(a["z"], b["z"]) and torch.equal(a["x"], b["x"])
    assert a["z"].shape == (3, 95, 95) and a["x"].shape == (3, 159, 159)
    assert not torch.equal(ds[12]["x"], a["x"])
    g = GroupDataset(mix, 4, CropSamples(crop), AugmentConfig(), seed=7)
    item = g[3]
    assert item["z"].shape == (4, 3, 95, 95) and item["x"].shape == (4, 3, 159, 159)
    assert int(item["distinct"]) == 4


def test_assert_no_val_catches_val_sequences():
    class S:
        def __init__(self, name, dataset=""):
            self.name, self.dataset = name, dataset

    assert_no_val([S("otb/Walking2", "otb"), S("car", "vot")], ["otb/Crossing", "vot/car1"])
    with pytest.raises(AssertionError):
        assert_no_val([S("otb/Walking2"), S("otb/Crossing")], ["otb/Crossing"])
    with pytest.raises(AssertionError):
        assert_no_val([S("car", "vot")], ["vot/car"])


@pytest.mark.shared
def test_training_split_excludes_val(shared_data):
    cfg = DataConfig(root=str(shared_data / "sequences"), splits_file=str(shared_data / "splits.json"))
    train = _open_split(cfg, "train")
    val = split_names(shared_data / "splits.json", "val")
    assert train and val
    names = {s.name for s in train}
    assert not names & set(val)
    assert_no_val(train, val)
    val_seqs = _open_split(cfg, "val")
    with pytest.raises(AssertionError):
        assert_no_val(train[:2] + val_seqs[:1], val)

"""Training samples for SiamMLG (two-branch SiamMask + gradient-guided update), with their targets.

A sample is a 127 template crop and a 255 search crop, both made by the one crop function
:func:`gradtrack.geometry.crop_and_resize`, plus targets on the 25x25 map (stride 8, cell ``(i, j)``
centred on continuous crop coordinate ``(31.5 + 8 j, 31.5 + 8 i)``, as in
:mod:`gradtrack.training.siammlg_losses`):

* ``label`` (``1 x 25 x 25``): 1 on the cells within ``radius`` cells (Euclidean) of the target's cell
  (the cell nearest to the target centre *in the search crop*, which the augmentation shifts), else 0; the balanced 0.5/N weights
  are computed by :func:`gradtrack.training.siammlg_losses.score_loss`.  All 0 for a negative pair.
* ``box`` (``4``): the target's ``x1, y1, x2, y2`` in continuous crop coordinates (zeros for negatives);
  ``ltrb`` (``4 x 25 x 25``) / ``ltrb_pos`` (``25 x 25``) from
  :func:`gradtrack.models.heads.ltrb_targets` (no positive for negatives).
* ``mask`` (``1 x 255 x 255`` uint8 0/1): the object's mask cropped with the same window, when the
  source has masks (procedural sequences' exact masks, :class:`~gradtrack.data.masks.MaskSequence`
  datasets); zeros otherwise.
* ``mask_kind``: :data:`MASK_NONE` (negative pair: no mask loss), :data:`MASK_EXACT` (soft-margin loss
  against ``mask``) or :data:`MASK_BOX` (box-only source: the box-projection loss against ``box``).

Augmentation (SiamMask's recipe, notes §3.5): the template window (SiamFC's context 0.5) gets a shift of
up to ``template_shift`` output pixels and a scale jitter ``template_scale``; the search window (the same
window times 255/127) is shifted so that the target lands up to ``shift`` pixels from the crop centre (per
axis, uniform) and scaled by ``1 + U(-scale, scale)`` (``aspect`` adds a per-axis jitter).  Colour
jitter, grey and blur come from :func:`gradtrack.data.augment.photometric` (``data.augment``).  With
probability ``negative_prob`` the search crop comes from another video (a negative pair).

Sources are mixed with :class:`gradtrack.data.sources.PairMixture`: the shared train-split sequences and
still images (box only, built by :func:`gradtrack.data.sources.build_training_sources`, which refuses
the validation split), procedural sequences with their exact masks (:class:`MaskVideo`) and mask
datasets (YouTube-VOS, DAVIS, COCO; their validation subsets are refused).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ..geometry.crop import crop_and_resize
from ..io.frames import EncodedFrames
from ..models.heads import ltrb_targets
from .augment import AugmentConfig, CropConfig, box_center, exemplar_window, photometric, to_tensor_layout
from .pairs import BoxFilter, Pair, sample_pair_indices, usable_frames
from .sources import (INFINITE, DataConfig, PairMixture, VideoPool, build_training_sources, item_rng,
                      synthetic_sequences)

MASK_NONE, MASK_EXACT, MASK_BOX = 0, 1, 2
STRIDE, OFFSET, SCORE_SIZE = 8, 31.5, 25


@dataclass
class SearchAugment:
    """SiamMask-style crop augmentation (output pixels of the 127 / 255 crops)."""

    shift: float = 64.0  # max |target offset| from the search crop centre, per axis
    scale: float = 0.18  # search scale jitter, uniform +-
    aspect: float = 0.0  # extra per-axis search jitter, uniform +-
    template_shift: float = 4.0
    template_scale: float = 0.05
    negative_prob: float = 0.2

    def validate(self) -> None:
        if min(self.shift, self.scale, self.aspect, self.template_shift, self.template_scale) < 0:
            raise ValueError("augmentation strengths must be >= 0")
        if max(self.scale, self.aspect, self.template_scale) >= 1:
            raise ValueError("scale, aspect and template_scale must be < 1")
        if not 0 <= self.negative_prob <= 1:
            raise ValueError("negative_prob must be a probability")
        if self.shift > 100:
            raise ValueError("shift must be <= 100 px (the target must stay inside the 255 crop)")


VAL_SUBSETS = ("val", "valid", "validation", "test", "test-dev", "testdev")


@dataclass
class MaskDatasetConfig:
    """A mask dataset in its standard layout (read by :mod:`gradtrack.data.readers.masks`)."""

    format: Literal["youtube_vos", "davis", "coco"] = "youtube_vos"
    root: str = ""
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)  # reader keyword arguments (subset, split, year...)
    limit_sequences: int = 0
    max_gap: int = 20  # SiamMask's frame range for YouTube-VOS

    def validate(self) -> None:
        if not self.root:
            raise ValueError("a mask dataset needs a root")
        if self.weight < 0 or self.max_gap < 0 or self.limit_sequences < 0:
            raise ValueError("weight, max_gap and limit_sequences must be >= 0")
        for key in ("subset", "split"):
            v = self.options.get(key)
            if isinstance(v, str) and (v.lower() in VAL_SUBSETS or v.lower().startswith("val")):
                raise ValueError(f"mask dataset {self.format}: {key}={v!r} is a validation/test subset; "
                                 "training never reads it")


# ------------------------------------------------------------------------------------------------
# sources with masks


@dataclass
class MaskPair(Pair):
    """A :class:`Pair` whose search image comes with the object's mask (``H x W`` bool) or ``None``."""

    x_mask: np.ndarray | None = None


class PackedMasks:
    """In-memory bool masks, bit-packed (1 bit / pixel): ``len()``, ``[i]`` -> ``H x W`` bool."""

    def __init__(self, masks):
        masks = [np.asarray(m, dtype=bool) for m in masks]
        self.shapes = [m.shape for m in masks]
        self.blobs = [np.packbits(m.reshape(-1)) for m in masks]

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> np.ndarray:
        h, w = self.shapes[i]
        return np.unpackbits(self.blobs[i], count=h * w).reshape(h, w).astype(bool)

    @property
    def nbytes(self) -> int:
        return int(sum(b.nbytes for b in self.blobs))


class MaskVideo:
    """Frames, boxes and masks of one object; ``sample`` draws a pair of usable frames (``max_gap`` apart)
    as a :class:`MaskPair`.  ``frames`` and ``masks`` only need ``[i]`` (lazy readers or in-memory stores)."""

    def __init__(self, key: str, frames, masks, boxes: np.ndarray, usable: np.ndarray):
        self.key = key
        self.frames, self.masks = frames, masks
        self.boxes = np.asarray(boxes, dtype=np.float64)
        self.frame_numbers = np.flatnonzero(np.asarray(usable, dtype=bool))
        if len(self.frame_numbers) == 0:
            raise ValueError(f"video {key!r} has no usable frame")

    def __len__(self) -> int:
        return len(self.frame_numbers)

    def sample(self, rng: np.random.Generator, max_gap: int) -> MaskPair:
        z, x = sample_pair_indices(self.frame_numbers, max_gap, rng)
        mask = self.masks[x]
        return MaskPair(np.asarray(self.frames[z]), self.boxes[z].copy(), np.asarray(self.frames[x]),
                        self.boxes[x].copy(), self.key, None if mask is None else np.asarray(mask, dtype=bool))


def synthetic_mask_videos(cfg, flt: BoxFilter, quality: int = 90) -> list[MaskVideo]:
    """Procedural sequences (``data.synthetic``) with their exact whole-target masks, JPEG/bit-packed in
    memory.  Frames whose visible fraction is below ``cfg.min_visible`` are not used."""
    out = []
    for key, s, boxes, absent in synthetic_sequences(cfg):
        usable = usable_frames(boxes, s.size, flt, absent)
        if usable.any():
            out.append(MaskVideo(key, EncodedFrames(s.frames, quality=quality), PackedMasks(s.masks), boxes, usable))
    return out


def mask_dataset_videos(cfg: MaskDatasetConfig, flt: BoxFilter, base: Path | None = None) -> list[MaskVideo]:
    """Every object of a mask dataset as a lazy :class:`MaskVideo` (frames and masks decoded on demand)."""
    from .readers import build_dataset

    root = Path(cfg.root).expanduser()
    if not root.is_absolute() and base is not None and not root.exists() and (base / root).exists():
        root = base / root
    ds = build_dataset(cfg.format, str(root), **cfg.options)
    names = list(ds.names)
    if cfg.limit_sequences:
        names = names[: cfg.limit_sequences]
    out = []
    for name in names:
        seq = ds[name]
        annotated = np.asarray(seq.masks.annotated(), dtype=bool)
        usable = usable_frames(seq.boxes, seq.image_size, flt, seq.absent) & annotated
        if usable.any():
            out.append(MaskVideo(f"{cfg.format}/{seq.name}", seq.frames, seq.masks, seq.boxes, usable))
    return out


@dataclass
class MLGSources:
    mixture: PairMixture
    stats: dict


def build_mlg_sources(data: DataConfig, mask_datasets: list[MaskDatasetConfig], base: Path | None = None,
                      progress: bool = False) -> MLGSources:
    """The SiamMLG training mixture: ``sequences`` and ``stills`` (box only; train split, validation
    refused by :func:`build_training_sources`), ``synthetic`` (exact masks) and one source per mask
    dataset (``mask:<format>:<n>``), with the configured weights."""
    weights = {k: float(v) for k, v in data.weights.items()}
    sources: dict[str, tuple[float, object]] = {}
    stats: dict = {}
    box_weights = {k: weights.get(k, 0.0) for k in ("sequences", "stills")}
    if any(w > 0 for w in box_weights.values()):
        box_cfg = replace(data, weights={**box_weights, "synthetic": 0.0})
        ts = build_training_sources(box_cfg, base, progress=progress)
        stats.update(ts.stats)
        for name, src in zip(ts.mixture.names, ts.mixture.sources):
            sources[name] = (box_weights[name], src)
    if weights.get("synthetic", 0.0) > 0:
        videos = synthetic_mask_videos(data.synthetic, data.filter, data.cache_quality)
        sources["synthetic"] = (weights["synthetic"], VideoPool(videos, data.max_gap))
        stats["synthetic_sequences"] = len(videos)
    for n, mcfg in enumerate(mask_datasets):
        if mcfg.weight <= 0:
            continue
        videos = mask_dataset_videos(mcfg, data.filter, base)
        sources[f"mask:{mcfg.format}:{n}"] = (mcfg.weight, VideoPool(videos, mcfg.max_gap))
        stats[f"mask:{mcfg.format}:{n}"] = {"root": mcfg.root, "objects": len(videos)}
    mixture = PairMixture(sources)
    stats["mixture"] = mixture.describe()
    return MLGSources(mixture, stats)


# ------------------------------------------------------------------------------------------------
# crops and targets


def window_crop(image: np.ndarray, box, side: tuple[float, float], out: int, shift: tuple[float, float] = (0.0, 0.0),
                mask: np.ndarray | None = None):
    """Crop a ``side = (w, h)`` source window to ``out`` pixels so that the box centre lands at
    ``out / 2 + shift`` (continuous output coordinates).  Returns ``(crop, box_xyxy in the crop,
    mask crop or None)``; the mask goes through the same warp (bilinear coverage thresholded at 0.5,
    outside the image = background)."""
    cx, cy = box_center(box)
    wx, wy = side
    dx, dy = shift
    center = (cx - dx * wx / out, cy - dy * wy / out)
    crop = crop_and_resize(image, center, (wx, wy), out)
    kx, ky = out / wx, out / wy
    x, y, w, h = (float(v) for v in box)
    xyxy = np.array([(x - center[0]) * kx + out / 2, (y - center[1]) * ky + out / 2,
                     (x + w - center[0]) * kx + out / 2, (y + h - center[1]) * ky + out / 2], dtype=np.float64)
    mcrop = None
    if mask is not None:
        m = crop_and_resize(np.asarray(mask, dtype=np.float32)[:, :, None], center, (wx, wy), out, pad_color=0.0)
        mcrop = m[:, :, 0] >= 0.5
    return crop, xyxy, mcrop


def score_label(center, size: int = SCORE_SIZE, radius: float = 2.0, stride: int = STRIDE,
                offset: float = OFFSET) -> np.ndarray:
    """``size x size`` float32: 1 on the cells within ``radius`` cells (Euclidean, in cell units) of the
    target's cell, the cell whose centre is nearest to ``center`` (continuous crop coordinates
    ``(x, y)``); the same disc as :func:`gradtrack.models.labels.centered_label`, moved with the target."""
    row, col = target_cell(center, size, stride, offset)
    idx = np.arange(size, dtype=np.float64)
    d = np.hypot(idx[None, :] - col, idx[:, None] - row)
    return (d <= radius + 1e-9).astype(np.float32)


def target_cell(center, size: int = SCORE_SIZE, stride: int = STRIDE, offset: float = OFFSET) -> tuple[int, int]:
    """``(row, col)`` of the cell whose centre is nearest to ``center`` (clipped to the map)."""
    col = int(np.clip(round((center[0] - offset) / stride), 0, size - 1))
    row = int(np.clip(round((center[1] - offset) / stride), 0, size - 1))
    return row, col


@dataclass
class CropGeometry:
    exemplar_size: int = 127
    search_size: int = 255
    context: float = 0.5
    radius: float = 2.0  # label radius, cells
    score_size: int = SCORE_SIZE

    @classmethod
    def from_crop(cls, crop: CropConfig, radius: float = 2.0) -> "CropGeometry":
        if crop.search_size != 255 or crop.instance_size != 255 or crop.exemplar_size != 127:
            raise ValueError("SiamMLG trains on 127 templates and 255 search crops: set data.crop to "
                             f"exemplar_size 127, search_size 255, instance_size 255 (got {crop})")
        return cls(crop.exemplar_size, crop.search_size, crop.context, radius)


def _jitter(rng, scale: float, aspect: float) -> tuple[float, float]:
    s = 1.0 + rng.uniform(-scale, scale)
    if aspect > 0:
        a = 1.0 + rng.uniform(-aspect, aspect)
        return s * a, s / a
    return s, s


def make_template(pair: Pair, geo: CropGeometry, saug: SearchAugment | None, rng) -> np.ndarray:
    side = exemplar_window(pair.z_box, geo.context)
    sx = sy = 1.0
    shift = (0.0, 0.0)
    if saug is not None:
        sx, sy = _jitter(rng, saug.template_scale, 0.0)
        t = saug.template_shift
        shift = (rng.uniform(-t, t), rng.uniform(-t, t)) if t > 0 else shift
    crop, _, _ = window_crop(pair.z_image, pair.z_box, (side / sx, side / sy), geo.exemplar_size, shift)
    return crop


def make_search(image, box, mask, geo: CropGeometry, saug: SearchAugment | None, rng):
    """Search crop of ``image`` around ``box``: ``(crop, xyxy, mask crop or None, shift)``."""
    side = exemplar_window(box, geo.context) * geo.search_size / geo.exemplar_size
    sx = sy = 1.0
    shift = (0.0, 0.0)
    if saug is not None:
        sx, sy = _jitter(rng, saug.scale, saug.aspect)
        if saug.shift > 0:
            shift = (rng.uniform(-saug.shift, saug.shift), rng.uniform(-saug.shift, saug.shift))
    crop, xyxy, mcrop = window_crop(image, box, (side / sx, side / sy), geo.search_size, shift, mask)
    return crop, xyxy, mcrop, shift


def make_sample(pair: Pair, geo: CropGeometry, aug: AugmentConfig | None, saug: SearchAugment | None,
                rng: np.random.Generator, negative: Pair | None = None) -> dict:
    """One training sample (see the module docstring); ``negative``: take the search crop from this
    other pair's search frame (a negative pair: empty label, no mask or box loss)."""
    z = make_template(pair, geo, saug, rng)
    if negative is None:
        x_img, x_box, x_mask = pair.x_image, pair.x_box, getattr(pair, "x_mask", None)
    else:
        x_img, x_box, x_mask = negative.x_image, negative.x_box, None
    x, xyxy, mcrop, _ = make_search(x_img, x_box, x_mask, geo, saug, rng)
    if aug is not None:
        z = photometric(z, aug, rng)
        x = photometric(x, aug, rng)
    n = geo.score_size
    if negative is None:
        center = ((xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2)
        label = score_label(center, n, geo.radius)
        ltrb, pos = ltrb_targets(torch.as_tensor(np.asarray(xyxy, np.float32)[None]), n, STRIDE, OFFSET)
        ltrb, pos = ltrb[0], pos[0]
        kind = MASK_EXACT if mcrop is not None else MASK_BOX
        box = xyxy.astype(np.float32)
    else:
        label = np.zeros((n, n), np.float32)
        ltrb, pos = torch.zeros(4, n, n), torch.zeros(n, n, dtype=torch.bool)
        kind, box, mcrop = MASK_NONE, np.zeros(4, np.float32), None
    mask = np.zeros((1, geo.search_size, geo.search_size), np.uint8)
    if mcrop is not None:
        mask[0] = mcrop
    return {"z": torch.from_numpy(to_tensor_layout(z)), "x": torch.from_numpy(to_tensor_layout(x)),
            "label": torch.from_numpy(label[None]), "box": torch.from_numpy(box), "ltrb": ltrb, "ltrb_pos": pos,
            "mask": torch.from_numpy(mask), "mask_kind": torch.tensor(kind), "video": pair.video}


def _drop_video(sample: dict) -> dict:
    sample.pop("video", None)
    return sample


class MLGPairDataset(Dataset):
    """Base stage: item ``i`` is one sample (a pure function of ``(seed, i)``)."""

    def __init__(self, mixture, geo: CropGeometry, aug: AugmentConfig | None, saug: SearchAugment | None,
                 seed: int, length: int = INFINITE):
        self.mixture, self.geo, self.aug, self.saug, self.seed, self.length = mixture, geo, aug, saug, seed, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = item_rng(self.seed, i)
        _, pair = self.mixture.sample(rng)
        neg = None
        if self.saug is not None and self.saug.negative_prob > 0 and rng.random() < self.saug.negative_prob:
            _, neg = self.mixture.sample(rng, {pair.video})
            if neg.video == pair.video:  # a single-video pool: no negative possible
                neg = None
        return _drop_video(make_sample(pair, self.geo, self.aug, self.saug, rng, neg))


class MLGGroupDataset(Dataset):
    """Update stage (template generalisation): item ``i`` holds pair 0's template and the search crops of
    ``k`` pairs from ``k`` different videos, ``{"z": 3x127x127, "x": k x 3x255x255, "label": k x 1 x 25 x 25,
    ...}``; every search keeps its own target's label, box and mask."""

    def __init__(self, mixture, k: int, geo: CropGeometry, aug: AugmentConfig | None, saug: SearchAugment | None,
                 seed: int, length: int = INFINITE):
        if k < 1:
            raise ValueError("k must be >= 1")
        self.mixture, self.k, self.geo, self.aug, self.saug, self.seed = mixture, k, geo, aug, saug, seed
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = item_rng(self.seed, i)
        used: set[str] = set()
        items = []
        for _ in range(self.k):
            _, pair = self.mixture.sample(rng, used)
            used.add(pair.video)
            items.append(make_sample(pair, self.geo, self.aug, self.saug, rng))
        out = {key: torch.stack([it[key] for it in items]) for key in items[0] if key not in ("z", "video")}
        out["z"] = items[0]["z"]
        out["distinct"] = torch.tensor(len(used))
        return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


__all__ = ["SearchAugment", "MaskDatasetConfig", "MaskPair", "PackedMasks", "MaskVideo", "MLGSources",
           "build_mlg_sources", "synthetic_mask_videos", "mask_dataset_videos", "window_crop", "score_label",
           "target_cell", "CropGeometry", "make_template", "make_search", "make_sample", "MLGPairDataset",
           "MLGGroupDataset", "mask_iou", "MASK_NONE", "MASK_EXACT", "MASK_BOX"]

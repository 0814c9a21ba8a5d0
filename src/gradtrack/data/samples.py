"""Sample builders: what one training pair becomes (the pluggable part of
:class:`gradtrack.data.sources.PairDataset` / :class:`~gradtrack.data.sources.GroupDataset`).

A builder is called as ``builder(pair, aug, rng, negative=None) -> dict of tensors``; ``aug`` is the one
:class:`~gradtrack.data.augment.AugmentConfig` (``None``: no augmentation, for validation) and
``negative`` another video's pair whose search frame replaces the pair's own (a negative pair).

* :class:`CropSamples` (SiamFC, GradNet): ``{"z": 3 x E x E, "x": 3 x S x S}`` float32 in [0, 255]; the
  labels are "target at the centre" and are made by the loss.
* :class:`MaskSamples` (SiamMLG): the same two crops plus targets on the score map described by a
  :class:`~gradtrack.geometry.ScoreMapGeometry` (cell ``(i, j)`` centred on crop coordinate
  ``(offset + stride j, offset + stride i)``):

  - ``label`` (``1 x n x n``): 1 on the cells within ``label_radius`` cells (Euclidean) of the target's
    cell (the cell nearest to the target centre *in the search crop*, which the augmentation shifts),
    else 0; all 0 for a negative pair;
  - ``box`` (``4``): the target's ``x1, y1, x2, y2`` in continuous crop coordinates (zeros for negatives);
    the box head's ``(l, t, r, b)`` targets are derived from it by the loss;
  - ``mask`` (``1 x S x S`` uint8 0/1): the object's mask cropped with the same window when the pair has
    one (:class:`~gradtrack.data.masks.MaskPair`), zeros otherwise;
  - ``mask_kind``: :data:`MASK_NONE` (negative: no mask loss), :data:`MASK_EXACT` (against ``mask``) or
    :data:`MASK_BOX` (box-only source: the box-projection loss against ``box``).
"""
from __future__ import annotations

import numpy as np
import torch

from ..geometry.crop import crop_and_resize
from ..geometry.scoremap import ScoreMapGeometry
from .augment import (AugmentConfig, CropConfig, box_in_window, crop_exemplar, crop_mask, photometric, search_window,
                      to_tensor_layout)
from .pairs import Pair

MASK_NONE, MASK_EXACT, MASK_BOX = 0, 1, 2


def _crops(pair: Pair, crop: CropConfig, aug: AugmentConfig | None, rng, negative: Pair | None):
    """Exemplar and search crops (photometric augmentation applied), the search window and its source."""
    src = pair if negative is None else negative
    z = crop_exemplar(pair.z_image, pair.z_box, crop, aug, rng)
    center, size, _ = search_window(src.x_box, crop, aug, rng)
    x = crop_and_resize(src.x_image, center, size, crop.search_size)
    if aug is not None:
        z = photometric(z, aug, rng)
        x = photometric(x, aug, rng)
    return z, x, center, size


class CropSamples:
    """SiamFC / GradNet samples: the exemplar and search crops only."""

    def __init__(self, crop: CropConfig):
        self.crop = crop

    def __call__(self, pair: Pair, aug: AugmentConfig | None, rng, negative: Pair | None = None) -> dict:
        if negative is not None:
            raise ValueError("CropSamples labels every search 'target at the centre': no negative pairs")
        z, x, _, _ = _crops(pair, self.crop, aug, rng, None)
        return {"z": torch.from_numpy(to_tensor_layout(z)), "x": torch.from_numpy(to_tensor_layout(x))}


def target_cell(center, geo: ScoreMapGeometry) -> tuple[int, int]:
    """``(row, col)`` of the cell whose centre is nearest to ``center`` (crop ``(x, y)``; clipped to the map)."""
    n = geo.score_size
    col = int(np.clip(round((center[0] - geo.offset) / geo.stride), 0, n - 1))
    row = int(np.clip(round((center[1] - geo.offset) / geo.stride), 0, n - 1))
    return row, col


def score_label(center, geo: ScoreMapGeometry) -> np.ndarray:
    """``n x n`` float32: 1 on the cells within ``label_radius`` cells of the target's cell (the same disc
    as :func:`gradtrack.models.labels.centered_label`, moved with the target)."""
    row, col = target_cell(center, geo)
    idx = np.arange(geo.score_size, dtype=np.float64)
    d = np.hypot(idx[None, :] - col, idx[:, None] - row)
    return (d <= geo.label_radius + 1e-9).astype(np.float32)


class MaskSamples:
    """SiamMLG samples: crops plus label, box and mask targets on the map of ``geo`` (module docstring)."""

    def __init__(self, crop: CropConfig, geo: ScoreMapGeometry):
        if (crop.exemplar_size, crop.search_size, crop.instance_size) != (geo.exemplar_size, geo.instance_size,
                                                                          geo.instance_size):
            raise ValueError(f"the training crops must be the model's: data.crop exemplar_size {geo.exemplar_size}, "
                             f"search_size and instance_size {geo.instance_size} (got {crop})")
        self.crop, self.geo = crop, geo

    def __call__(self, pair: Pair, aug: AugmentConfig | None, rng, negative: Pair | None = None) -> dict:
        z, x, center, size = _crops(pair, self.crop, aug, rng, negative)
        n, out = self.geo.score_size, self.crop.search_size
        mask = np.zeros((1, out, out), np.uint8)
        if negative is None:
            xyxy = box_in_window(pair.x_box, center, size, out)
            label = score_label(((xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2), self.geo)
            x_mask = getattr(pair, "x_mask", None)
            kind = MASK_BOX if x_mask is None else MASK_EXACT
            if x_mask is not None:
                mask[0] = crop_mask(x_mask, center, size, out)
            box = xyxy.astype(np.float32)
        else:
            label, kind, box = np.zeros((n, n), np.float32), MASK_NONE, np.zeros(4, np.float32)
        return {"z": torch.from_numpy(to_tensor_layout(z)), "x": torch.from_numpy(to_tensor_layout(x)),
                "label": torch.from_numpy(label[None]), "box": torch.from_numpy(box), "mask": torch.from_numpy(mask),
                "mask_kind": torch.tensor(kind)}


__all__ = ["CropSamples", "MaskSamples", "score_label", "target_cell", "MASK_NONE", "MASK_EXACT", "MASK_BOX"]

"""Losses for SiamMLG (two-branch SiamMask + optional anchor-free box head).

Geometry: a :class:`~gradtrack.geometry.ScoreMapGeometry` ``geo`` (default: SiamMLG's, a 255 search crop and
a 25 x 25 map at stride 8 with cell ``(i, j)`` centred on continuous crop coordinate
``(offset + stride j, offset + stride i)``, offset 31.5, i.e. pixel *index* 31).  The mask of cell ``(i, j)``
covers the ``exemplar_size`` (127) crop window centred there (top-left pixel index ``(8 j - 32, 8 i - 32)``).
Boxes here are ``(x1, y1, x2, y2)`` in continuous crop coordinates (pixel ``u`` covers ``[u, u+1)``).

* :func:`score_loss`: SiamFC's balanced logistic loss (positives/negatives weighted 0.5/N each).
* :func:`mask_soft_margin_loss`: SiamMask's soft-margin loss of the 63x63 (upsampled to 127) or the refined
  127x127 mask of positive cells against the ground-truth mask window (for data with masks).
* :func:`box_projection_mask_loss`: box supervision for box-only data.  The projections of the predicted
  mask onto the x and y axes (max of the sigmoid over rows / columns) must match the box's projections
  (the fraction of each pixel column / row inside the box); dice (default) or BCE.
* :func:`iou_loss` on ``(l, t, r, b)`` distances of positive cells, with :func:`ltrb_targets`.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..geometry import ScoreMapGeometry
from ..models.heads import ltrb_targets  # noqa: F401  (re-exported: the targets of iou_loss)
from ..models.labels import balanced_logistic_loss
from ..models.siammlg import SiamMLGConfig

SIAMMLG_GEOMETRY = SiamMLGConfig().geometry()


def _window(geo: ScoreMapGeometry) -> tuple[int, int, int]:
    """``(window side, stride, first window's top-left pixel index)`` of the mask windows of ``geo``."""
    window = geo.exemplar_size
    return window, geo.stride, int(round(geo.offset - 0.5)) - window // 2


def score_loss(score: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Balanced logistic loss.  ``score``: ``B x 1 x H x W`` logits; ``label``: ``H x W`` or ``B x 1 x H x W``
    in {0, 1}; ``weight``: same shape, or ``None`` for 0.5/N_pos on positives and 0.5/N_neg on negatives
    computed per map."""
    label = label.expand_as(score).to(score.dtype)
    if weight is None:
        npos = label.flatten(1).sum(1).clamp(min=1).view(-1, 1, 1, 1)
        nneg = (1 - label).flatten(1).sum(1).clamp(min=1).view(-1, 1, 1, 1)
        weight = torch.where(label > 0, 0.5 / npos, 0.5 / nneg)
    return balanced_logistic_loss(score, label, weight)


def positive_cells(label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(batch, rows, cols)`` indices of the positive cells of a ``B x 1 x H x W`` (or ``B x H x W``) label."""
    lab = label.reshape(label.shape[0], *label.shape[-2:])
    b, r, c = torch.nonzero(lab > 0, as_tuple=True)
    return b, r, c


def mask_windows(gt_mask: torch.Tensor, batch: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 geo: ScoreMapGeometry = SIAMMLG_GEOMETRY) -> torch.Tensor:
    """The ``window x window`` ground-truth mask windows of chosen cells: ``gt_mask`` ``B x 1 x H x W`` (or
    ``B x H x W``) -> ``N x window x window``.  Pixels outside the crop count as background."""
    window, stride, start = _window(geo)
    gt = gt_mask.reshape(gt_mask.shape[0], *gt_mask.shape[-2:])
    pad = -start  # 32: the first window starts at pixel -32
    gt = F.pad(gt, [pad, pad, pad, pad])
    base = torch.arange(window, device=gt.device)
    ys = stride * rows[:, None] + base[None]  # N x window (padded coordinates)
    xs = stride * cols[:, None] + base[None]
    return gt[batch[:, None, None], ys[:, :, None], xs[:, None, :]]


def mask_soft_margin_loss(pred_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SiamMask's mask loss: ``pred_logits`` ``N x s x s`` (or ``N x 1 x s x s``; 63x63 maps are upsampled
    bilinearly to the target size), ``target`` ``N x S x S`` in {0, 1}.  Mean over pixels and positions;
    zero (with a graph) when there is no positive position."""
    if pred_logits.shape[0] == 0:
        return pred_logits.sum() * 0.0
    pred = pred_logits.reshape(pred_logits.shape[0], 1, *pred_logits.shape[-2:])
    size = target.shape[-2:]
    if pred.shape[-2:] != size:
        pred = F.interpolate(pred, size=size, mode="bilinear", align_corners=False)
    return F.soft_margin_loss(pred[:, 0], target.to(pred.dtype) * 2 - 1)


def box_coverage(boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Projections of boxes ``N x 4`` (x1, y1, x2, y2 in window pixels) onto the axes: the fraction of each
    pixel column (``N x size``) and row (``N x size``) that lies inside the box."""
    px = torch.arange(size, device=boxes.device, dtype=boxes.dtype)
    cov_x = (torch.minimum(px[None] + 1, boxes[:, 2:3]) - torch.maximum(px[None], boxes[:, 0:1])).clamp(0, 1)
    cov_y = (torch.minimum(px[None] + 1, boxes[:, 3:4]) - torch.maximum(px[None], boxes[:, 1:2])).clamp(0, 1)
    return cov_x, cov_y


def window_boxes(boxes: torch.Tensor, batch: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 geo: ScoreMapGeometry = SIAMMLG_GEOMETRY) -> torch.Tensor:
    """Crop boxes ``B x 4`` (x1, y1, x2, y2) expressed in the mask window of each chosen cell: ``N x 4``."""
    _, stride, start = _window(geo)
    ox = (start + stride * cols).to(boxes.dtype)
    oy = (start + stride * rows).to(boxes.dtype)
    b = boxes[batch]
    return torch.stack([b[:, 0] - ox, b[:, 1] - oy, b[:, 2] - ox, b[:, 3] - oy], 1)


def _dice(p: torch.Tensor, t: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return 1 - (2 * (p * t).sum(1) + eps) / ((p * p).sum(1) + (t * t).sum(1) + eps)


def box_projection_mask_loss(pred_logits: torch.Tensor, boxes: torch.Tensor,
                             kind: Literal["dice", "bce"] = "dice") -> torch.Tensor:
    """Mask loss from boxes only.  ``pred_logits``: ``N x s x s`` (or ``N x 1 x s x s``) mask logits of a
    window; ``boxes``: ``N x 4`` (x1, y1, x2, y2) in the pixels of that window (rescale 127-window boxes by
    ``s / 127`` for 63x63 masks: see :func:`window_boxes`).  Mean over positions and both axes."""
    if pred_logits.shape[0] == 0:
        return pred_logits.sum() * 0.0
    logits = pred_logits.reshape(pred_logits.shape[0], *pred_logits.shape[-2:])
    size = logits.shape[-1]
    cov_x, cov_y = box_coverage(boxes.to(logits.dtype), size)
    if kind == "dice":
        prob = torch.sigmoid(logits)
        return 0.5 * (_dice(prob.amax(1), cov_x) + _dice(prob.amax(2), cov_y)).mean()
    if kind == "bce":  # max of logits == logit of the max (sigmoid is monotonic): numerically stable BCE
        lx, ly = logits.amax(1), logits.amax(2)
        return 0.5 * (F.binary_cross_entropy_with_logits(lx, cov_x) + F.binary_cross_entropy_with_logits(ly, cov_y))
    raise ValueError(f"unknown projection loss kind {kind!r}")


def iou_loss(pred: torch.Tensor, target: torch.Tensor, positive: torch.Tensor | None = None,
             kind: Literal["log", "linear", "giou"] = "log", eps: float = 1.0) -> torch.Tensor:
    """IoU loss of ``(l, t, r, b)`` distances (``B x 4 x H x W`` or ``N x 4``) at ``positive`` cells.

    ``log``: ``-log((I + eps) / (U + eps))`` (UnitBox / Ocean, ``eps = 1`` px^2 as in Ocean);
    ``linear``: ``1 - IoU``; ``giou``: ``1 - GIoU``.  Mean over positives; zero with a graph if none.
    """
    if pred.dim() == 4:
        p = pred.permute(0, 2, 3, 1).reshape(-1, 4)
        t = target.permute(0, 2, 3, 1).reshape(-1, 4)
        sel = positive.reshape(-1) if positive is not None else None
    else:
        p, t, sel = pred, target, positive
    if sel is not None:
        p, t = p[sel], t[sel]
    if p.shape[0] == 0:
        return pred.sum() * 0.0
    area_p = (p[:, 0] + p[:, 2]) * (p[:, 1] + p[:, 3])
    area_t = (t[:, 0] + t[:, 2]) * (t[:, 1] + t[:, 3])
    iw = torch.minimum(p[:, 0], t[:, 0]) + torch.minimum(p[:, 2], t[:, 2])
    ih = torch.minimum(p[:, 1], t[:, 1]) + torch.minimum(p[:, 3], t[:, 3])
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    union = area_p + area_t - inter
    if kind == "log":
        return -torch.log((inter + eps) / (union + eps)).mean()
    iou = inter / union.clamp(min=1e-6)
    if kind == "linear":
        return (1 - iou).mean()
    if kind == "giou":  # both boxes contain the cell centre, so the enclosing box is the max distances
        ew = torch.maximum(p[:, 0], t[:, 0]) + torch.maximum(p[:, 2], t[:, 2])
        eh = torch.maximum(p[:, 1], t[:, 1]) + torch.maximum(p[:, 3], t[:, 3])
        enclose = (ew * eh).clamp(min=1e-6)
        return (1 - iou + (enclose - union) / enclose).mean()
    raise ValueError(f"unknown IoU loss kind {kind!r}")

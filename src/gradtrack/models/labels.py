"""SiamFC labels and the balanced logistic loss (used by GradNet's online gradient and by training)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def centered_label(size: int, radius_cells: float, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Label and weight maps (``size x size``) for a target at the map centre.

    Label 1 where the Euclidean distance to the centre cell ``size // 2`` is ``<= radius_cells``
    (13 cells for radius 2), else 0.  Weights are balanced: ``0.5 / N_pos`` on positives and
    ``0.5 / N_neg`` on negatives, so they sum to 1.
    """
    idx = torch.arange(size, device=device, dtype=dtype) - size // 2
    dist = torch.sqrt(idx[:, None] ** 2 + idx[None, :] ** 2)
    label = (dist <= radius_cells).to(dtype)
    npos = label.sum()
    nneg = label.numel() - npos
    weight = torch.where(label > 0, 0.5 / npos, 0.5 / nneg)
    return label, weight


def balanced_logistic_loss(score: torch.Tensor, label: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum(weight * BCEWithLogits(score, label))`` per map, averaged over maps.

    ``score``: ``B x 1 x H x W``; ``label``/``weight``: ``H x W`` or broadcastable.  Equals the official
    GradNet loss times ``H * W`` (it applies ``reduce_mean`` on top of the same weights).
    """
    per = F.binary_cross_entropy_with_logits(score, label.expand_as(score), reduction="none")
    return (per * weight).flatten(1).sum(1).mean()

"""The one geometry of a Siamese score map: crop sizes, stride, map size, where each cell sits in the
search crop, and the label radius.

Every model config derives one :class:`ScoreMapGeometry` (``cfg.geometry()``); trackers, losses,
label/target builders and export read it instead of keeping their own constants.

Coordinates are *continuous* crop coordinates (pixel ``p`` covers ``[p, p + 1)``, so a crop of ``N``
pixels has its centre at ``N / 2``).  Cell ``i`` of an ``n``-cell map is centred at

    offset + stride * i,   offset = instance_size / 2 - stride * (n - 1) / 2,

so the middle cell sits on the crop centre.  SiamFC (17 cells, stride 8, 255 crop): offset 63.5;
SiamMLG (25 cells): offset 31.5 (pixel *index* 31 in the older docstrings).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class ScoreMapGeometry:
    exemplar_size: int = 127
    instance_size: int = 255
    stride: int = 8
    score_size: int = 17
    label_radius: float = 2.0  # in cells

    def __post_init__(self) -> None:
        if self.exemplar_size <= 0 or self.instance_size < self.exemplar_size:
            raise ValueError(f"need 0 < exemplar_size <= instance_size, got {self.exemplar_size}, {self.instance_size}")
        if self.stride <= 0 or self.score_size <= 0:
            raise ValueError(f"stride and score_size must be > 0, got {self.stride}, {self.score_size}")
        if not self.label_radius >= 0:
            raise ValueError(f"label_radius must be >= 0, got {self.label_radius}")

    @classmethod
    def valid_correlation(cls, exemplar_size: int = 127, instance_size: int = 255, stride: int = 8,
                          label_radius: float = 2.0, extra_cells: int = 0) -> "ScoreMapGeometry":
        """The map of a VALID correlation of the two crops' features: ``(x - z) / stride + 1`` cells, plus
        ``extra_cells`` where the backbone pads (SiamMLG's padded stride-8 ResNet: +8)."""
        if (instance_size - exemplar_size) % stride:
            raise ValueError(f"instance_size - exemplar_size ({instance_size} - {exemplar_size}) must be a multiple "
                             f"of the stride {stride}")
        n = (instance_size - exemplar_size) // stride + 1 + extra_cells
        return cls(exemplar_size, instance_size, stride, n, label_radius)

    @property
    def offset(self) -> float:
        """Continuous crop coordinate of the centre of cell 0."""
        return self.instance_size / 2 - self.stride * (self.score_size - 1) / 2

    @property
    def center_cell(self) -> float:
        return (self.score_size - 1) / 2

    @property
    def has_center_cell(self) -> bool:
        return self.score_size % 2 == 1

    def cell_centers(self) -> np.ndarray:
        """Crop coordinates of the ``score_size`` cell centres along one axis."""
        return self.offset + self.stride * np.arange(self.score_size, dtype=np.float64)

    def cell_to_displacement(self, cell: float | np.ndarray) -> float | np.ndarray:
        """Crop pixels from the crop centre to (fractional) cell ``cell``."""
        return (np.asarray(cell, dtype=np.float64) - self.center_cell) * self.stride

    def with_instance_size(self, instance_size: int) -> "ScoreMapGeometry":
        """The same network on a search crop of another size (the map grows by ``delta / stride``)."""
        delta = instance_size - self.instance_size
        if delta % self.stride:
            raise ValueError(f"instance_size {instance_size} changes the crop by {delta}, not a multiple of the "
                             f"stride {self.stride}")
        return replace(self, instance_size=instance_size, score_size=self.score_size + delta // self.stride)

"""Training configuration (strict dataclasses, loaded from YAML with :func:`gradtrack.config.from_yaml`).

Schedules (notes §1.7, §2):

* ``exponential`` (SiamFC, siamfc-pytorch): ``lr(epoch) = lr * gamma ** epoch`` with
  ``gamma = (lr_end / lr) ** (1 / epochs)``;
* ``logspace`` (GradNet, ``np.logspace(-2, -5, epochs)[epoch]``): the first epoch uses ``lr``, the last
  exactly ``lr_end``.

The learning rate changes once per epoch of ``steps_per_epoch`` steps (``smooth: true`` interpolates the
same curve per step).  ``epochs`` and ``steps_per_epoch`` are free so small hardware can run a short
version of the same schedule.

GradNet variants (paper Table 3), set by ``gradnet.variant`` (training) and the model config:

* ``full``: template generalisation (one template against ``k`` search regions from ``k`` different
  videos, all labelled "target at the centre"), loss after the update only;
* ``no_generalization`` ("Ours w/o M"): ordinary pairs, template and search from the same video;
* ``no_gradient`` ("Ours w/o MG"): no template generalisation and no gradient: the template branch
  ``U1(f2(z))`` is trained directly as the second, unshared branch of a SiamFC; the model config gets
  ``use_gradient: false`` so trackers skip the update for these weights;
* "Ours w 2U": ``full`` with the model config ``shared_u1: false``;
* "Ours w/o U" (no template update while tracking) uses the *full* weights; it is a tracker setting, not
  a training variant.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from ..data.sources import DataConfig
from .siammlg import SiamMLGTrainConfig


@dataclass
class OptimConfig:
    lr: float = 1e-2
    lr_end: float = 1e-5
    schedule: Literal["exponential", "logspace", "constant"] = "exponential"
    smooth: bool = False
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    grad_clip: float = 10.0  # max global L2 norm; 0 = off
    warmup_steps: int = 0  # linear warm-up (not in the papers; 0 = off)
    # The response adjust's scale multiplies raw correlations (~1e3): its gradient dwarfs all others, and
    # one clipped SGD step at lr 1e-2 multiplies the logits by ~100.  siamfc-pytorch keeps it fixed at 1e-3;
    # so do we unless asked (the bias is always trained).
    train_adjust_scale: bool = False

    def validate(self) -> None:
        if self.lr <= 0 or self.lr_end <= 0:
            raise ValueError("lr and lr_end must be > 0")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_steps < 0:
            raise ValueError("need 0 <= momentum < 1, weight_decay >= 0, grad_clip >= 0, warmup_steps >= 0")


@dataclass
class GradNetTrainConfig:
    variant: Literal["full", "no_generalization", "no_gradient"] = "full"
    k: int = 8  # search regions per template (template generalisation)
    init_from: str = "runs/siamfc/final.pt"  # SiamFC checkpoint giving the (frozen) search branch
    init_template_from_siamfc: bool = False  # official: the template branch is trained from scratch

    def validate(self) -> None:
        if self.k < 1:
            raise ValueError("k must be >= 1")


@dataclass
class TrainConfig:
    task: Literal["siamfc", "gradnet", "siammlg"] = "siamfc"
    model: dict[str, Any] = field(default_factory=dict)  # the model config (see gradtrack.models)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    gradnet: GradNetTrainConfig = field(default_factory=GradNetTrainConfig)
    siammlg: SiamMLGTrainConfig = field(default_factory=SiamMLGTrainConfig)  # task: siammlg (see training.siammlg)
    epochs: int = 50
    steps_per_epoch: int = 6000
    batch_size: int = 8  # pairs per step and process (GradNet full: templates per step, each with k searches)
    seed: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"  # auto: bf16 on CPUs that have it, bf16/fp16 on CUDA
    threads: int = 0  # torch threads per process; 0 = leave the default
    deterministic: bool = False  # torch.use_deterministic_algorithms (CUDA: slower)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    val_every: int = 500
    log_every: int = 10
    out: str = "runs/siamfc"
    export: str = ""  # where the final fp16 model goes (empty: <out>/model_fp16.pt)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def validate(self) -> None:
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.batch_size < 1:
            raise ValueError("epochs, steps_per_epoch and batch_size must be >= 1")
        if self.checkpoint_every < 1 or self.log_every < 1 or self.val_every < 1:
            raise ValueError("checkpoint_every, log_every and val_every must be >= 1")
        if self.task == "siamfc" and self.gradnet != GradNetTrainConfig():
            raise ValueError("the gradnet section applies to task: gradnet only")
        if self.task != "siammlg" and self.siammlg != SiamMLGTrainConfig():
            raise ValueError("the siammlg section applies to task: siammlg only")


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step`` divided by ``optim.lr``."""
    o = cfg.optim
    e = step / cfg.steps_per_epoch
    if not o.smooth:
        e = math.floor(e)
    e = min(e, cfg.epochs - 1 if o.schedule == "logspace" else cfg.epochs)
    ratio = o.lr_end / o.lr
    if o.schedule == "exponential":
        f = ratio ** (e / cfg.epochs)
    elif o.schedule == "logspace":
        f = ratio ** (e / max(1, cfg.epochs - 1))
    else:
        f = 1.0
    if o.warmup_steps and step < o.warmup_steps:
        f *= (step + 1) / o.warmup_steps
    return f

"""Training configuration: strict dataclasses for the loop and every recipe's section, loaded (bases
composed, paths resolved) by :func:`load_train_config`.  Nothing here imports the loop or the recipes.

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

SiamMLG (``siammlg`` section, see :mod:`gradtrack.training.recipes.siammlg`): stage ``base`` then stage
``update``; its crop augmentation is ``data.augment`` (``translate``/``stretch``/``aspect`` of the search
crop, ``exemplar_translate``/``exemplar_stretch``, ``negative_prob``) and its mask datasets are
``data.mask_datasets``.

Paths (:data:`PATH_FIELDS`): a relative path is used as given when it exists (relative to the working
directory), else relative to the folder of the loaded config file when it exists there, else as given.
``out`` is relative to the working directory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import from_dict, load_yaml, to_dict
from ..data.sources import DataConfig


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
class SiamFCTrainConfig:
    """Fine-tuning an initialised backbone (e.g. ImageNet EfficientNet-Lite): ``freeze`` lists parameter-name
    prefixes kept at their initial values (their BN statistics too); backbone parameters that train get
    ``backbone_lr_mult`` times the learning rate.  ``init_from``: a SiamFC checkpoint whose weights start
    the whole model (fine-tuning trained weights, e.g. the shipped ones); the ``model`` section must then be
    the checkpoint's own config (``gradtrack info CKPT`` prints it)."""
    freeze: list[str] = field(default_factory=list)
    backbone_lr_mult: float = 1.0
    init_from: str = ""

    def validate(self) -> None:
        if self.backbone_lr_mult < 0:
            raise ValueError(f"backbone_lr_mult must be >= 0, got {self.backbone_lr_mult}")


@dataclass
class GradNetTrainConfig:
    variant: Literal["full", "no_generalization", "no_gradient"] = "full"
    k: int = 8  # search regions per template (template generalisation)
    # SiamFC checkpoint giving the (frozen) search branch; or a GradNet checkpoint (fine-tuning trained
    # weights): the whole model starts from it, the model section must be its config
    init_from: str = "runs/siamfc/final.pt"
    init_template_from_siamfc: bool = False  # official: the template branch is trained from scratch

    def validate(self) -> None:
        if self.k < 1:
            raise ValueError("k must be >= 1")


DEFAULT_FREEZE = ["backbone.conv1", "backbone.bn1", "backbone.layer1"]


@dataclass
class SiamMLGTrainConfig:
    stage: Literal["base", "update"] = "base"
    variant: Literal["resnet34", "gradient", "sk", "full"] = "full"  # the paper's ablation variants
    init_from: str = ""  # a siammlg checkpoint (required for stage update: the trained base tracker)
    # losses
    score_weight: float = 1.0
    mask_weight: float = 32.0  # SiamMask paper lambda_1 (foolwood's config: 36)
    box_mask_weight: float = 4.0
    box_mask_loss: Literal["dice", "bce"] = "dice"
    iou_weight: float = 3.0  # SiamFC++; used only with model.box_head
    iou_loss: Literal["log", "linear", "giou"] = "log"
    refine: bool = True  # train Refine (if the model has one) at each positive sample's target cell
    # parameters
    backbone_lr_mult: float = 0.1
    freeze: list[str] = field(default_factory=lambda: list(DEFAULT_FREEZE))
    # SiamMask's backbone schedule: these frozen prefixes start training (at backbone_lr_mult x lr, BN
    # statistics too) once ``unfreeze_at`` of the whole schedule (epochs x steps_per_epoch) is done
    unfreeze: list[str] = field(default_factory=list)
    unfreeze_at: float = 0.5
    update_train: list[str] = field(default_factory=lambda: ["u2", "score_head.conv_kernel"])
    k: int = 8  # stage update: search crops (different videos) per template
    # schedule on top of optim (epochs at which the lr is multiplied by lr_gamma)
    lr_milestones: list[float] = field(default_factory=lambda: [20.0])
    lr_gamma: float = 0.5

    def validate(self) -> None:
        if self.k < 1:
            raise ValueError("k must be >= 1")
        if min(self.score_weight, self.mask_weight, self.box_mask_weight, self.iou_weight) < 0:
            raise ValueError("loss weights must be >= 0")
        if self.backbone_lr_mult < 0 or not 0 < self.lr_gamma <= 1:
            raise ValueError("need backbone_lr_mult >= 0 and 0 < lr_gamma <= 1")
        if not 0 <= self.unfreeze_at <= 1:
            raise ValueError(f"unfreeze_at is a fraction of the schedule in [0, 1], got {self.unfreeze_at}")
        missing = [p for p in self.unfreeze if not any(p == f or p.startswith(f + ".") for f in self.freeze)]
        if missing:
            raise ValueError(f"siammlg.unfreeze: {missing} are not frozen (list them, or a parent, in siammlg.freeze)")
        if self.unfreeze and self.backbone_lr_mult == 0:
            raise ValueError("siammlg.unfreeze needs backbone_lr_mult > 0 (the unfrozen layers train at that multiple)")
        if self.stage == "update":
            if self.unfreeze:
                raise ValueError("siammlg.unfreeze is a base-stage schedule (stage update trains update_train only)")
            if self.variant in ("resnet34", "sk"):
                raise ValueError(f"variant {self.variant!r} has no gradient update: it has no update stage")
            if not self.init_from:
                raise ValueError("stage update needs init_from (the base-stage checkpoint)")
            if not self.update_train:
                raise ValueError("stage update needs at least one entry in update_train")



@dataclass
class TrainConfig:
    task: Literal["siamfc", "gradnet", "siammlg"] = "siamfc"
    model: dict[str, Any] = field(default_factory=dict)  # the model config (see gradtrack.models)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    siamfc: SiamFCTrainConfig = field(default_factory=SiamFCTrainConfig)  # task: siamfc
    gradnet: GradNetTrainConfig = field(default_factory=GradNetTrainConfig)
    siammlg: SiamMLGTrainConfig = field(default_factory=SiamMLGTrainConfig)  # task: siammlg
    epochs: int = 50
    steps_per_epoch: int = 6000
    batch_size: int = 8  # pairs per step and process (GradNet full: templates per step, each with k searches)
    seed: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "none", "bf16", "fp16"] = "auto"  # auto: bf16 on CPUs that have it, bf16/fp16 on CUDA
    threads: int = 0  # torch threads per process; 0 = leave the default
    deterministic: bool = False  # torch.use_deterministic_algorithms (CUDA: slower)
    checkpoint_every: int = 500
    keep_checkpoints: int = 3  # step_N.pt files kept (the newest); 0 writes none, only last.pt / final.pt
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
        if self.keep_checkpoints < 0:
            raise ValueError(f"keep_checkpoints must be >= 0 (0: no step_N.pt files), got {self.keep_checkpoints}")
        for section, default in (("siamfc", SiamFCTrainConfig()), ("gradnet", GradNetTrainConfig()),
                                 ("siammlg", SiamMLGTrainConfig())):
            if self.task != section and getattr(self, section) != default:
                raise ValueError(f"the {section} section applies to task: {section} only")


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


# the path fields of a training config, as (section, field); also every mask dataset's root and every
# backbone ``init`` file named anywhere in the model section
PATH_FIELDS = [("data", "root"), ("data", "splits_file"), ("siamfc", "init_from"), ("gradnet", "init_from"),
               ("siammlg", "init_from")]


def _resolve(path: str | None, folder: Path) -> str | None:
    if not path:
        return path
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists() or not (folder / p).exists():
        return path
    return str(folder / p)


def resolve_paths(cfg: TrainConfig, folder: str | Path) -> TrainConfig:
    """``cfg`` with its relative paths (:data:`PATH_FIELDS`, mask dataset roots, backbone ``init`` files) resolved against
    ``folder`` where they do not exist as given but do there."""
    folder = Path(folder)
    d = to_dict(cfg)
    for section, key in PATH_FIELDS:
        d[section][key] = _resolve(d[section][key], folder)
    for m in d["data"]["mask_datasets"]:
        m["root"] = _resolve(m["root"], folder)
    d["model"] = _resolve_inits(d["model"], folder)
    return from_dict(TrainConfig, d)


def _resolve_inits(section, folder: Path):
    """Backbone ``init`` files (any value other than "" and "imagenet") in a model section, resolved."""
    if not isinstance(section, dict):
        return section
    return {k: (_resolve(v, folder) if k == "init" and isinstance(v, str) and v != "imagenet"
                else _resolve_inits(v, folder)) for k, v in section.items()}


def load_train_config(path: str | Path) -> TrainConfig:
    """The training config in ``path``: ``base`` files composed (:func:`gradtrack.config.load_yaml`), strictly
    built and its paths resolved once (module docstring)."""
    cfg = from_dict(TrainConfig, load_yaml(path), where=str(path))
    return resolve_paths(cfg, Path(path).parent)


__all__ = ["OptimConfig", "GradNetTrainConfig", "SiamMLGTrainConfig", "TrainConfig", "lr_factor", "load_train_config",
           "resolve_paths", "PATH_FIELDS"]

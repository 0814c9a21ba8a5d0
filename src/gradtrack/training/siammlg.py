"""SiamMLG training: the base tracker (stage ``base``), then the gradient-guided update (stage ``update``).

Hooked into :func:`gradtrack.training.trainer.train` with ``task: siammlg``; this module provides the
model building (:func:`build_siammlg_model`), the parameter groups (:func:`param_groups`), the schedule
(:func:`siammlg_lr_factor`), the data (:func:`build_siammlg_data`) and the step (:class:`SiamMLGStep`).

Stage ``base`` (a two-branch SiamMask on ResNet-34 + SK): for ``B`` pairs,
``score_weight * score_loss + mask_weight * soft-margin mask loss (exact masks, positive cells)
+ box_mask_weight * box-projection mask loss (box-only samples, positive cells)
+ iou_weight * IoU loss (only with the box head)``.  The template is ``U1(f2(z))`` without update (U2 is
not used and not trained).  With ``refine: true`` the Refine module is trained too, at the target's own
cell of every positive sample, with the same mask losses.  Backbone parameters get ``backbone_lr_mult``
times the learning rate; ``freeze`` lists parameter-name prefixes that are not trained (their BN layers
run in eval mode); ``unfreeze`` (a subset of ``freeze``) joins training at ``unfreeze_at`` of the schedule
(SiamMask: layer2-3 at 50 %, at ``backbone_lr_mult``).

Stage ``update`` (GradNet's recipe): everything is frozen except ``update_train`` (default U2 and the
score head's template-side ``conv_kernel``).  Each of the ``B`` templates is updated once with the
gradient of its score loss against ``k`` search crops from ``k`` different videos (template
generalisation; the gradient uses the centred label, so the search shift is small), and the loss is the
same weighted loss as in the base stage computed *after* the update only, against every search's own
targets.  ``create_graph=True`` keeps the gradient differentiable, so the parameters that the gradient
depends on (``score_head.conv_kernel``) receive second-order terms; U2 itself is first-order (the gradient
does not depend on U2).  Why ``score_head.conv_kernel``: in GradNet the whole template branch trains with
U2; here U1 (layer3, neck, SK) is shared with the search branch and must stay frozen, and the heads'
``conv_kernel`` layers are the only template-only layers.  The score head's is the one the gradient runs
through; the mask and box heads' may be added in ``update_train``.

Schedule (the paper: SGD momentum 0.9, weight decay 5e-4, batch 64, 70 epochs, lr 1e-3 with warm-up,
then 5e-4): ``optim.schedule: constant`` with ``optim.warmup_steps`` (linear warm-up), times
``lr_gamma`` for every epoch in ``lr_milestones`` already reached (default ``[20]`` and 0.5).
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..data.siammlg_pairs import (MASK_BOX, MASK_EXACT, CropGeometry, MaskDatasetConfig, MLGGroupDataset,
                                  MLGPairDataset, SearchAugment, build_mlg_sources, target_cell)
from .siammlg_losses import (box_projection_mask_loss, iou_loss, mask_soft_margin_loss, mask_windows,
                             positive_cells, score_loss, window_boxes)

log = logging.getLogger("gradtrack.training.siammlg")

DEFAULT_FREEZE = ["backbone.conv1", "backbone.bn1", "backbone.layer1"]


@dataclass
class SiamMLGTrainConfig:
    stage: Literal["base", "update"] = "base"
    variant: Literal["resnet34", "gradient", "sk", "full"] = "full"  # the paper's ablation variants
    init_from: str = ""  # a siammlg checkpoint (required for stage update: the trained base tracker)
    init_backbone: str = ""  # ImageNet ResNet-34 state dict in torchvision's layout (stage base, optional)
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
    # data
    augment: SearchAugment = field(default_factory=SearchAugment)
    mask_datasets: list[MaskDatasetConfig] = field(default_factory=list)

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
            if self.augment.negative_prob > 0:
                raise ValueError("stage update labels every search 'target near the centre': set "
                                 "siammlg.augment.negative_prob to 0")
            if not self.update_train:
                raise ValueError("stage update needs at least one entry in update_train")


def _mlg(cfg) -> SiamMLGTrainConfig:
    return cfg.siammlg


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None and not p.exists() and (base / p).exists():
        p = base / p
    return p


# ------------------------------------------------------------------------------------------------
# model and parameters


def model_config(cfg):
    """The :class:`SiamMLGConfig` of a training config: ``model`` with the variant's switches."""
    from ..config import ConfigError, from_dict
    from ..models.siammlg import SiamMLGConfig, ablation_config

    for key in ("sk", "gradient_update"):
        if key in cfg.model:
            raise ConfigError(f"model.{key}: set siammlg.variant instead (resnet34, gradient, sk, full)")
    base_cfg = from_dict(SiamMLGConfig, dict(cfg.model), where="siammlg model config")
    return ablation_config(_mlg(cfg).variant, base_cfg)


def _matching(model: torch.nn.Module, prefixes: list[str], what: str) -> set[str]:
    names = [n for n, _ in model.named_parameters()]
    out = set()
    for pre in prefixes:
        hit = [n for n in names if n == pre or n.startswith(pre + ".")]
        if not hit:
            raise ValueError(f"siammlg.{what}: {pre!r} matches no parameter of the model")
        out.update(hit)
    return out


def build_siammlg_model(cfg, base: Path | None = None) -> torch.nn.Module:
    """The model of ``cfg`` with its initial weights and ``requires_grad`` set for the stage."""
    from ..checkpoint import load_state, read_checkpoint
    from ..config import to_dict
    from ..models.resnet import convert_imagenet_resnet34
    from ..models.siammlg import SiamMLG

    m = _mlg(cfg)
    model = SiamMLG(model_config(cfg))
    if m.init_backbone and m.stage == "base":
        path = _resolve(m.init_backbone, base)
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        model.backbone.load_state_dict(convert_imagenet_resnet34(sd, model.backbone))
        log.info("backbone initialised from %s", path)
    if m.init_from:
        path = _resolve(m.init_from, base)
        ckpt = read_checkpoint(path)
        if ckpt["model"] != "siammlg":
            raise ValueError(f"siammlg.init_from must be a siammlg checkpoint, {path} holds {ckpt['model']!r}")
        if ckpt["config"] != to_dict(model.cfg):
            raise ValueError(f"siammlg.init_from: {path} was trained with another model config; use the same "
                             "model section and variant as the base stage")
        load_state(model, ckpt["state_dict"], source=str(path))
    if m.stage == "base":
        frozen = _matching(model, m.freeze, "freeze") if m.freeze else set()
        if model.u2 is not None:
            frozen |= {n for n, _ in model.named_parameters() if n.startswith("u2.")}
    else:
        keep = _matching(model, m.update_train, "update_train")
        frozen = {n for n, _ in model.named_parameters()} - keep
    for n, p in model.named_parameters():
        p.requires_grad_(n not in frozen)
    return model


def _to_unfreeze(model: torch.nn.Module, cfg) -> set[str]:
    m = _mlg(cfg)
    return _matching(model, m.unfreeze, "unfreeze") if (m.unfreeze and m.stage == "base") else set()


def unfreeze_step(cfg) -> int:
    """The global step from which ``siammlg.unfreeze`` trains."""
    return int(round(_mlg(cfg).unfreeze_at * cfg.epochs * cfg.steps_per_epoch))


def apply_unfreeze(model: torch.nn.Module, cfg, step: int) -> bool:
    """Before training step ``step``: switch on ``siammlg.unfreeze`` once the schedule reaches
    :func:`unfreeze_step` (also right after a resume past it).  True when something changed (the caller
    then refreshes its parameter list and the BN modes)."""
    names = _to_unfreeze(model, cfg)
    if not names or step < unfreeze_step(cfg):
        return False
    changed = False
    for n, p in model.named_parameters():
        if n in names and not p.requires_grad:
            p.requires_grad_(True)
            changed = True
    if changed:
        log.info("step %d: unfreezing %s", step, ", ".join(_mlg(cfg).unfreeze))
    return changed


def param_groups(model: torch.nn.Module, cfg) -> list[dict]:
    """Trainable parameters: backbone ones at ``backbone_lr_mult * lr``, the rest at ``lr``.  Parameters
    that ``siammlg.unfreeze`` switches on later are in the optimiser from the start (SGD skips them while
    they have no gradient), so checkpoints and resumes see one fixed set of groups."""
    lr = cfg.optim.lr
    later = _to_unfreeze(model, cfg)
    bb = [p for n, p in model.named_parameters() if (p.requires_grad or n in later) and n.startswith("backbone.")]
    rest = [p for n, p in model.named_parameters() if (p.requires_grad or n in later) and not n.startswith("backbone.")]
    groups = []
    if rest:
        groups.append({"params": rest, "lr": lr, "name": "heads"})
    if bb and _mlg(cfg).backbone_lr_mult > 0:
        groups.append({"params": bb, "lr": lr * _mlg(cfg).backbone_lr_mult, "name": "backbone"})
    elif bb:  # multiplier 0: the backbone is frozen after all
        for p in bb:
            p.requires_grad_(False)
    if not groups:
        raise ValueError("siammlg: no trainable parameter")
    return groups


def set_siammlg_train_mode(model: torch.nn.Module) -> None:
    """Train mode, except normalisation layers whose parameters are all frozen (statistics frozen too)."""
    model.train()
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            params = list(mod.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                mod.eval()


def siammlg_lr_factor(step: int, cfg) -> float:
    """``lr_factor`` of ``optim`` (warm-up included) times ``lr_gamma`` per reached milestone epoch."""
    from .config import lr_factor

    epoch = step / cfg.steps_per_epoch
    drops = sum(1 for e in _mlg(cfg).lr_milestones if epoch >= e)
    return lr_factor(step, cfg) * _mlg(cfg).lr_gamma ** drops


# ------------------------------------------------------------------------------------------------
# data


def build_siammlg_data(cfg, base: Path | None = None, mixture=None, val_pool="auto", main: bool = True,
                       progress: bool = False):
    """``(training dataset, fixed validation batches, data stats)``; ``mixture``/``val_pool`` replace the
    configured data (tests).  Validation uses the val split (box only), without augmentation."""
    from ..data.sources import PairMixture, build_validation_pool, fixed_batches

    m = _mlg(cfg)
    geo = CropGeometry.from_crop(cfg.data.crop, getattr(model_config(cfg), "label_radius", 2.0))
    if mixture is None:
        src = build_mlg_sources(cfg.data, m.mask_datasets, base, progress)
        mixture, stats = src.mixture, src.stats
    else:
        stats = {"mixture": mixture.describe() if hasattr(mixture, "describe") else "custom"}
    if isinstance(val_pool, str) and val_pool == "auto":
        val_pool = build_validation_pool(cfg.data, base) if main else None
    aug = cfg.data.augment
    if m.stage == "update":
        dataset = MLGGroupDataset(mixture, m.k, geo, aug, m.augment, cfg.seed)
    else:
        dataset = MLGPairDataset(mixture, geo, aug, m.augment, cfg.seed)
    val_batches: list[dict] = []
    if val_pool is not None and cfg.data.val_pairs > 0 and main:
        vseed = 10_000_019 + cfg.seed
        vmix = PairMixture({"val": (1.0, val_pool)})
        if m.stage == "update":
            k = min(m.k, max(1, len(val_pool)))
            vds = MLGGroupDataset(vmix, k, geo, None, None, vseed)
            val_batches = fixed_batches(vds, max(1, cfg.data.val_pairs // k), cfg.batch_size)
        else:
            vds = MLGPairDataset(vmix, geo, None, None, vseed)
            val_batches = fixed_batches(vds, cfg.data.val_pairs, cfg.batch_size)
    stats["val_pairs"] = cfg.data.val_pairs if val_batches else 0
    return dataset, val_batches, stats


# ------------------------------------------------------------------------------------------------
# the step


def _flat(t: torch.Tensor, grouped: bool) -> torch.Tensor:
    return t.flatten(0, 1) if grouped else t


class SiamMLGStep:
    """``step(batch, create_graph=True) -> (loss, score loss before the update or None)``.  The last
    step's loss terms are kept in ``parts`` (floats) for logging and tests."""

    def __init__(self, cfg, model, device: torch.device):
        self.cfg, self.m, self.model, self.device = cfg, _mlg(cfg), model, device
        self.parts: dict[str, float] = {}

    def _search_trainable(self) -> bool:
        mods = (self.model.backbone, self.model.neck, self.model.sk)
        return any(p.requires_grad for mod in mods for p in mod.parameters())

    def __call__(self, batch: dict, create_graph: bool = True):
        model, m, dev = self.model, self.m, self.device
        grouped = batch["x"].dim() == 5
        z = batch["z"].to(dev, non_blocking=True)
        x = _flat(batch["x"], grouped).to(dev, non_blocking=True)
        label = _flat(batch["label"], grouped).to(dev)
        kind = _flat(batch["mask_kind"], grouped).to(dev)
        boxes = _flat(batch["box"], grouped).to(dev, torch.float32)
        loss0 = None
        if m.stage == "update":
            if self._search_trainable():
                xf, low = model.search(x)
            else:
                with torch.no_grad():
                    xf, low = model.search(x)
            with torch.no_grad() if not any(p.requires_grad for p in model.backbone.parameters()) else nullcontext():
                f2 = model.f2(z)
            g, loss0 = model.gradient(f2, xf, create_graph=create_graph)
            zf, _ = model.update(f2, g)
        else:
            xf, low = model.search(x)
            zf = model.template(z)
        out = model.heads(model.kernels(zf), xf, full_mask=False)
        parts: dict[str, torch.Tensor] = {}
        parts["score"] = score_loss(out["score"].float(), label)
        b, r, c = positive_cells(label)
        keep = kind[b] > 0
        b, r, c = b[keep], r[keep], c[keep]
        logits = model.mask_logits(out["mask_corr"], b, r, c).float()
        ex, bx = kind[b] == MASK_EXACT, kind[b] == MASK_BOX
        zero = out["score"].sum().float() * 0.0
        parts["mask"] = zero
        parts["box_mask"] = zero
        gt = None
        if ex.any():
            gt = _flat(batch["mask"], grouped).to(dev, torch.float32)
            parts["mask"] = mask_soft_margin_loss(logits[ex], mask_windows(gt, b[ex], r[ex], c[ex]))
        if bx.any():
            wb = window_boxes(boxes, b[bx], r[bx], c[bx]) * (model.cfg.mask_size / 127.0)
            parts["box_mask"] = box_projection_mask_loss(logits[bx], wb, m.box_mask_loss)
        if m.refine and model.refine is not None:
            self._refine_losses(parts, low, out["mask_corr"], label, kind, boxes, gt, batch, grouped)
        if model.box_head is not None:
            ltrb = _flat(batch["ltrb"], grouped).to(dev, torch.float32)
            pos = _flat(batch["ltrb_pos"], grouped).to(dev) & (kind > 0)[:, None, None]
            parts["iou"] = iou_loss(out["box"].float(), ltrb, pos, m.iou_loss)
        loss = (m.score_weight * parts["score"] + m.mask_weight * (parts["mask"] + parts.get("refine_mask", zero))
                + m.box_mask_weight * (parts["box_mask"] + parts.get("refine_box_mask", zero)))
        if "iou" in parts:
            loss = loss + m.iou_weight * parts["iou"]
        self.parts = {k: float(v.detach()) for k, v in parts.items()}
        if loss0 is not None:
            self.parts["score_before"] = float(loss0.detach())
        return loss, loss0

    def _refine_losses(self, parts, low, corr, label, kind, boxes, gt, batch, grouped) -> None:
        """Refine at the target's own cell of every positive sample (one 127x127 mask each)."""
        dev = label.device
        sel = torch.nonzero((kind > 0) & (label.flatten(1).amax(1) > 0)).flatten()
        if sel.numel() == 0:
            return
        cells = [target_cell(((bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2), label.shape[-1])
                 for bx in boxes[sel].tolist()]
        rows = torch.tensor([rc[0] for rc in cells], device=dev)
        cols = torch.tensor([rc[1] for rc in cells], device=dev)
        pred = self.model.refine_mask(low, corr, sel, rows, cols).float()[:, 0]
        ex, bx = kind[sel] == MASK_EXACT, kind[sel] == MASK_BOX
        if ex.any():
            if gt is None:
                gt = _flat(batch["mask"], grouped).to(dev, torch.float32)
            parts["refine_mask"] = mask_soft_margin_loss(pred[ex], mask_windows(gt, sel[ex], rows[ex], cols[ex]))
        if bx.any():
            wb = window_boxes(boxes, sel[bx], rows[bx], cols[bx])
            parts["refine_box_mask"] = box_projection_mask_loss(pred[bx], wb, self.m.box_mask_loss)


__all__ = ["SiamMLGTrainConfig", "build_siammlg_model", "param_groups", "set_siammlg_train_mode", "siammlg_lr_factor",
           "build_siammlg_data", "SiamMLGStep", "model_config"]

"""SiamMLG recipe: the base tracker (stage ``base``), then the gradient-guided update (stage ``update``).

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

Data: :class:`~gradtrack.data.samples.MaskSamples` on the model's score map (labels, boxes, masks), from the
shared sources with masks kept (procedural masks, ``data.mask_datasets``); augmentation is ``data.augment``
(SiamMask's: search shift ``translate`` up to 64 px, ``stretch`` 0.18, template ``exemplar_translate`` /
``exemplar_stretch``, ``negative_prob``).

Schedule (the paper: SGD momentum 0.9, weight decay 5e-4, batch 64, 70 epochs, lr 1e-3 with warm-up,
then 5e-4): ``optim.schedule: constant`` with ``optim.warmup_steps`` (linear warm-up), times
``lr_gamma`` for every epoch in ``lr_milestones`` already reached (default ``[20]`` and 0.5).
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch

from ...checkpoint import load_state, read_checkpoint
from ...config import ConfigError, from_dict, to_dict
from ...data.samples import MASK_BOX, MASK_EXACT, MaskSamples, target_cell
from ...geometry import ScoreMapGeometry
from ...models.heads import ltrb_targets
from ...models.backbones import init_backbone
from ...models.siammlg import SiamMLG, SiamMLGConfig, ablation_config
from ..siammlg_losses import (box_projection_mask_loss, iou_loss, mask_soft_margin_loss, mask_windows, positive_cells,
                              score_loss, window_boxes)
from .base import Recipe, backbone_groups, matching_parameters, train_mode_frozen_norms

log = logging.getLogger("gradtrack.training.siammlg")


def model_config(cfg) -> SiamMLGConfig:
    """The :class:`SiamMLGConfig` of a training config: ``model`` with the variant's switches."""
    for key in ("sk", "gradient_update"):
        if key in cfg.model:
            raise ConfigError(f"model.{key}: set siammlg.variant instead (resnet34, gradient, sk, full)")
    return ablation_config(cfg.siammlg.variant, from_dict(SiamMLGConfig, dict(cfg.model), where="siammlg model config"))


def _without_init(model_cfg: dict) -> dict:
    """A stored model config without its backbone's ``init`` (read only when a fresh model is built)."""
    return {**model_cfg, "backbone": {k: v for k, v in dict(model_cfg.get("backbone") or {}).items() if k != "init"}}


def _flat(t: torch.Tensor, grouped: bool) -> torch.Tensor:
    return t.flatten(0, 1) if grouped else t


class SiamMLGRecipe(Recipe):
    task = "siammlg"
    paper_name = "SiamMLG"
    card_caveat = "; SiamMLG: YouTube-VOS/COCO masks and an ImageNet ResNet-34"
    card_model_config = True
    needs_masks = True

    def __init__(self, cfg):
        super().__init__(cfg)
        self.m = m = cfg.siammlg
        aug = cfg.data.augment
        if m.stage == "update" and aug.negative_prob > 0:
            raise ValueError("stage update labels every search 'target near the centre': set "
                             "data.augment.negative_prob to 0")
        if aug.translate > 100:
            raise ValueError("data.augment.translate must be <= 100 px (the target must stay inside the 255 crop)")
        self.model_cfg = model_config(cfg)
        self._geometry = self.model_cfg.geometry()
        self.sample_builder()  # the crops must be the model's

    @property
    def geometry(self) -> ScoreMapGeometry:
        return self._geometry

    @property
    def validate_no_grad(self) -> bool:
        return self.m.stage == "base"

    @property
    def group(self) -> int | None:
        return self.m.k if self.m.stage == "update" else None

    def sample_builder(self):
        return MaskSamples(self.cfg.data.crop, self.geometry)

    # -- model and parameters ---------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The model with its initial weights and ``requires_grad`` set for the stage."""
        m = self.m
        model = SiamMLG(self.model_cfg)
        if m.stage == "base":  # ImageNet weights named by model.backbone.init (torchvision's ResNet-34 layout)
            log.info("backbone: %s", init_backbone(model.backbone, model.cfg.backbone, "resnet34"))
        if m.init_from:
            path = Path(m.init_from)
            ckpt = read_checkpoint(path)
            if ckpt["model"] != "siammlg":
                raise ValueError(f"siammlg.init_from must be a siammlg checkpoint, {path} holds {ckpt['model']!r}")
            # compared as configs (fields added since the checkpoint was written take their defaults)
            stored = from_dict(SiamMLGConfig, _without_init(ckpt["config"]), where=f"{path} config")
            state = ckpt["state_dict"]
            if m.stage == "update" and model.u2 is not None:
                # U2 is what the update stage trains: its settings are this stage's own, and a base trained
                # without it (variant sk, the shipped weights) gets a freshly initialised U2
                u2 = {k: getattr(model.cfg, k) for k in ("u2_scale", "grad_scale", "u2_kernel")}
                if not stored.gradient_update:
                    state = {**state, **{k: v for k, v in model.state_dict().items() if k.startswith("u2.")}}
                    log.info("%s has no U2 (variant without the gradient update): U2 starts untrained", path)
                stored = replace(stored, gradient_update=True, **u2)
            if _without_init(to_dict(stored)) != _without_init(to_dict(model.cfg)):
                raise ValueError(f"siammlg.init_from: {path} was trained with another model config; use the same "
                                 "model section and variant as the base stage")
            load_state(model, state, source=str(path))
        if m.stage == "base":
            frozen = matching_parameters(model, m.freeze, "siammlg.freeze") if m.freeze else set()
            if model.u2 is not None:
                frozen |= {n for n, _ in model.named_parameters() if n.startswith("u2.")}
        else:
            frozen = {n for n, _ in model.named_parameters()} - matching_parameters(model, m.update_train, "siammlg.update_train")
        for n, p in model.named_parameters():
            p.requires_grad_(n not in frozen)
        return model

    def _to_unfreeze(self, model: torch.nn.Module) -> set[str]:
        m = self.m
        return matching_parameters(model, m.unfreeze, "siammlg.unfreeze") if (m.unfreeze and m.stage == "base") else set()

    @property
    def unfreeze_step(self) -> int:
        """The global step from which ``siammlg.unfreeze`` trains."""
        return int(round(self.m.unfreeze_at * self.cfg.epochs * self.cfg.steps_per_epoch))

    def before_step(self, model: torch.nn.Module, step: int) -> bool:
        """Switch on ``siammlg.unfreeze`` once the schedule reaches :attr:`unfreeze_step` (also right after a
        resume past it), and the BN modes with it.  True when something changed."""
        names = self._to_unfreeze(model)
        if not names or step < self.unfreeze_step:
            return False
        changed = False
        for n, p in model.named_parameters():
            if n in names and not p.requires_grad:
                p.requires_grad_(True)
                changed = True
        if changed:
            log.info("step %d: unfreezing %s", step, ", ".join(self.m.unfreeze))
            self.set_train_mode(model)
        return changed

    def param_groups(self, model: torch.nn.Module) -> list[dict]:
        """Trainable parameters: backbone ones at ``backbone_lr_mult * lr``, the rest at ``lr``.  Parameters
        that ``siammlg.unfreeze`` switches on later are in the optimiser from the start (SGD skips them while
        they have no gradient), so checkpoints and resumes see one fixed set of groups."""
        return backbone_groups(model, self.cfg.optim.lr, self.m.backbone_lr_mult, "siammlg", self._to_unfreeze(model))

    def set_train_mode(self, model: torch.nn.Module) -> None:
        train_mode_frozen_norms(model)

    def lr_factor(self, step: int) -> float:
        """``lr_factor`` of ``optim`` (warm-up included) times ``lr_gamma`` per reached milestone epoch."""
        epoch = step / self.cfg.steps_per_epoch
        drops = sum(1 for e in self.m.lr_milestones if epoch >= e)
        return super().lr_factor(step) * self.m.lr_gamma ** drops

    # -- the step ---------------------------------------------------------------------------------------
    def step(self, model, device):
        return SiamMLGStep(self.m, model, device, self.geometry)

    # -- export -------------------------------------------------------------------------------------------
    @classmethod
    def responses(cls, model, z, x):
        model.eval()
        out = model(z, x, create_graph=False, full_mask=False)
        return {k: out[k].detach().float() for k in ("score", "mask_corr", "box") if k in out}

    @classmethod
    def searches_per_item(cls, tcfg: dict) -> int:
        m = tcfg.get("siammlg", {})
        return int(m["k"]) if m.get("stage") == "update" else 1

    @classmethod
    def card_training(cls, tcfg: dict) -> str:
        m = tcfg.get("siammlg", {})
        return f", stage {m.get('stage')}, variant {m.get('variant')}"


class SiamMLGStep:
    """``step(batch, create_graph=True) -> (loss, score loss before the update or None)``.  The last
    step's loss terms are kept in ``parts`` (floats) for logging and tests."""

    def __init__(self, m, model, device: torch.device, geo: ScoreMapGeometry):
        self.m, self.model, self.device, self.geo = m, model, device, geo
        self.parts: dict[str, float] = {}

    def _search_trainable(self) -> bool:
        mods = (self.model.backbone, self.model.neck, self.model.sk)
        return any(p.requires_grad for mod in mods for p in mod.parameters())

    def __call__(self, batch: dict, create_graph: bool = True):
        model, m, dev, geo = self.model, self.m, self.device, self.geo
        grouped = batch["x"].dim() == 5
        z = (batch["z"][:, 0] if grouped else batch["z"]).to(dev, non_blocking=True)  # a group's template: pair 0's
        x = _flat(batch["x"], grouped).to(dev, non_blocking=True)
        label = _flat(batch["label"], grouped).to(dev)
        kind = _flat(batch["mask_kind"], grouped).to(dev)
        boxes = _flat(batch["box"], grouped).to(dev, torch.float32)
        loss0 = None
        if m.stage == "update":
            with nullcontext() if self._search_trainable() else torch.no_grad():
                xf, low = model.search(x)
            with torch.no_grad() if not any(p.requires_grad for p in model.backbone.parameters()) else nullcontext():
                f2 = model.f2(z)
            g, loss0 = model.gradient(f2, xf, create_graph=create_graph)
            zf, _ = model.update(f2, g)
        else:
            xf, low = model.search(x)
            zf = model.template(z)
        out = model.heads(model.kernels(zf), xf, full_mask=False)
        parts: dict[str, torch.Tensor] = {"score": score_loss(out["score"].float(), label)}
        b, r, c = positive_cells(label)
        keep = kind[b] > 0
        b, r, c = b[keep], r[keep], c[keep]
        logits = model.mask_logits(out["mask_corr"], b, r, c).float()
        ex, bx = kind[b] == MASK_EXACT, kind[b] == MASK_BOX
        zero = out["score"].sum().float() * 0.0
        parts["mask"] = parts["box_mask"] = zero
        gt = None
        if ex.any():
            gt = _flat(batch["mask"], grouped).to(dev, torch.float32)
            parts["mask"] = mask_soft_margin_loss(logits[ex], mask_windows(gt, b[ex], r[ex], c[ex], geo))
        if bx.any():
            wb = window_boxes(boxes, b[bx], r[bx], c[bx], geo) * (model.cfg.mask_size / geo.exemplar_size)
            parts["box_mask"] = box_projection_mask_loss(logits[bx], wb, m.box_mask_loss)
        if m.refine and model.refine is not None:
            self._refine_losses(parts, low, out["mask_corr"], label, kind, boxes, gt, batch, grouped)
        if model.box_head is not None:
            ltrb, pos = ltrb_targets(boxes, geo.score_size, geo.stride, geo.offset)
            parts["iou"] = iou_loss(out["box"].float(), ltrb, pos & (kind > 0)[:, None, None], m.iou_loss)
        loss = (m.score_weight * parts["score"] + m.mask_weight * (parts["mask"] + parts.get("refine_mask", zero))
                + m.box_mask_weight * (parts["box_mask"] + parts.get("refine_box_mask", zero)))
        if "iou" in parts:
            loss = loss + m.iou_weight * parts["iou"]
        self.parts = {k: float(v.detach()) for k, v in parts.items()}
        if loss0 is not None:
            self.parts["score_before"] = float(loss0.detach())
        return loss, loss0

    def _refine_losses(self, parts, low, corr, label, kind, boxes, gt, batch, grouped) -> None:
        """Refine at the target's own cell of every positive sample (one mask window each)."""
        dev, geo = label.device, self.geo
        sel = torch.nonzero((kind > 0) & (label.flatten(1).amax(1) > 0)).flatten()
        if sel.numel() == 0:
            return
        cells = [target_cell(((bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2), geo) for bx in boxes[sel].tolist()]
        rows = torch.tensor([rc[0] for rc in cells], device=dev)
        cols = torch.tensor([rc[1] for rc in cells], device=dev)
        pred = self.model.refine_mask(low, corr, sel, rows, cols).float()[:, 0]
        ex, bx = kind[sel] == MASK_EXACT, kind[sel] == MASK_BOX
        if ex.any():
            if gt is None:
                gt = _flat(batch["mask"], grouped).to(dev, torch.float32)
            parts["refine_mask"] = mask_soft_margin_loss(pred[ex], mask_windows(gt, sel[ex], rows[ex], cols[ex], geo))
        if bx.any():
            parts["refine_box_mask"] = box_projection_mask_loss(pred[bx], window_boxes(boxes, sel[bx], rows[bx], cols[bx], geo),
                                                                self.m.box_mask_loss)

"""SiamFC and GradNet recipes.

One step = one batch: SiamFC ``B`` pairs; GradNet ``full`` ``B`` templates each against ``k`` search
regions from ``k`` different videos; GradNet ``no_generalization`` / ``no_gradient`` ``B`` pairs.  All
responses are labelled "target at the centre" (``centered_label`` of the training crops' map, balanced
weights).  GradNet's search branch is a trained SiamFC (``gradnet.init_from``), frozen with its BN.
"""
from __future__ import annotations

from pathlib import Path

import logging

import torch

from ...checkpoint import load_state, read_checkpoint
from ...config import from_dict, to_dict
from ...data.samples import CropSamples
from ...geometry import ScoreMapGeometry
from ...models import balanced_logistic_loss, build_model, centered_label, model_config_class
from ...models.backbones import init_backbone
from .base import Recipe, backbone_groups, matching_parameters, train_mode_frozen_norms

log = logging.getLogger("gradtrack.training")


def _without_init(d):
    """A model config dict without any backbone ``init`` entry (read only when a fresh model is built)."""
    if not isinstance(d, dict):
        return d
    return {k: _without_init(v) for k, v in d.items() if k != "init"}


def start_checkpoint(path: str, task: str, model_cfg, what: str) -> dict:
    """The checkpoint ``path`` that starts a whole ``task`` model (fine-tuning): it must hold a ``task`` model
    whose config is ``model_cfg`` (backbone ``init`` entries aside)."""
    ckpt = read_checkpoint(Path(path))
    if ckpt["model"] != task:
        raise ValueError(f"{what}: {path} holds a {ckpt['model']!r} model, not {task!r}")
    check_start_config(ckpt, path, model_cfg, what)
    return ckpt


def check_start_config(ckpt: dict, path, model_cfg, what: str) -> None:
    """Raise unless the checkpoint ``ckpt`` (read from ``path``) was trained with ``model_cfg``."""
    cls = type(model_cfg)
    stored = from_dict(cls, _without_init(ckpt["config"]), where=f"{path} config")
    if stored != from_dict(cls, _without_init(to_dict(model_cfg)), where="model"):
        raise ValueError(f"{what}: {path} was trained with another model config; set the model section to the "
                         f"checkpoint's own config (`gradtrack info {path}` prints it)")


def _under(state: dict, prefix: str) -> dict:
    """The entries of ``state`` below ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class SiamFCRecipe(Recipe):
    task = "siamfc"
    paper_name = "SiamFC"

    def __init__(self, cfg):
        super().__init__(cfg)
        if cfg.data.augment.negative_prob > 0:
            raise ValueError(f"{self.task} labels every search 'target at the centre': data.augment.negative_prob must be 0")
        self._model_cfg = from_dict(model_config_class(self.task), self.model_dict(), where="model")
        crop = cfg.data.crop
        geo = self._model_cfg.geometry()
        if crop.exemplar_size != geo.exemplar_size:
            raise ValueError(f"data.crop.exemplar_size {crop.exemplar_size} differs from the model's {geo.exemplar_size}")
        self._geometry = geo.with_instance_size(crop.search_size)
        if self.task == "siamfc" and cfg.siamfc.init_from:  # checked before anything is built
            start_checkpoint(cfg.siamfc.init_from, "siamfc", self._model_cfg, "siamfc.init_from")

    def model_dict(self) -> dict:
        return dict(self.cfg.model)

    @property
    def geometry(self) -> ScoreMapGeometry:
        return self._geometry

    def build_model(self) -> torch.nn.Module:
        model = build_model(self.task, self.model_dict())
        self.init_weights(model)
        model.adjust.scale.requires_grad_(self.cfg.optim.train_adjust_scale)
        return model

    def init_weights(self, model: torch.nn.Module) -> None:
        """Initial weights of a fresh model: the backbone's ``init`` (ImageNet weights, if named), or with
        ``siamfc.init_from`` the whole model from that SiamFC checkpoint; then ``siamfc.freeze``."""
        path = self.cfg.siamfc.init_from
        if path:
            ckpt = start_checkpoint(path, "siamfc", model.cfg, "siamfc.init_from")
            load_state(model, ckpt["state_dict"], source=str(path))
            log.info("weights: %s (step %s)", path, ckpt.get("meta", {}).get("step", "?"))
        else:
            log.info("backbone: %s", init_backbone(model.backbone, model.cfg.backbone))
        for name in matching_parameters(model, self.cfg.siamfc.freeze, "siamfc.freeze"):
            model.get_parameter(name).requires_grad_(False)

    def param_groups(self, model: torch.nn.Module) -> list:
        if self.cfg.siamfc.backbone_lr_mult == 1.0:
            return super().param_groups(model)
        return backbone_groups(model, self.cfg.optim.lr, self.cfg.siamfc.backbone_lr_mult, "siamfc")

    def set_train_mode(self, model: torch.nn.Module) -> None:
        train_mode_frozen_norms(model)

    def sample_builder(self):
        return CropSamples(self.cfg.data.crop)

    def labels(self, device: torch.device):
        return centered_label(self.geometry.score_size, self.geometry.label_radius, device=device)

    def step(self, model, device):
        label, weight = self.labels(device)

        def step(batch: dict, create_graph: bool = True):
            z = batch["z"].to(device, non_blocking=True)
            x = batch["x"].to(device, non_blocking=True)
            return balanced_logistic_loss(model(z, x).float(), label, weight), None

        return step

    @classmethod
    def responses(cls, model, z, x):
        model.eval()
        with torch.no_grad():
            return {"score": model(z, x)}


def gradnet_losses(model, z: torch.Tensor, x: torch.Tensor, label, weight, k: int, grouped: bool,
                   create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss before, loss after)`` for GradNet.

    ``grouped``: ``z`` is ``B*k`` templates of which every ``k``-th (the first of each group) is used
    against the group's ``k`` search regions; all ``B*k`` exemplars go through the template branch so its
    BN sees a batch of ``B*k`` (as the official code, which embeds the 8 exemplars and uses the first).
    Otherwise ``z`` and ``x`` are ``B`` matching pairs.  The gradient fed to U2 is that of each template's
    *own* mean loss (independent of ``B``, as when tracking with one template).
    """
    with torch.no_grad():
        xf = model.search_features(x)  # frozen branch: no graph needed
    f2 = model.f2(z)
    sel = slice(None, None, k) if grouped else slice(None)
    n_templates = f2[sel].shape[0]
    beta = model.u1_initial(f2)[sel]
    loss0 = balanced_logistic_loss(model.score(beta, xf).float(), label, weight)
    if not model.cfg.use_gradient:
        return loss0, loss0
    (g,) = torch.autograd.grad(loss0 * n_templates, f2, create_graph=create_graph)
    f2_new = f2 + model.u2(g)
    beta_star = model.u1(f2_new)[sel]
    loss1 = balanced_logistic_loss(model.score(beta_star, xf).float(), label, weight)
    return loss0, loss1


class GradNetRecipe(SiamFCRecipe):
    task = "gradnet"
    paper_name = "GradNet"
    validate_no_grad = False  # the inner gradient needs autograd (no second-order graph)

    def model_dict(self) -> dict:
        model_cfg = dict(self.cfg.model)
        if self.cfg.gradnet.variant == "no_gradient":
            model_cfg.setdefault("use_gradient", False)
            if model_cfg["use_gradient"]:
                raise ValueError("gradnet variant no_gradient needs model.use_gradient: false")
        return model_cfg

    @property
    def group(self) -> int | None:
        return self.cfg.gradnet.k if self.cfg.gradnet.variant == "full" else None

    def init_weights(self, model: torch.nn.Module) -> None:
        g = self.cfg.gradnet
        log.info("template backbone: %s", init_backbone(model.template, model.cfg.template_spec()))
        path = Path(g.init_from)
        ckpt = read_checkpoint(path)
        if ckpt["model"] == "gradnet":  # fine-tuning a trained GradNet: the whole model starts from it
            check_start_config(ckpt, path, model.cfg, "gradnet.init_from")
            load_state(model, ckpt["state_dict"], source=str(path))
        elif ckpt["model"] != "siamfc":
            raise ValueError(f"gradnet.init_from must be a SiamFC (or GradNet) checkpoint, {path} holds {ckpt['model']!r}")
        else:
            load_state(model.siamfc, ckpt["state_dict"], source=str(path))
        if g.init_template_from_siamfc and ckpt["model"] == "siamfc":
            sd = ckpt["state_dict"]
            load_state(model.template, _under(sd, "backbone."), source=str(path))
            load_state(model.template_neck, _under(sd, "neck."), source=str(path))
            if model.u1_init is not None:  # "w 2U": the initial template's own U1 starts from the same conv3-5
                load_state(model.u1_init, _under(sd, "backbone.head."), source=str(path))
                load_state(model.u1_init_neck, _under(sd, "neck."), source=str(path))
        for p in model.siamfc.parameters():
            p.requires_grad_(False)
        if not model.cfg.use_gradient:  # "w/o MG": U2 is never used, so it is not trained (nor decayed)
            for p in model.u2.parameters():
                p.requires_grad_(False)

    def set_train_mode(self, model) -> None:
        model.train()
        model.siamfc.eval()  # the search branch is frozen, BN statistics included

    def step(self, model, device):
        label, weight = self.labels(device)

        def step(batch: dict, create_graph: bool = True):
            z = batch["z"].to(device, non_blocking=True)
            x = batch["x"].to(device, non_blocking=True)
            grouped = z.dim() == 5
            k = z.shape[1] if grouped else 1
            if grouped:
                z, x = z.flatten(0, 1), x.flatten(0, 1)
            loss0, loss1 = gradnet_losses(model, z, x, label, weight, k, grouped, create_graph)
            return loss1, loss0

        return step

    @classmethod
    def responses(cls, model, z, x):
        model.eval()
        geo = model.cfg.geometry().with_instance_size(x.shape[-1])
        label, weight = centered_label(geo.score_size, geo.label_radius)
        score, _, _ = model(z, x, label, weight, create_graph=False)
        return {"score": score.detach()}

    @classmethod
    def searches_per_item(cls, tcfg: dict) -> int:
        g = tcfg.get("gradnet", {})
        return int(g["k"]) if g.get("variant") == "full" else 1

    @classmethod
    def card_training(cls, tcfg: dict) -> str:
        g = tcfg.get("gradnet", {})
        return f", k={g.get('k')} search regions per template, variant {g.get('variant')}"

"""The recipe interface: everything the generic loop (:mod:`gradtrack.training.trainer`) and the export
(:mod:`gradtrack.training.export`) need to know about one family of trackers.

A recipe is built from a :class:`~gradtrack.training.config.TrainConfig` and answers, for the loop:

* :meth:`Recipe.build_model`: the model with its initial weights, ``requires_grad`` set for what trains;
* :meth:`Recipe.param_groups`: the optimiser's parameter groups; :meth:`Recipe.lr_factor`: the schedule;
* :meth:`Recipe.datasets`: the training dataset and the fixed validation batches (one data path for all:
  the sources of :func:`gradtrack.data.sources.build_training_sources`, the recipe's sample builder,
  pairs or groups of ``k``);
* :meth:`Recipe.step`: a callable ``(batch, create_graph=True) -> (loss, loss before the update or None)``;
  :meth:`Recipe.validate`: mean losses on the fixed batches;
* :meth:`Recipe.set_train_mode` and :meth:`Recipe.before_step` (a schedule hook: True when the set of
  trained parameters changed);

and, as class methods that need only a checkpoint's stored data, for the export and the model card:
:meth:`Recipe.responses` (the outputs compared for fp16 storage), :meth:`Recipe.searches_per_item`,
:meth:`Recipe.card_training` and the class attributes ``paper_name``, ``card_caveat`` and
``card_model_config``.
"""
from __future__ import annotations

from typing import Callable, ClassVar

import torch

from ...data.sources import build_training_sources, build_validation_pool, training_dataset, validation_batches
from ...geometry import ScoreMapGeometry
from ..config import TrainConfig, lr_factor

StepFn = Callable[..., tuple[torch.Tensor, "torch.Tensor | None"]]


def matching_parameters(model: torch.nn.Module, prefixes: list[str], what: str) -> set[str]:
    """Names of the parameters under each prefix; a prefix that matches nothing is an error naming ``what``."""
    names = [n for n, _ in model.named_parameters()]
    out = set()
    for pre in prefixes:
        hit = [n for n in names if n == pre or n.startswith(pre + ".")]
        if not hit:
            raise ValueError(f"{what}: {pre!r} matches no parameter of the model")
        out.update(hit)
    return out


def backbone_groups(model: torch.nn.Module, lr: float, mult: float, what: str, later: set[str] = frozenset()) -> list[dict]:
    """Trainable parameters (and ``later``, switched on by a schedule) in two optimiser groups: those under
    ``backbone.`` at ``mult * lr``, the rest at ``lr``; a multiplier 0 freezes the backbone after all."""
    live = [(n, p) for n, p in model.named_parameters() if p.requires_grad or n in later]
    bb = [p for n, p in live if n.startswith("backbone.")]
    rest = [p for n, p in live if not n.startswith("backbone.")]
    groups = [{"params": rest, "lr": lr, "name": "heads"}] if rest else []
    if bb and mult > 0:
        groups.append({"params": bb, "lr": lr * mult, "name": "backbone"})
    elif bb:
        for p in bb:
            p.requires_grad_(False)
    if not groups:
        raise ValueError(f"{what}: no trainable parameter")
    return groups


def train_mode_frozen_norms(model: torch.nn.Module) -> None:
    """Train mode, except normalisation layers whose parameters are all frozen (statistics frozen too)."""
    model.train()
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            params = list(mod.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                mod.eval()


class Recipe:
    task: ClassVar[str]
    paper_name: ClassVar[str]
    card_caveat: ClassVar[str] = ""  # appended to the card's "far fewer pairs than the papers" caveat
    card_model_config: ClassVar[bool] = False  # the card states the model config
    needs_masks: ClassVar[bool] = False  # the sources keep masks (procedural masks, mask datasets)
    validate_no_grad: ClassVar[bool] = True  # validation needs no autograd at all

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    # -- model and optimiser ----------------------------------------------------------------------
    @property
    def geometry(self) -> ScoreMapGeometry:
        """The score map of the *training* crops."""
        raise NotImplementedError

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def param_groups(self, model: torch.nn.Module) -> list:
        return [p for p in model.parameters() if p.requires_grad]

    def lr_factor(self, step: int) -> float:
        return lr_factor(step, self.cfg)

    def set_train_mode(self, model: torch.nn.Module) -> None:
        model.train()

    def before_step(self, model: torch.nn.Module, step: int) -> bool:
        return False

    # -- data ----------------------------------------------------------------------------------------
    @property
    def group(self) -> int | None:
        """Pairs per dataset item (template generalisation), or None for single pairs."""
        return None

    def sample_builder(self):
        raise NotImplementedError

    def datasets(self, main: bool = True, progress: bool = False):
        """``(training dataset, fixed validation batches (main process only), data stats)``."""
        cfg = self.cfg
        sources = build_training_sources(cfg.data, progress=progress, masks=self.needs_masks)
        build = self.sample_builder()
        dataset = training_dataset(sources.mixture, build, cfg.data.augment, cfg.seed, self.group)
        pool = build_validation_pool(cfg.data) if main else None
        val = validation_batches(pool, build, cfg.data.val_pairs, cfg.batch_size, cfg.seed, self.group)
        return dataset, val, {**sources.stats, "val_pairs": cfg.data.val_pairs if val else 0}

    # -- the step and validation ------------------------------------------------------------------
    def step(self, model: torch.nn.Module, device: torch.device) -> StepFn:
        raise NotImplementedError

    def validate(self, step: StepFn, model: torch.nn.Module, batches: list[dict], amp_ctx):
        """Mean loss and mean loss before the update (None if the recipe has none) in eval mode."""
        model.eval()
        tot, tot0, n, before = 0.0, 0.0, 0, False
        for b in batches:
            with amp_ctx(), (torch.no_grad() if self.validate_no_grad else torch.enable_grad()):
                loss, loss0 = step(b, create_graph=False)
            w = b["z"].shape[0]
            tot += float(loss.detach()) * w
            if loss0 is not None:
                tot0, before = tot0 + float(loss0.detach()) * w, True
            n += w
        return tot / max(1, n), (tot0 / max(1, n) if before else None)

    # -- export and model card (stored data only) -------------------------------------------------
    @classmethod
    def responses(cls, model: torch.nn.Module, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The outputs compared by the storage check (``score`` first)."""
        raise NotImplementedError

    @classmethod
    def searches_per_item(cls, tcfg: dict) -> int:
        """Search regions per batch item of a stored training config."""
        return 1

    @classmethod
    def card_training(cls, tcfg: dict) -> str:
        """Recipe details for the card's "steps" line."""
        return ""

"""Training recipes, keyed by the config's ``task`` (see :mod:`gradtrack.training.recipes.base`)."""
from __future__ import annotations

from ...registry import Registry
from .base import Recipe
from .siamese import GradNetRecipe, SiamFCRecipe
from .siammlg import SiamMLGRecipe

RECIPES: Registry = Registry("training recipe")
for _cls in (SiamFCRecipe, GradNetRecipe, SiamMLGRecipe):
    RECIPES.register(_cls.task)(_cls)


def recipe_class(task: str) -> type[Recipe]:
    return RECIPES.get(task)


def build_recipe(cfg) -> Recipe:
    """The recipe of ``cfg.task``, checked against ``cfg``."""
    return RECIPES.get(cfg.task)(cfg)


__all__ = ["Recipe", "RECIPES", "recipe_class", "build_recipe", "SiamFCRecipe", "GradNetRecipe", "SiamMLGRecipe"]

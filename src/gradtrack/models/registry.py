"""Model registry: name -> (config dataclass, module class).  ``build_model(name, config_dict)``."""
from __future__ import annotations

from typing import Any

from ..config import from_dict
from ..registry import Registry
from .gradnet import GradNet, GradNetConfig
from .siamfc import SiamFC, SiamFCConfig
from .siammlg import SiamMLG, SiamMLGConfig

MODELS: Registry = Registry("model")
MODELS.register("siamfc")((SiamFCConfig, SiamFC))
MODELS.register("gradnet")((GradNetConfig, GradNet))
MODELS.register("siammlg")((SiamMLGConfig, SiamMLG))


def model_config_class(name: str) -> type:
    return MODELS.get(name)[0]


def build_model(name: str, config: dict | Any | None = None):
    cfg_cls, model_cls = MODELS.get(name)
    cfg = config if isinstance(config, cfg_cls) else from_dict(cfg_cls, config or {}, where=f"{name} model config")
    return model_cls(cfg)

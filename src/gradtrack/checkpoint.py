"""Model checkpoints that rebuild their network.

A checkpoint is a dict saved with ``torch.save`` holding only plain data and tensors, so it loads with
``torch.load(..., weights_only=True)``::

    {"format": "gradtrack-model", "version": 1, "model": NAME, "config": {...}, "state_dict": {...},
     "meta": {...}}

Training checkpoints (optimizer, scheduler, RNG) are a superset written by :mod:`gradtrack.training`;
:func:`load_model` reads either.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .config import ConfigError, from_dict, to_dict
from .models import build_model
from .models.registry import MODELS

FORMAT = "gradtrack-model"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, malformed or does not match the model."""


def model_state(model: torch.nn.Module, half: bool = False) -> dict[str, torch.Tensor]:
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if half:
        sd = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    return sd


def save_model(path: str | Path, name: str, model: torch.nn.Module, meta: dict | None = None, half: bool = False,
               extra: dict | None = None) -> Path:
    """Save ``model`` (registered under ``name``) with the config that rebuilds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {"format": FORMAT, "version": VERSION, "model": name, "config": to_dict(model.cfg),
            "state_dict": model_state(model, half), "meta": dict(meta or {})}
    if extra:
        ckpt.update(extra)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)  # atomic: a killed run never leaves a half-written checkpoint
    return path


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint dict in ``path``, checked for the layout above (a :class:`CheckpointError` naming the
    problem otherwise).  ``mmap=True``: its tensors are read-only-until-written views of the file mapped into
    memory (pages are read when a tensor is used, and given back when the dict is dropped), not a copy on
    the heap: for a model that is built and then loaded, the checkpoint never costs resident memory of its
    own (a C allocator keeps freed heap memory, so a heap copy would stay resident after loading)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            # files in torch's legacy (pre-zip) format cannot be mapped: read them onto the heap
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip, foreign objects
        raise CheckpointError(f"{path}: not a readable gradtrack checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a gradtrack checkpoint (missing format={FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')} is not supported (expected {VERSION})")
    for key in ("model", "config", "state_dict"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: checkpoint has no {key!r} entry")
    sd = ckpt["state_dict"]
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)] if isinstance(sd, dict) else None
    if bad is None or bad:
        what = f"non-tensor entries {bad[:8]}" if bad else f"a {type(sd).__name__}"
        raise CheckpointError(f"{path}: 'state_dict' must map names to tensors, found {what}")
    return ckpt


def load_state(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load weights strictly, with a message that names every missing, unexpected or mis-shaped tensor."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shape mismatch for " + "; ".join(shapes[:8]))
        if missing:
            parts.append(f"missing {missing[:8]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:8]}")
        raise CheckpointError(f"{source} does not fit the model: " + " | ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state_dict.items()})


def _expect(ckpt: dict, path, expected: str | tuple[str, ...] | None) -> str:
    name = ckpt["model"]
    if expected is not None:
        allowed = (expected,) if isinstance(expected, str) else expected
        if name not in allowed:
            raise CheckpointError(f"{path}: holds a {name!r} model, expected {' or '.join(allowed)}")
    return name


def read_model_config(path: str | Path, expected: str | tuple[str, ...] | None = None):
    """``(model name, its config object)`` from the checkpoint in ``path``, without reading its weights
    (the tensors stay unread in the mapped file): for a network that runs from other files (ONNX graphs)."""
    ckpt = read_checkpoint(path, mmap=True)
    name = _expect(ckpt, path, expected)
    try:
        cfg_cls, _ = MODELS.get(name)
        return name, from_dict(cfg_cls, ckpt["config"], where=f"{path}: {name} model config")
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model from its config: {exc}") from None


def load_model(path: str | Path, expected: str | tuple[str, ...] | None = None, device=None):
    """Rebuild the model stored in ``path``; returns ``(model in eval mode, checkpoint dict)`` (the dict's
    tensors map the file: see :func:`read_checkpoint`)."""
    ckpt = read_checkpoint(path, mmap=True)
    name = _expect(ckpt, path, expected)
    try:
        model = build_model(name, ckpt["config"])
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model from its config: {exc}") from None
    load_state(model, ckpt["state_dict"], source=str(path))
    model.eval()
    if device is not None:
        model.to(device)
    return model, ckpt

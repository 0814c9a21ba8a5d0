"""Fine-tuning a tracker on a folder of your own videos (``gradtrack train --data DIR``): the sequences, the
train/val split, the starting weights and the training config.

``DIR`` is the layout ``gradtrack eval --dataset folder`` reads (:mod:`gradtrack.data.readers.folder`): one
folder per sequence with ``groundtruth.txt`` and ``video.mp4`` (or image frames).  The split is
``DIR/splits.json`` when there is one (its ``train`` and ``val`` lists), else an automatic one by sequence
(:func:`auto_split`); either way it is written to ``<out>/splits.json``, which the run reads.

The config is built from the package's ``configs/finetune_<tracker>.yaml`` (composed on
``finetune_base.yaml``) and strictly checked like any training config.  ``init``:

* ``shipped``: the tracker's shipped weights (``weights/<tracker>.pt``); the model section is the
  checkpoint's own config and the whole model starts from it (``siamfc.init_from``, ``gradnet.init_from``,
  ``siammlg.init_from``);
* ``imagenet`` (SiamFC only): an EfficientNet-Lite0 SiamFC on the packaged ImageNet weights (the recipe of
  ``configs/siamfc_effnet_cpu.yaml``);
* ``none`` (SiamFC, SiamMLG): the model's default config from random weights.

The final before/after evaluation on the val part is :mod:`gradtrack.finetune`'s (the training layer does
not import the evaluation).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigError, from_dict, load_yaml, merge
from ..errors import UsageError
from .config import TrainConfig

__all__ = ["TRACKERS", "INITS", "FineTunePlan", "auto_split", "find_sequences", "plan_finetune",
           "save_start_weights", "config_file", "shipped_weights_path"]

TRACKERS = ("siamfc", "gradnet", "siammlg")
INITS = ("shipped", "imagenet", "none")
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

# SiamFC on ImageNet EfficientNet-Lite0 (configs/siamfc_effnet_cpu.yaml's model and siamfc sections)
IMAGENET_SIAMFC = {
    "model": {"backbone": {"name": "efficientnet_lite0", "init": "imagenet", "padding": "symmetric",
                           "output_stride": 8, "frozen_bn": True},
              "neck_channels": 128, "template_crop": 8},
    "siamfc": {"freeze": ["backbone.stem"], "backbone_lr_mult": 0.1},
}
# learning rate by init: trained weights move little; a fresh head (and a random model) needs more
DEFAULT_LR = {"shipped": 1e-3, "imagenet": 1e-2, "none": 1e-2}
SIAMMLG_VARIANTS = {("none", False): "resnet34", ("none", True): "gradient", ("neck", False): "sk",
                    ("neck", True): "full"}


def config_file(tracker: str) -> Path:
    return CONFIG_DIR / f"finetune_{tracker}.yaml"


def shipped_weights_path(tracker: str) -> Path:
    from ..trackers.common import shipped_weights

    return shipped_weights(tracker)


def find_sequences(root: str | Path) -> list[str]:
    """The sequence names under ``root`` (folder layout), or a :class:`UsageError` saying what is wrong."""
    from ..data.readers.folder import FolderDataset
    from ..data.sequence import DatasetError

    root = Path(root).expanduser()
    if not root.exists():
        raise UsageError(f"--data {root}: no such folder")
    if not root.is_dir():
        raise UsageError(f"--data {root}: not a folder (give a folder with one sub-folder per sequence)")
    try:
        names = list(FolderDataset(root).names)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        raise UsageError(f"--data {root}: {exc}") from None
    return names


def auto_split(names: list[str], val_fraction: float = 0.2, seed: int = 0) -> dict[str, list[str]]:
    """A deterministic train/val split by sequence: ``round(val_fraction * n)`` sequences (at least one, at
    most ``n - 1``) drawn with ``seed`` go to ``val``; both lists keep the order of ``names``."""
    n = len(names)
    if n < 2:
        raise UsageError(f"need at least 2 sequences to hold one out for evaluation, found {n}; add videos "
                         "or give a splits.json with 'train' and 'val' lists")
    if not 0 < val_fraction < 1:
        raise UsageError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    n_val = min(n - 1, max(1, int(round(val_fraction * n))))
    picked = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    return {"train": [s for i, s in enumerate(names) if i not in picked],
            "val": [s for i, s in enumerate(names) if i in picked]}


def _given_split(path: Path, names: list[str]) -> dict[str, list[str]]:
    from ..data.readers.folder import read_split
    from ..data.sequence import DatasetError

    out = {}
    for key in ("train", "val"):
        try:
            out[key] = read_split(path, key)
        except DatasetError as exc:
            raise UsageError(str(exc)) from None
        if not out[key]:
            raise UsageError(f"{path}: split {key!r} is empty")
        unknown = [s for s in out[key] if s not in names]
        if unknown:
            raise UsageError(f"{path}: split {key!r} names sequence(s) not in the folder: {', '.join(unknown[:5])}")
    both = set(out["train"]) & set(out["val"])
    if both:
        raise UsageError(f"{path}: sequence(s) in both train and val: {', '.join(sorted(both)[:5])}")
    return out


@dataclass
class FineTunePlan:
    """What ``gradtrack train --data`` runs: the config, the split and where the starting weights are."""

    cfg: TrainConfig
    tracker: str
    init: str
    root: Path
    out: Path
    split: dict[str, list[str]]
    split_source: str  # the folder's splits.json, or "automatic (...)"
    start: Path | None  # the starting checkpoint (shipped weights); None: written by save_start_weights

    @property
    def splits_file(self) -> Path:
        return self.out / "splits.json"


def _start_sections(tracker: str, init: str) -> tuple[dict, Path | None]:
    """Config sections for ``init`` and the starting checkpoint (``shipped`` only)."""
    if init == "shipped":
        from ..checkpoint import CheckpointError, read_checkpoint

        path = shipped_weights_path(tracker)
        if not path.is_file():
            raise UsageError(f"--init shipped: no weights are shipped for {tracker!r} (expected {path}); "
                             "use --init imagenet or --init none")
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as exc:
            raise UsageError(f"--init shipped: {exc}") from None
        model = dict(ckpt["config"])
        if tracker == "siammlg":  # the variant's switches are set by siammlg.variant
            variant = SIAMMLG_VARIANTS[(model.pop("sk", "neck"), bool(model.pop("gradient_update", True)))]
            sm = {"init_from": str(path), "variant": variant}
            if str(model.get("backbone", {}).get("name", "resnet34")).startswith("efficientnet_"):
                # SiamMask's frozen early layers, named for EfficientNet-Lite (the stem: blocks 0-4)
                sm.update(freeze=["backbone.stem"], unfreeze=[])
            return {"model": model, "siammlg": sm}, path
        if tracker == "gradnet":
            variant = "full" if model.get("use_gradient", True) else "no_gradient"
            return {"model": model, "gradnet": {"init_from": str(path), "variant": variant}}, path
        return {"model": model, "siamfc": {"init_from": str(path)}}, path
    if init == "imagenet":
        if tracker != "siamfc":
            raise UsageError(f"--init imagenet: only siamfc has packaged ImageNet backbone weights; "
                             f"fine-tune {tracker} with --init shipped")
        return json.loads(json.dumps(IMAGENET_SIAMFC)), None
    if tracker == "gradnet":
        raise UsageError("--init none: gradnet trains on top of a trained SiamFC search branch; use --init shipped")
    return {"model": {}}, None


def plan_finetune(data: str | Path, *, tracker: str = "siamfc", init: str = "shipped", out: str | Path | None = None,
                  steps: int = 300, lr: float | None = None, batch_size: int | None = None, val_fraction: float = 0.2,
                  split_seed: int = 0, seed: int | None = None, device: str | None = None, workers: int | None = None,
                  val_pairs: int | None = None, overrides: dict | None = None, write: bool = True) -> FineTunePlan:
    """Check the inputs, split ``data`` and build the fine-tuning config (every problem a one-line
    :class:`UsageError`); ``write``: write ``<out>/splits.json`` (the run reads it)."""
    if tracker not in TRACKERS:
        import gradtrack

        known = gradtrack.list_trackers()
        if tracker in known:
            raise UsageError(f"tracker {tracker!r} cannot be trained; --data fine-tunes {', '.join(TRACKERS)}")
        raise UsageError(f"unknown tracker {tracker!r}; --data fine-tunes {', '.join(TRACKERS)}")
    if init not in INITS:
        raise UsageError(f"unknown --init {init!r}; choose from {', '.join(INITS)}")
    if steps < 1:
        raise UsageError(f"--steps must be >= 1, got {steps}")
    if lr is not None and not lr > 0:
        raise UsageError(f"--lr must be > 0, got {lr}")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    root = Path(data).expanduser().resolve()
    names = find_sequences(root)
    given = root / "splits.json"
    if given.is_file():
        split, source = _given_split(given, names), str(given)
    else:
        split = auto_split(names, val_fraction, split_seed)
        source = f"automatic ({len(split['val'])} of {len(names)} sequences held out, seed {split_seed})"
    sections, start = _start_sections(tracker, init)
    out = Path(out) if out else Path("runs") / f"{root.name}-{tracker}"
    lr = DEFAULT_LR[init] if lr is None else lr
    if val_pairs is not None and val_pairs < 0:
        raise UsageError(f"--val-pairs must be >= 0, got {val_pairs}")
    every = steps if steps < 40 else steps // 4  # the val loss 4 times in a run (a short one: at its end)
    d = load_yaml(config_file(tracker))
    d = merge(d, sections)
    d = merge(d, {
        "steps_per_epoch": steps, "epochs": 1, "out": str(out),
        "optim": {"lr": lr, "lr_end": lr / 10},
        "data": {"root": str(root), "splits_file": str((out / "splits.json").resolve()), "split": "train",
                 "val_split": "val"},
        "checkpoint_every": steps, "val_every": every, "log_every": max(1, min(10, every)),
    })
    if batch_size is not None:
        d["batch_size"] = batch_size
    if seed is not None:
        d["seed"] = seed
    if device is not None:
        d["device"] = device
    if workers is not None:
        d["data"]["num_workers"] = workers
    if val_pairs is not None:
        d["data"]["val_pairs"] = val_pairs
    if overrides:
        d = merge(d, overrides)
    try:
        cfg = from_dict(TrainConfig, d, where=f"fine-tuning config ({config_file(tracker).name})")
    except (ConfigError, ValueError) as exc:
        raise UsageError(str(exc).strip().splitlines()[0]) from None
    if write:
        out.mkdir(parents=True, exist_ok=True)
        (out / "splits.json").write_text(json.dumps(split, indent=1) + "\n")
    plan = FineTunePlan(cfg, tracker, init, root, out, split, source, start)
    return plan


def check_recipe(plan: FineTunePlan) -> None:
    """The recipe's own checks (model config, crops, starting checkpoint), before anything is built."""
    from ..checkpoint import CheckpointError
    from .recipes import build_recipe

    try:
        build_recipe(plan.cfg)
    except (ConfigError, CheckpointError, ValueError) as exc:
        raise UsageError(str(exc).strip().splitlines()[0]) from None


def save_start_weights(plan: FineTunePlan) -> Path:
    """The starting weights as a checkpoint: the shipped file, or (``imagenet``/``none``) the initial model
    built as the training loop builds it (same seed), saved to ``<out>/start.pt``."""
    if plan.start is not None:
        return plan.start
    from ..checkpoint import save_model
    from .recipes import build_recipe
    from .trainer import seed_everything

    seed_everything(plan.cfg.seed)
    model = build_recipe(plan.cfg).build_model()
    return save_model(plan.out / "start.pt", plan.cfg.task, model, meta={"init": plan.init, "step": 0})

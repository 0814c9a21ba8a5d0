"""The training loop for SiamFC and GradNet.

One step = one batch: SiamFC ``B`` pairs; GradNet ``full`` ``B`` templates each against ``k`` search
regions from ``k`` different videos; GradNet ``no_generalization`` / ``no_gradient`` ``B`` pairs.  All
responses are labelled "target at the centre" (``centered_label(15, 2)``, balanced weights).

Reproducibility: item ``i`` of the data stream is a pure function of ``(seed, i)`` (see
:mod:`gradtrack.data.sources`), rank ``r`` of ``W`` processes reads items ``(step * W + r) * B + j``,
and a checkpoint holds model, optimiser, scheduler, AMP scaler, step and the Python/NumPy/torch RNG
states, so ``--resume`` continues the same run exactly (bitwise on CPU with ``num_workers`` 0 or more).

Outputs in ``out``: ``last.pt`` (+ ``step_NNNNNNN.pt`` for the last ``keep_checkpoints``), ``final.pt``
(training checkpoint at the end), ``metrics.csv`` (step, epoch, loss, loss_before, lr, grad_norm,
time_s, steps_per_s, val_loss, val_loss_before), ``config.yaml``, ``data.json`` (what was trained on)
and the fp16 model export.
"""
from __future__ import annotations

import csv
import json
import logging
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Sampler

from ..checkpoint import load_state, read_checkpoint, save_model
from ..config import to_dict
from ..models import balanced_logistic_loss, build_model, centered_label
from ..data.sources import (GroupDataset, PairDataset, PairMixture, build_training_sources, build_validation_pool,
                            fixed_batches, worker_init)
from . import distributed as D
from .config import TrainConfig, lr_factor

log = logging.getLogger("gradtrack.training")

CSV_FIELDS = ["step", "epoch", "loss", "loss_before", "lr", "grad_norm", "time_s", "steps_per_s", "val_loss",
              "val_loss_before"]


# ------------------------------------------------------------------------------------------------
# RNG state (weights_only-loadable: tensors, ints, lists)


def rng_state() -> dict:
    py = random.getstate()
    np_state = np.random.get_state()
    st = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = st["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# data order


class StepSampler(Sampler):
    """Indices ``(s * world + rank) * batch + j`` for steps ``s`` in ``[start, stop)``."""

    def __init__(self, start: int, stop: int, batch: int, rank: int = 0, world: int = 1):
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch, rank, world

    def __iter__(self):
        for s in range(self.start, self.stop):
            base = (s * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch


# ------------------------------------------------------------------------------------------------
# models and losses


def resolve_amp(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.amp == "none":
        return None
    if cfg.amp == "fp16":
        if device.type != "cuda":
            raise ValueError("amp: fp16 needs CUDA (use bf16 on CPU)")
        return torch.float16
    if cfg.amp == "bf16":
        return torch.bfloat16
    # auto
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # pragma: no cover - depends on the build
        ok = False
    return torch.bfloat16 if ok else None


def _under(state: dict, prefix: str) -> dict:
    """The entries of ``state`` below ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def build_training_model(cfg: TrainConfig, base: Path | None = None) -> torch.nn.Module:
    if cfg.task == "siammlg":
        from .siammlg import build_siammlg_model

        return build_siammlg_model(cfg, base)
    model_cfg = dict(cfg.model)
    if cfg.task == "gradnet" and cfg.gradnet.variant == "no_gradient":
        model_cfg.setdefault("use_gradient", False)
        if model_cfg["use_gradient"]:
            raise ValueError("gradnet variant no_gradient needs model.use_gradient: false")
    model = build_model(cfg.task, model_cfg)
    if cfg.task == "gradnet":
        path = Path(cfg.gradnet.init_from)
        if not path.is_absolute() and base is not None and not path.exists() and (base / path).exists():
            path = base / path
        ckpt = read_checkpoint(path)
        if ckpt["model"] != "siamfc":
            raise ValueError(f"gradnet.init_from must be a SiamFC checkpoint, {path} holds {ckpt['model']!r}")
        load_state(model.siamfc, ckpt["state_dict"], source=str(path))
        if cfg.gradnet.init_template_from_siamfc:
            load_state(model.template, _under(ckpt["state_dict"], "backbone."), source=str(path))
            if model.u1_init is not None:  # "w 2U": the initial template's own U1 starts from the same conv3-5
                load_state(model.u1_init, _under(ckpt["state_dict"], "backbone.head."), source=str(path))
        for p in model.siamfc.parameters():
            p.requires_grad_(False)
        if not model.cfg.use_gradient:  # "w/o MG": U2 is never used, so it is not trained (nor decayed)
            for p in model.u2.parameters():
                p.requires_grad_(False)
    model.adjust.scale.requires_grad_(cfg.optim.train_adjust_scale)
    return model


def set_train_mode(model: torch.nn.Module, task: str) -> None:
    if task == "siammlg":  # frozen parts (BN statistics included) stay in eval mode
        from .siammlg import set_siammlg_train_mode

        return set_siammlg_train_mode(model)
    model.train()
    if task == "gradnet":
        model.siamfc.eval()  # the search branch is frozen, BN statistics included


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


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
    head0 = model.u1_init if model.u1_init is not None else model.template.head
    beta = head0(f2)[sel]
    loss0 = balanced_logistic_loss(model.score(beta, xf).float(), label, weight)
    if not model.cfg.use_gradient:
        return loss0, loss0
    (g,) = torch.autograd.grad(loss0 * n_templates, f2, create_graph=create_graph)
    f2_new = f2 + model.u2(g)
    beta_star = model.u1(f2_new)[sel]
    loss1 = balanced_logistic_loss(model.score(beta_star, xf).float(), label, weight)
    return loss0, loss1


class StepFn:
    """Computes ``(loss to optimise, loss before update or None)`` for a collated batch."""

    def __init__(self, cfg: TrainConfig, model, device: torch.device):
        self.cfg, self.model, self.device = cfg, model, device
        size = 0
        self.label = self.weight = None
        self._size = size

    def _labels(self, score_size: int):
        if self.label is None or self._size != score_size:
            r = getattr(self.model.cfg, "label_radius", 2.0)
            self.label, self.weight = centered_label(score_size, r, device=self.device)
            self._size = score_size
        return self.label, self.weight

    def score_size(self) -> int:
        c = self.cfg.data.crop
        return (c.search_size - c.exemplar_size) // 8 + 1

    def __call__(self, batch: dict, create_graph: bool = True):
        z = batch["z"].to(self.device, non_blocking=True)
        x = batch["x"].to(self.device, non_blocking=True)
        label, weight = self._labels(self.score_size())
        if self.cfg.task == "siamfc":
            score = self.model(z, x)
            return balanced_logistic_loss(score.float(), label, weight), None
        grouped = z.dim() == 5
        k = z.shape[1] if grouped else 1
        if grouped:
            z = z.flatten(0, 1)
            x = x.flatten(0, 1)
        loss0, loss1 = gradnet_losses(self.model, z, x, label, weight, k, grouped, create_graph)
        return loss1, loss0


# ------------------------------------------------------------------------------------------------
# checkpoints


def model_name(cfg: TrainConfig) -> str:
    return cfg.task


def save_training_checkpoint(path: Path, cfg: TrainConfig, model, optimizer, scheduler, scaler, step: int,
                             extra_meta: dict | None = None) -> None:
    train_state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": rng_state(),
        "train_config": to_dict(cfg),
    }
    meta = {"step": step, "task": cfg.task, **(extra_meta or {})}
    save_model(path, model_name(cfg), model, meta=meta, extra={"training": train_state})


def _prune(out: Path, keep: int) -> None:
    ckpts = sorted(out.glob("step_*.pt"))
    for p in ckpts[:-keep] if keep > 0 else ckpts:
        try:
            p.unlink()
        except OSError:
            pass


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class MetricsLog:
    """``metrics.csv``; on resume, rows after the checkpoint's step are dropped (they will be redone)."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        rows = []
        if resume_step is not None and path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= resume_step]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in CSV_FIELDS})

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=CSV_FIELDS).writerow({k: row.get(k, "") for k in CSV_FIELDS})


# ------------------------------------------------------------------------------------------------
# the loop


@dataclass
class TrainResult:
    step: int
    model: torch.nn.Module
    out: Path
    last_loss: float
    val_loss: float | None
    wall_s: float
    steps_per_s: float


def _fmt(v) -> str:
    return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


def evaluate(step_fn: StepFn, model, batches: list[dict], task: str, amp_ctx) -> tuple[float, float | None]:
    """Mean loss (after update for GradNet) and loss before, on fixed batches, in eval mode."""
    model.eval()
    tot, tot0, n = 0.0, 0.0, 0
    for b in batches:
        with amp_ctx():
            if task == "siamfc":
                with torch.no_grad():
                    loss, loss0 = step_fn(b)
            else:  # GradNet needs autograd for its inner gradient, but no second-order graph
                loss, loss0 = step_fn(b, create_graph=False)
        w = b["z"].shape[0]
        tot += float(loss.detach()) * w
        tot0 += float(loss0.detach()) * w if loss0 is not None else 0.0
        n += w
    return tot / max(1, n), (tot0 / max(1, n) if task == "gradnet" else None)


def train(cfg: TrainConfig, out: str | Path | None = None, resume: bool = False, stop_step: int | None = None,
          base: Path | None = None, mixture=None, val_pool="auto", progress: bool | None = None,
          info: D.DistInfo | None = None, time_limit: float | None = None) -> TrainResult:
    """Train ``cfg``; ``stop_step`` ends the run at that global step (the schedule still spans
    ``epochs * steps_per_epoch``); ``time_limit`` (seconds) ends it cleanly (checkpoint written) once
    exceeded.  ``mixture``/``val_pool`` replace the configured data (tests)."""
    t_start = time.time()
    info = info or D.init_distributed(cfg.device)
    device = info.device
    out = Path(out or cfg.out)
    if base is not None and not out.is_absolute():
        out = base / out
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    seed_everything(cfg.seed + info.rank)
    amp_dtype = resolve_amp(cfg, device)

    def amp_ctx():
        if amp_dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    model = build_training_model(cfg, base).to(device)
    mlg = None
    if cfg.task == "siammlg":
        from . import siammlg as mlg
    groups = mlg.param_groups(model, cfg) if mlg else None  # backbone at its own lr multiplier
    params = trainable(model)
    optimizer = torch.optim.SGD(groups or params, lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                weight_decay=cfg.optim.weight_decay, nesterov=cfg.optim.nesterov)
    factor = mlg.siammlg_lr_factor if mlg else lr_factor
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor(s, cfg))
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    step = 0
    prior_wall = 0.0
    last = out / "last.pt"
    if resume and last.is_file():
        ckpt = read_checkpoint(last)
        tr = ckpt.get("training")
        if not tr:
            raise ValueError(f"{last} is not a training checkpoint (no optimiser state)")
        old = tr.get("train_config", {})
        for key in ("task", "model", "epochs", "steps_per_epoch", "batch_size", "seed"):
            if key in old and old[key] != to_dict(cfg)[key]:
                log.warning("resuming with a different %s: %r -> %r", key, old[key], to_dict(cfg)[key])
        load_state(model, ckpt["state_dict"], source=str(last))
        optimizer.load_state_dict(tr["optimizer"])
        scheduler.load_state_dict(tr["scheduler"])
        if scaler is not None and tr.get("scaler"):
            scaler.load_state_dict(tr["scaler"])
        step = int(tr["step"])
        prior_wall = float(ckpt.get("meta", {}).get("train_wall_s") or 0.0)
        set_rng_state(tr["rng"])
        if info.enabled:  # per-rank streams differ; the checkpoint holds rank 0's state
            seed_everything(cfg.seed + info.rank + 7919 * step)
        log.info("resumed from %s at step %d", last, step)
    elif resume:
        log.info("no checkpoint at %s: starting from scratch", last)
    D.broadcast_module(model, info)

    stop = cfg.total_steps if stop_step is None else min(stop_step, cfg.total_steps)
    meta_data: dict[str, Any] = {}
    if mlg:  # SiamMLG samples (masks, box targets) come from its own pipeline
        dataset, val_batches, meta_data = mlg.build_siammlg_data(cfg, base, mixture, val_pool, info.main,
                                                                 info.main and bool(progress))
    else:
        if mixture is None:
            sources = build_training_sources(cfg.data, base, progress=info.main and bool(progress))
            mixture = sources.mixture
            meta_data = sources.stats
        else:
            meta_data = {"mixture": mixture.describe() if hasattr(mixture, "describe") else "custom"}
        if isinstance(val_pool, str) and val_pool == "auto":
            val_pool = build_validation_pool(cfg.data, base) if info.main else None

        grouped = cfg.task == "gradnet" and cfg.gradnet.variant == "full"
        aug = cfg.data.augment
        if grouped:
            dataset = GroupDataset(mixture, cfg.gradnet.k, cfg.data.crop, aug, cfg.seed)
        else:
            dataset = PairDataset(mixture, cfg.data.crop, aug, cfg.seed)
        val_batches: list[dict] = []
        if val_pool is not None and cfg.data.val_pairs > 0 and info.main:
            vseed = 10_000_019 + cfg.seed
            vmix = PairMixture({"val": (1.0, val_pool)})
            if grouped:
                vds = GroupDataset(vmix, min(cfg.gradnet.k, max(1, len(val_pool))), cfg.data.crop, None, vseed)
                val_batches = fixed_batches(vds, max(1, cfg.data.val_pairs // cfg.gradnet.k), cfg.batch_size)
            else:
                vds = PairDataset(vmix, cfg.data.crop, None, vseed)
                val_batches = fixed_batches(vds, cfg.data.val_pairs, cfg.batch_size)

    if info.main:
        _write_atomic(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        meta_data["val_pairs"] = cfg.data.val_pairs if val_batches else 0
        _write_atomic(out / "data.json", json.dumps(meta_data, indent=1, default=str))
    metrics = MetricsLog(out / "metrics.csv", step) if info.main else None

    sampler = StepSampler(step, stop, cfg.batch_size, info.rank, info.world)
    nw = cfg.data.num_workers
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=nw,
                        worker_init_fn=worker_init if nw > 0 else None, pin_memory=device.type == "cuda",
                        prefetch_factor=4 if nw > 0 else None, persistent_workers=False,
                        multiprocessing_context=cfg.data.worker_start if nw > 0 else None)
    step_fn = mlg.SiamMLGStep(cfg, model, device) if mlg else StepFn(cfg, model, device)
    if progress is None:
        progress = sys.stderr.isatty()
    bar = None
    if info.main:
        from tqdm import tqdm

        bar = tqdm(total=stop, initial=step, desc=f"train {cfg.task}", unit="step", dynamic_ncols=True,
                   mininterval=1.0 if progress else 60.0, disable=False if progress else None)

    t0 = time.time()
    t_log, s_log = t0, step
    last_loss, val_loss = float("nan"), None
    bad = 0
    extra_meta = {"amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "none", "world": info.world,
                  "device": device.type}

    def checkpoint(at: int, final: bool = False) -> None:
        if not info.main:
            return
        meta = {**extra_meta, "train_wall_s": round(prior_wall + time.time() - t_start, 1), "val_loss": val_loss,
                "threads": torch.get_num_threads()}
        save_training_checkpoint(last, cfg, model, optimizer, scheduler, scaler, at, meta)
        if final:
            save_training_checkpoint(out / "final.pt", cfg, model, optimizer, scheduler, scaler, at, meta)
        elif cfg.keep_checkpoints > 0:
            save_training_checkpoint(out / f"step_{at:07d}.pt", cfg, model, optimizer, scheduler, scaler, at, meta)
            _prune(out, cfg.keep_checkpoints)

    set_train_mode(model, cfg.task)
    it = iter(loader)
    while step < stop:
        if mlg is not None and mlg.apply_unfreeze(model, cfg, step):  # SiamMask's backbone schedule
            params = trainable(model)
            set_train_mode(model, cfg.task)
        batch = next(it)
        with amp_ctx():
            loss, loss0 = step_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            if scaler is not None:
                scaler.scale(loss).backward()
            else:
                loss.backward()
        # every rank skips together (a skipped step still counts, keeping the data stream aligned)
        if D.all_mean(0.0 if finite else 1.0, info) > 0:
            bad += 1
            log.warning("step %d: non-finite loss, step skipped", step)
            if bad >= 10:
                raise FloatingPointError("10 non-finite losses in a row; lower the learning rate or disable AMP")
        else:
            bad = 0
        D.average_gradients(params, info)
        if scaler is not None:
            scaler.unscale_(optimizer)
        gn = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
        if bad == 0:
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
        scheduler.step()
        step += 1
        D.broadcast_module(model, info, buffers_only=True)
        last_loss = D.all_mean(float(loss.detach()), info)
        if bar is not None:
            bar.update(1)
        row = None
        if info.main and (step % cfg.log_every == 0 or step == stop):
            now = time.time()
            rate = (step - s_log) / max(1e-9, now - t_log)
            t_log, s_log = now, step
            row = {"step": step, "epoch": _fmt(step / cfg.steps_per_epoch), "loss": _fmt(last_loss),
                   "loss_before": _fmt(float(loss0.detach())) if loss0 is not None else "",
                   "lr": _fmt(optimizer.param_groups[0]["lr"]), "grad_norm": _fmt(float(gn)),
                   "time_s": _fmt(round(now - t0, 2)), "steps_per_s": _fmt(round(rate, 3))}
            if bar is not None:
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
        if val_batches and (step % cfg.val_every == 0 or step == stop):
            val_loss, val0 = evaluate(step_fn, model, val_batches, cfg.task, amp_ctx)
            set_train_mode(model, cfg.task)
            row = row or {"step": step, "epoch": _fmt(step / cfg.steps_per_epoch),
                          "lr": _fmt(optimizer.param_groups[0]["lr"]), "time_s": _fmt(round(time.time() - t0, 2))}
            row["val_loss"] = _fmt(val_loss)
            row["val_loss_before"] = _fmt(val0)
            log.info("step %d: val loss %.4f", step, val_loss)
        if row is not None and metrics is not None:
            metrics.write(row)
        if step % cfg.checkpoint_every == 0 and step < stop:
            checkpoint(step)
        if time_limit is not None and D.all_mean(float(time.time() - t_start > time_limit), info) > 0:
            log.info("time limit reached at step %d", step)
            break
    if bar is not None:
        bar.close()
    checkpoint(step, final=step >= cfg.total_steps)
    wall = time.time() - t0
    D.barrier(info)
    rate = (step - sampler.start) / max(1e-9, wall)
    return TrainResult(step, model, out, last_loss, val_loss, time.time() - t_start, rate)

"""The generic training loop: every family-specific decision is the recipe's
(:mod:`gradtrack.training.recipes`, chosen by the config's ``task``).

Reproducibility: item ``i`` of the data stream is a pure function of ``(seed, i)`` (see
:mod:`gradtrack.data.sources`), rank ``r`` of ``W`` processes reads items ``(step * W + r) * B + j``,
and a checkpoint holds model, optimiser, scheduler, AMP scaler, step and the Python/NumPy/torch RNG
states, so ``--resume`` continues the same run exactly (bitwise on CPU with ``num_workers`` 0 or more).

Outputs in ``out``: ``last.pt`` (+ ``step_NNNNNNN.pt`` for the last ``keep_checkpoints``), ``final.pt``
(training checkpoint at the end), ``metrics.csv`` (step, epoch, loss, loss_before, lr, grad_norm,
time_s, steps_per_s, val_loss, val_loss_before), ``config.yaml`` and ``data.json`` (what was trained on).

One folder, one run: a fresh start refuses a folder that holds another run's checkpoints or metrics;
``--resume`` continues from the newest intact checkpoint (``last.pt``, ``final.pt``, then ``step_N.pt`` from
the highest ``N``; each one skipped is logged with the reason) and refuses when every one is unreadable.
Pruning removes only ``step_N.pt`` older than the step just saved.
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

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Sampler

from ..checkpoint import CheckpointError, load_state, read_checkpoint, save_model
from ..config import ConfigError, to_dict
from ..data.sources import worker_init
from ..errors import UsageError
from . import distributed as D
from .config import TrainConfig
from .recipes import Recipe, build_recipe

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


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# ------------------------------------------------------------------------------------------------
# checkpoints


def step_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """``(N, path)`` of every ``step_N.pt`` in ``out``, oldest first."""
    return sorted((int(p.stem[5:]), p) for p in out.glob("step_*.pt") if p.stem[5:].isdigit())


def _prune(out: Path, keep: int, step: int) -> None:
    """Delete the oldest ``step_N.pt`` with ``N < step`` so that ``keep`` remain up to ``step``; later ones stay."""
    upto = [(n, p) for n, p in step_checkpoints(out) if n <= step]
    for n, p in upto[:max(0, len(upto) - keep)]:
        if n < step:
            try:
                p.unlink()
            except OSError:
                pass


def _csv_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if (r.get("step") or "").isdigit()]


def find_resume(out: Path) -> tuple[Path, dict] | None:
    """The newest intact training checkpoint in ``out`` as ``(path, checkpoint)``: ``last.pt``, ``final.pt``, then
    ``step_N.pt`` from the highest ``N``; ``None`` if there is none; a :class:`CheckpointError` naming each file
    and what is wrong with it if none is intact."""
    problems = []
    for p in [out / "last.pt", out / "final.pt"] + [p for _, p in reversed(step_checkpoints(out))]:
        if not p.is_file():
            if p.name == "last.pt":
                problems.append("last.pt is missing")
            continue
        try:
            ckpt = read_checkpoint(p)
            if not isinstance(ckpt.get("training"), dict) or "step" not in ckpt["training"]:
                raise CheckpointError(f"{p}: not a training checkpoint (no optimiser state)")
        except CheckpointError as exc:
            problems.append(" ".join(str(exc).split()))
            continue
        if problems:
            log.warning("resuming from %s (step %s), the newest intact checkpoint: %s", p, ckpt["training"]["step"],
                        "; ".join(problems))
        return p, ckpt
    if len(problems) > 1 or problems[0] != "last.pt is missing":
        raise CheckpointError(f"--resume: no intact checkpoint in {out}: {'; '.join(problems)}")
    return None


def _check_fresh(out: Path, resume: bool) -> None:
    """A run that starts from step 0 must not mix with (and overwrite the log of) another run in ``out``."""
    held = [n for n in ("last.pt", "final.pt") if (out / n).is_file()] + [p.name for _, p in step_checkpoints(out)]
    rows = len(_csv_rows(out / "metrics.csv"))
    if held or rows:
        what = ", ".join(held[:3] + ([f"metrics.csv ({rows} rows)"] if rows else []))
        hint = "delete them or use another --out" if resume else "use --resume to continue that run, or another --out"
        raise UsageError(f"{out} holds another run ({what}); {hint}")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class MetricsLog:
    """``metrics.csv``; on resume, rows after the checkpoint's step are dropped (they will be redone); the rows
    kept are rewritten atomically (a kill never leaves a shorter log)."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        rows = [r for r in _csv_rows(path) if int(r["step"]) <= resume_step]
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in CSV_FIELDS})
        tmp.replace(path)

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


class Optimisation:
    """Optimiser, schedule and AMP scaler of a run, and the checkpoints that hold them."""

    def __init__(self, cfg: TrainConfig, recipe: Recipe, model: torch.nn.Module, amp_dtype):
        self.cfg, self.model = cfg, model
        o = cfg.optim
        self.optimizer = torch.optim.SGD(recipe.param_groups(model), lr=o.lr, momentum=o.momentum,
                                         weight_decay=o.weight_decay, nesterov=o.nesterov)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, recipe.lr_factor)
        self.scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    def save(self, path: Path, step: int, meta: dict) -> None:
        """A training checkpoint: the model plus everything ``--resume`` needs (``weights_only``-loadable)."""
        train_state = {"step": step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                       "scaler": self.scaler.state_dict() if self.scaler is not None else {}, "rng": rng_state(),
                       "train_config": to_dict(self.cfg)}
        save_model(path, self.cfg.task, self.model, meta={"step": step, "task": self.cfg.task, **meta},
                   extra={"training": train_state})

    def checkpoint(self, out: Path, step: int, meta: dict, final: bool) -> None:
        """``last.pt``, and ``final.pt`` at the end of the schedule or ``step_N.pt`` (the last few kept)."""
        self.save(out / "last.pt", step, meta)
        if final:
            self.save(out / "final.pt", step, meta)
        elif self.cfg.keep_checkpoints > 0:
            self.save(out / f"step_{step:07d}.pt", step, meta)
            _prune(out, self.cfg.keep_checkpoints, step)

    def resume(self, last: Path, ckpt: dict | None = None) -> tuple[int, float]:
        """Load ``last`` (already read: ``ckpt``): ``(step, training wall time so far)``; RNG states restored."""
        ckpt = read_checkpoint(last) if ckpt is None else ckpt
        tr = ckpt.get("training")
        if not tr:
            raise CheckpointError(f"{last} is not a training checkpoint (no optimiser state)")
        old, new = tr.get("train_config", {}), to_dict(self.cfg)
        for key in ("task", "model", "epochs", "steps_per_epoch", "batch_size", "seed"):
            if key in old and old[key] != new[key]:
                log.warning("resuming with a different %s: %r -> %r", key, old[key], new[key])
        load_state(self.model, ckpt["state_dict"], source=str(last))
        self.optimizer.load_state_dict(_reorder_groups(tr["optimizer"], self.optimizer.param_groups, last))
        self.scheduler.load_state_dict(tr["scheduler"])
        if self.scaler is not None and tr.get("scaler"):
            self.scaler.load_state_dict(tr["scaler"])
        set_rng_state(tr["rng"])
        return int(tr["step"]), float(ckpt.get("meta", {}).get("train_wall_s") or 0.0)

    def update(self, loss: torch.Tensor, params: list, info: D.DistInfo, skip: bool) -> float:
        """Backward (unless ``skip``: a non-finite loss), average across ranks, clip, step; the grad norm."""
        self.optimizer.zero_grad(set_to_none=True)
        if not skip:
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        D.average_gradients(params, info)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        clip = self.cfg.optim.grad_clip
        gn = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        if not skip:
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        self.scheduler.step()
        return float(gn)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


def _setup(cfg: TrainConfig, info: D.DistInfo):
    """Threads, determinism, seeds; returns the AMP dtype and its context factory."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    seed_everything(cfg.seed + info.rank)
    amp_dtype = resolve_amp(cfg, info.device)
    return amp_dtype, (lambda: nullcontext() if amp_dtype is None else torch.autocast(info.device.type, dtype=amp_dtype))


def _loader(cfg: TrainConfig, dataset, sampler: StepSampler, device: torch.device) -> DataLoader:
    nw = cfg.data.num_workers
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=nw,
                      worker_init_fn=worker_init if nw > 0 else None, pin_memory=device.type == "cuda",
                      prefetch_factor=4 if nw > 0 else None, persistent_workers=False,
                      multiprocessing_context=cfg.data.worker_start if nw > 0 else None)


def _progress_bar(cfg: TrainConfig, info: D.DistInfo, step: int, stop: int, progress: bool | None):
    if not info.main:
        return None
    from tqdm import tqdm

    progress = sys.stderr.isatty() if progress is None else progress
    return tqdm(total=stop, initial=step, desc=f"train {cfg.task}", unit="step", dynamic_ncols=True,
                mininterval=1.0 if progress else 60.0, disable=False if progress else None)


def train(cfg: TrainConfig, out: str | Path | None = None, *, resume: bool = False, stop_step: int | None = None,
          time_limit: float | None = None, progress: bool | None = None, info: D.DistInfo | None = None) -> TrainResult:
    """Train ``cfg`` (paths already resolved: :func:`gradtrack.training.config.load_train_config`) into
    ``out`` (default ``cfg.out``).  ``stop_step`` ends the run at that global step (the schedule still spans
    ``epochs * steps_per_epoch``); ``time_limit`` (seconds) ends it cleanly (checkpoint written) once exceeded."""
    t_start = time.time()
    info = info or D.init_distributed(cfg.device)
    out = Path(out or cfg.out)
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
    found = find_resume(out) if resume else None
    if found is None:
        _check_fresh(out, resume)
    recipe = build_recipe(cfg)
    amp_dtype, amp_ctx = _setup(cfg, info)
    try:
        model = recipe.build_model().to(info.device)
    except (CheckpointError, ConfigError):
        raise
    except ValueError as exc:  # the recipe's checks of its starting weights (init_from) against the model section
        raise ConfigError(str(exc)) from exc
    opt = Optimisation(cfg, recipe, model, amp_dtype)
    step, prior_wall = 0, 0.0
    if found is not None:
        step, prior_wall = opt.resume(*found)
        if info.enabled:  # per-rank streams differ; the checkpoint holds rank 0's state
            seed_everything(cfg.seed + info.rank + 7919 * step)
        log.info("resumed from %s at step %d", found[0], step)
    elif resume:
        log.info("no checkpoint in %s: starting from scratch", out)
    D.broadcast_module(model, info)

    stop = cfg.total_steps if stop_step is None else min(stop_step, cfg.total_steps)
    dataset, val_batches, data_stats = recipe.datasets(info.main, info.main and bool(progress))
    if info.main:
        _write_atomic(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        _write_atomic(out / "data.json", json.dumps(data_stats, indent=1, default=str))
    metrics = MetricsLog(out / "metrics.csv", step) if info.main else None
    sampler = StepSampler(step, stop, cfg.batch_size, info.rank, info.world)
    step_fn = recipe.step(model, info.device)
    bar = _progress_bar(cfg, info, step, stop, progress)
    t0 = time.time()
    t_log, s_log, bad = t0, step, 0
    last_loss, val_loss = float("nan"), None
    meta = {"amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "none", "world": info.world,
            "device": info.device.type}

    def checkpoint(at: int, final: bool = False) -> None:
        if info.main:
            opt.checkpoint(out, at, {**meta, "train_wall_s": round(prior_wall + time.time() - t_start, 1),
                                     "val_loss": val_loss, "threads": torch.get_num_threads()}, final)

    recipe.set_train_mode(model)
    params = trainable(model)
    buffers = list(model.buffers())  # BN statistics: a skipped step must not keep what its forward did to them
    it = iter(_loader(cfg, dataset, sampler, info.device))
    while step < stop:
        if recipe.before_step(model, step):  # a schedule hook changed what trains
            params = trainable(model)
        before = [b.detach().clone() for b in buffers]
        with amp_ctx():
            loss, loss0 = step_fn(next(it))
        finite = bool(torch.isfinite(loss))
        # every rank skips together (a skipped step still counts, keeping the data stream aligned)
        skip = D.all_mean(0.0 if finite else 1.0, info) > 0
        if skip:
            bad += 1
            with torch.no_grad():  # a non-finite forward leaves non-finite running statistics behind
                for b, old in zip(buffers, before):
                    b.copy_(old)
            log.warning("step %d: non-finite loss, step skipped (BN statistics restored)", step)
            if bad >= 10:
                raise FloatingPointError("10 non-finite losses in a row; lower the learning rate or disable AMP")
        else:
            bad = 0
        gn = opt.update(loss, params, info, skip)
        step += 1
        D.broadcast_module(model, info, buffers_only=True)
        last_loss = D.all_mean(float(loss.detach()), info)
        if bar is not None:
            bar.update(1)
        row: dict = {}
        if step % cfg.log_every == 0 or step == stop:
            now = time.time()
            rate = (step - s_log) / max(1e-9, now - t_log)
            t_log, s_log = now, step
            row = {"loss": _fmt(last_loss), "loss_before": _fmt(None if loss0 is None else float(loss0.detach())),
                   "grad_norm": _fmt(gn), "time_s": _fmt(round(now - t0, 2)), "steps_per_s": _fmt(round(rate, 3))}
            if bar is not None:
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{opt.lr:.2e}")
        if val_batches and (step % cfg.val_every == 0 or step == stop):
            val_loss, val0 = recipe.validate(step_fn, model, val_batches, amp_ctx)
            recipe.set_train_mode(model)
            row = {"time_s": _fmt(round(time.time() - t0, 2)), **row, "val_loss": _fmt(val_loss),
                   "val_loss_before": _fmt(val0)}
            log.info("step %d: val loss %.4f", step, val_loss)
        if metrics is not None and row:
            metrics.write({"step": step, "epoch": _fmt(step / cfg.steps_per_epoch), "lr": _fmt(opt.lr), **row})
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
    return TrainResult(step, model, out, last_loss, val_loss, time.time() - t_start, (step - sampler.start) / max(1e-9, wall))


def _reorder_groups(saved: dict, groups: list[dict], source) -> dict:
    """The saved optimiser state with its parameter groups in the order of ``groups`` (the optimiser now).

    Groups are matched by their ``name`` where both sides have one, else by their number of parameters when
    that pairing is unique (checkpoints written before the groups were named or reordered); anything else is
    a :class:`CheckpointError` naming both layouts, never a silent mismatch."""
    old = saved["param_groups"]
    sizes_old, sizes_new = [len(g["params"]) for g in old], [len(g["params"]) for g in groups]
    if sizes_old == sizes_new and all(o.get("name") == n.get("name") for o, n in zip(old, groups)
                                      if "name" in o and "name" in n):
        return saved
    order = None
    if len(old) == len(groups):
        if all("name" in g for g in old) and all("name" in g for g in groups):
            by_name = {g["name"]: i for i, g in enumerate(old)}
            if set(by_name) == {g["name"] for g in groups}:
                order = [by_name[g["name"]] for g in groups]
        elif len(set(sizes_old)) == len(sizes_old) and sorted(sizes_old) == sorted(sizes_new):
            order = [sizes_old.index(n) for n in sizes_new]
    if order is None or [sizes_old[i] for i in order] != sizes_new:
        raise CheckpointError(f"{source}: its optimiser state has parameter groups of {sizes_old} parameters "
                              f"{[g.get('name') for g in old]}, the optimiser now {sizes_new} "
                              f"{[g.get('name') for g in groups]}: the trainable parameters changed; start a new "
                              "run (e.g. with the recipe's init_from naming this checkpoint)")
    log.warning("%s: optimiser parameter groups saved in another order; matched them %s", source,
                "by name" if all("name" in g for g in old) else "by size")
    ids = [g["params"] for g in old]
    remap, new_groups, k = {}, [], 0
    for i in order:
        g = dict(old[i])
        g["params"] = list(range(k, k + len(ids[i])))
        remap.update({pid: k + j for j, pid in enumerate(ids[i])})
        k += len(ids[i])
        new_groups.append(g)
    return {"state": {remap[pid]: v for pid, v in saved["state"].items()}, "param_groups": new_groups}

"""``gradtrack train --data DIR``: fine-tune a tracker on your own videos, then score the starting and the
fine-tuned weights on the held-out sequences (tutorial: ``docs/train_on_your_videos.md``).

The split, the config and the starting weights are :mod:`gradtrack.training.own_data`'s, the loop is
:func:`gradtrack.training.trainer.train`, the evaluation is ``gradtrack eval``'s own machinery
(:func:`gradtrack.evaluation.runner.run_benchmark` and :func:`gradtrack.evaluation.scoring.score_results`,
OPE on the ``val`` sequences).  This module composes the training and the evaluation layers, which may
not import each other; ``gradtrack train`` (:mod:`gradtrack.training.cli`) calls :func:`run_own_data`
only for ``--data``, so ``gradtrack train CONFIG`` never imports the evaluation.

Outputs in ``<out>``: ``splits.json`` (the split used), the training run (``final.pt``: the fine-tuned
weights, ``metrics.csv``, ``config.yaml``, ``data.json``), ``start.pt`` (the starting weights when they
are not a shipped file), ``eval/`` (OPE results of both) and ``eval.json`` (both scores).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import UsageError

__all__ = ["run_own_data", "evaluate_weights", "print_comparison"]


def evaluate_weights(tracker: str, weights: Path, label: str, root: Path, splits_file: Path, results: Path,
                     device: str | None, progress: bool) -> dict:
    """OPE scores of ``tracker`` with ``weights`` on the ``val`` sequences (results under ``results/label``)."""
    from .evaluation.runner import BenchmarkError, DatasetSpec, TrackerSpec, run_benchmark
    from .evaluation.scoring import score_results

    spec = DatasetSpec("folder", str(root), {"split": "val", "splits": str(splits_file)})
    ds = spec.build()
    try:
        run_benchmark(TrackerSpec(tracker, weights=str(weights), device=device or "cpu", label=label), ds, results,
                      protocol="ope", progress=progress, redo=True)
    except BenchmarkError as exc:  # a held-out video that cannot be read or tracked: say which
        raise UsageError(f"evaluation of the {label} weights: {str(exc).splitlines()[0]}") from None
    return score_results(results, label, ds, protocol="ope")


def _delta(a, b) -> str:
    return f"{b - a:+.3f}"


def print_comparison(start: dict, tuned: dict, start_name: str, out=None) -> None:
    out = out or sys.stdout
    s, t = start["overall"], tuned["overall"]
    print(f"held-out evaluation (OPE, {s['n_sequences']} val sequence(s)):", file=out)
    for name, o in ((start_name, s), ("fine-tuned", t)):
        print(f"  {name:<22} success AUC {o['success_auc']:.3f}  precision@20px {o['precision']:.3f}", file=out)
    verdict = ("fine-tuning helped" if t["success_auc"] > s["success_auc"] else
               "fine-tuning did not help" if t["success_auc"] < s["success_auc"] else "no change")
    print(f"  change                 success AUC {_delta(s['success_auc'], t['success_auc'])}  "
          f"precision@20px {_delta(s['precision'], t['precision'])}  ({verdict} on these sequences)", file=out)


def run_own_data(args) -> int:
    """The ``gradtrack train --data DIR`` command (arguments: :func:`gradtrack.training.cli.register_cli`)."""
    import yaml

    from .checkpoint import CheckpointError
    from .config import to_dict
    from .data.sequence import DatasetError
    from .training.own_data import check_recipe, plan_finetune, save_start_weights
    from .training.trainer import train

    plan = plan_finetune(args.data, tracker=args.tracker, init=args.init, out=args.out, steps=300 if args.steps is None else args.steps,
                         lr=args.lr, batch_size=args.batch_size, val_fraction=args.val_fraction,
                         split_seed=args.split_seed, seed=args.seed, device=args.device, workers=args.workers,
                         val_pairs=args.val_pairs,
                         write=not args.print_config)
    check_recipe(plan)
    if args.print_config:
        print(yaml.safe_dump(to_dict(plan.cfg), sort_keys=False), end="")
        return 0
    sp = plan.split
    print(f"data: {plan.root}: {len(sp['train']) + len(sp['val'])} sequences; split {plan.split_source} "
          f"-> {plan.splits_file}")
    print(f"  train ({len(sp['train'])}): {', '.join(sp['train'])}")
    print(f"  val ({len(sp['val'])}): {', '.join(sp['val'])}")
    start_name = f"shipped {plan.tracker}" if plan.init == "shipped" else f"start ({plan.init})"
    print(f"fine-tuning {plan.tracker} from {start_name}: {plan.cfg.total_steps} steps of {plan.cfg.batch_size}, "
          f"lr {plan.cfg.optim.lr:g} -> {plan.cfg.optim.lr_end:g}, out {plan.out}", flush=True)
    start = save_start_weights(plan)
    try:
        res = train(plan.cfg, out=plan.out, resume=args.resume, time_limit=args.time_limit,
                    progress=not args.no_progress)
    except (DatasetError, CheckpointError, FileNotFoundError) as exc:
        raise UsageError(f"training data: {exc}") from None
    except ValueError as exc:  # e.g. no usable frame in the train sequences (box filters)
        raise UsageError(f"cannot train on {plan.root}: {exc}") from None
    weights = plan.out / ("final.pt" if (plan.out / "final.pt").is_file() and res.step >= plan.cfg.total_steps
                          else "last.pt")
    val = "n/a" if res.val_loss is None else f"{res.val_loss:.4f}"
    print(f"stopped at step {res.step}: loss {res.last_loss:.4f}, val loss {val}, {res.steps_per_s:.2f} steps/s; "
          f"weights {weights}")
    if args.export:
        from .training.export import export_weights

        info = export_weights(weights, args.export, card=Path(args.export).with_suffix(".md"))
        weights = Path(info["path"])
        print(f"exported {weights} (fp16 check {info['fp16_check']})")
    if not args.no_eval:
        results = plan.out / "eval"
        kw = dict(root=plan.root, splits_file=plan.splits_file, results=results, device=args.device,
                  progress=not args.no_progress)
        before = evaluate_weights(plan.tracker, start, "start", **kw)
        after = evaluate_weights(plan.tracker, weights, "finetuned", **kw)
        print_comparison(before, after, start_name)
        from .evaluation.scoring import to_jsonable

        summary = {"tracker": plan.tracker, "init": plan.init, "start_weights": str(start), "weights": str(weights),
                   "val": sp["val"], "start": before["overall"], "finetuned": after["overall"]}
        (plan.out / "eval.json").write_text(json.dumps(to_jsonable(summary), indent=1, allow_nan=False) + "\n")
    print(f"use the weights: gradtrack track VIDEO --box X,Y,W,H --tracker {plan.tracker} --weights {weights}")
    return 0

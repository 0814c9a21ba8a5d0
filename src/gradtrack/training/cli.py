"""``gradtrack train CONFIG [--resume] [--out DIR] [--steps N] [--time-limit S] [--print-config]``.

Multi-process: ``torchrun --nproc_per_node N -m gradtrack.training.cli train CONFIG`` (gloo on CPU,
NCCL on CUDA); ``batch_size`` is per process.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _run(args) -> int:
    import yaml

    from ..config import ConfigError, replace, to_dict
    from .config import load_train_config
    from .recipes import build_recipe
    from .trainer import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_train_config(args.config)
        if args.workers is not None:
            cfg = replace(cfg, data={**to_dict(cfg.data), "num_workers": args.workers})
        build_recipe(cfg)  # the recipe's own checks, before anything is built
    except (ConfigError, ValueError) as exc:
        print(f"gradtrack train: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    res = train(cfg, out=args.out, resume=args.resume, stop_step=args.steps, time_limit=args.time_limit,
                progress=not args.no_progress)
    print(f"stopped at step {res.step}: loss {res.last_loss:.4f}, val loss "
          f"{'n/a' if res.val_loss is None else f'{res.val_loss:.4f}'}, {res.steps_per_s:.2f} steps/s, out {res.out}")
    if args.export:
        from .export import export_weights

        info = export_weights(res.out, args.export, card=Path(args.export).with_suffix(".md"))
        print(f"exported {info['path']} (fp16 check {info['fp16_check']})")
    return 0


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a tracker from a YAML config",
                              description="Train a tracker (SiamFC, GradNet, SiamMLG) from a YAML training config.")
    p.add_argument("config", help="training config (YAML), e.g. configs/siamfc.yaml")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt if it exists")
    p.add_argument("--out", default=None, help="run folder (default: the config's out)")
    p.add_argument("--steps", type=int, default=None,
                   help="stop at this global step (the learning-rate schedule still spans the configured epochs)")
    p.add_argument("--time-limit", type=float, default=None, help="stop cleanly after this many seconds")
    p.add_argument("--workers", type=int, default=None, help="override data.num_workers")
    p.add_argument("--export", default=None, help="after training, export fp16 weights (+ .md card) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (bases composed, paths resolved) as YAML and exit")
    p.set_defaults(func=_run)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="gradtrack-train")
    sub = ap.add_subparsers(dest="command", required=True)
    register_cli(sub)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""``gradtrack train CONFIG [--resume] [--out DIR] [--steps N] [--time-limit S] [--print-config]``.

Multi-process: ``torchrun --nproc_per_node N -m gradtrack.training.cli train CONFIG`` (gloo on CPU,
NCCL on CUDA); ``batch_size`` is per process.  Bad input (config, run folder, ``--steps``, device, starting
checkpoint) is one line ``gradtrack train: error: ...`` and exit status 2 (``GRADTRACK_DEBUG=1``: the traceback too).

``gradtrack train --data DIR [--tracker siamfc|gradnet|siammlg] [--init shipped|imagenet|none] [--steps N]
[--out DIR]``: fine-tune on your own videos (a folder the ``folder`` dataset reads), then score the
starting and the fine-tuned weights on the held-out sequences (:mod:`gradtrack.finetune`, tutorial
``docs/train_on_your_videos.md``).
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import traceback
from pathlib import Path


# options of the --data mode only, with their defaults (anything else given is an error without --data)
DATA_OPTIONS = {"tracker": "siamfc", "init": "shipped", "lr": None, "batch_size": None, "val_fraction": 0.2,
                "split_seed": 0, "seed": None, "device": None, "val_pairs": None, "no_eval": False}


def _run(args) -> int:
    from ..errors import UsageError

    if args.data is not None:
        if args.config is not None:
            raise UsageError(f"give a training config or --data DIR, not both ({args.config!r} and --data {args.data})")
        from ..finetune import run_own_data  # composes training and evaluation (one layer up from neither)

        return run_own_data(args)
    if args.config is None:
        raise UsageError("give a training config (YAML, e.g. configs/siamfc.yaml) or --data DIR (your own videos)")
    given = [k for k, v in DATA_OPTIONS.items() if getattr(args, k) != v]
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')} applies to --data DIR only (a config file sets it)")
    return _run_config(args)


def _one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, with the line number a YAML error gives below it."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    at = re.search(r"line \d+", " ".join(lines[1:]))
    return lines[0] + (f" ({at.group(0)})" if at and at.group(0) not in lines[0] else "")


def check_run(cfg, out: Path, steps: int | None) -> None:
    """What the run needs before anything is built: a usable ``--out`` and ``--steps``, the device and AMP mode
    the config asks for, the starting checkpoint, the dataset format and the splits file (when read); :class:`UsageError` otherwise."""
    import torch

    from ..data.readers import DATASETS
    from ..errors import UsageError

    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be >= 1 (the global step to stop at), got {steps}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder (the run folder)")
    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise UsageError("device: cuda, but CUDA is not available here (set device: cpu or auto)")
    if cfg.amp == "fp16" and (cfg.device == "cpu" or not cuda):
        raise UsageError("amp: fp16 needs CUDA, and this run is on the CPU (use amp: bf16, none or auto)")
    start = getattr(cfg, cfg.task).init_from
    if start and not Path(start).expanduser().is_file():
        raise UsageError(f"{cfg.task}.init_from: checkpoint not found: {start}")
    d = cfg.data
    for key, fmt in [("data.format", d.format)] + [(f"data.mask_datasets[{i}].format", m.format)
                                                   for i, m in enumerate(d.mask_datasets)]:
        if fmt not in DATASETS:
            raise UsageError(f"{key}: unknown dataset format {fmt!r} (known: {', '.join(DATASETS.names())})")
    w = d.weights
    reads = w.get("sequences", 0) > 0 or (w.get("stills", 0) > 0 and d.stills_per_sequence > 0) or d.val_pairs > 0
    if d.splits_file and reads and not Path(d.splits_file).expanduser().is_file():
        raise UsageError(f"data.splits_file: {d.splits_file} not found (a JSON file of train/val sequence names; "
                         "null: no splits)")


def _report(exc: BaseException) -> int:
    """A user error as the one line ``gradtrack train: error: ...`` (``GRADTRACK_DEBUG=1``: the traceback too); 2."""
    if os.environ.get("GRADTRACK_DEBUG"):
        traceback.print_exc()
    print(f"gradtrack train: error: {_one_line(exc)}", file=sys.stderr)
    return 2


def _run_config(args) -> int:
    from ..checkpoint import CheckpointError
    from ..config import ConfigError
    from ..errors import UsageError

    try:
        return _train_config(args)
    except (UsageError, ConfigError, CheckpointError) as exc:  # bad config, run folder, or starting checkpoint
        return _report(exc)


def _train_config(args) -> int:
    import yaml

    from ..config import ConfigError, replace, to_dict
    from ..errors import UsageError
    from .config import load_train_config
    from .recipes import build_recipe
    from .trainer import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_train_config(args.config)
        if args.workers is not None:
            cfg = replace(cfg, data={**to_dict(cfg.data), "num_workers": args.workers})
        if not args.print_config:
            check_run(cfg, Path(args.out or cfg.out), args.steps)
        build_recipe(cfg)  # the recipe's own checks, before anything is built
    except (ConfigError, ValueError) as exc:
        raise UsageError(_one_line(exc)) from exc
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
    p = subparsers.add_parser("train", help="train a tracker from a YAML config, or fine-tune on your own videos",
                              description="Train a tracker (SiamFC, GradNet, SiamMLG) from a YAML training config, "
                                          "or fine-tune one on a folder of your own videos (--data DIR) and compare "
                                          "it with the starting weights on held-out videos.")
    p.add_argument("config", nargs="?", default=None, help="training config (YAML), e.g. configs/siamfc.yaml")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest intact checkpoint (last.pt, else the latest step_N.pt "
                        "that reads); without it, a folder holding another run is refused")
    p.add_argument("--out", default=None,
                   help="run folder (default: the config's out; with --data: runs/<DIR name>-<tracker>)")
    p.add_argument("--steps", type=int, default=None,
                   help="stop at this global step (the learning-rate schedule still spans the configured epochs); "
                        "with --data: the number of fine-tuning steps (default 300)")
    p.add_argument("--time-limit", type=float, default=None, help="stop cleanly after this many seconds")
    p.add_argument("--workers", type=int, default=None, help="override data.num_workers")
    p.add_argument("--export", default=None, help="after training, export fp16 weights (+ .md card) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (bases composed, paths resolved) as YAML and exit")
    g = p.add_argument_group("fine-tuning on your own videos (docs/train_on_your_videos.md)")
    g.add_argument("--data", default=None, metavar="DIR",
                   help="folder of sequences (<DIR>/<seq>/video.mp4 or images + groundtruth.txt); its splits.json "
                        "(train/val lists) if it has one, else an automatic split by sequence")
    g.add_argument("--tracker", default=DATA_OPTIONS["tracker"], help="siamfc (default), gradnet or siammlg")
    g.add_argument("--init", default=DATA_OPTIONS["init"], metavar="shipped|imagenet|none",
                   help="starting weights: the tracker's shipped weights (default), an ImageNet backbone "
                        "(siamfc), or none (random)")
    g.add_argument("--lr", type=float, default=None,
                   help="learning rate, decaying to a tenth over the run (default 1e-3 from shipped weights, "
                        "1e-2 otherwise)")
    g.add_argument("--batch-size", type=int, default=None, help="pairs per step (default: siamfc 8, gradnet 2, siammlg 4)")
    g.add_argument("--val-fraction", type=float, default=DATA_OPTIONS["val_fraction"],
                   help="automatic split: fraction of the sequences held out (default 0.2, at least one)")
    g.add_argument("--split-seed", type=int, default=DATA_OPTIONS["split_seed"], help="automatic split seed (default 0)")
    g.add_argument("--seed", type=int, default=None, help="training seed (default 1)")
    g.add_argument("--device", default=None, help="cpu or cuda, for training and the evaluation (default: auto / cpu)")
    g.add_argument("--val-pairs", type=int, default=None,
                   help="pairs from the held-out videos for the validation loss (default 32; 0: none)")
    g.add_argument("--no-eval", action="store_true", help="skip the final evaluation on the held-out sequences")
    p.set_defaults(func=_run)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="gradtrack-train")
    sub = ap.add_subparsers(dest="command", required=True)
    register_cli(sub)
    args = ap.parse_args(argv)
    from ..errors import UsageError

    try:
        return args.func(args)
    except UsageError as exc:
        return _report(exc)


if __name__ == "__main__":
    raise SystemExit(main())

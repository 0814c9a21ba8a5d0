"""``gradtrack vot-workspace`` and ``gradtrack vot-client`` (registered by :mod:`gradtrack.cli`).

Importing this module is cheap (no torch, no trax); the commands report a missing ``vot-trax`` when run.
"""
from __future__ import annotations

import argparse
import json

from gradtrack.errors import UsageError

__all__ = ["register_cli", "cmd_vot_client", "cmd_vot_workspace"]


def _parse_overrides(items) -> dict:
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def cmd_vot_client(args: argparse.Namespace) -> int:
    from .trax_client import serve

    return serve(args.tracker, weights=args.weights, device=args.device, threads=args.threads,
                 overrides=_parse_overrides(args.overrides), log=args.log or False)


def cmd_vot_workspace(args: argparse.Namespace) -> int:
    from .workspace import write_workspace

    only = [s for s in args.only.split(",") if s] if args.only else None
    info = write_workspace(args.directory, args.tracker, args.sequences, layout=args.layout, stack=args.stack,
                           timeout=args.timeout, threads=args.threads, weights=args.weights, device=args.device,
                           repetitions=args.repetitions, sequences=only, force=args.force)
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(f"workspace {info['workspace']}: {len(info['sequences'])} sequence(s) ({info['layout']} layout, "
              f"{info['decoded']} decoded to PNG, the rest symlinked), stack {info['stack']}, tracker {info['identifier']}")
        print(f"  vot evaluate --workspace {info['workspace']} {info['identifier']}")
        print(f"  vot analysis --workspace {info['workspace']} {info['identifier']}")
    return 0


def register_cli(sub) -> None:
    p = sub.add_parser("vot-client", help="TraX client for the VOT toolkit (started by `vot evaluate`)",
                       description="Serve a gradtrack tracker over TraX on stdin/stdout (trackers.ini: protocol = trax).")
    p.add_argument("--tracker", required=True, help="tracker name (see `gradtrack list`)")
    p.add_argument("--weights", default=None, metavar="PATH|random", help="checkpoint (default: the shipped weights)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads (default: $GRADTRACK_THREADS, else $OMP_NUM_THREADS, else torch's default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="tracker config override (repeatable)")
    p.add_argument("--log", default=None, metavar="FILE", help="write the TraX protocol log to FILE")
    p.set_defaults(func=cmd_vot_client)

    p = sub.add_parser("vot-workspace", help="write a VOT toolkit workspace over local sequences",
                       description="Write DIR/config.yaml, a local stack, trackers.ini ([gradtrack_NAME]) and "
                                   "DIR/sequences (symlinked frames) so that `vot evaluate --workspace DIR "
                                   "gradtrack_NAME` runs offline.")
    p.add_argument("directory", metavar="DIR", help="workspace folder (created)")
    p.add_argument("--tracker", required=True, help="tracker name (see `gradtrack list`)")
    p.add_argument("--sequences", required=True, metavar="SRC",
                   help="local sequences: a VOT-layout root or gradtrack's folder layout")
    p.add_argument("--layout", choices=("auto", "vot", "folder"), default="auto", help="layout of SRC (default auto)")
    p.add_argument("--stack", default=None, metavar="NAME",
                   help="baseline (default, local supervised stack), unsupervised (local one-pass stack), a stack "
                        ".yaml file, or an integrated toolkit stack name such as vot2018/shortterm")
    p.add_argument("--repetitions", type=int, default=15,
                   help="repetitions of the local stacks (default 15; the toolkit stops after 3 identical runs)")
    p.add_argument("--only", default=None, metavar="A,B", help="only these sequences of SRC")
    p.add_argument("--weights", default=None, metavar="PATH|random", help="checkpoint for the client")
    p.add_argument("--device", default="cpu", help="torch device of the client (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads of the client (default 1)")
    p.add_argument("--timeout", type=int, default=120,
                   help="seconds the toolkit waits for the client (start-up + handshake, then each frame; default 120)")
    p.add_argument("--force", action="store_true", help="rewrite an existing workspace (its results are kept)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_vot_workspace)

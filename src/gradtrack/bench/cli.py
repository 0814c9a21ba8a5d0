"""``gradtrack bench`` (registered into the main parser by :func:`register_cli`).

    gradtrack bench [--tracker NAME ...] [--device cpu|cuda] [--precision fp32|bf16|fp16|int8]
                    [--backend torch|onnxruntime] [--onnx-dir DIR] [--source PATH|demo] [--box X,Y,W,H] [--frames N]
                    [--repeats R] [--threads T] [--compare] [--json OUT] [--markdown OUT]

Prints fps (median of the repeats), time per stage per frame, FLOPs per frame and achieved GFLOP/s, the
resident memory one live tracker costs and a second one adds (each run in a fresh process), and with
``--compare`` the reference SiamFC loop (``benchmarks/reference_siamfc.py``, standing in for siamfc-pytorch),
OpenCV NanoTrack and CSRT measured in the same run, as ratios to the reference.  Method:
:mod:`gradtrack.bench.core`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UsageError

__all__ = ["register_cli", "cmd_bench"]

DEFAULT_TRACKERS = ("siamfc", "gradnet", "siammlg")


def _box(text: str):
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4 or vals[2] <= 0 or vals[3] <= 0:
        raise argparse.ArgumentTypeError(f"expected X,Y,W,H with W,H > 0, got {text!r}")
    return vals


def cmd_bench(args: argparse.Namespace) -> int:
    from .core import BenchError, format_table, run_bench

    trackers = args.tracker or list(DEFAULT_TRACKERS)
    if args.json is not None and Path(args.json).is_dir():
        raise UsageError(f"--json {args.json} is a folder; give a file name")
    if args.markdown is not None and Path(args.markdown).is_dir():
        raise UsageError(f"--markdown {args.markdown} is a folder; give a file name")
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if not args.quiet else None
    try:
        res = run_bench(trackers, device=args.device, precision=args.precision, backend=args.backend,
                        source=args.source, frames=args.frames, repeats=args.repeats, threads=args.threads,
                        compare=args.compare, warmup=args.warmup, box=args.box, weights=args.weights,
                        flops=not args.no_flops, onnx_dir=args.onnx_dir, log=log)
    except BenchError as exc:
        raise UsageError(str(exc)) from None
    h = res.header
    env = ", ".join(f"{k} {h[k]}" for k in ("torch", "opencv", "device", "gpu", "cuda", "torch_threads",
                                             "cpu_capability", "cpu_bf16") if k in h)
    print(f"source: {h['source']} ({h['frames']} frames {h['size'][0]}x{h['size'][1]}, preloaded); "
          f"{h['repeats']} repeats, median; {env}")
    print(format_table(res))
    for note in res.notes:
        print(f"note: {note}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"header": h, "rows": res.rows, "notes": res.notes}, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(format_table(res) + "\n")
    return 0


def register_cli(subparsers) -> None:
    """Add ``bench`` to the main parser's subparsers."""
    p = subparsers.add_parser(
        "bench", help="measure tracking speed (fps, stages, FLOPs, memory), side by side",
        description="Time trackers side by side (round robin over preloaded frames): fps = frames / "
                    "(init + updates), median of the repeats; time per stage; FLOPs per frame; RSS of a first "
                    "and a second live tracker.")
    p.add_argument("--tracker", action="append", default=None, metavar="NAME",
                   help=f"tracker to measure (repeatable; default: {', '.join(DEFAULT_TRACKERS)})")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16", "int8"),
                   help="search-branch precision of the gradtrack trackers (default auto = each tracker's "
                        "default: bf16 on CPUs with AVX512-BF16/AMX and on CUDA, else fp32; fp16 needs cuda; "
                        "int8: SiamFC trackers through int8 ONNX graphs: the shipped ones for the shipped siamfc "
                        "weights, else quantised first unless --onnx-dir)")
    p.add_argument("--onnx-dir", default=None, metavar="DIR",
                   help="exported graphs to run (gradtrack export / gradtrack quantize), with --backend onnxruntime "
                        "or --precision int8")
    p.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"),
                   help="network backend (onnxruntime: trackers that accept backend='onnxruntime')")
    p.add_argument("--source", default=None, metavar="PATH|demo",
                   help="video, image folder or sequence folder (groundtruth.txt); 'demo' = the procedural "
                        "sequence; default: ../shared/data/sequences/otb/Crossing if present, else demo")
    p.add_argument("--box", type=_box, default=None, metavar="X,Y,W,H",
                   help="initial box (0-based) for a source without groundtruth")
    p.add_argument("--frames", type=int, default=50, metavar="N", help="frames preloaded and tracked (default 50)")
    p.add_argument("--repeats", type=int, default=3, metavar="R", help="timed repeats (default 3; fps is the median)")
    p.add_argument("--warmup", type=int, default=2, metavar="K", help="untimed updates per run first (default 2)")
    p.add_argument("--threads", type=int, default=None, metavar="T", help="torch and OpenCV threads (default: torch's)")
    p.add_argument("--weights", default=None, metavar="PATH|random",
                   help="weights for every gradtrack tracker (default: each one's shipped weights)")
    p.add_argument("--compare", action="store_true",
                   help="also the reference SiamFC loop (benchmarks/reference_siamfc.py), OpenCV NanoTrack and CSRT")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--json", default=None, metavar="OUT", help="write all figures to this JSON file")
    p.add_argument("--markdown", default=None, metavar="OUT", help="write the tables to this Markdown file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_bench)

"""``gradtrack export --tracker NAME --format onnx OUT/``: the tracker's graphs, checked against PyTorch
under onnxruntime, with ``manifest.json`` (see :mod:`gradtrack.deploy.onnx`).

The model is rebuilt from the checkpoint directly (:func:`gradtrack.deploy.onnx.load_checkpoint_model`),
so this module stays on the deploy layer (it imports no tracker).
"""
from __future__ import annotations

import argparse
import sys
import time

from ..checkpoint import CheckpointError
from .onnx import EXPORTABLE, NOT_EXPORTABLE, OPSET, TOLERANCE, OnnxBackendError, OnnxExportError

EXIT_ERROR = 2


def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a tracker's networks (ONNX)",
        description="Write the template and search graphs of TRACKER (GradNet: also its update, the gradient "
                    "dL/df2 written out analytically for an AlexNet U1, else torch-only) to OUT/ with manifest.json, each checked against PyTorch "
                    "under onnxruntime. Use them with build_tracker(NAME, backend='onnxruntime', onnx_dir=OUT).")
    p.add_argument("--tracker", required=True, help=f"one of {', '.join(EXPORTABLE)}")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="export format (default onnx)")
    p.add_argument("--weights", default=None, metavar="PATH", help="checkpoint (default: the shipped weights)")
    p.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch.onnx exporter: the TorchScript tracer (default, fast; needs onnx) or the "
                        "torch.export-based one (needs onnxscript)")
    p.add_argument("--tol", type=float, default=TOLERANCE,
                   help=f"max |ort - torch| / range(torch) accepted per graph (default {TOLERANCE:g})")
    p.add_argument("--scales", type=int, default=3, help="search batch of the example inputs (dynamic anyway)")
    p.add_argument("--opencv", action="store_true", help="also check that OpenCV's DNN module loads and runs the "
                                                         "search graph (siamfc trackers)")
    p.add_argument("out", metavar="OUT", help="output folder")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from .onnx import export_onnx, load_checkpoint_model

    def fail(msg: str) -> int:
        print(f"gradtrack export: error: {msg}", file=sys.stderr)
        return EXIT_ERROR

    if args.tracker in NOT_EXPORTABLE:
        return fail(NOT_EXPORTABLE[args.tracker])
    if args.tracker not in EXPORTABLE:
        return fail(f"no ONNX export for tracker {args.tracker!r}; exportable: {', '.join(EXPORTABLE)}")
    t0 = time.perf_counter()
    try:
        model, source, wfile = load_checkpoint_model(args.tracker, args.weights)
        print(f"export {args.tracker} ({source}) -> {args.out} [opset {args.opset}, {args.exporter} exporter]; "
              f"parity vs PyTorch under onnxruntime:")
        man = export_onnx(args.tracker, model, args.out, weights_source=source, weights_file=wfile, opset=args.opset,
                          exporter=args.exporter, tol=args.tol, scales=args.scales, log=print)
        if args.opencv:
            from .opencv import check_opencv_search

            print("  opencv dnn: " + check_opencv_search(args.out, model, tol=args.tol))
    except (OnnxExportError, OnnxBackendError, CheckpointError, ValueError, OSError) as exc:
        return fail(str(exc).strip().splitlines()[0])
    for note in man["torch_only"]:
        print(f"  torch-only: {note}")
    print(f"wrote {len(man['graphs'])} graphs and manifest.json to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0

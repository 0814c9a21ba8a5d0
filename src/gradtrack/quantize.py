"""``gradtrack quantize``: int8 ONNX graphs of a SiamFC tracker, calibrated on what the tracker sees.

    gradtrack quantize --tracker siamfc OUT/                                   # procedural sequences
    gradtrack quantize --tracker siamfc --calibration ../shared/data/sequences --split train OUT/
    build_tracker("siamfc", backend="onnxruntime", onnx_dir="OUT/")           # precision "int8"

Steps: export the fp32 graphs (:func:`gradtrack.deploy.onnx.export_onnx`, parity-checked), run the fp32
torch tracker over the calibration sequences and keep its exemplar crop and the search crops of every
``every``-th frame (:func:`gradtrack.trackers.siamfc.calibration_crops`), then quantise the search graph
(:func:`gradtrack.deploy.quantize.quantize_siamfc`).  Calibration sequences: ``--calibration ROOT`` (a
``folder`` dataset; ``--split`` of its ``splits.json``, train by default: calibrate on training data,
never on the split you report on), ``--sequences`` of them spread evenly over the sorted names, the first
``--frames`` frames of each from its first annotated frame; without ``--calibration``, the procedural
benchmark suite (:func:`gradtrack.data.synthetic.benchmark_suite`, nothing to download).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

EXIT_ERROR = 2
QUANTIZABLE = ("siamfc", "siamfc_effnet")


def calibration_sequences(root: str | Path | None = None, split: str | None = "train", sequences: int = 16,
                          frames: int = 100) -> tuple[list[tuple[str, object, int, np.ndarray]], str]:
    """``([(name, frames, start, box in frame start)], description)``: ``sequences`` sequences of the
    folder dataset at ``root`` (``split`` of its splits.json; None = all), evenly spread over the sorted
    names, each from its first annotated frame; ``root=None``: the procedural benchmark suite."""
    from .data.synthetic import benchmark_suite

    if sequences < 1 or frames < 2:
        raise ValueError(f"need >= 1 sequence and >= 2 frames per sequence, got {sequences} / {frames}")
    out = []
    if root is None:
        suite = benchmark_suite(seed=0, num_frames=frames)
        picked = suite[:sequences]
        for seq in picked:
            out.append((seq.name, seq.frames, 0, np.asarray(seq.boxes[0], float)))
        return out, f"procedural benchmark suite (seed 0): {len(out)} sequences x {frames} frames"
    from .data.readers import FolderDataset

    ds = FolderDataset(root, split)
    names = sorted(ds.names)
    if not names:
        raise ValueError(f"{root}: no sequences" + (f" in split {split!r}" if split else ""))
    idx = np.unique(np.linspace(0, len(names) - 1, min(sequences, len(names))).round().astype(int))
    for i in idx:
        seq = ds[names[i]]
        ok = np.flatnonzero(np.all(np.isfinite(seq.boxes), axis=1) & (seq.boxes[:, 2] > 0) & (seq.boxes[:, 3] > 0))
        if not len(ok):
            continue
        start = int(ok[0])
        if len(seq.frames) - start < 2:
            continue
        out.append((seq.name, seq.frames, start, seq.boxes[start].astype(float)))
    if not out:
        raise ValueError(f"{root}: none of the picked sequences has an annotated frame to start from")
    where = f"split {split!r} of " if split else ""
    return out, f"{where}{root}: {len(out)} sequences ({', '.join(n for n, *_ in out)}), up to {frames} frames each"


def quantize_tracker(tracker: str, out_dir: str | Path, *, weights: str | None = None, root: str | Path | None = None,
                     split: str | None = "train", sequences: int = 16, frames: int = 100, every: int = 10,
                     method: str = "percentile", log: Callable[[str], None] | None = None) -> dict:
    """Export, calibrate and quantise ``tracker`` (siamfc / siamfc_effnet) into ``out_dir``; the manifest."""
    from .trackers.registry import build_tracker
    from .deploy.onnx import export_onnx, load_checkpoint_model
    from .deploy.quantize import quantize_siamfc
    from .trackers.siamfc import calibration_crops

    say = log or (lambda s: None)
    if tracker not in QUANTIZABLE:
        raise ValueError(f"int8 quantisation is available for {', '.join(QUANTIZABLE)}, not {tracker!r}")
    seqs, desc = calibration_sequences(root, split, sequences, frames)
    model, source, wfile = load_checkpoint_model(tracker, weights)
    trk = build_tracker(tracker, weights=weights, precision="fp32")
    templates, searches = [], []
    t0 = time.perf_counter()
    for _name, fr, start, box in seqs:
        z, crops = calibration_crops(trk, fr, box, start=start, max_frames=frames, every=every)
        templates.append(z)
        searches += [(len(templates) - 1, c) for c in crops]
    say(f"calibration: {desc}; {len(searches)} search samples ({time.perf_counter() - t0:.0f} s of fp32 tracking)")
    with tempfile.TemporaryDirectory(prefix="gradtrack-fp32-") as tmp:
        say(f"export {tracker} ({source}) fp32 graphs:")
        export_onnx(tracker, model, tmp, weights_source=source, weights_file=wfile, log=say)
        return quantize_siamfc(tmp, out_dir, templates, searches, method=method, calibration=desc, log=say)


def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "quantize", help="int8 ONNX graphs of a SiamFC tracker (CPUs without fast bf16)",
        description="Export TRACKER's graphs, calibrate int8 activation ranges on the crops the fp32 tracker cuts "
                    "from calibration sequences, quantise the search graph (onnxruntime QDQ, the correlation "
                    "stays fp32) and write OUT/ with manifest.json. Use it with build_tracker(NAME, "
                    "backend='onnxruntime', onnx_dir=OUT) or gradtrack eval --set backend=onnxruntime --set onnx_dir=OUT.")
    p.add_argument("--tracker", required=True, choices=QUANTIZABLE)
    p.add_argument("--weights", default=None, metavar="PATH", help="checkpoint (default: the shipped weights)")
    p.add_argument("--calibration", default=None, metavar="ROOT",
                   help="folder dataset to calibrate on (default: the procedural benchmark suite)")
    p.add_argument("--split", default="train", help="split of ROOT's splits.json ('all' = every sequence; default train)")
    p.add_argument("--sequences", type=int, default=16, help="calibration sequences (default 16)")
    p.add_argument("--frames", type=int, default=100, help="frames tracked per sequence (default 100)")
    p.add_argument("--every", type=int, default=10, help="keep the search crops of every N-th frame (default 10)")
    p.add_argument("--method", default="percentile", choices=("percentile", "minmax", "entropy"),
                   help="activation-range calibration (default percentile, 99.999 %%)")
    p.add_argument("out", metavar="OUT", help="output folder")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .data.sequence import DatasetError
    from .deploy.onnx import OnnxBackendError, OnnxExportError

    t0 = time.perf_counter()
    try:
        man = quantize_tracker(args.tracker, args.out, weights=args.weights, root=args.calibration,
                               split=None if args.split == "all" else args.split, sequences=args.sequences,
                               frames=args.frames, every=args.every, method=args.method, log=print)
    except (OnnxExportError, OnnxBackendError, CheckpointError, DatasetError, ValueError, OSError) as exc:
        print(f"gradtrack quantize: error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote int8 {man['tracker']} graphs and manifest.json to {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0

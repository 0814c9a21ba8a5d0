"""Per-frame speed of the SiamFC, GradNet and SiamMLG trackers: a thin wrapper over ``gradtrack bench``.

The interleaved timing loop, the stage breakdown, FLOPs and memory now live in :mod:`gradtrack.bench`
(``gradtrack bench --help``).  This script keeps the older command line: it runs the bench once per
precision (fp32, then bf16 unless ``--no-amp``) on the given sequence folder.

    .venv/bin/python benchmarks/speed.py                                  # fp32 and bf16 on OTB Crossing
    .venv/bin/python benchmarks/speed.py --device cpu --frames 60 --threads 2 --no-amp
    gradtrack bench --tracker siamfc --tracker gradnet --compare          # the same, and more, directly
"""
from __future__ import annotations

import argparse
import sys

from gradtrack.cli import main as gradtrack_main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequence", default=None,
                    help="sequence folder (groundtruth.txt + video.mp4); default: ../shared OTB Crossing, else demo")
    ap.add_argument("--frames", type=int, default=50, help="frames preloaded and tracked")
    ap.add_argument("--device", default="cpu", help="cpu / cuda")
    ap.add_argument("--weights", default=None, help="'random' or a checkpoint path (applies to all trackers)")
    ap.add_argument("--threads", type=int, default=None, help="torch/OpenCV threads")
    ap.add_argument("--no-amp", action="store_true", help="skip the bf16 run")
    ap.add_argument("--compare", action="store_true", help="add the reference SiamFC, NanoTrack and CSRT")
    args = ap.parse_args(argv)
    common = ["bench", "--tracker", "siamfc", "--tracker", "gradnet", "--tracker", "siammlg",
              "--frames", str(args.frames), "--device", args.device]
    for flag, value in (("--source", args.sequence), ("--weights", args.weights), ("--threads", args.threads)):
        if value is not None:
            common += [flag, str(value)]
    if args.compare:
        common.append("--compare")
    rc = 0
    for precision in ["fp32"] + ([] if args.no_amp else ["bf16"]):
        print(f"\n## precision {precision}", flush=True)
        rc = gradtrack_main([*common, "--precision", precision]) or rc
    return rc


if __name__ == "__main__":
    sys.exit(main())

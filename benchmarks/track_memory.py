"""Peak resident memory of `gradtrack track` on a 1920x1080 video (the speed issue's "< 1 GB" target).

Writes a procedural 1920x1080 video (the `demo` preset scaled up, seed 0) once, then runs
`gradtrack track VIDEO --box ... --out OUT.mp4` for each tracker in its own process and reports the
process's peak resident set (``ru_maxrss`` of the child) and its wall time:

    python benchmarks/track_memory.py --tracker siamfc --tracker gradnet --tracker siammlg --frames 300

A benchmark, not a test: rerun it on the machine you care about.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def render_demo_video(path: Path, frames: int, size=(1920, 1080)) -> tuple[float, float, float, float]:
    """The `demo` procedural sequence rendered at ``size``; returns the first frame's box."""
    from gradtrack.data import synthetic
    from gradtrack.io import write_video

    seq = synthetic.preset("demo", seed=0, num_frames=frames, size=size)
    write_video(path, (seq.frames[i] for i in range(len(seq.frames))), fps=30.0)
    return tuple(float(v) for v in seq.boxes[0])


def peak_rss_mb(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """``(peak RSS MB, seconds, exit status)`` of ``cmd`` run alone in a fresh child process."""
    # ru_maxrss of RUSAGE_CHILDREN is the maximum over all waited-for children: run each command through
    # a fresh Python parent so earlier runs do not mask it.
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, rc)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True, env=env)
    maxrss, secs, rc = out.stdout.split()
    per_mb = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # ru_maxrss: bytes on macOS, else kB
    return int(maxrss) / per_mb, float(secs), int(rc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracker", action="append", default=None, help="tracker name (repeatable; default gradnet)")
    ap.add_argument("--frames", type=int, default=300, help="video length (default 300)")
    ap.add_argument("--threads", type=int, default=2, help="OMP/torch threads of the tracking process (default 2)")
    args = ap.parse_args(argv)
    if args.frames < 2:
        ap.error("--frames must be >= 2")
    trackers = args.tracker or ["gradnet"]
    with tempfile.TemporaryDirectory(prefix="gradtrack-mem-") as tmp:
        video = Path(tmp) / "video_1080p.mp4"
        box = render_demo_video(video, args.frames)
        print(f"video: 1920x1080, {args.frames} frames; box {box}; limit 1024 MB; OMP_NUM_THREADS={args.threads}")
        print("| tracker | peak RSS MB | wall s | fps | exit |")
        print("|---|---|---|---|---|")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}  # torch (and so onnxruntime) threads
        for name in trackers:
            out = Path(tmp) / f"{name}.mp4"
            cmd = [sys.executable, "-m", "gradtrack", "track", str(video), "--box", ",".join(f"{v:.1f}" for v in box),
                   "--tracker", name, "--out", str(out), "--boxes", str(out.with_suffix(".txt")), "-q"]
            mb, secs, rc = peak_rss_mb(cmd, env)
            print(f"| {name} | {mb:.0f} | {secs:.1f} | {args.frames / secs:.1f} | {rc} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The long run of the tracker-contract fuzz (tests/test_fuzz_trackers.py): >= 10,000 init/update calls.

    nice .venv/bin/python scripts/fuzz_trackers.py [--examples 600] [--trackers siamfc,gradnet,...]

Each tracker runs in its own subprocess with a fixed-seed (derandomized) hypothesis stream of call
sequences; a subprocess that dies (a crash: signal, abort) is counted and restarted after the example that
killed it.  Prints per tracker and in total: calls, crashes, silent wrong results, unnamed errors, spurious
errors (an error where success was due), OpenCV's documented refusals of boxes it cannot start on, and
the first few details of each.  Exit status 1 if any is > 0.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests" / "test_fuzz_trackers.py"


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("test_fuzz_trackers", TESTS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def child(name: str, examples: int, skip: int, log: Path) -> None:
    """Run ``examples`` sequences on tracker ``name``, appending one JSON line per started/finished example."""
    import torch
    from hypothesis import given, settings

    torch.set_num_threads(1)
    fz = _fuzz_module()
    tracker = fz.get_tracker(name)
    with open(log, "a") as f:
        if tracker is None:
            f.write(json.dumps({"skipped": name}) + "\n")
            return
        index = [-1]

        @settings(fz.FUZZ, max_examples=examples)
        @given(steps=fz.ops)
        def run(steps):
            index[0] += 1
            if index[0] < skip:
                return
            f.write(json.dumps({"start": index[0], "steps": repr(steps)[:500]}) + "\n")
            f.flush()
            out = fz.run_ops(tracker, steps)
            f.write(json.dumps({"end": index[0], "outcomes": out}) + "\n")
            f.flush()

        run()


def parent(name: str, examples: int, tmp: Path) -> dict:
    log = tmp / f"{name}.jsonl"
    log.unlink(missing_ok=True)
    counts = collections.Counter()
    details = collections.defaultdict(list)
    skip = 0
    while True:
        proc = subprocess.run([sys.executable, __file__, "--child", name, "--examples", str(examples),
                               "--skip", str(skip), "--log", str(log)], capture_output=True, text=True)
        lines = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        if any("skipped" in x for x in lines):
            return {"skipped": True}
        started = [x for x in lines if "start" in x]
        ended = {x["end"] for x in lines if "end" in x}
        if proc.returncode == 0 or not started or started[-1]["start"] in ended:
            if proc.returncode != 0:
                counts["harness_failures"] += 1
                details["harness_failures"].append(proc.stderr[-500:])
            break
        counts["crash"] += 1  # died inside an example: count it and go on after it
        details["crash"].append(f"rc {proc.returncode} on {started[-1]['steps']}")
        skip = started[-1]["start"] + 1
    for x in lines:
        if "end" in x:
            counts["examples"] += 1
            for outcome, detail in x["outcomes"]:
                counts["calls"] += 1
                counts[outcome] += 1
                if outcome == "ok":
                    counts[f"ok_{detail}"] += 1  # ok_returned: a result; ok_raised: the documented error
                if outcome != "ok" and len(details[outcome]) < 3:
                    details[outcome].append(detail)
    return {"counts": dict(counts), "details": dict(details)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=600, help="call sequences per tracker (default 600)")
    ap.add_argument("--trackers", default=None, help="comma-separated names (default: all registered)")
    ap.add_argument("--tmp", default="/tmp/gradtrack_fuzz", help="folder for the per-tracker logs")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--skip", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--log", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.examples, args.skip, Path(args.log))
        return 0
    from gradtrack.trackers import list_trackers

    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    names = args.trackers.split(",") if args.trackers else list_trackers()
    total = collections.Counter()
    for name in names:
        res = parent(name, args.examples, tmp)
        if res.get("skipped"):
            print(f"{name}: skipped (cannot be built here)", flush=True)
            continue
        total.update(res["counts"])
        print(f"{name}: {res['counts']}", flush=True)
        for kind, ds in res["details"].items():
            for d in ds:
                print(f"  {kind}: {d}", flush=True)
    keys = ("calls", "examples", "refused", "crash", "silent", "unnamed", "spurious", "harness_failures")
    print("TOTAL " + ", ".join(f"{k}={total.get(k, 0)}" for k in keys), flush=True)
    return int(any(total.get(k, 0) for k in keys[3:]))


if __name__ == "__main__":
    sys.exit(main())

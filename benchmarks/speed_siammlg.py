"""CPU/GPU speed of SiamMLG with random weights (the speed does not depend on the weights).

Measures, per configuration:

* ``tracker fps``: ``SiamMLGTracker.update`` on a synthetic 640x360 moving-rectangle sequence, i.e. crop,
  backbone, heads, Refine, mask warp and contour, and the online gradient update every 5 frames;
* a per-stage breakdown of one frame (ms): search branch (ResNet + neck + SK), heads with cached template
  kernels, Refine at one position, and one gradient-guided template update (search features given).

Usage::

    .venv/bin/python benchmarks/speed_siammlg.py                  # fp32, 2 threads, default variants
    .venv/bin/python benchmarks/speed_siammlg.py --amp --threads 2 --frames 40 --variants full resnet34
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from gradtrack.models.siammlg import SiamMLG, ablation_config
from gradtrack.trackers.siammlg import SiamMLGTracker, SiamMLGTrackerConfig


def sequence(n: int, size=(360, 640)):
    h, w = size
    frames = []
    for k in range(n):
        img = np.full((h, w, 3), (60, 80, 100), np.uint8)
        x, y = 200 + 3 * k, 120 + 1 * k
        img[y:y + 60, x:x + 45] = (230, 50, 40)
        frames.append(img)
    return frames, [200.0, 120.0, 45.0, 60.0]


def timeit(fn, reps: int) -> float:
    """Best of ``reps`` runs, in ms (the minimum is the least disturbed by other jobs on a shared CPU)."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def conv_gmacs(model: SiamMLG, fn) -> float:
    """Multiply-accumulates (1e9) of the convolutions run by ``fn()`` (a load-independent cost figure)."""
    total = [0]

    def hook(mod, inp, out):
        k = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]  # (in / groups) * kh * kw
        if isinstance(mod, torch.nn.ConvTranspose2d):
            total[0] += inp[0].numel() * mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]
        else:
            total[0] += out.numel() * k

    hooks = [m.register_forward_hook(hook) for m in model.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    try:
        with torch.no_grad():
            fn()
    finally:
        for h in hooks:
            h.remove()
    return total[0] / 1e9


def frame_gmacs(model: SiamMLG) -> float:
    """Convolution GMACs of one tracking frame (search branch, heads with cached kernels, Refine)."""
    z = torch.rand(1, 3, 127, 127) * 255
    x = torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        kernels = model.kernels(model.template(z))

    def frame():
        xf, low = model.search(x)
        out = model.heads(kernels, xf, full_mask=False)
        if model.refine is not None:
            model.refine_mask(low, out["mask_corr"], torch.tensor([0]), torch.tensor([12]), torch.tensor([12]))
    return conv_gmacs(model, frame)


def stages(model: SiamMLG, reps: int, amp: bool) -> dict[str, float]:
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp else torch.no_grad
    z = torch.rand(1, 3, 127, 127) * 255
    x = torch.rand(1, 3, 255, 255) * 255
    out = {}
    with torch.no_grad(), ctx():
        f2 = model.f2(z)
        kernels = model.kernels(model.u1(f2))
        xf, low = model.search(x)
        heads = model.heads(kernels, xf, full_mask=False)
        idx = [torch.tensor([0]), torch.tensor([12]), torch.tensor([12])]
        out["search_ms"] = timeit(lambda: model.search(x), reps)
        out["heads_ms"] = timeit(lambda: model.heads(kernels, xf, full_mask=False), reps)
        if model.refine is not None:
            out["refine_ms"] = timeit(lambda: model.refine_mask(low, heads["mask_corr"], *idx), reps)
    if model.u2 is not None:  # float32, as in the tracker
        f2, xf = f2.float(), xf.float()

        def upd():
            g, _ = model.gradient(f2, xf)
            with torch.no_grad():
                zf, _ = model.update(f2, g)
                model.kernels(zf)
        out["grad_update_ms"] = timeit(upd, max(1, reps // 2))
    return out


def tracker_fps(model: SiamMLG, frames, box, amp: bool, box_source: str) -> dict[str, float]:
    """``fps`` over the whole run (online updates included) and ``fps_median`` = 1 / median frame time
    (robust to other jobs, but it leaves out the update frames)."""
    tracker = SiamMLGTracker(model, SiamMLGTrackerConfig(amp=amp, box_source=box_source), device="cpu")
    tracker.init(frames[0], box)
    tracker.update(frames[1])  # warm-up
    times = []
    for f in frames[2:]:
        t0 = time.perf_counter()
        tracker.update(f)
        times.append(time.perf_counter() - t0)
    return {"tracker_fps": len(times) / sum(times), "tracker_fps_median": 1.0 / float(np.median(times))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=32, help="frames per tracker run (the first 2 are not timed)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per stage timing")
    ap.add_argument("--variants", nargs="+", default=["full", "resnet34"],
                    choices=["full", "resnet34", "sk", "gradient"])
    ap.add_argument("--amp", action="store_true", help="also measure bfloat16 autocast")
    ap.add_argument("--box-head", action="store_true", help="add the ltrb box head and use box_source=boxhead")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    frames, box = sequence(args.frames)
    rows = []
    for variant in args.variants:
        cfg = ablation_config(variant)
        if args.box_head:
            cfg.box_head = True
        model = SiamMLG(cfg).eval()
        for amp in ([False, True] if args.amp else [False]):
            row = {"variant": variant, "dtype": "bf16-autocast" if amp else "fp32", "box_head": args.box_head,
                   "frame_gmacs": frame_gmacs(model)}
            row.update(stages(model, args.reps, amp))
            row.update(tracker_fps(model, frames, box, amp, "boxhead" if args.box_head else "mask"))
            rows.append(row)
            print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    info = {"torch": torch.__version__, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
            "frames": args.frames, "results": rows}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(info, fh, indent=2)


if __name__ == "__main__":
    main()

"""Export trained weights (fp16, or fp32 with ``--fp32``) and their model card; check that the stored
weights reproduce the trained model's outputs.

``python -m gradtrack.training.export RUN_OR_CKPT OUT.pt [--card OUT.md] [--hardware TEXT] [--fp32]``

Storage check: the fp32 model and the model rebuilt from the stored file are run on the same inputs
(smooth pseudo-random images, or given crops); the report holds the largest difference of each output
relative to its range, and whether the score peak lands on the same cell.  fp16 files are loaded back into
fp32 modules (``load_state`` casts), so inference is unchanged in kind; an fp16 file that moves an output
by more than ``FP16_TOLERANCE`` of its range is refused (then store fp32).
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_model, save_model
from .recipes import recipe_class

FP16_TOLERANCE = 1e-2  # max |r32 - r16| / range(r32)


def smooth_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``n x 3 x size x size`` smooth random images in [0, 255] (low-frequency noise, several octaves)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, 3, size, size)
    for cells, amp in ((4, 1.0), (12, 0.5), (40, 0.25)):
        base = torch.rand(n, 3, cells, cells, generator=g)
        out += amp * F.interpolate(base, size=(size, size), mode="bicubic", align_corners=False)
    out -= out.amin(dim=(1, 2, 3), keepdim=True)
    out /= out.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    return out * 255.0


def responses(model, name: str, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs compared by the storage check: the score map (all models) and what else the recipe of
    ``name`` names (SiamMLG: its mask correlation and, with the box head, its (l, t, r, b) map)."""
    return recipe_class(name).responses(model, z, x)


def compare_fp16(model32, path16: Path, name: str, z=None, x=None) -> dict:
    """fp32 model vs the model rebuilt from the fp16 file: the largest difference of every output relative
    to its range (``relative`` is the worst of them) and whether the score peak lands on the same cell."""
    model16, _ = load_model(path16, expected=name)
    if z is None or x is None:
        geo = model32.cfg.geometry()
        e, n = geo.exemplar_size, geo.instance_size
        z = smooth_images(4, e, seed=1)
        x = smooth_images(4, n, seed=2)
        # put the exemplar into the centre of the search images so there is a real peak
        a = (n - e) // 2
        x[:, :, a:a + e, a:a + e] = z
    r32 = responses(model32, name, z, x)
    r16 = responses(model16, name, z, x)
    per_output = {}
    for key, a in r32.items():
        rng = (a.amax() - a.amin()).item()
        diff = (a - r16[key]).abs().max().item()
        per_output[key] = {"max_abs_diff": diff, "response_range": rng, "relative": diff / max(rng, 1e-12)}
    s32, s16 = r32["score"], r16["score"]
    same_peak = bool((s32.flatten(1).argmax(1) == s16.flatten(1).argmax(1)).all())
    out = dict(per_output["score"])
    out.update(relative=max(v["relative"] for v in per_output.values()), same_peak=same_peak)
    if len(per_output) > 1:
        out["outputs"] = per_output
    return out


def _metrics_summary(run: Path) -> dict:
    path = run / "metrics.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    train = [r for r in rows if r.get("loss")]
    val = [r for r in rows if r.get("val_loss")]

    def avg(rs, key):
        vals = [float(r[key]) for r in rs if r.get(key)]
        return sum(vals) / len(vals) if vals else None

    rates = [float(r["steps_per_s"]) for r in train if r.get("steps_per_s")]
    out = {
        "first_loss": avg(train[:10], "loss"), "last_loss": avg(train[-10:], "loss"),
        "first_step": int(train[0]["step"]) if train else None, "last_step": int(train[-1]["step"]) if train else None,
        "median_steps_per_s": float(np.median(rates)) if rates else None,
    }
    if val:
        out.update(first_val_loss=float(val[0]["val_loss"]), last_val_loss=float(val[-1]["val_loss"]),
                   first_val_step=int(val[0]["step"]), last_val_step=int(val[-1]["step"]))
        if val[-1].get("val_loss_before"):
            out["last_val_loss_before"] = float(val[-1]["val_loss_before"])
    return out


def hardware_string() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return cpu


def export_weights(source: str | Path, out: str | Path, card: str | Path | None = None,
                   hardware: str | None = None, notes: str = "", half: bool = True) -> dict:
    """Export a run (``last.pt``/``final.pt`` in a folder) or a checkpoint file to fp16 (``half=False``:
    fp32) + model card.  fp16 that moves any output by more than ``FP16_TOLERANCE`` of its range is an
    error that says so (export with ``half=False`` then)."""
    source = Path(source)
    run = source if source.is_dir() else source.parent
    if source.is_dir():
        source = source / "final.pt" if (source / "final.pt").is_file() else source / "last.pt"
    model, ckpt = load_model(source)
    name = ckpt["model"]
    tr = ckpt.get("training", {})
    tcfg = tr.get("train_config", {})
    data = {}
    if (run / "data.json").is_file():
        data = json.loads((run / "data.json").read_text())
    summary = _metrics_summary(run)
    meta = dict(ckpt.get("meta", {}))
    meta.update({"stored_dtype": "float16" if half else "float32",
                 "trained_steps": tr.get("step", meta.get("step")), "task": name, "train_config": tcfg,
                 "metrics": summary, "hardware": hardware or hardware_string(), "source": str(source)})
    out = Path(out)
    save_model(out, name, model, meta=json.loads(json.dumps(meta, default=str)), half=half)
    check = compare_fp16(model, out, name)  # for fp32 files: the round trip, expected exact
    if not (check["relative"] < FP16_TOLERANCE and check["same_peak"]):
        out.unlink()
        raise ValueError(f"fp16 export changes the responses too much ({check}); export in fp32 (--fp32)")
    if card:
        write_card(Path(card), name, out, dict(meta, model_config=ckpt.get("config", {})), data, summary, check, notes)
    return {"path": str(out), "fp16_check": check, "meta": meta}


def _fmt(v, nd=4):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _pairs_seen(steps, tcfg: dict, meta: dict) -> str:
    try:
        n = int(steps) * int(tcfg.get("batch_size", 1)) * int(meta.get("world", 1))
        return f"{n * recipe_class(tcfg['task']).searches_per_item(tcfg):,}"
    except (TypeError, ValueError, KeyError):
        return "n/a"


def write_card(path: Path, name: str, weights: Path, meta: dict, data: dict, summary: dict, check: dict,
               notes: str) -> None:
    recipe = recipe_class(name)
    tcfg = meta.get("train_config", {})
    steps = meta.get("trained_steps")
    wall = meta.get("train_wall_s")
    mix = data.get("mixture", {})
    seqs = data.get("sequences", [])
    dcfg = tcfg.get("data", {})
    split, val_split = dcfg.get("split", "train"), dcfg.get("val_split", "val")
    splits_name = Path(dcfg.get("splits_file") or "splits.json").name
    lines = [
        f"# gradtrack {name} weights (`{weights.name}`)",
        "",
        "Trained by `gradtrack train` (see `configs/` and `scripts/`); "
        + ("fp16 weights, loaded into fp32 modules." if meta.get("stored_dtype") == "float16" else "fp32 weights."),
        "",
        "## Training data",
        f"- annotated sequences ({split} split of `{dcfg.get('root', '?')}`, `{splits_name}`): {len(seqs)} sequences, "
        f"{sum(s.get('frames', 0) for s in seqs)} frames, {sum(s.get('usable', 0) for s in seqs)} usable after box filters",
        f"- still-image pairs: {data.get('still_images', 0)} images ({len(data.get('package_images', []))} package sample images: "
        f"{', '.join(data.get('package_images', [])) or 'none'}; the rest are {split}-split frames)",
        f"- procedural synthetic sequences: {data.get('synthetic_sequences', 0)}",
        "- sampling weights: " + ", ".join(f"{k} {v.get('weight', 0):.2f}" for k, v in mix.items()),
        f"- the {val_split} split is never used for training (asserted when the sources are built); {val_split} pairs "
        "are only evaluated",
        "",
        "## Training",
        f"- steps: {steps} (batch {tcfg.get('batch_size')} per process x {meta.get('world', 1)} process(es); "
        f"{_pairs_seen(steps, tcfg, meta)} search regions seen" + recipe.card_training(tcfg)
        + f"), schedule spans {tcfg.get('epochs')} x {tcfg.get('steps_per_epoch')} steps",
        f"- optimiser: SGD lr {tcfg.get('optim', {}).get('lr')} -> {tcfg.get('optim', {}).get('lr_end')} "
        f"({tcfg.get('optim', {}).get('schedule')}), momentum {tcfg.get('optim', {}).get('momentum')}, "
        f"weight decay {tcfg.get('optim', {}).get('weight_decay')}",
        f"- hardware: {meta.get('hardware')}, {meta.get('threads', '?')} torch threads, device {meta.get('device', 'cpu')}, "
        f"autocast {meta.get('amp')}, {meta.get('world', 1)} process(es)",
        f"- wall time: {_fmt(wall / 3600 if wall else None, 2)} h; median rate {_fmt(summary.get('median_steps_per_s'), 2)} steps/s",
        f"- training loss: {_fmt(summary.get('first_loss'))} (first 10 logged) -> {_fmt(summary.get('last_loss'))} (last 10 logged)",
        f"- validation loss ({val_split}-split pairs, no augmentation): {_fmt(summary.get('first_val_loss'))} at step "
        f"{summary.get('first_val_step', 'n/a')} -> {_fmt(summary.get('last_val_loss'))} at step {summary.get('last_val_step', 'n/a')}"
        + (f" (before the gradient update: {_fmt(summary.get('last_val_loss_before'))})" if 'last_val_loss_before' in summary else ""),
        "",
        "## fp16 storage check" if meta.get("stored_dtype") == "float16" else "## Storage check (fp32 file vs the trained model)",
        f"- max |response trained - stored| = {check['max_abs_diff']:.3g} ({check['relative']:.2e} of the response range), "
        f"same peak: {check['same_peak']}",
        "",
        "## Caveats",
        "- trained on a small pool on a 2-core CPU for a short time: far fewer pairs than the papers (ILSVRC-VID, 50 epochs"
        + recipe.card_caveat + f"); expect clearly lower accuracy than published {recipe.paper_name} numbers.",
    ]
    if recipe.card_model_config:
        mcfg = meta.get("model_config") or {}
        lines.insert(lines.index("## Training data"), f"Model config: `{json.dumps(mcfg)}`\n" if mcfg else "")
    if notes:
        lines += ["", notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gradtrack.training.export", description=__doc__.split("\n")[0])
    ap.add_argument("source", help="run folder or checkpoint")
    ap.add_argument("out", help="output .pt")
    ap.add_argument("--card", help="model card (.md) to write")
    ap.add_argument("--hardware", help="hardware description for the card")
    ap.add_argument("--notes", default="", help="extra text for the card")
    ap.add_argument("--fp32", action="store_true", help="store fp32 weights (when fp16 moves the outputs too much)")
    args = ap.parse_args(argv)
    res = export_weights(args.source, args.out, args.card, args.hardware, args.notes, half=not args.fp32)
    print(json.dumps({"path": res["path"], "fp16_check": res["fp16_check"]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Reports comparing any number of trackers' result folders: plots (PNG + SVG), Markdown, JSON.

    from gradtrack.evaluation.report import build_report
    build_report("results", dataset, out_dir="reports/otb", trackers=["gradnet", "siamfc"])

Writes into ``out_dir``:

* ``summary.json``: per tracker the full output of :mod:`gradtrack.evaluation.scoring` (overall, per
  sequence, per attribute, conventions, fps); NaN becomes ``null``;
* ``report.md``: tables (overall per protocol, per attribute / per tag, per sequence);
* OPE trackers: ``success_plot.{png,svg}`` (AUC in the legend) and ``precision_plot.{png,svg}`` (precision
  at 20 px in the legend); GOT-10k trackers: ``got10k_success_plot.{png,svg}`` (AO in the legend); VOT
  trackers: ``eao_curve.{png,svg}`` (EAO in the legend, the EAO interval shaded).

fps come from the time files written by the runner (see :func:`gradtrack.evaluation.metrics.fps`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from . import metrics as M
from . import results as R
from .scoring import score_results, to_jsonable

__all__ = ["build_report", "markdown_report", "plot_ope", "plot_got10k", "plot_eao"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    import matplotlib

    paths = []
    # svg.fonttype "none": texts (legend scores included) stay searchable text in the SVG
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "gradtrack"}):
        for ext in ("png", "svg"):
            p = out_dir / f"{stem}.{ext}"
            fig.savefig(p, dpi=150 if ext == "png" else None, bbox_inches="tight")
            paths.append(p)
    return paths


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "n/a" if not np.isfinite(f) else f"{f:.{digits}f}"


def plot_ope(scores: dict[str, dict], out_dir, title: str = "") -> list[Path]:
    """Success and precision plots of OPE trackers (legend: AUC / precision at 20 px, sorted)."""
    plt = _plt()
    out_dir = Path(out_dir)
    paths = []
    specs = [
        ("success_plot", "success_curve", "success_auc", M.SUCCESS_THRESHOLDS, "Overlap threshold (IoU >)",
         "Success rate", "Success plots of OPE", "AUC"),
        ("precision_plot", "precision_curve", "precision", M.PRECISION_THRESHOLDS, "Location error threshold (px, <=)",
         "Precision", "Precision plots of OPE", "P@20"),
    ]
    for stem, curve_key, score_key, x, xlabel, ylabel, head, tag in specs:
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        order = sorted(scores, key=lambda t: -(scores[t]["overall"][score_key] or 0.0))
        for i, t in enumerate(order):
            o = scores[t]["overall"]
            ax.plot(x, np.asarray(o[curve_key], dtype=float), ("-", "--", "-.", ":")[i // 10 % 4],
                    label=f"{t} [{tag} {_fmt(o[score_key])}]")
        ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(x[0], x[-1]), ylim=(0, 1.0),
               title=f"{head}{' - ' + title if title else ''}")
        ax.grid(True, alpha=0.4)
        ax.legend(loc="lower left" if stem == "success_plot" else "lower right", fontsize=8)
        paths += _save(fig, out_dir, stem)
        plt.close(fig)
    return paths


def plot_got10k(scores: dict[str, dict], out_dir, title: str = "") -> list[Path]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    order = sorted(scores, key=lambda t: -(scores[t]["overall"]["ao"] or 0.0))
    for t in order:
        o = scores[t]["overall"]
        ax.plot(M.GOT10K_THRESHOLDS, np.asarray(o["success_curve"], dtype=float), label=f"{t} [AO {_fmt(o['ao'])}]")
    ax.set(xlabel="Overlap threshold (IoU >)", ylabel="Success rate", xlim=(0, 1), ylim=(0, 1),
           title=f"GOT-10k success plot{' - ' + title if title else ''}")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower left", fontsize=8)
    paths = _save(fig, Path(out_dir), "got10k_success_plot")
    plt.close(fig)
    return paths


def plot_eao(scores: dict[str, dict], out_dir, title: str = "") -> list[Path]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    order = sorted(scores, key=lambda t: -(scores[t]["overall"]["eao"] or 0.0))
    lo = hi = None
    for t in order:
        o = scores[t]["overall"]
        curve = np.asarray([np.nan if v is None else v for v in o["eao_curve"]], dtype=float)
        ax.plot(np.arange(len(curve)), curve, label=f"{t} [EAO {_fmt(o['eao'])}]")
        lo, hi = o["eao_interval"]
    if lo is not None:
        ax.axvspan(lo, hi, color="0.9", zorder=0)
    ax.set(xlabel="Sequence length (frames)", ylabel="Expected average overlap", ylim=(0, 1),
           title=f"EAO curve{' - ' + title if title else ''}")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="upper right", fontsize=8)
    paths = _save(fig, Path(out_dir), "eao_curve")
    plt.close(fig)
    return paths


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def markdown_report(scores: dict[str, dict], title: str = "Evaluation report") -> str:
    """Markdown tables for the scored trackers (any mix of protocols)."""
    lines = [f"# {title}\n"]
    by_proto: dict[str, dict] = {}
    for t, s in scores.items():
        by_proto.setdefault(s["protocol"], {})[t] = s
    ope = by_proto.get("ope", {})
    if ope:
        first = next(iter(ope.values()))
        c = first["conventions"]
        lines.append("## OPE (one-pass evaluation)\n")
        lines.append(
            f"Success AUC = mean of the success curve over IoU thresholds linspace(0, 1, 21) with IoU > thr (strict; "
            f"a perfect tracker scores 20/21 = 0.952). Precision = fraction of frames with centre error <= 20 px. "
            f"Norm. precision: {c['norm_prec_score']}. Invalid (NaN) ground-truth frames: {c['invalid_frames']}. "
            f"Curves averaged over sequences (got10k). FPS: {c['fps']}.\n"
        )
        rows = []
        for t in sorted(ope, key=lambda t: -(ope[t]["overall"]["success_auc"] or 0.0)):
            o = ope[t]["overall"]
            rows.append([t, _fmt(o["success_auc"]), _fmt(o["precision"]), _fmt(o["norm_precision"]),
                         _fmt(o["success_rate"]), _fmt(ope[t]["fps"], 1), str(o["n_sequences"])])
        lines.append(_table(["Tracker", "Success AUC", "Precision@20", "Norm. precision", "SR@0.5", "FPS", "Sequences"],
                            rows))
        attrs = sorted({a for s in ope.values() for a in s["per_attribute"]})
        if attrs:
            lines.append("\n### Success AUC per attribute\n")
            rows = [[a] + [_fmt(ope[t]["per_attribute"].get(a, {}).get("success_auc")) for t in ope]
                    + [str(next(iter(ope.values()))["per_attribute"].get(a, {}).get("n_sequences", ""))] for a in attrs]
            lines.append(_table(["Attribute"] + list(ope) + ["Sequences"], rows))
        seqs = sorted({n for s in ope.values() for n in s["per_sequence"]})
        lines.append("\n### Per sequence (success AUC / precision@20)\n")
        rows = [[n] + [f"{_fmt(ope[t]['per_sequence'][n]['success_auc'])} / {_fmt(ope[t]['per_sequence'][n]['precision'])}"
                       if n in ope[t]["per_sequence"] else "n/a" for t in ope] for n in seqs]
        lines.append(_table(["Sequence"] + list(ope), rows))
    got = by_proto.get("got10k", {})
    if got:
        lines.append("\n## GOT-10k\n")
        lines.append("AO = mean IoU; SR = fraction of frames with IoU > 0.5 / 0.75. Frame 0 and frames with cover 0 "
                     "excluded; boxes clipped to the image as the got10k toolkit; IoUs pooled over all frames of all "
                     "sequences and repetitions.\n")
        rows = [[t, _fmt(got[t]["overall"]["ao"]), _fmt(got[t]["overall"]["sr50"]), _fmt(got[t]["overall"]["sr75"]),
                 _fmt(got[t]["fps"], 1)] for t in sorted(got, key=lambda t: -(got[t]["overall"]["ao"] or 0.0))]
        lines.append(_table(["Tracker", "AO", "SR0.5", "SR0.75", "FPS"], rows))
    vot = by_proto.get("vot", {})
    if vot:
        first = next(iter(vot.values()))
        c = first["conventions"]
        lines.append("\n## VOT (supervised, reset-based)\n")
        lines.append(f"EAO interval {c['eao_interval']} ({c['eao_index_base']} indexing); accuracy with burn-in "
                     f"{c['burnin']}; R = length-weighted mean failures per sequence; AR robustness = "
                     f"exp(-{c['sensitivity']:g} F / length); overlaps: {c['overlap']}.\n")
        rows = [[t, _fmt(vot[t]["overall"]["eao"]), _fmt(vot[t]["overall"]["accuracy"]),
                 _fmt(vot[t]["overall"]["failures"], 2), _fmt(vot[t]["overall"]["ar_robustness"]),
                 _fmt(vot[t]["overall"]["failures_per_100_frames"], 2), _fmt(vot[t]["fps"], 1)]
                for t in sorted(vot, key=lambda t: -(vot[t]["overall"]["eao"] or 0.0))]
        lines.append(_table(["Tracker", "EAO", "Accuracy", "R (failures)", "AR robustness", "Failures/100 frames", "FPS"],
                            rows))
        tags = sorted({a for s in vot.values() for a in s["per_attribute"]})
        if tags:
            lines.append("\n### Per tag (accuracy / failures)\n")
            rows = [[a] + [f"{_fmt(vot[t]['per_attribute'].get(a, {}).get('accuracy'))} / "
                           f"{_fmt(vot[t]['per_attribute'].get(a, {}).get('failures'), 1)}" for t in vot] for a in tags]
            lines.append(_table(["Tag"] + list(vot), rows))
    lines.append("\nResult boxes are 0-based x,y,w,h (gradtrack convention).\n")
    return "\n".join(lines)


def build_report(results_dir, dataset, out_dir, *, trackers: Iterable[str] | None = None,
                 sequences: Iterable[str] | None = None, title: str = "", **score_kwargs) -> dict:
    """Score every tracker folder (or ``trackers``) in ``results_dir`` against ``dataset`` and write the
    report files into ``out_dir``; returns ``{"scores", "files", "sequences", "skipped"}``.  Without
    ``sequences``, trackers are compared on the dataset's sequences that *all* of them have results for
    (the others are listed as ``sequences_without_results`` in summary.json).  ``score_kwargs`` go to
    the scoring functions of the trackers' protocol (e.g. ``invalid_frames="count_as_failure"``)."""
    names = list(trackers) if trackers is not None else R.list_trackers(results_dir)
    if not names:
        raise R.ResultFileError(f"no tracker result folders in {results_dir}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for t in names:
        if not (Path(results_dir) / t).is_dir():
            raise R.ResultFileError(f"no results for tracker {t!r} in {results_dir}")
    protos = {t: R.detect_protocol(results_dir, t) for t in names}
    skipped: list[str] = []
    if sequences is None:
        # compare on the sequences every tracker has results for (listed in summary.json)
        sequences = [n for n in dataset.names if all(R.has_result(results_dir, t, protos[t], n) for t in names)]
        skipped = [n for n in dataset.names if n not in sequences]
        if not sequences:
            raise R.ResultFileError(f"no sequence of the dataset has results for all of {', '.join(names)} "
                                    f"in {results_dir}")
    sequences = list(sequences)
    scores = {}
    for t in names:
        proto = protos[t]
        kwargs = {k: v for k, v in score_kwargs.items()
                  if k in _ACCEPTED.get(proto, ())}
        scores[t] = to_jsonable(score_results(results_dir, t, dataset, protocol=proto, sequences=sequences, **kwargs))
    files = []
    ope = {t: s for t, s in scores.items() if s["protocol"] == "ope"}
    got = {t: s for t, s in scores.items() if s["protocol"] == "got10k"}
    vot = {t: s for t, s in scores.items() if s["protocol"] == "vot"}
    if ope:
        files += plot_ope(ope, out, title)
    if got:
        files += plot_got10k(got, out, title)
    if vot:
        files += plot_eao(vot, out, title)
    md = out / "report.md"
    md.write_text(markdown_report(scores, title=title or "Evaluation report"))
    js = out / "summary.json"
    js.write_text(json.dumps({"results_dir": str(results_dir), "sequences": sequences,
                              "sequences_without_results": skipped, "trackers": scores},
                             indent=1, allow_nan=False) + "\n")
    files += [md, js]
    return {"scores": scores, "files": files, "sequences": sequences, "skipped": skipped}


_ACCEPTED = {
    "ope": ("iou_convention", "center", "invalid_frames", "norm_prec_score", "fps_mode", "use_absent_flags"),
    "got10k": ("clip_mode",),
    "vot": ("burnin", "sensitivity", "eao_interval", "eao_index_base", "experiment"),
}

"""Paired comparison of two result sets: per-sequence differences, a bootstrap interval, wins and losses.

    from gradtrack.evaluation.compare import compare_results, markdown_comparison
    cmp = compare_results(("results", "gradnet"), ("results", "siamfc"), dataset)
    print(markdown_comparison(cmp))

Both result sets are scored against the same ground truth with :func:`gradtrack.evaluation.scoring.score_results`;
every number below is computed from the *per-sequence* scores of that output.

Method (documented in every report):

* **Paired differences.**  For each metric and each sequence that both sets have results for, ``d = A - B``
  (sequences where a metric is undefined, e.g. OPE sequences without a valid ground-truth frame, are left
  out of that metric and counted as ``n_undefined``).  "mean A" / "mean B" are plain means over the paired
  sequences; for OPE success AUC and precision@20 they equal the overall scores of ``gradtrack report``
  (curves averaged over sequences, and both scores are linear in the curve).
* **Bootstrap interval.**  Percentile bootstrap over sequences: ``n`` resamples of the ``k`` paired
  differences drawn with replacement (``numpy.random.default_rng(seed)``), the mean of each resample, and
  the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those means (numpy's default linear
  interpolation).  Defaults: level 0.9, 10,000 resamples, seed 0.  Frames are *not* resampled: the unit
  is the sequence, as sequences are the independent draws.
* **Verdict.**  "A better than B" only if the interval lies entirely on A's side of zero (strictly above
  zero for a higher-is-better metric), "B better than A" likewise, otherwise "not distinguishable".  With
  fewer than ``min_sequences`` (default 5) paired sequences no verdict is given ("too few sequences"): a
  percentile interval of one or two values says nothing about unseen sequences.
* **Wins / losses / ties.**  A sequence is a win for A when ``d`` favours A by more than ``margin``
  (default 0.05, in the metric's own units), a loss when it favours B by more than ``margin``, else a
  tie; the raw counts ``d > 0`` / ``d < 0`` / ``d == 0`` are reported as well.
* **Per attribute / tag.**  OPE: the same statistics over the paired sequences carrying each
  sequence-level attribute (``Sequence.attributes``, as the OTB attribute tables of ``gradtrack report``).
  VOT: per-frame tags (``Sequence.tags``); per sequence, accuracy over the frames carrying the tag and the
  number of failures on them (:func:`gradtrack.evaluation.metrics.vot_tag_breakdown` on that one
  sequence), paired over the sequences where the value is defined.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence as Seq

import numpy as np

from . import metrics as M
from . import results as R

__all__ = [
    "METRICS",
    "MIN_SEQUENCES",
    "SequenceMismatchError",
    "paired_bootstrap",
    "win_loss",
    "verdict",
    "compare_values",
    "compare_scores",
    "compare_results",
    "markdown_comparison",
    "result_sequences",
]

MIN_SEQUENCES = 5
"""Fewest paired sequences for which a verdict is given."""

# protocol -> [(key in per_sequence, label, higher_is_better)]
METRICS: dict[str, list[tuple[str, str, bool]]] = {
    "ope": [("success_auc", "success AUC", True), ("precision", "precision@20", True),
            ("norm_precision", "norm. precision", True)],
    "got10k": [("ao", "AO", True), ("sr50", "SR0.5", True), ("sr75", "SR0.75", True)],
    "vot": [("accuracy", "accuracy", True), ("failures", "failures", False)],
}

_TAG_METRICS = [("accuracy", "accuracy", True), ("failures", "failures", False)]


class SequenceMismatchError(ValueError):
    """The two result sets do not cover the same sequences (and ``intersect`` was not asked for).
    ``only_a`` / ``only_b``: sequences only one set has results for; ``neither``: requested sequences that
    neither set has."""

    def __init__(self, only_a: list[str], only_b: list[str], label_a: str = "A", label_b: str = "B",
                 neither: list[str] | None = None):
        self.only_a, self.only_b, self.neither = list(only_a), list(only_b), list(neither or [])
        parts = []
        for what, names in ((f"only {label_a} has results for", self.only_a),
                            (f"only {label_b} has results for", self.only_b),
                            ("neither has results for", self.neither)):
            if names:
                shown = ", ".join(names[:20]) + (f" ... ({len(names)} in all)" if len(names) > 20 else "")
                parts.append(f"{what} {len(names)} sequence(s): {shown}")
        super().__init__("the result sets cover different sequences; " + "; ".join(parts)
                         + " (use --intersect to compare on the sequences both have)")


# ---------------------------------------------------------------------------------------------- statistics
def _as_diffs(diffs) -> np.ndarray:
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ValueError("no paired differences")
    if not np.isfinite(d).all():
        raise ValueError("paired differences must be finite (drop undefined sequences first)")
    return d


def paired_bootstrap(diffs, level: float = 0.9, n: int = 10000, seed: int = 0) -> dict:
    """Percentile bootstrap interval of the mean of paired differences, resampling the differences
    (one per sequence) with replacement.

    Returns ``{"mean", "low", "high", "level", "n_resamples", "seed", "n"}``; ``mean`` is the plain mean of
    ``diffs`` and ``[low, high]`` the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (numpy linear
    interpolation) of the ``n`` resample means.  Resample ``r`` uses indices
    ``default_rng(seed).integers(0, k, size=(n, k))[r]``; the draws are made in chunks with the same
    stream, so the result does not depend on the chunking.
    """
    d = _as_diffs(diffs)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    k = d.size
    rng = np.random.default_rng(seed)
    means = np.empty(n, dtype=np.float64)
    chunk = max(1, 2_000_000 // k)  # at most ~16 MB of indices at a time
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        idx = rng.integers(0, k, size=(m, k))
        means[start:start + m] = d[idx].mean(axis=1)
    lo_q, hi_q = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    low, high = np.quantile(means, [lo_q, hi_q])
    return {"mean": float(d.mean()), "low": float(low), "high": float(high), "level": float(level),
            "n_resamples": n, "seed": seed, "n": int(k)}


def win_loss(diffs, margin: float = 0.05, higher_is_better: bool = True) -> dict:
    """Per-sequence wins / losses / ties of A (``diffs = A - B``) with a margin, plus the raw sign counts.

    A win: the difference favours A by more than ``margin`` (``d > margin`` for a higher-is-better
    metric, ``d < -margin`` otherwise); a loss likewise for B; everything else is a tie."""
    d = _as_diffs(diffs)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    s = d if higher_is_better else -d
    return {
        "margin": float(margin),
        "wins": int(np.sum(s > margin)),
        "losses": int(np.sum(s < -margin)),
        "ties": int(np.sum(np.abs(d) <= margin)),
        "positive": int(np.sum(d > 0)),
        "negative": int(np.sum(d < 0)),
        "zero": int(np.sum(d == 0)),
    }


def verdict(low: float, high: float, *, higher_is_better: bool = True, n: int | None = None,
            min_sequences: int = MIN_SEQUENCES, label_a: str = "A", label_b: str = "B") -> str:
    """"A better than B" if ``[low, high]`` excludes zero on A's side, "B better than A" likewise, else
    "not distinguishable"; "too few sequences" when ``n < min_sequences``."""
    if n is not None and n < min_sequences:
        return f"too few sequences ({n} < {min_sequences}) for a verdict"
    a_side = low > 0 if higher_is_better else high < 0
    b_side = high < 0 if higher_is_better else low > 0
    if a_side:
        return f"{label_a} better than {label_b}"
    if b_side:
        return f"{label_b} better than {label_a}"
    return "not distinguishable"


def compare_values(a: Mapping[str, float], b: Mapping[str, float], *, higher_is_better: bool = True,
                   level: float = 0.9, n_resamples: int = 10000, seed: int = 0, margin: float = 0.05,
                   min_sequences: int = MIN_SEQUENCES, label_a: str = "A", label_b: str = "B") -> dict:
    """All statistics of one metric from per-sequence values ``{sequence: value}`` of A and B (same keys
    expected; sequences where either value is missing, ``None`` or not finite are left out and listed as
    ``undefined``).  ``per_sequence`` is sorted by ``A - B``, the best for A first."""
    names = [n for n in a if n in b]
    pairs, undefined = [], []
    for name in names:
        va, vb = a[name], b[name]
        if va is None or vb is None or not (np.isfinite(float(va)) and np.isfinite(float(vb))):
            undefined.append(name)
        else:
            pairs.append((name, float(va), float(vb)))
    out: dict = {"n": len(pairs), "undefined": undefined, "higher_is_better": higher_is_better}
    if not pairs:
        out.update(mean_a=None, mean_b=None, diff=None, verdict="no sequence with a defined value", per_sequence=[])
        return out
    va = np.array([p[1] for p in pairs])
    vb = np.array([p[2] for p in pairs])
    d = va - vb
    boot = paired_bootstrap(d, level=level, n=n_resamples, seed=seed)
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(range(len(pairs)), key=lambda i: (-sign * d[i], pairs[i][0]))
    out.update(
        mean_a=float(va.mean()),
        mean_b=float(vb.mean()),
        diff=boot,
        counts=win_loss(d, margin, higher_is_better),
        verdict=verdict(boot["low"], boot["high"], higher_is_better=higher_is_better, n=len(pairs),
                        min_sequences=min_sequences, label_a=label_a, label_b=label_b),
        per_sequence=[{"sequence": pairs[i][0], "a": pairs[i][1], "b": pairs[i][2], "diff": float(d[i])}
                      for i in order],
    )
    return out


# ---------------------------------------------------------------------------------------------- result sets
def result_sequences(results_dir, tracker: str, dataset, protocol: str | None = None) -> list[str]:
    """The dataset's sequences (in dataset order) that ``results_dir/tracker`` has a result file for."""
    protocol = protocol or R.detect_protocol(results_dir, tracker)
    return [n for n in dataset.names if R.has_result(results_dir, tracker, protocol, n)]


def _vot_tag_values(results_dir, tracker: str, dataset, names: Iterable[str], burnin: int = 10,
                    experiment: str = "baseline") -> dict[str, dict[str, dict[str, float]]]:
    """Per sequence and tag: accuracy and failures on the frames carrying the tag (VOT)."""
    from .scoring import _gt_regions

    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in names:
        seq = dataset[name]
        if not getattr(seq, "tags", None):
            continue
        gt = _gt_regions(seq)
        folder = R.vot_result_path(results_dir, tracker, name, 1, experiment).parent
        runs = []
        for f in sorted(folder.glob(f"{name}_[0-9][0-9][0-9].txt")):
            regions, flags = R.read_vot_run(f, len(gt))
            runs.append({"overlaps": M.vot_overlaps(regions, flags, gt, seq.image_size), "flags": flags})
        if not runs:
            continue
        tags = {t: m for t, m in seq.tags.items() if np.asarray(m, dtype=bool).any()}
        for tag, rec in M.vot_tag_breakdown({name: runs}, {name: tags}, burnin=burnin).items():
            out.setdefault(tag, {})[name] = {"accuracy": rec["accuracy"], "failures": rec["failures"]}
    return out


def compare_scores(scores_a: Mapping, scores_b: Mapping, *, tag_values: tuple[Mapping, Mapping] | None = None,
                   level: float = 0.9, n_resamples: int = 10000, seed: int = 0, margin: float = 0.05,
                   min_sequences: int = MIN_SEQUENCES, label_a: str = "A", label_b: str = "B") -> dict:
    """Compare two outputs of :func:`~gradtrack.evaluation.scoring.score_results` (same protocol, same
    sequences) metric by metric; ``tag_values`` = the per-tag per-sequence values of A and B (VOT)."""
    proto = scores_a["protocol"]
    if scores_b["protocol"] != proto:
        raise ValueError(f"cannot compare a {proto} result set with a {scores_b['protocol']} one")
    pa, pb = scores_a["per_sequence"], scores_b["per_sequence"]
    if set(pa) != set(pb):
        raise SequenceMismatchError(sorted(set(pa) - set(pb)), sorted(set(pb) - set(pa)), label_a, label_b)
    kw = dict(level=level, n_resamples=n_resamples, seed=seed, margin=margin, min_sequences=min_sequences,
              label_a=label_a, label_b=label_b)
    metrics = {}
    for key, label, hib in METRICS[proto]:
        if not any(key in v for v in pa.values()):
            continue
        metrics[key] = {"label": label, **compare_values({n: pa[n].get(key) for n in pa},
                                                         {n: pb[n].get(key) for n in pa}, higher_is_better=hib, **kw)}
    groups: dict[str, dict] = {}
    group_kind = None
    if proto == "ope":
        attrs = sorted({a for v in pa.values() for a in v.get("attributes") or []})
        if attrs:
            group_kind = "attribute"
        for attr in attrs:
            carrying = [n for n in pa if attr in (pa[n].get("attributes") or [])]
            groups[attr] = {"n_sequences": len(carrying), "metrics": {
                key: {"label": metrics[key]["label"],
                      **compare_values({n: pa[n].get(key) for n in carrying}, {n: pb[n].get(key) for n in carrying},
                                       higher_is_better=metrics[key]["higher_is_better"], **kw)}
                for key in metrics}}
    elif proto == "vot" and tag_values is not None:
        ta, tb = tag_values
        tags = sorted(set(ta) | set(tb))
        if tags:
            group_kind = "tag"
        for tag in tags:
            va, vb = ta.get(tag, {}), tb.get(tag, {})
            carrying = [n for n in pa if n in va and n in vb]
            groups[tag] = {"n_sequences": len(carrying), "metrics": {
                key: {"label": label,
                      **compare_values({n: va[n][key] for n in carrying}, {n: vb[n][key] for n in carrying},
                                       higher_is_better=hib, **kw)}
                for key, label, hib in _TAG_METRICS}}
    return {
        "protocol": proto,
        "a": label_a,
        "b": label_b,
        "sequences": list(pa),
        "method": {
            "difference": "A - B per sequence, paired",
            "interval": f"percentile bootstrap over sequences: {n_resamples} resamples with replacement, "
                        f"numpy default_rng(seed={seed}), {level:.0%} interval of the resample means",
            "level": level,
            "n_resamples": n_resamples,
            "seed": seed,
            "verdict": f"'A better than B' only if the interval excludes zero on A's side (likewise B); "
                       f"else 'not distinguishable'; no verdict with fewer than {min_sequences} sequences",
            "margin": margin,
            "win_loss": f"win/loss: the difference favours one side by more than {margin:g} (metric units); "
                        f"else tie",
            "min_sequences": min_sequences,
        },
        "metrics": metrics,
        "group_kind": group_kind,
        "groups": groups,
    }


def _split_set(spec) -> tuple[Path, str]:
    if isinstance(spec, (tuple, list)):
        root, tracker = spec
        return Path(root), str(tracker)
    p = Path(spec)
    return p.parent, p.name


def compare_results(set_a, set_b, dataset, *, sequences: Seq[str] | None = None, intersect: bool = False,
                    level: float = 0.9, n_resamples: int = 10000, seed: int = 0, margin: float = 0.05,
                    min_sequences: int = MIN_SEQUENCES, label_a: str | None = None, label_b: str | None = None,
                    **score_kwargs) -> dict:
    """Score two result sets against ``dataset`` and compare them (see the module docstring).

    A set is a tracker folder written by ``gradtrack eval`` (``RESULTS/<tracker>``) or a pair
    ``(RESULTS, tracker)``.  The sequences compared are ``sequences`` if given (both sets must have all
    of them), else every dataset sequence either set has results for: a sequence only one set has raises
    :class:`SequenceMismatchError` naming them, unless ``intersect`` (then the common ones are used and
    the others listed under ``only_a`` / ``only_b``).  ``score_kwargs`` go to the scoring function of the
    sets' protocol (e.g. ``invalid_frames``)."""
    from .report import _ACCEPTED
    from .scoring import score_results, to_jsonable

    (root_a, trk_a), (root_b, trk_b) = _split_set(set_a), _split_set(set_b)
    for root, trk in ((root_a, trk_a), (root_b, trk_b)):
        if not (root / trk).is_dir():
            raise R.ResultFileError(f"result folder not found: {root / trk}")
    proto_a, proto_b = R.detect_protocol(root_a, trk_a), R.detect_protocol(root_b, trk_b)
    if proto_a != proto_b:
        raise ValueError(f"{root_a / trk_a} holds {proto_a} results but {root_b / trk_b} holds {proto_b} results")
    if label_a is None or label_b is None:
        same = trk_a == trk_b
        label_a = label_a or (str(root_a / trk_a) if same else trk_a)
        label_b = label_b or (str(root_b / trk_b) if same else trk_b)
    have_a = result_sequences(root_a, trk_a, dataset, proto_a)
    have_b = result_sequences(root_b, trk_b, dataset, proto_b)
    if sequences is not None:
        wanted = list(sequences)
        unknown = [n for n in wanted if n not in dataset]
        if unknown:
            raise KeyError(f"unknown sequence(s) {', '.join(unknown)}")
        have_a = [n for n in wanted if n in set(have_a)]
        have_b = [n for n in wanted if n in set(have_b)]
        universe = wanted
    else:
        universe = [n for n in dataset.names if n in set(have_a) | set(have_b)]
    sa, sb = set(have_a), set(have_b)
    only_a = [n for n in universe if n in sa and n not in sb]
    only_b = [n for n in universe if n in sb and n not in sa]
    missing_both = [n for n in universe if n not in sa and n not in sb]
    if (only_a or only_b or missing_both) and not intersect:
        raise SequenceMismatchError(only_a, only_b, label_a, label_b, missing_both)
    common = [n for n in universe if n in sa and n in sb]
    if not common:
        raise R.ResultFileError(f"no sequence has results in both {root_a / trk_a} and {root_b / trk_b}")
    kwargs = {k: v for k, v in score_kwargs.items() if k in _ACCEPTED.get(proto_a, ())}
    scores_a = to_jsonable(score_results(root_a, trk_a, dataset, protocol=proto_a, sequences=common, **kwargs))
    scores_b = to_jsonable(score_results(root_b, trk_b, dataset, protocol=proto_b, sequences=common, **kwargs))
    tag_values = None
    if proto_a == "vot":
        vkw = {k: v for k, v in kwargs.items() if k in ("burnin", "experiment")}
        tag_values = (to_jsonable(_vot_tag_values(root_a, trk_a, dataset, common, **vkw)),
                      to_jsonable(_vot_tag_values(root_b, trk_b, dataset, common, **vkw)))
    out = compare_scores(scores_a, scores_b, tag_values=tag_values, level=level, n_resamples=n_resamples,
                         seed=seed, margin=margin, min_sequences=min_sequences, label_a=label_a, label_b=label_b)
    out.update(
        path_a=str(root_a / trk_a),
        path_b=str(root_b / trk_b),
        intersect=bool(intersect),
        only_a=only_a,
        only_b=only_b,
        missing_both=missing_both,
        conventions=scores_a["conventions"],
        overall_a=scores_a["overall"],
        overall_b=scores_b["overall"],
    )
    return out


# ---------------------------------------------------------------------------------------------- markdown
def _f(v, digits: int = 3, signed: bool = False) -> str:
    if v is None or not np.isfinite(float(v)):
        return "n/a"
    v = float(v)
    if signed and abs(v) < 0.5 * 10.0 ** -digits:
        v = 0.0  # no "-0.000" for a rounding-level difference
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _interval(m: Mapping, digits: int = 3) -> str:
    d = m.get("diff")
    if not d:
        return "n/a"
    return f"{_f(d['mean'], digits, True)} [{_f(d['low'], digits, True)}, {_f(d['high'], digits, True)}]"


def _counts(m: Mapping) -> tuple[str, str]:
    c = m.get("counts")
    if not c:
        return "n/a", "n/a"
    return f"{c['wins']} / {c['losses']} / {c['ties']}", f"{c['positive']} / {c['negative']} / {c['zero']}"


def _row(label: str, m: Mapping, digits: int) -> list[str]:
    wlt, raw = _counts(m)
    return [label, str(m["n"]), _f(m["mean_a"], digits), _f(m["mean_b"], digits), _interval(m, digits), wlt, raw,
            m["verdict"]]


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def markdown_comparison(cmp: Mapping, title: str | None = None) -> str:
    """Markdown for a :func:`compare_results` / :func:`compare_scores` output (tables usable in a README)."""
    a, b = cmp["a"], cmp["b"]
    meth = cmp["method"]
    level = f"{meth['level']:.0%}".replace("%", " %")
    margin = f"{meth['margin']:g}"
    lines = [f"# {title or f'{a} vs {b}'}\n"]
    n = len(cmp["sequences"])
    where = []
    if cmp.get("path_a"):
        where.append(f"A = {a} (`{cmp['path_a']}`), B = {b} (`{cmp['path_b']}`)")
    else:
        where.append(f"A = {a}, B = {b}")
    where.append(f"protocol {cmp['protocol']}, paired over {n} sequence(s)")
    if cmp.get("intersect") and (cmp.get("only_a") or cmp.get("only_b") or cmp.get("missing_both")):
        where.append(f"--intersect: {n} common sequence(s); left out: {len(cmp['only_a'])} only in A, "
                     f"{len(cmp['only_b'])} only in B" + (f", {len(cmp['missing_both'])} in neither"
                                                          if cmp.get("missing_both") else ""))
    lines.append("; ".join(where) + ".\n")
    conv = cmp.get("conventions") or {}
    if cmp["protocol"] == "ope" and conv:
        lines.append(f"Scores per sequence as `gradtrack report`: success AUC over IoU thresholds "
                     f"linspace(0, 1, 21), precision at 20 px, norm. precision {conv.get('norm_prec_score')}; "
                     f"frames without ground truth: {conv.get('invalid_frames')}.\n")
    lines.append(f"A - B per sequence; interval: {level} percentile bootstrap over sequences ({meth['n_resamples']:,} "
                 f"resamples with replacement, seed {meth['seed']}). Verdict: one side is better only if the "
                 f"interval excludes zero on its side, else \"not distinguishable\" (no verdict under "
                 f"{meth['min_sequences']} sequences). W / L / T: sequences where A wins / loses by more than "
                 f"{margin} / ties within {margin}; raw: A - B > 0 / < 0 / = 0.\n")
    digits = 3
    header = ["Metric", "Sequences", f"A ({a})", f"B ({b})", f"A - B [{level} CI]", f"W / L / T (margin {margin})",
              "raw > / < / =", "Verdict"]
    rows = [_row(m["label"] + ("" if m["higher_is_better"] else " (lower is better)"), m, digits)
            for m in cmp["metrics"].values()]
    lines.append(_table(header, rows))
    for key, m in cmp["metrics"].items():
        if m["undefined"]:
            lines.append(f"{m['label']}: {len(m['undefined'])} sequence(s) left out (undefined for A or B): "
                         f"{', '.join(m['undefined'])}.\n")
    lines.append("")
    for key, m in cmp["metrics"].items():
        lines.append(f"**Verdict ({m['label']}): {m['verdict']}** (A - B = {_interval(m)})  ")
    lines.append("")
    if cmp.get("groups"):
        kind = cmp.get("group_kind") or "attribute"
        for key in cmp["metrics"]:
            label = cmp["metrics"][key]["label"]
            rows = [_row(g, grp["metrics"][key], digits) for g, grp in cmp["groups"].items() if key in grp["metrics"]]
            if not rows:
                continue
            lines.append(f"\n## Per {kind}: {label}\n")
            lines.append(_table([kind.capitalize()] + header[1:], rows))
    metrics = list(cmp["metrics"].items())
    if metrics:
        first_key, first = metrics[0]
        lines.append(f"\n## Per sequence (sorted by {first['label']} A - B, best for A first)\n")
        values = {k: {r["sequence"]: r for r in m["per_sequence"]} for k, m in metrics}
        order = [r["sequence"] for r in first["per_sequence"]] + sorted(
            {s for v in values.values() for s in v} - {r["sequence"] for r in first["per_sequence"]})
        hdr = ["Sequence"]
        for _, m in metrics:
            hdr += [f"{m['label']} A", f"{m['label']} B", f"{m['label']} A - B"]
        rows = []
        for s in order:
            row = [s]
            for k, _ in metrics:
                r = values[k].get(s)
                row += [_f(r["a"]), _f(r["b"]), _f(r["diff"], 3, True)] if r else ["n/a"] * 3
            rows.append(row)
        lines.append(_table(hdr, rows))
    return "\n".join(lines)

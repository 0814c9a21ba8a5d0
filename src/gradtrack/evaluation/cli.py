"""``gradtrack eval`` and ``gradtrack report`` (registered into the main parser by :func:`register_cli`).

    gradtrack eval --tracker gradnet --weights w.pt --dataset otb --root data/OTB100 --results results \\
                   [--protocol ope|vot|got10k] [--workers N | --batch N] [--sequences a,b] [--split train|val|test] [--device cpu]
    gradtrack report results [--trackers a,b] [--out reports] [--dataset otb --root data/OTB100]
    gradtrack report [results] --compare A B [--intersect] [--margin 0.05] [--json cmp.json] [--markdown cmp.md]

``eval`` runs the protocol (resumable: sequences with valid result files are skipped), then prints the scores.
``report`` scores result folders against the ground truth and writes plots, Markdown and JSON; without
``--dataset/--root`` it uses the dataset recorded in the first tracker's ``run_info.json``.
``report --compare A B`` compares two result sets (tracker folders ``RESULTS/<tracker>``, or tracker names
inside ``results``) sequence by sequence, with a bootstrap interval (:mod:`gradtrack.evaluation.compare`).
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from ..errors import UsageError

__all__ = ["register_cli", "cmd_eval", "cmd_report", "cmd_compare"]


def _usage_error(msg: str) -> Exception:
    return UsageError(msg)


def parse_overrides(items: list[str]) -> dict:
    """``["fusion=paper", "online_update=false"]`` -> ``{"fusion": "paper", "online_update": False}``."""
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _usage_error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise _usage_error(f"--set {item!r}: value is not valid YAML ({exc})") from None
    return out


def _split_names(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or None


def _dataset_spec(name: str, root: str, split: str | None):
    from gradtrack.data.readers import DATASETS

    from .runner import DatasetSpec

    if name not in DATASETS:
        raise _usage_error(f"unknown dataset {name!r}; available: {', '.join(DATASETS.names())}")
    if not Path(root).expanduser().exists():
        raise _usage_error(f"dataset root not found: {root}")
    kwargs = {}
    if split:
        params = inspect.signature(DATASETS.get(name)).parameters
        key = "subset" if "subset" in params else "split" if "split" in params else None
        if key is None:
            raise _usage_error(f"dataset {name!r} has no train/val split option")
        kwargs[key] = split
    return DatasetSpec(name, str(Path(root).expanduser()), kwargs)


def _open(spec):
    from gradtrack.data.sequence import DatasetError

    try:
        return spec.build()
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        raise _usage_error(f"cannot open dataset {spec.name!r} at {spec.root}: {exc}") from None


def _print_scores(scores: dict, out=None) -> None:
    from .report import _fmt

    out = out or sys.stdout
    o = scores["overall"]
    t, p = scores["tracker"], scores["protocol"]
    if p == "ope":
        c = scores["conventions"]
        print(f"{t} [OPE, {o['n_sequences']} sequences]: success AUC {_fmt(o['success_auc'])}  "
              f"precision@20px {_fmt(o['precision'])}  norm. precision ({c['norm_prec_score']}) "
              f"{_fmt(o['norm_precision'])}  SR@0.5 {_fmt(o['success_rate'])}  fps {_fmt(scores['fps'], 1)}", file=out)
        print(f"  conventions: IoU > thr over linspace(0,1,21) (AUC = curve mean; perfect = 20/21), "
              f"invalid GT frames: {c['invalid_frames']}", file=out)
    elif p == "got10k":
        print(f"{t} [GOT-10k]: AO {_fmt(o['ao'])}  SR0.5 {_fmt(o['sr50'])}  SR0.75 {_fmt(o['sr75'])}  "
              f"fps {_fmt(scores['fps'], 1)}  ({o['n_frames']} frames pooled)", file=out)
    else:
        print(f"{t} [VOT reset-based]: EAO {_fmt(o['eao'])} (interval {o['eao_interval']}, {o['eao_index_base']})  "
              f"accuracy {_fmt(o['accuracy'])}  failures {_fmt(o['failures'], 2)}  "
              f"AR robustness {_fmt(o['ar_robustness'])}  fps {_fmt(scores['fps'], 1)}", file=out)


def cmd_eval(args: argparse.Namespace) -> int:
    from . import results as R
    from .runner import BenchmarkError, ResumeError, TrackerSpec, run_benchmark
    from .scoring import score_results, to_jsonable

    if args.workers < 1:
        raise _usage_error(f"--workers must be >= 1, got {args.workers}")
    if args.batch < 1:
        raise _usage_error(f"--batch must be >= 1, got {args.batch}")
    if args.batch > 1 and args.workers > 1:
        raise _usage_error("--batch N runs N sequences at once in one process; it cannot be combined with --workers > 1")
    results = Path(args.results)
    if results.exists() and not results.is_dir():
        raise _usage_error(f"--results {results} is a file; give a folder (it is created if missing)")
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _usage_error(f"cannot create the results folder {results}: {exc.strerror or exc}") from None
    spec = _dataset_spec(args.dataset, args.root, args.split)
    ds = _open(spec)
    protocol = args.protocol or {"vot": "vot", "got10k": "got10k"}.get(args.dataset, "ope")
    names = _split_names(args.sequences)
    if names:
        unknown = [n for n in names if n not in ds]
        if unknown:
            raise _usage_error(f"unknown sequence(s) {', '.join(unknown)}; {args.dataset} has: "
                               f"{', '.join(ds.names[:10])}{' ...' if len(ds) > 10 else ''}")
    import gradtrack

    known = gradtrack.list_trackers()
    if args.tracker not in known:
        raise _usage_error(f"unknown tracker {args.tracker!r}; available: {', '.join(known)}")
    if args.weights not in (None, "random") and not Path(args.weights).expanduser().exists():
        raise _usage_error(f"weights not found: {args.weights}")
    tracker = TrackerSpec(args.tracker, weights=args.weights, device=args.device, label=args.label,
                          overrides=parse_overrides(args.overrides))
    batch = args.batch
    if batch > 1 and protocol != "ope":
        print(f"gradtrack eval: note: --batch applies to the OPE protocol only; the {protocol} protocol runs one "
              "sequence at a time (--batch 1)", file=sys.stderr)
        batch = 1
    try:
        status = run_benchmark(tracker, spec, args.results, protocol=protocol, workers=args.workers,
                               sequences=names, repetitions=args.repetitions, seed=args.seed,
                               progress=not args.quiet, redo=args.redo, batch=batch)
    except (ResumeError, ValueError) as exc:
        raise _usage_error(str(exc)) from None
    except BenchmarkError as exc:  # one line per failed sequence; the other sequences' results are written
        for line in str(exc).splitlines():
            print(f"gradtrack eval: error: {line}", file=sys.stderr)
        return 2
    ran = sum(v != "skipped" for v in status.values())
    print(f"{tracker.folder}: {ran} sequence(s) run, {len(status) - ran} skipped (valid results) -> "
          f"{Path(args.results) / tracker.folder}")
    if args.zip:
        if protocol != "got10k":
            raise _usage_error("--zip builds a GOT-10k submission; use it with --protocol got10k")
        path = R.got10k_submission_zip(args.results, tracker.folder, args.zip, sequences=names or ds.names)
        print(f"GOT-10k submission: {path}")
    if args.no_score:
        return 0
    if protocol == "got10k" and (args.split == "test" or getattr(ds, "subset", None) == "test"):
        print("GOT-10k test split: no ground truth here, scores come from the evaluation server (use --zip).")
        return 0
    kwargs = {"eao_interval": args.eao_interval} if protocol == "vot" else {}
    scores = score_results(args.results, tracker.folder, ds, protocol=protocol, sequences=names, **kwargs)
    _print_scores(scores)
    if args.json:
        Path(args.json).write_text(json.dumps(to_jsonable(scores), indent=1, allow_nan=False) + "\n")
    return 0


def _recorded_dataset(info_path: Path):
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
        raise _usage_error(f"{info_path} is unreadable or not valid JSON ({exc}); pass --dataset and --root") from None
    ds_info = info.get("dataset") if isinstance(info, dict) else None
    if not isinstance(ds_info, dict) or not ds_info.get("root") or not isinstance(ds_info.get("name"), str):
        return None
    from .runner import DatasetSpec

    return DatasetSpec(ds_info["name"], ds_info["root"], ds_info.get("kwargs") or {})


def _report_dataset(args: argparse.Namespace, info_path: Path):
    if args.dataset and args.root:
        return _dataset_spec(args.dataset, args.root, args.split)
    if args.dataset or args.root:
        raise _usage_error("give both --dataset and --root (or neither, to use the run_info.json of the results)")
    spec = _recorded_dataset(info_path)
    if spec is None:
        raise _usage_error(f"no dataset recorded in {info_path}; pass --dataset and --root for the ground truth")
    return spec


def _result_set(root: Path | None, text: str) -> Path:
    if root is not None and (root / text).is_dir():
        return root / text
    if Path(text).is_dir():
        return Path(text)
    where = f" (neither {root / text} nor {text})" if root is not None else ""
    raise _usage_error(f"result set not found: {text}{where}; give a tracker folder written by `gradtrack eval` "
                       f"(RESULTS/<tracker>) or a tracker name inside RESULTS")


def cmd_compare(args: argparse.Namespace) -> int:
    """``gradtrack report [RESULTS] --compare A B``: paired per-sequence comparison of two result sets."""
    from . import results as R
    from .compare import SequenceMismatchError, compare_results, markdown_comparison
    from .scoring import to_jsonable

    root = Path(args.results) if args.results else None
    if root is not None and not root.is_dir():
        raise _usage_error(f"results folder not found: {root}")
    if args.trackers or args.out:
        raise _usage_error("--trackers and --out make a multi-tracker report; with --compare use --json / --markdown")
    if args.margin < 0:
        raise _usage_error(f"--margin must be >= 0, got {args.margin}")
    path_a, path_b = (_result_set(root, t) for t in args.compare)
    spec = _report_dataset(args, path_a / "run_info.json")
    rec_b = _recorded_dataset(path_b / "run_info.json")
    if not (args.dataset and args.root) and rec_b is not None and rec_b != spec:
        print(f"note: {path_b} records a different dataset ({rec_b.name} at {rec_b.root}, {rec_b.kwargs}); both sets "
              f"are scored against {spec.name} at {spec.root} {spec.kwargs}", file=sys.stderr)
    ds = _open(spec)
    kwargs = {}
    if args.invalid_frames:
        kwargs["invalid_frames"] = args.invalid_frames
    if args.norm_prec_score:
        kwargs["norm_prec_score"] = args.norm_prec_score
    try:
        cmp = compare_results(path_a, path_b, ds, sequences=_split_names(args.sequences), intersect=args.intersect,
                              margin=args.margin, **kwargs)
    except (SequenceMismatchError, R.ResultFileError, KeyError, ValueError) as exc:
        raise _usage_error(str(exc).strip("'\"")) from None
    md = markdown_comparison(cmp, title=args.title)
    print(md)
    if args.intersect and (cmp["only_a"] or cmp["only_b"] or cmp["missing_both"]):
        print(f"note: --intersect: compared on the {len(cmp['sequences'])} common sequence(s); left out "
              f"{len(cmp['only_a'])} only in A, {len(cmp['only_b'])} only in B", file=sys.stderr)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(md)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(to_jsonable(cmp), indent=1, allow_nan=False) + "\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from . import results as R
    from .report import build_report

    if args.compare:
        return cmd_compare(args)
    if args.intersect or args.json or args.markdown:
        raise _usage_error("--intersect, --json and --markdown go with --compare A B")
    if not args.results:
        raise _usage_error("give the RESULTS folder (or --compare A B)")
    root = Path(args.results)
    if not root.is_dir():
        raise _usage_error(f"results folder not found: {root}")
    trackers = _split_names(args.trackers) or R.list_trackers(root)
    if not trackers:
        raise _usage_error(f"no tracker folders in {root}")
    missing = [t for t in trackers if not (root / t).is_dir()]
    if missing:
        raise _usage_error(f"no results for {', '.join(missing)} in {root}; found: {', '.join(R.list_trackers(root))}")
    spec = _report_dataset(args, root / trackers[0] / "run_info.json")
    ds = _open(spec)
    out = Path(args.out) if args.out else root.parent / "reports" / root.name
    kwargs = {}
    if args.invalid_frames:
        kwargs["invalid_frames"] = args.invalid_frames
    if args.norm_prec_score:
        kwargs["norm_prec_score"] = args.norm_prec_score
    if args.eao_interval:
        kwargs["eao_interval"] = args.eao_interval
    try:
        rep = build_report(root, ds, out, trackers=trackers, sequences=_split_names(args.sequences),
                           title=args.title or spec.name, **kwargs)
    except R.ResultFileError as exc:
        raise _usage_error(str(exc)) from None
    if rep["skipped"]:
        print(f"note: compared on the {len(rep['sequences'])} sequence(s) with results for every tracker; "
              f"{len(rep['skipped'])} without: {', '.join(rep['skipped'][:10])}{' ...' if len(rep['skipped']) > 10 else ''}")
    for t, s in rep["scores"].items():
        _print_scores(s)
    print(f"report: {out} ({', '.join(p.name for p in rep['files'])})")
    return 0


def register_cli(subparsers) -> None:
    """Add ``eval`` and ``report`` to the main parser's subparsers (each sets ``func(args) -> int``)."""
    p = subparsers.add_parser(
        "eval", help="run a benchmark protocol (OPE, VOT reset-based, GOT-10k) and print the scores",
        description="Run TRACKER on a dataset and write results under RESULTS/<tracker>/ (0-based x,y,w,h boxes, "
                    "per-frame times). Resumable: sequences with valid result files are skipped.")
    p.add_argument("--tracker", required=True, help="tracker name (see `gradtrack list`)")
    p.add_argument("--weights", default=None, metavar="PATH|random", help="checkpoint (default: the shipped weights)")
    p.add_argument("--dataset", required=True, help="dataset reader: otb, tc128, uav123, uav20l, dtb70, uavdt, lasot, "
                                                    "got10k, vot, tld, folder")
    p.add_argument("--root", required=True, metavar="PATH", help="dataset root folder")
    p.add_argument("--results", required=True, metavar="DIR", help="results folder")
    p.add_argument("--protocol", choices=("ope", "vot", "got10k"), default=None,
                   help="default: vot for --dataset vot, got10k for got10k, else ope")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="parallel worker processes (default 1)")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="OPE: track N sequences at once with the batched tracker (one backbone forward per step; "
                        "same results as N=1; default 1)")
    p.add_argument("--sequences", default=None, metavar="A,B", help="only these sequences")
    p.add_argument("--split", default=None, choices=("train", "val", "test"), help="dataset split / subset")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--label", default=None, help="results sub-folder name (default: the tracker name)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="tracker setting (repeatable; VALUE is read as YAML), e.g. --set fusion=paper "
                        "--set online_update=false; use --label to keep such runs apart")
    p.add_argument("--repetitions", type=int, default=None, help="override the protocol's repetitions")
    p.add_argument("--seed", type=int, default=0, help="seed of repetition 1 (repetition r uses seed + r - 1)")
    p.add_argument("--eao-interval", default="vot2016", choices=("vot2016", "vot2017", "vot2018", "vot2019"),
                   help="EAO interval for VOT scores (default vot2016)")
    p.add_argument("--zip", default=None, metavar="FILE.zip", help="GOT-10k: also write a submission zip")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the scores as JSON")
    p.add_argument("--no-score", action="store_true", help="only run, do not score")
    p.add_argument("--redo", action="store_true",
                   help="replace valid results made with other settings (tracker, weights, --set, seed); "
                        "without it such a folder is refused")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser(
        "report", help="compare trackers' result folders: plots (PNG/SVG), Markdown table, JSON summary",
        description="Score every tracker folder in RESULTS (or --trackers) against the ground truth and write "
                    "success/precision plots, report.md and summary.json.  With --compare A B: paired "
                    "per-sequence differences A - B of two result sets, a 90 %% percentile bootstrap interval over "
                    "sequences (10,000 resamples, seed 0), wins/losses per sequence, per attribute/tag, a verdict; "
                    "Markdown on stdout.")
    p.add_argument("results", metavar="RESULTS", nargs="?", default=None,
                   help="results folder (holding one folder per tracker); optional with --compare")
    p.add_argument("--trackers", default=None, metavar="A,B", help="only these trackers (default: all folders)")
    p.add_argument("--out", default=None, metavar="DIR", help="report folder (default: RESULTS/../reports/<name>)")
    p.add_argument("--dataset", default=None, help="dataset reader for the ground truth (default: from run_info.json)")
    p.add_argument("--root", default=None, metavar="PATH", help="dataset root")
    p.add_argument("--split", default=None, choices=("train", "val", "test"), help="dataset split / subset")
    p.add_argument("--sequences", default=None, metavar="A,B", help="only these sequences")
    p.add_argument("--title", default=None, help="title of plots and report")
    p.add_argument("--invalid-frames", default=None, choices=("exclude", "count_as_failure", "count_as_success"),
                   help="OPE: frames without ground truth (default exclude, as got10k)")
    p.add_argument("--norm-prec-score", default=None, choices=("auc_0_0.5", "at_0.2"),
                   help="OPE normalised precision: got10k area over [0, 0.5] (default) or pysot value at 0.2")
    p.add_argument("--eao-interval", default=None, choices=("vot2016", "vot2017", "vot2018", "vot2019"),
                   help="VOT EAO interval (default vot2016)")
    p.add_argument("--compare", nargs=2, default=None, metavar=("A", "B"),
                   help="compare two result sets: tracker folders (RESULTS/<tracker>) or tracker names in RESULTS")
    p.add_argument("--intersect", action="store_true",
                   help="--compare: use the sequences both sets have (default: refuse when they differ)")
    p.add_argument("--margin", type=float, default=0.05,
                   help="--compare: |A - B| above this counts as a win/loss of the sequence (default 0.05)")
    p.add_argument("--json", default=None, metavar="FILE", help="--compare: also write the comparison as JSON")
    p.add_argument("--markdown", default=None, metavar="FILE", help="--compare: also write the Markdown to FILE")
    p.set_defaults(func=cmd_report)

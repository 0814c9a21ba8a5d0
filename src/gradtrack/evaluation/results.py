"""Result files: layout, writing (atomic, full precision), reading and validation (for resuming).

Layout under a results folder ``DIR`` (one sub-folder per tracker label)::

    OPE      DIR/<tracker>/<seq>.txt                       one "x,y,w,h" line per frame
             DIR/<tracker>/times/<seq>_time.txt            one line per frame: seconds
    GOT-10k  DIR/<tracker>/<seq>/<seq>_001.txt ...         one file per repetition (_001, _002, _003)
             DIR/<tracker>/<seq>/<seq>_time.txt            one line per frame, one column per repetition
    VOT      DIR/<tracker>/baseline/<seq>/<seq>_001.txt    VOT result format (see below), one per repetition
             DIR/<tracker>/baseline/<seq>/<seq>_time.txt   one line per frame, one column per repetition
    all      DIR/<tracker>/.fingerprints/<seq>.json        tracker, weights hash and settings of the results

**Boxes in gradtrack result files are 0-based** (``x, y`` of the top-left corner in gradtrack's continuous
pixel coordinates), unlike OTB's 1-based MATLAB ground-truth files.  Use :func:`export_one_based` to write
a 1-based copy for MATLAB-era toolkits.  Values are written with ``repr`` (shortest exact round trip);
absent boxes are ``nan,nan,nan,nan``.

VOT result format: one line per frame; ``1`` = (re-)initialisation, ``2`` = failure, ``0`` = skipped
(not tracked, after a failure), otherwise the region (``x,y,w,h`` or 8 polygon values).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .metrics import VOT_FAILURE, VOT_INIT, VOT_REGION, VOT_SKIPPED

__all__ = [
    "ResultFileError",
    "ope_result_path",
    "ope_time_path",
    "got10k_result_path",
    "got10k_time_path",
    "vot_result_path",
    "vot_time_path",
    "write_boxes",
    "read_boxes",
    "write_times",
    "read_times",
    "write_vot_run",
    "read_vot_run",
    "box_file_problem",
    "valid_box_file",
    "vot_file_problem",
    "valid_vot_file",
    "fingerprint_path",
    "write_fingerprint",
    "read_fingerprint",
    "export_one_based",
    "got10k_submission_zip",
    "detect_protocol",
    "list_trackers",
]


class ResultFileError(ValueError):
    """A result file is missing, truncated or unparseable."""


# ----------------------------------------------------------------------------------------------- paths
def ope_result_path(root, tracker: str, seq: str) -> Path:
    return Path(root) / tracker / f"{seq}.txt"


def ope_time_path(root, tracker: str, seq: str) -> Path:
    return Path(root) / tracker / "times" / f"{seq}_time.txt"


def got10k_result_path(root, tracker: str, seq: str, rep: int = 1) -> Path:
    return Path(root) / tracker / seq / f"{seq}_{rep:03d}.txt"


def got10k_time_path(root, tracker: str, seq: str) -> Path:
    return Path(root) / tracker / seq / f"{seq}_time.txt"


def vot_result_path(root, tracker: str, seq: str, rep: int = 1, experiment: str = "baseline") -> Path:
    return Path(root) / tracker / experiment / seq / f"{seq}_{rep:03d}.txt"


def vot_time_path(root, tracker: str, seq: str, experiment: str = "baseline") -> Path:
    return Path(root) / tracker / experiment / seq / f"{seq}_time.txt"


# ----------------------------------------------------------------------------------------------- writing
def _atomic_write(path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path`` and rename it: an interrupted run never leaves a
    half-written result that would look valid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fmt(v: float) -> str:
    v = float(v)
    return "nan" if np.isnan(v) else repr(v)


def write_boxes(path, boxes) -> None:
    """One ``x,y,w,h`` line per frame, 0-based, full float precision."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    _atomic_write(path, "".join(",".join(_fmt(v) for v in row) + "\n" for row in b))


def _split(line: str) -> list[str]:
    return [t for t in line.replace("\t", ",").replace(" ", ",").replace(";", ",").split(",") if t]


def read_boxes(path, n_frames: int | None = None) -> np.ndarray:
    """Read a box file (comma, tab or space separated).  Raises :class:`ResultFileError` if a line does not
    hold 4 numbers, or if ``n_frames`` is given and the number of lines differs."""
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"result file not found: {path}")
    rows = []
    for k, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        parts = _split(line)
        try:
            vals = [float(t) for t in parts]
        except ValueError:
            raise ResultFileError(f"{path}:{k + 1}: cannot parse {line!r}") from None
        if len(vals) != 4:
            raise ResultFileError(f"{path}:{k + 1}: expected 4 values x,y,w,h, got {len(vals)}")
        rows.append(vals)
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    if n_frames is not None and len(arr) != n_frames:
        raise ResultFileError(f"{path}: {len(arr)} lines for a sequence of {n_frames} frames")
    return arr


def write_times(path, times) -> None:
    """Per-frame seconds: ``N`` values (one per line) or ``N x R`` (one column per repetition)."""
    t = np.asarray(times, dtype=np.float64)
    t = t.reshape(-1, 1) if t.ndim == 1 else t
    _atomic_write(path, "".join(",".join(_fmt(v) for v in row) + "\n" for row in t))


def read_times(path) -> np.ndarray:
    """Per-frame seconds as ``N`` (one column) or ``N x R``; raises :class:`ResultFileError`."""
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"time file not found: {path}")
    rows = []
    for k, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rows.append([float(t) for t in _split(line)])
        except ValueError:
            raise ResultFileError(f"{path}:{k + 1}: cannot parse {line!r}") from None
    if not rows:
        return np.zeros(0)
    if len({len(r) for r in rows}) != 1:
        raise ResultFileError(f"{path}: rows have different numbers of columns")
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, 0] if arr.shape[1] == 1 else arr


def write_vot_run(path, regions, flags) -> None:
    """VOT result format: label ``1``/``2``/``0`` for special frames, else the region's values."""
    flags = np.asarray(flags).reshape(-1)
    lines = []
    for i, f in enumerate(flags):
        if f == VOT_REGION:
            r = np.asarray(regions[i], dtype=np.float64).reshape(-1)
            lines.append(",".join(_fmt(v) for v in r))
        elif f in (VOT_INIT, VOT_FAILURE, VOT_SKIPPED):
            lines.append(str(int(f)))
        else:
            raise ValueError(f"frame {i}: unknown VOT flag {f}")
    _atomic_write(path, "".join(line + "\n" for line in lines))


def read_vot_run(path, n_frames: int | None = None) -> tuple[list, np.ndarray]:
    """Read a VOT result file: ``(regions, flags)``; ``regions[i]`` is ``None`` for special frames."""
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"result file not found: {path}")
    regions, flags = [], []
    for k, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            vals = [float(t) for t in _split(line)]
        except ValueError:
            raise ResultFileError(f"{path}:{k + 1}: cannot parse {line!r}") from None
        if len(vals) == 1:
            if vals[0] not in (VOT_INIT, VOT_FAILURE, VOT_SKIPPED):
                raise ResultFileError(f"{path}:{k + 1}: unknown special label {vals[0]}")
            flags.append(int(vals[0]))
            regions.append(None)
        elif len(vals) == 4 or (len(vals) >= 6 and len(vals) % 2 == 0):
            flags.append(VOT_REGION)
            regions.append(np.asarray(vals, dtype=np.float64))
        else:
            raise ResultFileError(f"{path}:{k + 1}: expected a label, 4 or 2k >= 6 values, got {len(vals)}")
    if n_frames is not None and len(flags) != n_frames:
        raise ResultFileError(f"{path}: {len(flags)} lines for a sequence of {n_frames} frames")
    return regions, np.asarray(flags, dtype=np.int64)


def box_file_problem(path, n_frames: int) -> str | None:
    """Why ``path`` is not a complete result of ``n_frames`` frames (missing, unparseable, wrong number of
    lines, or no finite box of positive size in frame 0, which the runner always writes as the initial box:
    an all-NaN file is not a result), or ``None`` when it is one."""
    try:
        b = read_boxes(path, n_frames)
    except ResultFileError as exc:
        return str(exc)
    if n_frames and not (np.isfinite(b[0]).all() and (b[0, 2:] > 0).all()):
        return f"{path}: frame 0 holds {b[0].tolist()}, not the initial box (NaN or empty)"
    return None


def valid_box_file(path, n_frames: int) -> bool:
    """True when :func:`box_file_problem` finds nothing wrong (a resumable run skips the file)."""
    return box_file_problem(path, n_frames) is None


def vot_file_problem(path, n_frames: int) -> str | None:
    """Like :func:`box_file_problem` for a VOT result file: frame 0 must be the initialisation label ``1``."""
    try:
        _, flags = read_vot_run(path, n_frames)
    except ResultFileError as exc:
        return str(exc)
    if not len(flags) or flags[0] != VOT_INIT:
        return f"{path}: does not start with the initialisation label {VOT_INIT}"
    return None


def valid_vot_file(path, n_frames: int) -> bool:
    return vot_file_problem(path, n_frames) is None


# ----------------------------------------------------------------------------------------------- fingerprints
def fingerprint_path(root, tracker: str, seq: str) -> Path:
    """``DIR/<tracker>/.fingerprints/<seq>.json``: the settings that made a sequence's results (written by the
    runner before the result files, so a result is never newer than its fingerprint)."""
    return Path(root) / tracker / ".fingerprints" / f"{seq}.json"


def write_fingerprint(root, tracker: str, seq: str, fingerprint: dict) -> None:
    _atomic_write(fingerprint_path(root, tracker, seq), json.dumps(fingerprint, sort_keys=True, default=str) + "\n")


def read_fingerprint(root, tracker: str, seq: str) -> dict | None:
    """The stored fingerprint, or ``None`` if there is none or it cannot be read (both mean: unknown settings)."""
    try:
        fp = json.loads(fingerprint_path(root, tracker, seq).read_text())
    except (OSError, ValueError):
        return None
    return fp if isinstance(fp, dict) else None


# ----------------------------------------------------------------------------------------------- export
def export_one_based(src_dir, dst_dir) -> list[Path]:
    """Copy an OPE tracker folder (``DIR/<tracker>``) with every box shifted to 1-based coordinates
    (``x + 1, y + 1``), e.g. for the OTB MATLAB toolkit.  Time files are copied unchanged.  Returns the
    written box files."""
    src, dst = Path(src_dir), Path(dst_dir)
    written = []
    for f in sorted(src.glob("*.txt")):
        b = read_boxes(f)
        b[:, :2] += 1.0
        write_boxes(dst / f.name, b)
        written.append(dst / f.name)
    for f in sorted((src / "times").glob("*_time.txt")):
        write_times(dst / "times" / f.name, read_times(f))
    return written


def got10k_submission_zip(root, tracker: str, out_zip, sequences=None) -> Path:
    """Zip ``DIR/<tracker>/<seq>/{<seq>_NNN.txt, <seq>_time.txt}`` for the GOT-10k evaluation server (the
    archive holds the ``<seq>/`` folders at its top level, as the got10k toolkit's ``report`` makes it).
    Every sequence (all of ``<tracker>/`` or ``sequences``) must have a valid ``_001`` file."""
    import zipfile

    base = Path(root) / tracker
    names = list(sequences) if sequences is not None else sorted(
        p.name for p in base.iterdir() if p.is_dir() and p.name != "times" and not p.name.startswith("."))
    if not names:
        raise ResultFileError(f"no GOT-10k sequence folders under {base}")
    out = Path(out_zip)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            files = sorted((base / name).glob(f"{name}_[0-9][0-9][0-9].txt"))
            if not files:
                raise ResultFileError(f"no result files {base / name}/{name}_001.txt")
            for f in files:
                read_boxes(f)  # parse check
                zf.write(f, f"{name}/{f.name}")
            t = base / name / f"{name}_time.txt"
            if t.is_file():
                zf.write(t, f"{name}/{t.name}")
    return out


# ----------------------------------------------------------------------------------------------- discovery
def detect_protocol(root, tracker: str) -> str:
    """``"vot"`` if ``DIR/<tracker>/baseline`` exists, ``"got10k"`` if sequence sub-folders with
    ``<seq>_001.txt`` exist, else ``"ope"``."""
    d = Path(root) / tracker
    if (d / "baseline").is_dir():
        return "vot"
    for sub in d.iterdir() if d.is_dir() else ():
        if sub.is_dir() and sub.name not in ("times", ".fingerprints") and (sub / f"{sub.name}_001.txt").is_file():
            return "got10k"
    return "ope"


def list_trackers(root) -> list[str]:
    """Tracker folders under a results folder (sorted)."""
    r = Path(root)
    if not r.is_dir():
        raise ResultFileError(f"results folder not found: {r}")
    return sorted(p.name for p in r.iterdir() if p.is_dir() and not p.name.startswith("."))


def has_result(results_dir, tracker: str, protocol: str, seq: str) -> bool:
    """Whether ``tracker`` has a result file for ``seq`` under ``results_dir`` (``protocol``: ope, got10k, vot)."""
    if protocol == "ope":
        return ope_result_path(results_dir, tracker, seq).is_file()
    if protocol == "got10k":
        return got10k_result_path(results_dir, tracker, seq).is_file()
    return vot_result_path(results_dir, tracker, seq).is_file()

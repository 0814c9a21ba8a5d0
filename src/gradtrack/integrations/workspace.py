"""Write a VOT toolkit workspace (vot-toolkit 0.9) over local sequences, ready for ``vot evaluate`` offline.

``write_workspace(DIR, tracker, SRC)`` (``gradtrack vot-workspace DIR --tracker NAME --sequences SRC``) writes::

    DIR/config.yaml              stack: <the stack>, registry: [./trackers.ini]
    DIR/gradtrack_baseline.yaml  the local stack (no dataset URL, so nothing is downloaded)
    DIR/trackers.ini             [gradtrack_NAME] protocol = trax, command = <abs python> -m gradtrack vot-client ...
    DIR/sequences/list.txt       one sequence per line
    DIR/sequences/<seq>/sequence       channels.color=color/%08d.<ext>, fps, width, height, length
    DIR/sequences/<seq>/color/00000001.<ext> ...  symlinks to the source frames
    DIR/sequences/<seq>/groundtruth.txt (+ *.tag / *.label / *.value of a VOT source)

``SRC`` is a VOT-layout root (``list.txt`` or folders with a ``sequence`` file; read by
:class:`gradtrack.data.readers.VOTDataset`) or gradtrack's folder layout (``groundtruth.txt`` + images or a
video per folder; :class:`gradtrack.data.readers.FolderDataset`).  Frames are not copied: image files are
symlinked (absolute targets) when all frames of a sequence share one extension; a video (or a folder of
mixed extensions) is decoded once to lossless PNG, so the toolkit and gradtrack see the same pixels.  A VOT
source's ``groundtruth.txt`` and tag files are symlinked as they are (polygons and masks kept); a folder
source's boxes are written as 0-based ``x,y,w,h`` with ``0`` for frames without a target (the VOT
convention).  Folder-layout names with ``/`` become ``_``-joined names.

Stacks (``stack=``): ``None`` / ``"baseline"`` writes the local supervised stack (VOT2017-style baseline:
reset-based, ``skip_initialize: 5``, the AR analysis with ``sensitivity: 30`` and the failure count; its
experiment type is :class:`gradtrack.integrations.vot_experiment.Supervised`, the toolkit's supervised
experiment with a fix for vot-toolkit 0.9.0, whose own ``type: supervised`` cannot run single-object TraX
trackers);
``"unsupervised"`` a one-pass stack with the average-overlap analysis; a path to a ``.yaml`` file is
copied in; any other name is passed to the toolkit as an integrated stack (``vot2018/shortterm`` ...).  An
integrated stack names a dataset URL, but the toolkit downloads only when ``sequences/list.txt`` is missing,
so it stays offline here (its supervised experiments hit the 0.9.0 bug above; its unsupervised ones run).
"""
from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gradtrack.errors import UsageError

__all__ = ["LOCAL_STACKS", "detect_layout", "write_workspace", "tracker_identifier", "stack_yaml"]

#: local stack templates written into the workspace (no dataset URL: nothing is downloaded)
LOCAL_STACKS = ("baseline", "unsupervised")


def tracker_identifier(tracker: str) -> str:
    """The ``trackers.ini`` section of a gradtrack tracker: ``gradtrack_<name>``."""
    ident = f"gradtrack_{tracker}"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", ident):
        raise UsageError(f"tracker name {tracker!r} cannot be a VOT toolkit identifier (letters, digits, _ and - only)")
    return ident


def stack_yaml(kind: str = "baseline", *, repetitions: int = 15, skip_initialize: int = 5, burnin: int = 10,
               sensitivity: float = 30.0) -> str:
    """The text of a local stack file (see the module docstring)."""
    if kind == "baseline":
        return (
            "title: gradtrack local VOT baseline (supervised, reset-based)\n"
            "url: https://www.votchallenge.net/\n"
            "experiments:\n"
            "  baseline:\n"
            "    type: gradtrack.integrations.vot_experiment.Supervised\n"
            f"    repetitions: {int(repetitions)}\n"
            f"    skip_initialize: {int(skip_initialize)}\n"
            "    analyses:\n"
            "      - type: supervised_average_ar\n"
            f"        sensitivity: {float(sensitivity):g}\n"
            f"        burnin: {int(burnin)}\n"
            "      - type: cumulative_failures\n"
        )
    if kind == "unsupervised":
        return (
            "title: gradtrack local one-pass stack (unsupervised)\n"
            "url: https://www.votchallenge.net/\n"
            "experiments:\n"
            "  baseline:\n"
            "    type: unsupervised\n"
            f"    repetitions: 1\n"
            "    analyses:\n"
            "      - type: average_accuracy\n"
            "        name: accuracy\n"
            "        burnin: 1\n"
        )
    raise UsageError(f"unknown local stack {kind!r}; local stacks: {', '.join(LOCAL_STACKS)}")


def detect_layout(root: Path) -> str:
    """``"vot"`` when ``root`` has ``list.txt`` or a sub-folder with a VOT ``sequence`` file, else ``"folder"``."""
    if (root / "list.txt").is_file():
        return "vot"
    try:
        if any((p / "sequence").is_file() and (p / "groundtruth.txt").is_file() for p in root.iterdir() if p.is_dir()):
            return "vot"
    except OSError as exc:
        raise UsageError(f"cannot list {root}: {exc.strerror or exc}") from None
    return "folder"


def _open_dataset(root: Path, layout: str):
    from gradtrack.data.readers import FolderDataset, VOTDataset
    from gradtrack.data.sequence import DatasetError

    if layout == "auto":
        layout = detect_layout(root)
    try:
        if layout == "vot":
            return VOTDataset(root), "vot"
        if layout == "folder":
            return FolderDataset(root), "folder"
    except DatasetError as exc:
        raise UsageError(str(exc)) from None
    raise UsageError(f"layout must be auto, vot or folder, got {layout!r}")


def _flat_name(name: str) -> str:
    flat = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.replace("/", "_")).strip("_.")
    if not flat:
        raise UsageError(f"sequence name {name!r} gives an empty workspace name")
    return flat


def _link_or_decode(seq, dest: Path) -> tuple[str, bool]:
    """Fill ``dest`` (``.../color``) with the sequence's frames; returns the extension used (``.jpg``...) and
    whether the frames are symlinks (else decoded PNG files)."""
    import cv2

    dest.mkdir(parents=True, exist_ok=True)
    paths = getattr(seq.frames, "paths", None)
    if paths:
        exts = {Path(p).suffix for p in paths}
        if len(exts) == 1:
            ext = exts.pop()
            for i, p in enumerate(paths):
                link = dest / f"{i + 1:08d}{ext}"
                os.symlink(os.path.abspath(os.path.realpath(p)), link)
            return ext, True
    for i in range(len(seq)):  # a video, or mixed extensions: decode once to lossless PNG
        frame = seq.frames[i]
        out = dest / f"{i + 1:08d}.png"
        if not cv2.imwrite(str(out), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cannot write {out}")
    return ".png", False


def _write_groundtruth(seq, path: Path) -> None:
    lines = []
    for b in np.asarray(seq.boxes, dtype=np.float64):
        lines.append("0" if not np.isfinite(b).all() else ",".join(f"{v:.4f}" for v in b))
    path.write_text("\n".join(lines) + "\n")


def _ini_escape(value: str) -> str:
    return value.replace("%", "%%")  # configparser interpolation


def _write_trackers_ini(path: Path, ident: str, entry: dict[str, str]) -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.optionxform = str  # keep env_ key case
    if path.is_file():
        cfg.read(path, encoding="utf-8")
    if cfg.has_section(ident):
        cfg.remove_section(ident)
    cfg.add_section(ident)
    for k, v in entry.items():
        cfg.set(ident, k, _ini_escape(v))
    with open(path, "w", encoding="utf-8") as fh:
        cfg.write(fh)


def client_command(tracker: str, *, python: str | None = None, weights: str | None = None, device: str = "cpu",
                   threads: int = 1) -> str:
    """The command line the toolkit starts: ``<abs python> -m gradtrack vot-client --tracker NAME ...``."""
    exe = os.path.abspath(python or sys.executable)
    argv = [exe, "-m", "gradtrack", "vot-client", "--tracker", tracker, "--device", device, "--threads", str(int(threads))]
    if weights is not None:
        argv += ["--weights", weights if weights == "random" else os.path.abspath(weights)]
    return " ".join(shlex.quote(a) for a in argv)


def write_workspace(directory, tracker: str, sources, *, layout: str = "auto", stack: str | None = None,
                    timeout: int = 120, threads: int = 1, weights: str | None = None, device: str = "cpu",
                    repetitions: int = 15, sequences: list[str] | None = None, python: str | None = None,
                    force: bool = False) -> dict[str, Any]:
    """Write the workspace (see the module docstring); returns a summary dict (paths, sequences, identifier)."""
    directory = Path(directory).absolute()
    src = Path(sources).absolute()
    if not src.is_dir():
        raise UsageError(f"--sequences {sources}: not a folder")
    if timeout < 1:
        raise UsageError(f"timeout must be >= 1 second, got {timeout}")
    if threads < 1:
        raise UsageError(f"threads must be >= 1, got {threads}")
    if repetitions < 1:
        raise UsageError(f"repetitions must be >= 1, got {repetitions}")
    from gradtrack import list_trackers

    if tracker not in list_trackers():
        raise UsageError(f"unknown tracker {tracker!r}; available: {', '.join(list_trackers())}")
    ident = tracker_identifier(tracker)
    if weights not in (None, "random") and not Path(weights).is_file():
        raise UsageError(f"--weights {weights}: no such file")
    seq_dir = directory / "sequences"
    if (directory / "config.yaml").exists() or seq_dir.exists():
        if not force:
            raise UsageError(f"{directory} already holds a workspace (config.yaml or sequences/); pass --force to rewrite it")
        if seq_dir.exists():
            shutil.rmtree(seq_dir)
    dataset, layout = _open_dataset(src, layout)
    names = list(dataset.names)
    if sequences:
        unknown = [n for n in sequences if n not in dataset]
        if unknown:
            raise UsageError(f"--only: unknown sequence(s) {', '.join(unknown)}; {src} has {', '.join(names[:8])}"
                             + (" ..." if len(names) > 8 else ""))
        names = list(sequences)
    flat = [_flat_name(n) for n in names]
    if len(set(flat)) != len(flat):
        dup = sorted({f for f in flat if flat.count(f) > 1})
        raise UsageError(f"sequence names collide in the workspace after flattening: {', '.join(dup)}")

    directory.mkdir(parents=True, exist_ok=True)
    seq_dir.mkdir()
    (directory / "results").mkdir(exist_ok=True)
    decoded = 0
    for name, out_name in zip(names, flat):
        seq = dataset[name]
        if not np.isfinite(np.asarray(seq.boxes[0], dtype=np.float64)).all():
            raise UsageError(f"sequence {name!r}: frame 1 has no ground truth; the VOT toolkit initialises there")
        out = seq_dir / out_name
        out.mkdir()
        ext, linked = _link_or_decode(seq, out / "color")
        decoded += not linked
        w, h = seq.image_size
        fps = seq.frames.fps or 30
        if layout == "vot":
            folder = dataset.root / name
            for f in sorted(folder.iterdir()):
                if f.name == "groundtruth.txt" or f.suffix in (".tag", ".label", ".value"):
                    os.symlink(os.path.realpath(f), out / f.name)
        else:
            _write_groundtruth(seq, out / "groundtruth.txt")
        (out / "sequence").write_text(
            f"channels.color=color/%08d{ext}\nfps={int(round(float(fps)))}\nwidth={int(w)}\nheight={int(h)}\n"
            f"length={len(seq)}\nname={out_name}\n")
    (seq_dir / "list.txt").write_text("\n".join(flat) + "\n")

    # the stack
    if stack is None or stack in LOCAL_STACKS:
        kind = stack or "baseline"
        stack_file = directory / f"gradtrack_{kind}.yaml"
        stack_file.write_text(stack_yaml(kind, repetitions=repetitions))
        stack_ref = stack_file.name
    elif stack.endswith((".yaml", ".yml")) and Path(stack).is_file():
        stack_file = directory / Path(stack).name
        if Path(stack).resolve() != stack_file.resolve():
            shutil.copyfile(stack, stack_file)
        stack_ref = stack_file.name
    elif stack.endswith((".yaml", ".yml")):
        raise UsageError(f"--stack {stack}: no such file")
    else:
        stack_ref = stack  # an integrated toolkit stack; the toolkit checks the name when it loads the workspace
    (directory / "config.yaml").write_text(f"stack: {stack_ref}\nregistry:\n- ./trackers.ini\nsequences: sequences\n")

    entry = {
        "label": f"gradtrack {tracker}",
        "protocol": "trax",
        "command": client_command(tracker, python=python, weights=weights, device=device, threads=threads),
        "timeout": str(int(timeout)),
        "env_GRADTRACK_THREADS": str(int(threads)),
        "env_OMP_NUM_THREADS": str(int(threads)),
        "env_MKL_NUM_THREADS": str(int(threads)),
        "env_PYTHONUNBUFFERED": "1",
    }
    _write_trackers_ini(directory / "trackers.ini", ident, entry)
    return {"workspace": str(directory), "identifier": ident, "stack": stack_ref, "layout": layout,
            "sequences": flat, "decoded": int(decoded), "trackers_ini": str(directory / "trackers.ini")}

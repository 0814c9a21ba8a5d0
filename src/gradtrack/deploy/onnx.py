"""ONNX export of the trackers' networks and the ONNX Runtime backend that runs them.

Graphs (inputs are float32 RGB in [0, 255], NCHW, like the torch models'; the search batch ``S`` -- the
scales -- is a dynamic axis, spatial sizes are fixed by the model's geometry)

``siamfc``, ``siamfc_effnet``
    ``template.onnx``: ``z`` (1 x 3 x 127 x 127) -> ``zf``, the template feature (the correlation kernel).
    ``search.onnx``: ``x`` (S x 3 x 255 x 255) and ``zf`` -> ``response`` (S x 1 x n x n): backbone, neck,
    the centre crop of ``zf``, cross-correlation (a Conv whose weight is the ``zf`` input) and the adjust.
``gradnet``
    ``f2.onnx`` (z -> f2, the template branch's stride-8 feature), ``template_siamfc.onnx`` (z -> the
    plain SiamFC template of the "official" ensemble), ``u1.onnx`` (f2 -> template), ``features.onnx``
    (x -> search features), ``score.onnx`` / ``score_siamfc.onnx`` (template, features -> response, with
    the GradNet / SiamFC adjust), ``update.onnx`` (f2, g -> U1(f2 + U2(g)), f2 + U2(g)) and
    ``gradient.onnx`` (f2, xf, label, weight -> g = dL/df2, L).  ONNX has no autograd operator in its
    inference opsets, so the gradient is written out by hand (:class:`AnalyticGradient`: the loss
    derivative, the correlation's adjoint and the transposed U1 layers) and checked against torch autograd
    before it is exported; this covers a U1 of Conv2d/BatchNorm2d/ReLU layers without a template centre
    crop (AlexNet, the shipped GradNet).  For any other U1 there is no ``gradient.onnx``, the manifest's
    ``torch_only`` says so, and the backend computes ``g`` with torch autograd on the torch model it keeps.

SiamMLG is not exported (its mask head gathers rows chosen at run time and its update needs autograd as
GradNet's does); :func:`export_onnx` says so.

``manifest.json`` beside the graphs records the tracker, the model and its config, the SHA-256 of the
weights (of the checkpoint file and of the loaded state dict, which is what the backend checks), every
graph's file SHA-256, input/output shapes and parity figures, the opset and the versions of gradtrack,
torch and onnx.  :func:`load_backend` refuses graphs exported from other weights, a changed or corrupt
``.onnx`` file and a manifest of another tracker, each with an error that says how to re-export.

Every graph is checked against PyTorch under ONNX Runtime at export time: ``max |ort - torch| /
(max(torch) - min(torch))`` must be <= ``tol`` (1e-4).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoint import load_model, read_model_config
from ..config import to_dict
from ..models import build_model
from ..models.labels import centered_label

FORMAT = "gradtrack-onnx"
FORMAT_VERSION = 1
OPSET = 17
TOLERANCE = 1e-4
# tracker name -> the model it runs (what `gradtrack export --tracker NAME` accepts)
EXPORTABLE = {"siamfc": "siamfc", "siamfc_effnet": "siamfc", "gradnet": "gradnet", "gradnet_alexnet": "gradnet"}
NOT_EXPORTABLE = {
    "siammlg": "SiamMLG is not exported yet: its mask head gathers the map rows chosen at run time and its online "
               "update needs autograd; use backend='torch'",
}
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
INT8 = "int8"  # manifest "precision" of graphs from gradtrack.deploy.quantize (fp32 where absent)
INSTALL_HINT = "pip install 'gradtrack[onnx]' (onnx, onnxruntime, onnxscript)"


class OnnxExportError(RuntimeError):
    """An export failed, or an exported graph does not match PyTorch within the tolerance."""


class OnnxBackendError(RuntimeError):
    """Exported graphs cannot be used: missing, corrupt, from other weights or of another tracker."""


# ------------------------------------------------------------------------------------------ hashing

def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def state_sha256(model: nn.Module) -> str:
    """SHA-256 of the model's state dict as loaded (names, float32 values): the identity of the weights,
    the same for a fp16 checkpoint file and the fp32 network built from it, and defined for random weights."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu()
        t = t.float() if t.is_floating_point() else t
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def default_onnx_dir(tracker: str, model: nn.Module) -> Path:
    """The cache folder for ``tracker``'s graphs of these weights: ``$XDG_CACHE_HOME/gradtrack/onnx/...``
    (``~/.cache`` when unset; ``GRADTRACK_CACHE`` overrides the ``gradtrack`` folder)."""
    root = os.environ.get("GRADTRACK_CACHE")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gradtrack"
    return base.expanduser() / "onnx" / f"{tracker}-{state_sha256(model)[:16]}"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__}
    for pkg in ("gradtrack", "onnx", "onnxruntime", "onnxscript"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise OnnxBackendError(f"{module} is not installed ({exc}); {INSTALL_HINT}") from None


# --------------------------------------------------------------------------------------------- graphs

class _Fn(nn.Module):
    """A graph's forward: ``fn(model, *inputs)`` (keeps the model as a submodule so it is exported)."""

    def __init__(self, model: nn.Module, fn: Callable):
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(self.model, *inputs)


@dataclass
class GraphSpec:
    name: str
    fn: Callable
    inputs: dict[str, torch.Tensor]  # name -> example input (its shape is recorded)
    outputs: list[str]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)


def _flat_layers(*modules: nn.Module) -> list[nn.Module] | None:
    """The layers of ``modules`` in order if all are Conv2d (zero padding) / eval BatchNorm2d / ReLU /
    Identity (what the analytic gradient handles), else ``None``."""
    out: list[nn.Module] = []
    for mod in modules:
        for m in ([mod] if not isinstance(mod, nn.Sequential) else list(mod)):
            if isinstance(m, nn.Sequential):
                sub = _flat_layers(m)
                if sub is None:
                    return None
                out += sub
            elif isinstance(m, nn.Conv2d) and m.padding_mode == "zeros" and isinstance(m.padding, tuple):
                out.append(m)
            elif isinstance(m, nn.BatchNorm2d) and m.running_var is not None:
                out.append(m)
            elif isinstance(m, (nn.ReLU, nn.Identity)):
                out.append(m)
            else:
                return None
    return out


class AnalyticGradient(nn.Module):
    """GradNet's online gradient ``(dL/df2, L)`` written out as forward operations, so ONNX can express it:
    ``L = mean_b sum(weight * BCE(scale * xcorr(U1(f2), xf_b) + bias, label))``; ``dL/ds = weight *
    (sigmoid(s) - label) / B``; through the correlation ``dL/dT = scale * xcorr(xf^T, dL/ds^T)``; then back
    through U1 layer by layer (ReLU: the mask of its input; eval BN: ``gamma / sqrt(var + eps)``; Conv: the
    transposed convolution with the same weight).  Only for a U1 of Conv2d/BN/ReLU layers (AlexNet) and no
    template centre crop; checked against torch autograd at export."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if model.cfg.siamfc.template_crop:
            raise NotImplementedError("template_crop")
        u1 = (model.u1_init, model.u1_init_neck) if model.u1_init is not None else (model.template.head,
                                                                                   model.template_neck)
        layers = _flat_layers(*u1)
        if layers is None:
            raise NotImplementedError("U1 has layers other than Conv2d/BatchNorm2d/ReLU")
        self.layers = nn.ModuleList(layers)
        self.adjust = model.adjust

    def forward(self, f2: torch.Tensor, xf: torch.Tensor, label: torch.Tensor, weight: torch.Tensor):
        acts, h = [], f2
        for m in self.layers:
            acts.append(h)
            h = torch.relu(h) if isinstance(m, nn.ReLU) else m(h)
        s = self.adjust(F.conv2d(xf, h))  # B x 1 x n x n
        nb = xf.shape[0]
        bce = torch.clamp(s, min=0) - s * label + torch.log1p(torch.exp(-torch.abs(s)))
        loss = (bce * weight).flatten(1).sum(1).mean()
        dr = weight * (torch.sigmoid(s) - label) * (self.adjust.scale / nb)
        g = F.conv2d(xf.transpose(0, 1), dr.transpose(0, 1)).transpose(0, 1)  # 1 x C x h x w
        for m, a in zip(reversed(self.layers), reversed(acts)):
            if isinstance(m, nn.ReLU):
                g = g * (a > 0).to(g.dtype)
            elif isinstance(m, nn.BatchNorm2d):
                gamma = m.weight if m.weight is not None else torch.ones_like(m.running_var)
                g = g * (gamma / torch.sqrt(m.running_var + m.eps))[None, :, None, None]
            elif isinstance(m, nn.Conv2d):
                k, st, pd, dl = m.kernel_size, m.stride, m.padding, m.dilation
                opad = tuple(int(a.shape[2 + i]) - ((int(g.shape[2 + i]) - 1) * st[i] - 2 * pd[i] + dl[i] * (k[i] - 1) + 1)
                             for i in range(2))
                g = F.conv_transpose2d(g, m.weight, None, st, pd, opad, m.groups, dl)
        return g, loss


def analytic_gradient(model: nn.Module, f2, xf, label, weight, tol: float = TOLERANCE) -> AnalyticGradient | None:
    """The :class:`AnalyticGradient` of ``model`` if it applies and agrees with torch autograd (rel <= tol)."""
    try:
        mod = AnalyticGradient(model).eval()
    except NotImplementedError:
        return None
    with torch.no_grad():
        g, loss = mod(f2, xf, label, weight)
    g_ref, loss_ref = model.gradient(f2, xf, label, weight)
    g_ref, loss_ref = g_ref.detach(), loss_ref.detach()
    fig = parity(g_ref.detach().numpy(), g.numpy())
    if not (fig["rel"] <= tol and abs(float(loss) - float(loss_ref)) <= tol * max(1.0, abs(float(loss_ref)))):
        return None
    return mod


def _image(gen: torch.Generator, n: int, side: int) -> torch.Tensor:
    return torch.rand(n, 3, side, side, generator=gen) * 255.0


def graph_specs(tracker: str, model: nn.Module, scales: int = 3) -> list[GraphSpec]:
    """The graphs of ``tracker`` with example inputs (deterministic, realistic: features are the model's
    own outputs on random crops)."""
    if tracker in NOT_EXPORTABLE:
        raise OnnxExportError(NOT_EXPORTABLE[tracker])
    if tracker not in EXPORTABLE:
        raise OnnxExportError(f"no ONNX export for tracker {tracker!r}; exportable: {', '.join(EXPORTABLE)}")
    geom = model.cfg.geometry()
    gen = torch.Generator().manual_seed(0)
    z = _image(gen, 1, geom.exemplar_size)
    x = _image(gen, scales, geom.instance_size)
    batch = {0: "scales"}
    with torch.no_grad():
        if EXPORTABLE[tracker] == "siamfc":
            zf = model.embed(z)
            return [
                GraphSpec("template", lambda m, z: m.embed(z), {"z": z}, ["zf"]),
                GraphSpec("search", lambda m, x, zf: m.score(zf, m.embed(x)), {"x": x, "zf": zf}, ["response"],
                          {"x": batch, "response": batch}),
            ]
        # gradnet
        f2 = model.f2(z)
        tpl = model.u1(f2)
        tpl_sia = model.siamfc.embed(z)
        xf = model.search_features(x)
    geom_label = model.cfg.geometry()
    label, weight = centered_label(geom_label.score_size, geom_label.label_radius)
    xf1 = xf[(scales - 1) // 2:(scales + 1) // 2]
    g, _ = model.gradient(f2, xf1, label, weight)
    g = g.detach()
    grad = analytic_gradient(model, f2, xf1, label, weight)
    extra = [] if grad is None else [
        GraphSpec("gradient", lambda m, f2, xf, lb, w: grad(f2, xf, lb, w), {"f2": f2, "xf": xf1, "label": label,
                  "weight": weight}, ["g", "loss"], {"xf": {0: "samples"}})]
    return extra + [
        GraphSpec("f2", lambda m, z: m.f2(z), {"z": z}, ["f2"]),
        GraphSpec("template_siamfc", lambda m, z: m.siamfc.embed(z), {"z": z}, ["zf"]),
        GraphSpec("u1", lambda m, f2: m.u1(f2), {"f2": f2}, ["template"]),
        GraphSpec("features", lambda m, x: m.search_features(x), {"x": x}, ["xf"], {"x": batch, "xf": batch}),
        GraphSpec("score", lambda m, t, xf: m.score(t, xf), {"template": tpl, "xf": xf}, ["response"],
                  {"xf": batch, "response": batch}),
        GraphSpec("score_siamfc", lambda m, t, xf: m.siamfc.score(t, xf), {"template": tpl_sia, "xf": xf},
                  ["response"], {"xf": batch, "response": batch}),
        GraphSpec("update", lambda m, f2, g: m.update(f2, g), {"f2": f2, "g": g}, ["template", "f2_new"]),
    ]


def _export_one(spec: GraphSpec, model: nn.Module, path: Path, opset: int, exporter: str) -> None:
    mod = _Fn(model, spec.fn).eval()
    args = tuple(spec.inputs.values())
    kw: dict[str, Any] = dict(input_names=list(spec.inputs), output_names=spec.outputs, opset_version=opset)
    if exporter == "torchscript":
        _require("onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(mod, args, str(path), dynamo=False, dynamic_axes=spec.dynamic or None,
                              do_constant_folding=True, **kw)
    elif exporter == "dynamo":
        _require("onnxscript")
        dims = {k: {i: torch.export.Dim.AUTO for i in v} for k, v in spec.dynamic.items() if k in spec.inputs}
        # _Fn.forward takes *inputs: one positional group, hence the outer 1-tuple
        shapes = (tuple(dims.get(k) for k in spec.inputs),) if dims else None
        prog = torch.onnx.export(mod, args, dynamo=True, dynamic_shapes=shapes, verbose=False, **kw)
        prog.save(str(path))
    else:
        raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")


def _session(path: Path | bytes, threads: int | None = None, providers=None, light: bool = False):
    """An onnxruntime session on the graph file ``path`` (or a serialised graph) with gradtrack's options.

    ``light``: basic graph optimisations only, for graphs that run once per sequence (the template): the
    full level's layout transforms keep a second, reordered copy of every convolution weight (the fp32
    AlexNet template graph: 30 MB resident instead of 9 MB) to save a millisecond per call."""
    ort = _require("onnxruntime")
    opts = ort.SessionOptions()
    if light:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    # No memory pattern: with it, onnxruntime plans one block for all of a run's activations and keeps it
    # beside its arena; without, the arena reuses per-tensor chunks.  The int8 SiamFC search graph (one
    # 255 px crop per run): the first tracker's peak resident memory 41 MB instead of 48, the same speed.
    opts.enable_mem_pattern = False
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # No busy-waiting between runs: a tracker calls the graph once a frame with Python work in between, and
    # spinning pool threads would take those cores from it (and from anything else timed beside it).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    graph = path if isinstance(path, bytes) else str(path)
    try:
        return ort.InferenceSession(graph, sess_options=opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types for unreadable/invalid models
        where = "in-memory graph" if isinstance(path, bytes) else path
        raise OnnxBackendError(f"{where}: onnxruntime cannot load this graph ({type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0][:300]}); re-export it with `gradtrack export`") from None


def warm_runtime() -> None:
    """Create and run a one-node session, so that onnxruntime's one-time set-up (kernel registry, thread
    pools: about 40 MB resident) is paid before anything is measured (``gradtrack bench`` charges a tracker
    only what it adds, as it does for torch's convolution libraries)."""
    onnx = _require("onnx")
    h = onnx.helper
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "warm",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 8])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    _session(model.SerializeToString()).run(None, {"x": np.zeros((1, 8), np.float32)})


def parity(expected: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """``max_abs`` difference, the ``range`` of the reference and their ratio ``rel``."""
    if expected.shape != got.shape:
        raise OnnxExportError(f"shape mismatch: torch {expected.shape} vs onnxruntime {got.shape}")
    max_abs = float(np.max(np.abs(expected.astype(np.float64) - got.astype(np.float64)))) if expected.size else 0.0
    rng = float(expected.max() - expected.min()) if expected.size else 0.0
    return {"max_abs": max_abs, "range": rng, "rel": max_abs / rng if rng > 0 else max_abs}


def _as_list(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def export_onnx(tracker: str, model: nn.Module, out_dir: str | Path, *, weights_source: str = "module",
                weights_file: str | Path | None = None, opset: int = OPSET, exporter: str = "torchscript",
                tol: float = TOLERANCE, scales: int = 3, tracker_config: dict | None = None,
                log: Callable[[str], None] | None = None) -> dict:
    """Export ``tracker``'s graphs of ``model`` (eval, CPU) into ``out_dir`` with ``manifest.json``; check
    every graph under ONNX Runtime against PyTorch (``rel <= tol``, else :class:`OnnxExportError`) on the
    example inputs and on a second batch size (the dynamic axis).  Returns the manifest."""
    say = log or (lambda s: None)
    _require("onnxruntime")
    model = model.cpu().eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = graph_specs(tracker, model, scales)
    graphs: dict[str, Any] = {}
    for spec in specs:
        path = out / f"{spec.name}.onnx"
        t0 = time.perf_counter()
        try:
            _export_one(spec, model, path, opset, exporter)
        except OnnxExportError:
            raise
        except Exception as exc:  # noqa: BLE001 - the exporters raise many types
            raise OnnxExportError(f"exporting the {tracker} {spec.name} graph failed: {type(exc).__name__}: "
                                  f"{str(exc).strip()[:400]}") from exc
        t_export = time.perf_counter() - t0
        sess = _session(path, threads=1)
        fig = _check(spec, model, sess, tol, tracker)
        graphs[spec.name] = {
            "file": path.name, "sha256": file_sha256(path),
            "inputs": {k: list(v.shape) for k, v in spec.inputs.items()},
            "outputs": spec.outputs,
            "dynamic": {k: {str(i): n for i, n in v.items()} for k, v in spec.dynamic.items()},
            "parity": fig,
        }
        say(f"  {spec.name:16s} {path.name:22s} max|ort-torch| {fig['max_abs']:.3g}  range {fig['range']:.4g}  "
            f"rel {fig['rel']:.2e} (tol {tol:g})  [{t_export:.1f} s]")
    geom = model.cfg.geometry()
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "tracker": tracker, "model": EXPORTABLE[tracker],
        "model_config": to_dict(model.cfg),
        "geometry": {"exemplar_size": geom.exemplar_size, "instance_size": geom.instance_size,
                     "stride": geom.stride, "score_size": geom.score_size, "label_radius": geom.label_radius},
        "tracker_config": dict(tracker_config or {}),
        "weights": {"source": str(weights_source), "state_sha256": state_sha256(model),
                    "file_sha256": file_sha256(weights_file) if weights_file else None},
        "opset": opset, "exporter": exporter, "tolerance": tol,
        "versions": _versions(),
        "graphs": graphs,
        "torch_only": (["gradient: g = dL/df2 of the online update (torch autograd: ONNX has no autograd operator "
                        "and this U1 is not one the analytic gradient handles)"]
                       if EXPORTABLE[tracker] == "gradnet" and "gradient" not in graphs else []),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _check(spec: GraphSpec, model: nn.Module, sess, tol: float, tracker: str) -> dict[str, float]:
    """Parity of one graph on its example inputs and, where it has a dynamic batch, on one sample."""
    cases = [spec.inputs]
    if spec.dynamic:
        cases.append({k: (v[:1] if k in spec.dynamic else v) for k, v in spec.inputs.items()})
    worst = {"max_abs": 0.0, "range": 0.0, "rel": 0.0}
    for inputs in cases:
        with torch.no_grad():
            ref = [t.float().numpy() for t in _as_list(_Fn(model, spec.fn)(*inputs.values()))]
        got = sess.run(spec.outputs, {k: v.numpy().astype(np.float32) for k, v in inputs.items()})
        for r, o in zip(ref, got):
            fig = parity(r, o)
            if fig["rel"] > worst["rel"]:
                worst = fig
            if not fig["rel"] <= tol:
                raise OnnxExportError(f"the {tracker} {spec.name} graph differs from PyTorch under onnxruntime: max "
                                      f"abs diff {fig['max_abs']:.3g} on a range of {fig['range']:.3g} (rel "
                                      f"{fig['rel']:.2e} > {tol:g})")
    return worst


# ------------------------------------------------------------------------------------------ manifest

def read_manifest(onnx_dir: str | Path) -> dict:
    d = Path(onnx_dir)
    path = d / "manifest.json"
    if not path.is_file():
        raise OnnxBackendError(f"no exported graphs in {d} (no manifest.json); export them with "
                               f"`gradtrack export --tracker NAME --format onnx {d}`")
    try:
        man = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OnnxBackendError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise OnnxBackendError(f"{path}: not a gradtrack ONNX manifest (format != {FORMAT!r})")
    if man.get("version") != FORMAT_VERSION:
        raise OnnxBackendError(f"{path}: manifest version {man.get('version')} is not supported (expected "
                               f"{FORMAT_VERSION}); re-export")
    if not isinstance(man.get("graphs"), dict) or not isinstance(man.get("weights"), dict):
        raise OnnxBackendError(f"{path}: manifest has no 'graphs'/'weights' entries")
    return man


def manifest_precision(man: dict) -> str:
    """The precision of the graphs a manifest describes: "fp32" (exports that do not say) or "int8"."""
    prec = man.get("precision", "fp32")
    if prec not in ("fp32", INT8):
        raise OnnxBackendError(f"manifest precision {prec!r} is not one gradtrack writes (fp32, {INT8})")
    return prec


def _redo(tracker: str, onnx_dir: Path) -> str:
    return f"re-export with `gradtrack export --tracker {tracker} --format onnx {onnx_dir}`"


def _check_manifest(man: dict, onnx_dir: Path, tracker: str, model: nn.Module, needed: list[str]) -> None:
    """The graphs in ``onnx_dir`` were exported from ``model``'s weights (state SHA-256) for its crops, and
    every graph in ``needed`` is there, unchanged."""
    want = state_sha256(model)
    have = man["weights"].get("state_sha256")
    if have != want:
        raise OnnxBackendError(
            f"the ONNX graphs in {onnx_dir} were exported from other weights (state SHA-256 {str(have)[:12]}... from "
            f"{man['weights'].get('source')!r}) than the tracker loads ({want[:12]}...); "
            f"{_redo(tracker, onnx_dir)} (with the same --weights)")
    _check_graphs(man, onnx_dir, tracker, model.cfg, needed)


def _check_graphs(man: dict, onnx_dir: Path, tracker: str, cfg, needed: list[str]) -> None:
    redo = _redo(tracker, onnx_dir)
    if man.get("tracker") != tracker:
        raise OnnxBackendError(f"{onnx_dir} holds graphs of tracker {man.get('tracker')!r}, not {tracker!r}; {redo}")
    geom = cfg.geometry()
    g = man.get("geometry", {})
    if (g.get("exemplar_size"), g.get("instance_size")) != (geom.exemplar_size, geom.instance_size):
        raise OnnxBackendError(f"{onnx_dir}: graphs were exported for crops {g.get('exemplar_size')}/"
                               f"{g.get('instance_size')}, the model uses {geom.exemplar_size}/{geom.instance_size}; {redo}")
    for name in needed:
        entry = man["graphs"].get(name)
        if not entry:
            raise OnnxBackendError(f"{onnx_dir}: manifest lists no {name!r} graph; {redo}")
        path = onnx_dir / entry["file"]
        if not path.is_file():
            raise OnnxBackendError(f"{path} is missing; {redo}")
        if file_sha256(path) != entry.get("sha256"):
            raise OnnxBackendError(f"{path} is corrupt or was changed after export (its SHA-256 differs from the "
                                   f"manifest's); {redo}")


# ------------------------------------------------------------------------------------------- backend

class _SharedSession:
    """An onnxruntime session that every :class:`OrtGraph` on the same graph file shares (sessions are
    read-only and ``run`` is thread-safe): a second tracker on the same graphs adds its own state only, not
    another copy of the weights and the activation arena.  Held weakly: freed with its last user."""

    _live: "weakref.WeakValueDictionary[tuple, _SharedSession]" = weakref.WeakValueDictionary()
    _lock = threading.Lock()

    def __init__(self, session):
        self.session = session

    @classmethod
    def get(cls, path: Path, threads: int | None, light: bool = False):
        st = path.stat()  # a rewritten file (new size or time) gets a new session
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, int(threads or torch.get_num_threads()), light)
        with cls._lock:
            shared = cls._live.get(key)
            if shared is None:
                shared = cls(_session(path, threads, light=light))
                cls._live[key] = shared
            return shared


class OrtGraph:
    """One ONNX Runtime session called like a torch function: torch tensors (or numpy arrays) in, float32
    torch tensors out (on ``device``).  Graphs on the same file share one session (:class:`_SharedSession`);
    ``light``: see :func:`_session`."""

    def __init__(self, path: Path, device: torch.device, threads: int | None = None, light: bool = False):
        self.path = path
        try:
            self._shared = _SharedSession.get(Path(path), threads, light)
        except OSError as exc:
            raise OnnxBackendError(f"{path}: cannot read this graph file ({exc.strerror or exc})") from None
        self.session = self._shared.session
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.device = device

    def run_numpy(self, *arrays: np.ndarray) -> list[np.ndarray]:
        if len(arrays) != len(self.inputs):
            raise ValueError(f"{self.path.name} takes {len(self.inputs)} inputs ({', '.join(self.inputs)}), "
                             f"got {len(arrays)}")
        return self.session.run(self.outputs, dict(zip(self.inputs, arrays)))

    def __call__(self, *tensors):
        arrs = [t if isinstance(t, np.ndarray) else t.detach().float().cpu().numpy() for t in tensors]
        outs = self.run_numpy(*(np.ascontiguousarray(a, dtype=np.float32) for a in arrs))
        res = [torch.from_numpy(o).to(self.device) for o in outs]
        return res[0] if len(res) == 1 else tuple(res)


class _OrtModel:
    """What the trackers call on their torch model, run by ONNX Runtime (``backend = "onnxruntime"``)."""

    backend = "onnxruntime"
    graph_names: tuple[str, ...] = ()
    needs_torch_model = False  # True: calls the torch network too (see load_backend_from_checkpoint)
    once_per_sequence: tuple[str, ...] = ()  # graphs run at init only: light sessions (see _session)

    def __init__(self, torch_model: nn.Module, onnx_dir: Path, manifest: dict, device: torch.device,
                 threads: int | None = None):
        self.cfg = torch_model.cfg
        self.onnx_dir = onnx_dir
        self.manifest = manifest
        self.device = device
        self.threads = threads
        self.precision = manifest_precision(manifest)
        self.graphs = {n: OrtGraph(onnx_dir / manifest["graphs"][n]["file"], device, threads,
                                   light=n in self.once_per_sequence) for n in self.graph_names}

    # the torch-module calls the trackers make on their model
    def to(self, device=None, *args, **kwargs):
        if device is not None and not isinstance(device, torch.dtype):
            self.device = torch.device(device)
            for g in self.graphs.values():
                g.device = self.device
        return self

    def eval(self):
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.onnx_dir})"


def crops_nchw(crops: np.ndarray) -> np.ndarray:
    """``S x H x W x 3`` uint8 crops -> contiguous ``S x 3 x H x W`` float32 in [0, 255]."""
    if crops.ndim == 3:
        crops = crops[None]
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)


class OrtSiamFC(_OrtModel):
    """SiamFC in ONNX Runtime: ``embed(z)`` (template graph) and ``responses(crops, zf)`` (search graph,
    uint8 HWC crops straight to ``S x n x n`` raw maps as numpy)."""

    graph_names = ("template", "search")
    once_per_sequence = ("template",)

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        return self.graphs["template"](z)

    def responses(self, crops: np.ndarray, zf: torch.Tensor) -> np.ndarray:
        """One search crop at a time: the same maps and speed as one batch of ``S`` on the CPU (measured on 2
        cores: 15.8 ms either way for three scales), with a third of the activation memory (about 20 MB
        resident instead of 44 MB for the int8 AlexNet)."""
        zf_np = np.ascontiguousarray(zf.detach().float().cpu().numpy())
        x = crops_nchw(crops)
        g = self.graphs["search"]
        return np.concatenate([g.run_numpy(x[i:i + 1], zf_np)[0][:, 0] for i in range(len(x))])

    def score(self, zf: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The search graph on images ``x`` (it includes the backbone: ``score(zf, x)`` here takes crops)."""
        return self.graphs["search"](x, zf)


class _SiamFCHead:
    """``model.siamfc`` of the GradNet backend: the plain SiamFC template and its score."""

    def __init__(self, owner: "OrtGradNet"):
        self._o = owner

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        return self._o.graphs["template_siamfc"](z)

    def score(self, zf: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        return self._o.graphs["score_siamfc"](zf, xf)


class OrtGradNet(_OrtModel):
    """GradNet in ONNX Runtime; ``gradient`` (``dL/df2``) runs in torch autograd on the kept torch model."""

    graph_names = ("f2", "template_siamfc", "u1", "features", "score", "score_siamfc", "update")
    needs_torch_model = True  # torch autograd for the gradient where no analytic graph was exported

    def __init__(self, torch_model: nn.Module, onnx_dir: Path, manifest: dict, *args, **kwargs):
        super().__init__(torch_model, onnx_dir, manifest, *args, **kwargs)
        if "gradient" in manifest["graphs"]:
            self.graphs["gradient"] = OrtGraph(onnx_dir / manifest["graphs"]["gradient"]["file"], self.device,
                                               self.threads)
        self.torch_model = torch_model
        self.siamfc = _SiamFCHead(self)

    def search_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.graphs["features"](x)

    def f2(self, z: torch.Tensor) -> torch.Tensor:
        return self.graphs["f2"](z)

    def u1(self, f2: torch.Tensor) -> torch.Tensor:
        return self.graphs["u1"](f2)

    def score(self, template: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
        return self.graphs["score"](template, xf)

    def update(self, f2: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graphs["update"](f2, grad)

    def gradient(self, f2, xf, label, weight, create_graph: bool = False):
        """``(dL/df2, L)``: the exported analytic gradient graph where there is one, else torch autograd."""
        if "gradient" in self.graphs and not create_graph:
            return self.graphs["gradient"](f2, xf, label, weight)
        return self.torch_model.gradient(f2.to(self.device), xf.to(self.device), label, weight,
                                         create_graph=create_graph)


_BACKENDS = {"siamfc": OrtSiamFC, "gradnet": OrtGradNet}


def load_backend(tracker: str, model: nn.Module, onnx_dir: str | Path | None = None, *, device=None,
                 weights_source: str = "module", weights_file: str | Path | None = None, threads: int | None = None,
                 tracker_config: dict | None = None, log: Callable[[str], None] | None = None) -> _OrtModel:
    """The ONNX Runtime stand-in for ``model`` (the torch network of ``tracker``).

    ``onnx_dir=None``: the cache folder :func:`default_onnx_dir`, exported there on first use (with the
    export-time parity check); a given ``onnx_dir`` must hold graphs exported from the same weights."""
    if tracker in NOT_EXPORTABLE:
        raise OnnxBackendError(NOT_EXPORTABLE[tracker])
    if tracker not in EXPORTABLE:
        raise OnnxBackendError(f"no onnxruntime backend for tracker {tracker!r}; available for {', '.join(EXPORTABLE)}")
    _require("onnxruntime")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cls = _BACKENDS[EXPORTABLE[tracker]]
    if onnx_dir is None:
        d = default_onnx_dir(tracker, model)
        if not (d / "manifest.json").is_file():
            say = log or (lambda s: print(s, file=sys.stderr))
            say(f"gradtrack: exporting the {tracker} graphs to {d} (first use of backend='onnxruntime')")
            tmp = d.with_name(d.name + f".tmp{os.getpid()}")
            cpu_model = build_model(EXPORTABLE[tracker], model.cfg)
            cpu_model.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
            export_onnx(tracker, cpu_model, tmp, weights_source=weights_source, weights_file=weights_file,
                        tracker_config=tracker_config)
            try:
                tmp.replace(d)
            except OSError:  # another process exported it meanwhile
                if not (d / "manifest.json").is_file():
                    raise
        onnx_dir = d
    d = Path(onnx_dir).expanduser()
    man = read_manifest(d)
    _check_manifest(man, d, tracker, model, sorted(set(cls.graph_names) | set(man["graphs"])))
    return cls(model, d, man, dev, threads)


class _ConfigOnly:
    """What a backend whose graphs hold every weight keeps of the torch network: its config."""

    def __init__(self, cfg):
        self.cfg = cfg


def load_backend_from_checkpoint(tracker: str, weights_file: str | Path, onnx_dir: str | Path, *, device=None,
                                 threads: int | None = None) -> _OrtModel | None:
    """The ONNX Runtime backend of ``tracker`` built from the config of the checkpoint ``weights_file``
    alone, without loading its weights into a torch network, where that is safe: the backend runs its
    graphs only (SiamFC, not GradNet) and ``onnx_dir``'s manifest records this very file (its SHA-256).  A
    torch copy of weights the graphs already hold would cost resident memory and nothing else (the shipped
    int8 SiamFC: 14 MB per tracker).  ``None`` where it does not apply: load the model and call
    :func:`load_backend`, which compares the weights themselves."""
    if tracker not in EXPORTABLE or _BACKENDS[EXPORTABLE[tracker]].needs_torch_model:
        return None
    d = Path(onnx_dir).expanduser()
    man = read_manifest(d)
    weights_file = Path(weights_file)
    if not weights_file.is_file() or man["weights"].get("file_sha256") != file_sha256(weights_file):
        return None
    _require("onnxruntime")
    _, cfg = read_model_config(weights_file, expected=EXPORTABLE[tracker])
    cls = _BACKENDS[EXPORTABLE[tracker]]
    _check_graphs(man, d, tracker, cfg, sorted(set(cls.graph_names) | set(man["graphs"])))
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return cls(_ConfigOnly(cfg), d, man, dev, threads)


def load_checkpoint_model(tracker: str, weights: str | Path | None = None) -> tuple[nn.Module, str, Path | None]:
    """``(model, source, weights file)`` of ``tracker`` for an export: ``weights=None`` = the shipped
    ``weights/<tracker>.pt``, a path = a checkpoint (:func:`gradtrack.checkpoint.load_model`)."""
    if tracker in NOT_EXPORTABLE:
        raise OnnxExportError(NOT_EXPORTABLE[tracker])
    if tracker not in EXPORTABLE:
        raise OnnxExportError(f"no ONNX export for tracker {tracker!r}; exportable: {', '.join(EXPORTABLE)}")
    path = WEIGHTS_DIR / f"{tracker}.pt" if weights is None else Path(weights).expanduser()
    if weights is None and not path.is_file():
        raise OnnxExportError(f"no weights are shipped for {tracker!r} (expected {path}); pass --weights PATH")
    model, _ = load_model(path, expected=EXPORTABLE[tracker], device="cpu")
    return model.eval(), str(path), path

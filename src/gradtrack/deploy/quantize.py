"""int8 graphs for CPUs: ONNX Runtime static quantisation of an exported SiamFC search graph.

:func:`quantize_siamfc` takes a folder written by :func:`gradtrack.deploy.onnx.export_onnx` (fp32 graphs of
``siamfc`` / ``siamfc_effnet``) and calibration crops (uint8 ``H x W x 3``: exemplar crops and the search
crops a tracker cut from the same sequences), and writes a folder the ``onnxruntime`` backend loads like
any other, with ``manifest.json`` saying ``"precision": "int8"``:

* ``search.onnx``: QDQ int8 (weights per output channel, signed; activations unsigned, ranges from the
  calibration crops), every backbone / neck ``Conv`` quantised.  The cross-correlation (a ``Conv`` whose
  weight is the template input) and the adjust stay fp32, as in the torch trackers' bf16 path: a coarse
  response flips the scale choice (its penalty is 2.5 %).  The first layer's input is the uint8 image
  itself, so it quantises without loss.
* ``template.onnx``: the fp32 graph, unchanged (it runs once per sequence).

Parity with the fp32 graph is measured on every fifth calibration sample, which calibration did not see:
``rel`` = ``max |int8 - fp32| / range(fp32)`` and the share of maps whose peak stays within one cell of the
fp32 peak.  A graph whose peaks move on more than ``min_peak_agreement`` of the maps is refused.  Tracking
accuracy is what decides: the README gives the val-split success AUC of the int8 path beside fp32.

Building the calibration crops needs a tracker and sequences (layers above this one):
:mod:`gradtrack.quantize` (``gradtrack quantize``) does it all.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .onnx import EXPORTABLE, INT8, OnnxExportError, _require, _session, crops_nchw, file_sha256, parity, read_manifest

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
HOLDOUT_EVERY = 5  # every fifth calibration sample checks parity instead of calibrating


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader`` over (search crops, template feature) pairs."""

    def __init__(self, items: list[tuple[np.ndarray, np.ndarray]]):
        self._items = items
        self._it = iter(items)

    def get_next(self):
        item = next(self._it, None)
        return None if item is None else {"x": item[0], "zf": item[1]}

    def rewind(self):
        self._it = iter(self._items)


def _dynamic_weight_convs(path: Path) -> list[str]:
    """Names of the ``Conv`` nodes whose weight is not a stored initializer (the correlation)."""
    onnx = _require("onnx")
    m = onnx.load(str(path))
    inits = {i.name for i in m.graph.initializer}
    return [n.name for n in m.graph.node if n.op_type == "Conv" and n.input[1] not in inits]


def _peak_agreement(ref: np.ndarray, got: np.ndarray) -> float:
    """Share of maps (``N x n x n``) whose argmax in ``got`` is within one cell of ``ref``'s."""
    n = ref.shape[-1]
    a = ref.reshape(len(ref), -1).argmax(1)
    b = got.reshape(len(got), -1).argmax(1)
    close = (np.abs(a // n - b // n) <= 1) & (np.abs(a % n - b % n) <= 1)
    return float(close.mean()) if len(close) else 1.0


def quantize_siamfc(src_dir: str | Path, out_dir: str | Path, templates: list[np.ndarray],
                    searches: list[tuple[int, np.ndarray]], *, method: str = "percentile",
                    calibration: str = "", min_peak_agreement: float = 0.9,
                    log: Callable[[str], None] | None = None) -> dict:
    """Write int8 graphs of the fp32 SiamFC export in ``src_dir`` to ``out_dir``; return the manifest.

    ``templates``: uint8 exemplar crops (``e x e x 3``); ``searches``: ``(template index, S x s x s x 3 uint8
    search crops)``, the crops a tracker cut while following the target of that template.  ``method``:
    the activation-range calibration (``percentile`` = 99.999 % of |x|, ``minmax``, ``entropy``);
    ``calibration`` describes the crops' origin for the manifest."""
    say = log or (lambda s: None)
    ort = _require("onnxruntime")
    import onnxruntime.quantization as quant
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}")
    src, out = Path(src_dir), Path(out_dir)
    man = read_manifest(src)
    if EXPORTABLE.get(str(man.get("tracker"))) != "siamfc":
        raise OnnxExportError(f"{src}: int8 quantisation covers the SiamFC graphs (siamfc, siamfc_effnet), not "
                              f"{man.get('tracker')!r}")
    if man.get("precision", "fp32") != "fp32":
        raise OnnxExportError(f"{src}: holds {man.get('precision')} graphs; quantise an fp32 export")
    if not templates or len(searches) < 2:
        raise ValueError("int8 calibration needs at least one template and two search samples "
                         f"(got {len(templates)} / {len(searches)})")
    for i, (ti, crops) in enumerate(searches):
        if not 0 <= ti < len(templates):
            raise ValueError(f"search sample {i} names template {ti}, there are {len(templates)}")
        if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"search sample {i}: expected S x H x W x 3 uint8 crops, got {crops.dtype} {crops.shape}")
    t0 = time.perf_counter()
    tpl = _session(src / man["graphs"]["template"]["file"])
    zfs = [tpl.run(None, {"z": crops_nchw(z)})[0] for z in templates]
    items = [(crops_nchw(c), zfs[ti]) for ti, c in searches]
    held = items[HOLDOUT_EVERY - 1::HOLDOUT_EVERY]
    calib = [it for i, it in enumerate(items) if (i + 1) % HOLDOUT_EVERY]

    out.mkdir(parents=True, exist_ok=True)
    search_src = src / man["graphs"]["search"]["file"]
    with tempfile.TemporaryDirectory(prefix="gradtrack-int8-") as tmp:
        pre = Path(tmp) / "search_pre.onnx"
        quant_pre_process(str(search_src), str(pre), skip_symbolic_shape=True)
        excluded = _dynamic_weight_convs(pre)
        methods = {"minmax": quant.CalibrationMethod.MinMax, "percentile": quant.CalibrationMethod.Percentile,
                   "entropy": quant.CalibrationMethod.Entropy}
        extra = {"CalibMovingAverage": False}
        if method == "percentile":
            extra["CalibPercentile"] = 99.999
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print their progress
            quant.quantize_static(str(pre), str(out / "search.onnx"), _Reader(calib), quant_format=quant.QuantFormat.QDQ,
                                  op_types_to_quantize=["Conv"], per_channel=True, reduce_range=False,
                                  activation_type=quant.QuantType.QUInt8, weight_type=quant.QuantType.QInt8,
                                  nodes_to_exclude=excluded, calibrate_method=methods[method], extra_options=extra)
    if src.resolve() != out.resolve():
        shutil.copyfile(src / man["graphs"]["template"]["file"], out / "template.onnx")

    fp32 = _session(search_src)
    int8 = _session(out / "search.onnx")
    refs, gots = [], []
    for x, zf in held:
        refs.append(fp32.run(None, {"x": x, "zf": zf})[0][:, 0])
        gots.append(int8.run(None, {"x": x, "zf": zf})[0][:, 0])
    ref, got = np.concatenate(refs), np.concatenate(gots)
    fig = parity(ref, got)
    fig["peak_agreement"] = _peak_agreement(ref, got)
    fig["maps"] = int(len(ref))
    if fig["peak_agreement"] < min_peak_agreement:
        raise OnnxExportError(f"the int8 search graph moves the response peak by more than one cell on "
                              f"{1 - fig['peak_agreement']:.0%} of {len(ref)} held-out maps (limit "
                              f"{1 - min_peak_agreement:.0%}); calibrate on more or other sequences")
    graphs = dict(man["graphs"])
    graphs["template"] = {**graphs["template"], "file": "template.onnx", "sha256": file_sha256(out / "template.onnx")}
    graphs["search"] = {**graphs["search"], "file": "search.onnx", "sha256": file_sha256(out / "search.onnx"),
                        "parity": fig, "precision": INT8}
    manifest = {
        **man, "precision": INT8, "graphs": graphs,
        "quantization": {"tool": f"onnxruntime.quantization {ort.__version__}", "format": "QDQ",
                         "weights": "int8, per output channel", "activations": f"uint8, {method} calibration",
                         "fp32_nodes": excluded, "calibration": calibration,
                         "calibration_samples": len(calib), "parity_samples": len(held),
                         "from": str(src), "seconds": round(time.perf_counter() - t0, 1)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    say(f"  search (int8)    search.onnx            max|int8-fp32| {fig['max_abs']:.3g}  range {fig['range']:.4g}  "
        f"rel {fig['rel']:.2e}; peak within one cell on {fig['peak_agreement']:.1%} of {fig['maps']} held-out maps")
    return manifest


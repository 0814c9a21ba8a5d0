"""OpenCV DNN on the exported SiamFC graphs: ``cv2.dnn.readNetFromONNX`` loads ``search.onnx`` (two inputs;
the correlation is a Conv whose weight is the ``zf`` input) and ``template.onnx``; :func:`check_opencv_search`
compares its output with PyTorch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .onnx import OnnxExportError, parity, read_manifest


def opencv_net(path: str | Path):
    """``cv2.dnn.Net`` of one exported graph (a clear error if OpenCV cannot read it)."""
    import cv2

    try:
        return cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as exc:
        raise OnnxExportError(f"{path}: OpenCV {cv2.__version__} DNN cannot load it ({str(exc).strip()[:300]})") from None


def opencv_responses(net, x: np.ndarray, zf: np.ndarray) -> np.ndarray:
    """The search graph in OpenCV: ``x`` (S x 3 x H x W float32), ``zf`` -> ``S x 1 x n x n``."""
    net.setInput(np.ascontiguousarray(x, dtype=np.float32), "x")
    net.setInput(np.ascontiguousarray(zf, dtype=np.float32), "zf")
    return net.forward("response")


def check_opencv_search(onnx_dir: str | Path, model: nn.Module, tol: float = 1e-4, scales: int = 3) -> str:
    """Run the exported SiamFC search graph in OpenCV DNN on random crops and the template feature of a
    random exemplar; compare with PyTorch (``rel <= tol`` else :class:`OnnxExportError`)."""
    import cv2

    d = Path(onnx_dir)
    man = read_manifest(d)
    if "search" not in man["graphs"]:
        raise OnnxExportError(f"{d}: no SiamFC search graph (tracker {man.get('tracker')!r}); OpenCV is checked "
                              "on the siamfc trackers' search.onnx")
    geom = model.cfg.geometry()
    gen = torch.Generator().manual_seed(1)
    z = torch.rand(1, 3, geom.exemplar_size, geom.exemplar_size, generator=gen) * 255
    x = torch.rand(scales, 3, geom.instance_size, geom.instance_size, generator=gen) * 255
    model = model.cpu().eval()
    with torch.no_grad():
        zf = model.embed(z)
        ref = model.score(zf, model.embed(x)).numpy()
    net = opencv_net(d / man["graphs"]["search"]["file"])
    try:
        got = opencv_responses(net, x.numpy(), zf.numpy())
    except cv2.error as exc:
        raise OnnxExportError(f"OpenCV DNN loaded search.onnx but cannot run it ({str(exc).strip()[:300]})") from None
    fig = parity(ref, got)
    if not fig["rel"] <= tol:
        raise OnnxExportError(f"OpenCV DNN's search.onnx differs from PyTorch: rel {fig['rel']:.2e} > {tol:g}")
    return (f"cv2 {cv2.__version__} readNetFromONNX(search.onnx): max|cv2-torch| {fig['max_abs']:.3g}  range "
            f"{fig['range']:.4g}  rel {fig['rel']:.2e}")

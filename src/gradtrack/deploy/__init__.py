"""Deployment of the trackers' networks: ONNX export (:mod:`gradtrack.deploy.onnx`) and the ONNX Runtime
backend the trackers use with ``backend="onnxruntime"``.

Layer 2 (beside :mod:`gradtrack.checkpoint`): it may import models, checkpoint, geometry and io; the
trackers import it.  ``onnx``/``onnxruntime`` are optional (``pip install gradtrack[onnx]``) and imported
only when an export or a session is made.
"""
from __future__ import annotations

from .onnx import (EXPORTABLE, OnnxBackendError, OnnxExportError, default_onnx_dir, export_onnx, load_backend,
                   read_manifest)

__all__ = ["EXPORTABLE", "OnnxBackendError", "OnnxExportError", "default_onnx_dir", "export_onnx", "load_backend",
           "read_manifest"]

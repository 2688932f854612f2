"""Exports of a synonym space for serving outside s3-hf: ONNX (the image encoder plus the S^3 head).

Importing the package loads neither torch nor onnx; :func:`export_onnx` imports them when it runs
(``pip install "s3-hf[onnx]"``).
"""

from s3_hf.export.config import EXPORTABLE_FAMILIES, EXPORTABLE_METRICS, OnnxExportConfig, read_export
from s3_hf.export.onnx import OnnxExport, export_onnx

__all__ = [
    "EXPORTABLE_FAMILIES",
    "EXPORTABLE_METRICS",
    "OnnxExport",
    "OnnxExportConfig",
    "export_onnx",
    "read_export",
]

"""Export: a checkpoint as ONNX (BatchNorm folded) and int8, the ONNX Runtime sessions, and their timer.

    onnx      export_onnx / onnx_bytes: float ONNX with the weights' SHA-256 in its metadata
    quantize  export_int8: static int8, kept only when it loses at most 0.1 points
    sessions  ort_session, the run's int8 / float sessions, the user cache of exports
    speed     images_per_second, interleaved_images_per_second

torch and onnxruntime are imported only when used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digitlab.export.onnx import export_onnx
    from digitlab.export.quantize import export_int8

__all__ = ["export_int8", "export_onnx"]


def __getattr__(name: str) -> Any:
    if name == "export_onnx":
        from digitlab.export.onnx import export_onnx

        return export_onnx
    if name == "export_int8":
        from digitlab.export.quantize import export_int8

        return export_int8
    raise AttributeError(f"module 'digitlab.export' has no attribute {name!r}")

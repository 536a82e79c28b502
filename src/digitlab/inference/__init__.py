"""digitlab.inference: the one image preprocessing, `Predictor` (torch or ONNX Runtime), ONNX and int8 export.

torch and onnxruntime are imported only when a Predictor is loaded or a model exported.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from digitlab.inference.preprocess import MAX_IMAGE_PIXELS, load_image, preprocess_image

if TYPE_CHECKING:
    from digitlab.inference.onnx_export import export_onnx
    from digitlab.inference.predictor import Predictor
    from digitlab.inference.quantize import export_int8

__all__ = ["MAX_IMAGE_PIXELS", "Predictor", "export_int8", "export_onnx", "load_image", "preprocess_image"]


def __getattr__(name: str) -> Any:
    if name == "Predictor":
        from digitlab.inference.predictor import Predictor

        return Predictor
    if name == "export_onnx":
        from digitlab.inference.onnx_export import export_onnx

        return export_onnx
    if name == "export_int8":
        from digitlab.inference.quantize import export_int8

        return export_int8
    raise AttributeError(f"module 'digitlab.inference' has no attribute {name!r}")

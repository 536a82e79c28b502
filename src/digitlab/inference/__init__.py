"""Inference: a trained model answering for pictures and arrays.

    predictor  Predictor: a checkpoint on PyTorch or ONNX Runtime; predict_image(s), read, predict_proba
    runner     predict_logits: the one batch runner of a torch model
    rejection  decide: "blank", "several objects", "not a digit" (energy score against a threshold)
    reader     Reader: the line reader (CTC), batched by width, calibrated
    ctc        greedy decoding of the reader's frames
    reading    read: every digit in a picture, as text (the reader over vision.lines' lines)

Pictures become model input in `digitlab.vision`; exports and sessions are `digitlab.export`.
torch and onnxruntime are imported only when a Predictor is loaded.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digitlab.inference.predictor import Predictor

__all__ = ["Predictor"]


def __getattr__(name: str) -> Any:
    if name == "Predictor":
        from digitlab.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'digitlab.inference' has no attribute {name!r}")

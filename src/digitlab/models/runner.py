"""The one batch runner of a PyTorch model over uint8 images: `predict_logits`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.special

from digitlab.errors import InputShapeError
from digitlab.layout import IMAGE_SHAPE, to_model_input

if TYPE_CHECKING:  # torch is imported lazily: `digitlab --help` should not pay for it
    import torch


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits (N, C) / temperature -> probabilities (N, C) in the logits' float dtype.

    The one softmax of digitlab's NumPy code (`scipy.special.softmax`, stable for any magnitude).
    """
    z = logits / np.asarray(temperature, dtype=logits.dtype) if temperature != 1.0 else logits
    return scipy.special.softmax(z, axis=1)


def check_images(x: np.ndarray, *, name: str = "images") -> np.ndarray:
    """`x` as uint8 (N, 28, 28) (a single (28, 28) image becomes N=1); InputShapeError otherwise."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
        raise InputShapeError(
            f"{name}: expected uint8 images of shape (N, 28, 28), got {x.dtype} {x.shape}; "
            "preprocess pictures first (Predictor.predict_image does it) or convert with .astype(np.uint8)"
        )
    return x


def predict_logits(
    model: torch.nn.Module,
    x_uint8: np.ndarray,
    *,
    batch_size: int = 1000,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Run `model` over uint8 images (N, 28, 28) in batches; returns float32 logits (N, C).

    The model gets `layout.to_model_input` of each batch; it normalises itself. `device`
    defaults to the model's own. N = 0 gives an empty (0, C) array.
    """
    import torch

    x = check_images(x_uint8)
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            if len(x) == 0:  # one dummy pass to learn C
                return model(to_model_input(torch.zeros((1, *IMAGE_SHAPE), dtype=torch.uint8, device=device))
                             ).float().cpu().numpy()[:0]
            for start in range(0, len(x), batch_size):
                xb = to_model_input(torch.from_numpy(x[start : start + batch_size]).to(device))  # (B, 1, 28, 28)
                out.append(model(xb).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out)

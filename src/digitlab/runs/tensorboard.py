"""TensorBoard logging for `train`: per-epoch scalars (losses, accuracies, learning rate) and the run's plots.

Needs the optional extra `digitlab[tensorboard]`; it writes through `torch.utils.tensorboard`.

    with TensorBoardCallback("runs/cnn/tensorboard") as board:
        result = train(config, run_dir="runs/cnn", callback=board)
        board.add_run(result.outputs)
"""
from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab.errors import DigitlabError

if TYPE_CHECKING:
    from digitlab.runs.pipeline import RunOutputs

# metrics.jsonl keys -> TensorBoard tags: one chart per quantity, train and validation side by side
_TAGS = {"train_loss": "loss/train", "val_loss": "loss/validation", "test_loss": "loss/test",
         "train_accuracy": "accuracy/train", "val_accuracy": "accuracy/validation",
         "test_accuracy": "accuracy/test", "lr": "learning_rate"}


class TensorBoardCallback:
    """A `train` callback writing each epoch's metrics as TensorBoard scalars into `log_dir`."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise DigitlabError(f"--tensorboard needs the tensorboard package ({exc}); "
                                "install it with pip install 'digitlab[tensorboard]'") from None
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def __call__(self, event: dict[str, Any]) -> None:
        if event["event"] == "epoch_end":
            m = event["metrics"]
            for key, tag in _TAGS.items():
                if isinstance(m.get(key), (int, float)):
                    self._writer.add_scalar(tag, float(m[key]), global_step=int(m["epoch"]))
        elif event["event"] == "eval":
            m = event["metrics"]
            for key in ("val_accuracy", "test_accuracy"):
                if key in m:
                    self._writer.add_scalar(f"steps/{_TAGS[key]}", float(m[key]), global_step=int(m["step"]))

    def add_run(self, outputs: RunOutputs | None) -> None:
        """The finished run's test accuracy and its plots (the prediction grid first) as images."""
        if outputs is None:
            return
        self._writer.add_scalar("accuracy/test_final", outputs.test_accuracy, global_step=0)
        from PIL import Image

        for png in outputs.plots:
            with Image.open(png) as image:
                rgb = np.asarray(image.convert("RGB"))  # (H, W, 3)
            self._writer.add_image(f"plots/{png.stem}", rgb, global_step=0, dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> TensorBoardCallback:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

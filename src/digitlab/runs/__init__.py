"""digitlab.runs: a whole training run, and everything after the loop that makes its run directory.

    from digitlab.runs import train
    from digitlab.training import recipe_config
    result = train(recipe_config("cnn"), run_dir="runs/cnn")   # the loop, then report, plots, int8
    result.history[-1]["val_accuracy"], result.outputs.test_accuracy

    pipeline     train = `training.fit`, then `finish_run`: calibrate, choose the not-a-digit threshold,
                 evaluate, save the checkpoint once, report.json, plots, reload check, int8
    open_set     the rejection threshold and its report (validation digits against non-digit sets)
    tensorboard  TensorBoardCallback: the run's scalars and pictures for TensorBoard

torch is imported only when first used.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digitlab.runs.pipeline import ReloadMismatchError, RunOutputs, RunResult, finish_run, obtain_datasets, train
    from digitlab.runs.tensorboard import TensorBoardCallback

_LAZY = {
    "ReloadMismatchError": "pipeline", "RunOutputs": "pipeline", "RunResult": "pipeline", "finish_run": "pipeline",
    "obtain_datasets": "pipeline", "train": "pipeline", "TensorBoardCallback": "tensorboard",
}

__all__ = ["ReloadMismatchError", "RunOutputs", "RunResult", "TensorBoardCallback", "finish_run", "obtain_datasets",
           "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"digitlab.runs.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'digitlab.runs' has no attribute {name!r}")

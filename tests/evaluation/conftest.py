"""Fixtures for evaluation tests: a run directory with a checkpoint and a metrics log."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def softmax_run(tmp_path: Path) -> Path:
    """A run directory: a seeded untrained `softmax` model on mnist and a 3-epoch metrics.jsonl."""
    import torch

    from digitlab.checkpoints import save_checkpoint
    from digitlab.models import build_model

    torch.manual_seed(0)
    run = tmp_path / "run"
    save_checkpoint(run, build_model("softmax"), {"dataset": "mnist", "class_names": [str(i) for i in range(10)]})
    lines = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 1 - 0.3 / e, "val_loss": 1.2 / e,
              "val_accuracy": 1 - 0.35 / e} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return run

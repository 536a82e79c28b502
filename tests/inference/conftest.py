"""Fixtures for inference tests: small checkpoints in temporary run directories."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding an untrained registry `cnn` (seeded): enough for parity checks."""
    import torch

    from digitlab.checkpoints import save_checkpoint
    from digitlab.models import build_model

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("cnn-run")
    save_checkpoint(run, build_model("cnn"), {"dataset": "mnist", "class_names": [str(i) for i in range(10)]})
    return run

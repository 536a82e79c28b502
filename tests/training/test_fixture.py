"""The shared `trained_run` fixture gives what other packages' tests rely on."""
from __future__ import annotations

import json
from pathlib import Path

from digitlab.checkpoints import load_checkpoint


def test_trained_run_fixture(trained_run: Path) -> None:
    for name in ("model.safetensors", "model.json", "metrics.jsonl"):
        assert (trained_run / name).is_file(), name
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    ckpt = load_checkpoint(trained_run)
    assert ckpt.meta.model.name == "cnn" and ckpt.meta.dataset == "mnist"
    assert records[-1]["val_accuracy"] > 0.95

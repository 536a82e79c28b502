"""Plots from arrays: non-empty PNGs of the documented pixel size, written headless."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from digitlab.evaluation import plots


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    n = 60
    return {
        "images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        "labels": rng.integers(0, 10, n),
        "predictions": rng.integers(0, 10, n),
        "confidence": rng.uniform(0.1, 1.0, n),
    }


def _png_size(path) -> tuple[int, int]:
    assert path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_prediction_grid(tmp_path, arrays):
    path = plots.plot_prediction_grid(arrays["images"], arrays["labels"], arrays["predictions"], tmp_path / "g.png")
    assert _png_size(path) == (1000, 1000)


def test_prediction_grid_with_fewer_images_than_cells(tmp_path, arrays):
    path = plots.plot_prediction_grid(arrays["images"][:3], arrays["labels"][:3], arrays["labels"][:3], tmp_path / "g.png")
    assert _png_size(path) == (1000, 1000)


def test_worst_mistakes(tmp_path, arrays):
    path = plots.plot_worst_mistakes(**arrays, path=tmp_path / "m.png", class_names=[f"c{i}" for i in range(10)])
    assert _png_size(path) == (800, 850)


def test_worst_mistakes_without_mistakes(tmp_path, arrays):
    a = dict(arrays, predictions=arrays["labels"])
    assert _png_size(plots.plot_worst_mistakes(**a, path=tmp_path / "m.png")) == (800, 850)


def test_confusion_matrix(tmp_path, arrays):
    cm = np.bincount(arrays["labels"] * 10 + arrays["predictions"], minlength=100).reshape(10, 10)
    path = plots.plot_confusion_matrix(cm, [str(i) for i in range(10)], tmp_path / "cm.png")
    assert _png_size(path) == (800, 700)


def test_training_curves_from_metrics_jsonl(tmp_path):
    lines = [
        {"epoch": e, "train_loss": 1 / e, "train_accuracy": 1 - 0.5 / e, "val_loss": 1.1 / e, "val_accuracy": 1 - 0.6 / e}
        for e in range(1, 6)
    ]
    f = tmp_path / "metrics.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in lines) + "\n{\"epoch\": 6, \"train_lo")  # last line cut short
    records = plots.read_metrics(f)
    assert records == lines
    epochs, series = plots._epoch_series(records)
    assert epochs == [1, 2, 3, 4, 5] and series["val_accuracy"] == [r["val_accuracy"] for r in lines]
    assert _png_size(plots.plot_training_curves(records, tmp_path / "c.png")) == (1200, 450)


def test_training_curves_need_epochs(tmp_path):
    with pytest.raises(ValueError, match="epoch"):
        plots.plot_training_curves([{"step": 1, "loss": 0.3}], tmp_path / "c.png")

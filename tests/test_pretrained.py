"""The bundled default models: files match their model.json, accuracy matches their card, size in budget."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from digitlab.inference import Predictor
from digitlab.inference.onnx_export import onnx_metadata
from digitlab.pretrained import BUNDLED, HERE, bundled_model
from digitlab.pretrained.build import MAX_BYTES
from digitlab.training import get_recipe

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("dataset", ["mnist"])
def test_bundled_files_match_their_model_json(dataset: str) -> None:
    folder = bundled_model(dataset)
    meta = json.loads((folder / "model.json").read_text())
    weights = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert meta["weights"]["sha256"] == weights
    assert onnx_metadata(folder / "model.int8.onnx")["digitlab.weights_sha256"] == weights
    size = sum((folder / name).stat().st_size for name in ("model.json", "model.safetensors", "model.int8.onnx"))
    assert size < MAX_BYTES[dataset]
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"{meta['model']['name']}-{weights[:12]}" in card
    assert f"{100 * meta['metrics']['test_accuracy']:.2f}%" in card


def test_bundled_mnist_model_is_what_predictor_load_gives_and_as_accurate_as_its_card(mnist) -> None:
    predictor = Predictor.load()  # no path: the bundled MNIST model
    assert predictor.run_dir == bundled_model("mnist") and predictor.backend == "int8"
    claimed = predictor.meta["metrics"]["test_accuracy"]
    accuracy = predictor.score(mnist.x_test, mnist.y_test)
    assert accuracy >= get_recipe("cnn").expected_accuracy  # the recipe's floor (the 99.5% aim: docs/training.md)
    assert abs(accuracy - claimed) <= 0.002  # int8 as served vs the float model's figure


def test_the_bundled_models_are_the_only_model_files_in_git() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    models = {p for p in tracked if p.endswith((".safetensors", ".onnx", ".pt", ".pth", ".ckpt"))}
    allowed = {str((HERE / folder / name).relative_to(REPO)) for folder in BUNDLED.values()
               for name in ("model.safetensors", "model.int8.onnx")}
    assert models <= allowed, sorted(models - allowed)

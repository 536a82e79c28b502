"""evaluate_model / report_from_logits / write_report / format_report against direct computations and sklearn."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.special import softmax as scipy_softmax
from sklearn import metrics as skm

from digitlab.evaluation import (
    classification_table,
    evaluate_model,
    format_report,
    report_from_logits,
    write_report,
)
from digitlab.evaluation.calibration import calibration_metrics

CLASSES = [str(i) for i in range(10)]


class _PixelModel(torch.nn.Module):
    """Logits = a fixed random linear map of pixels; records the inputs it saw."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.linear = torch.nn.Linear(28 * 28, 10)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(10, 28 * 28, generator=g))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return self.linear(x.flatten(1))


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (250, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 250)
    return x, y


def test_evaluate_model_matches_direct_computation(data):
    x, y = data
    model = _PixelModel()
    report = evaluate_model(model, x, y, CLASSES, batch_size=64, dataset="random")
    # The model saw float32 (B, 1, 28, 28) = pixels / 255, in batches of at most 64.
    assert all(t.dtype == torch.float32 and t.shape[1:] == (1, 28, 28) and len(t) <= 64 for t in model.seen)
    assert float(torch.cat(model.seen).max()) <= 1.0

    with torch.no_grad():
        logits = model.linear(torch.from_numpy(x).float().div(255).flatten(1)).numpy()
    pred = logits.argmax(1)
    assert report["n"] == 250 and report["dataset"] == "random" and report["class_names"] == CLASSES
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert report["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=range(10)).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=range(10), zero_division=0)
    for i, name in enumerate(CLASSES):
        row = report["per_class"][name]
        got = (row["precision"], row["recall"], row["f1"], row["support"])
        assert got == pytest.approx((p[i], r[i], f[i], s[i]), abs=1e-5)
    assert report["macro"]["f1"] == pytest.approx(
        skm.f1_score(y, pred, labels=range(10), average="macro", zero_division=0), abs=1e-5
    )
    for k in (1, 3, 5):
        want = skm.top_k_accuracy_score(y, logits, k=k, labels=range(10))
        assert report["top_k_accuracy"][str(k)] == pytest.approx(want)

    wrong = report["misclassified"]
    assert sorted(m["sample_index"] for m in wrong) == np.flatnonzero(pred != y).tolist()
    assert all(set(m) == {"sample_index", "label", "predicted", "probability"} for m in wrong)
    prob = [m["probability"] for m in wrong]
    assert prob == sorted(prob, reverse=True)
    first = wrong[0]
    proba = torch.softmax(torch.from_numpy(logits[first["sample_index"]]).double(), 0)
    assert first["predicted"] == int(pred[first["sample_index"]]) and first["label"] == int(y[first["sample_index"]])
    assert first["probability"] == pytest.approx(float(proba[first["predicted"]]), rel=1e-5)


def _random_report(seed: int, names: list[str]) -> tuple[dict, np.ndarray, np.ndarray]:
    """A report of random logits with random labels (class 0 never predicted), and (labels, predictions)."""
    rng = np.random.default_rng(seed)
    n, c = 300, len(names)
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 0.8
    logits[:, 0] -= 10.0  # precision's zero-division case
    return report_from_logits(logits, y, names), y, logits.argmax(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_numbers_match_sklearn_classification_report(seed):
    report, y, pred = _random_report(seed, CLASSES)
    want = skm.classification_report(y, pred, labels=range(10), target_names=CLASSES, output_dict=True,
                                      zero_division=0)
    for name in CLASSES:
        got = report["per_class"][name]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
            tuple(want[name][k] for k in ("precision", "recall", "f1-score", "support")), abs=1e-12)
    assert report["accuracy"] == pytest.approx(want["accuracy"], abs=1e-12)
    for key, row in (("macro", "macro avg"), ("weighted", "weighted avg")):
        assert (report[key]["precision"], report[key]["recall"], report[key]["f1"]) == pytest.approx(
            (want[row]["precision"], want[row]["recall"], want[row]["f1-score"]), abs=1e-12)
        assert want[row]["support"] == report["n"]


@pytest.mark.parametrize("names", [CLASSES, ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                             "Shirt", "Sneaker", "Bag", "Ankle boot"]])
def test_classification_table_is_sklearns_text(names):
    report, y, pred = _random_report(3, names)
    want = skm.classification_report(y, pred, labels=range(10), target_names=names, digits=4, zero_division=0)
    assert classification_table(report) == want
    assert format_report(report).startswith(want)


def test_report_with_calibration_uses_its_temperature():
    rng = np.random.default_rng(6)
    logits = rng.normal(scale=3.0, size=(200, 10))
    y = rng.integers(0, 10, 200)
    plain = report_from_logits(logits, y, CLASSES)
    assert "calibration" not in plain
    section = calibration_metrics(logits, y, 2.5)
    scaled = report_from_logits(logits, y, CLASSES, calibration=section)
    assert scaled["calibration"] == section
    assert scaled["accuracy"] == plain["accuracy"] and scaled["confusion_matrix"] == plain["confusion_matrix"]
    first = scaled["misclassified"][0]
    want = scipy_softmax(logits[first["sample_index"]] / 2.5)[first["predicted"]]  # what Predictor reports
    assert first["probability"] == pytest.approx(want, rel=1e-9)
    assert "calibration: temperature 2.5000" in format_report(scaled)


def test_evaluate_model_restores_training_mode(data):
    x, y = data
    model = _PixelModel().train()
    evaluate_model(model, x[:10], y[:10], CLASSES)
    assert model.training


def test_write_report_is_json_with_accuracy(tmp_path, data):
    x, y = data
    report = evaluate_model(_PixelModel(), x, y, CLASSES)
    path = write_report(report, tmp_path / "run")
    assert path == tmp_path / "run" / "report.json"
    assert json.loads(path.read_text())["accuracy"] == report["accuracy"]
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temp file left behind


def test_format_report_lists_every_class_and_summary(data):
    x, y = data
    report = evaluate_model(_PixelModel(), x, y, CLASSES, dataset="random")
    table = format_report(report)
    lines = table.splitlines()
    for name in CLASSES:
        assert any(line.split()[0] == name for line in lines if line.strip())
    assert f"{report['accuracy']:.4f}" in table and "macro avg" in table and "weighted avg" in table
    assert "top-5" in table

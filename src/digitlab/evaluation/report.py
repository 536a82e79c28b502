"""Evaluate a model on labelled images and turn the result into `report.json` and a terminal table."""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab._io import atomic_write_json
from digitlab.errors import DigitlabError
from digitlab.evaluation.metrics import (
    averages,
    confusion_matrix,
    precision_recall_f1,
    softmax,
    top_k_accuracy,
)
from digitlab.layout import REPORT
from digitlab.models.runner import predict_logits

if TYPE_CHECKING:  # torch is imported lazily: `digitlab --help` should not pay for it
    import torch

    from digitlab.checkpoints import Checkpoint, ModelMeta
    from digitlab.data import Dataset

REPORT_NAME = REPORT


class DatasetMismatchWarning(UserWarning):
    """A model is evaluated on a dataset other than the one named in its model.json."""


def dataset_mismatch(meta: ModelMeta, dataset_name: str | None, *, run_dir: Any = None) -> str | None:
    """The warning text when `dataset_name` is not the dataset model.json names, else None."""
    own = meta.dataset
    if not own or not dataset_name or own == dataset_name:
        return None
    where = f"{run_dir}: " if run_dir is not None else ""
    return (f"{where}the model was trained on {own!r} but is evaluated on {dataset_name!r}; its numbers "
            f"describe {dataset_name!r} images seen through a {own!r} model (pass --dataset {own} for its own)")


def resolve_run(
    checkpoint: Checkpoint | str | os.PathLike[str],
    dataset: Dataset | str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[Checkpoint, Dataset, list[str]]:
    """(checkpoint, dataset, class names) of a run to evaluate or plot; checks the two fit.

    `checkpoint`: a loaded Checkpoint or a run directory / model.json / model.safetensors.
    `dataset`: a loaded Dataset, a name or IDX folder, or None for the one in model.json.
    Warns once (DatasetMismatchWarning) when the dataset is not the model's own; DigitlabError
    when the class counts differ.
    """
    from digitlab.checkpoints import Checkpoint, dataset_of, load_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    if dataset is None or isinstance(dataset, (str, os.PathLike)):
        ds: Dataset = dataset_of(ckpt.meta, None if dataset is None else os.fspath(dataset),
                                 data_dir=data_dir, run_dir=ckpt.run_dir)
    else:
        ds = dataset
    names = list(ckpt.meta.class_names or ds.class_names)
    if len(names) != len(ds.class_names):
        raise DigitlabError(
            f"{ckpt.run_dir}: the model has {len(names)} classes but dataset {ds.name!r} has "
            f"{len(ds.class_names)}; evaluate on a dataset with the model's classes"
        )
    message = dataset_mismatch(ckpt.meta, ds.name, run_dir=ckpt.run_dir)
    if message:
        warnings.warn(message, DatasetMismatchWarning, stacklevel=3)
    return ckpt, ds, names


def _mistakes(y: np.ndarray, pred: np.ndarray, proba: np.ndarray) -> list[dict[str, Any]]:
    """Every wrong prediction as {sample_index, label, predicted, probability}, most confident first."""
    probability = proba[np.arange(y.size), pred]
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-probability[wrong], kind="stable")]
    return [
        {"sample_index": int(i), "label": int(t), "predicted": int(p), "probability": float(c)}
        for i, t, p, c in zip(wrong, y[wrong], pred[wrong], probability[wrong])
    ]


def report_from_logits(
    logits: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    *,
    top_k: Sequence[int] = (1, 3, 5),
    dataset: str | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The evaluation report (a JSON-ready dict) from logits (N, C) and true labels (N,).

    `calibration`: the model's calibration section (`calibration.calibrate(...).report` or
    `calibration_metrics`); it is stored under `calibration` and its `temperature` divides the
    logits before the softmax, so mistakes carry the probabilities the model reports.
    """
    y = np.asarray(y, dtype=np.int64).ravel()
    num_classes = len(class_names)
    if logits.shape != (y.size, num_classes):
        raise ValueError(f"logits shape {logits.shape} does not match {y.size} labels x {num_classes} classes")
    temperature = float(calibration["temperature"]) if calibration else 1.0
    proba = softmax(logits.astype(np.float64), temperature)
    pred = proba.argmax(axis=1)
    cm = confusion_matrix(y, pred, num_classes)
    precision, recall, f1, support = precision_recall_f1(cm)
    macro, weighted = averages(precision, recall, f1, support)
    report: dict[str, Any] = {
        "dataset": dataset,
        "n": int(y.size),
        "accuracy": float(np.mean(pred == y)),
        "class_names": [str(c) for c in class_names],
        "per_class": {
            str(name): {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                        "support": int(support[i])}
            for i, name in enumerate(class_names)
        },
        "macro": macro,
        "weighted": weighted,
        "top_k_accuracy": {str(k): top_k_accuracy(y, proba, k) for k in top_k if 1 <= k <= num_classes},
        "confusion_matrix": cm.tolist(),
        "misclassified": _mistakes(y, pred, proba),
    }
    if calibration:
        report["calibration"] = dict(calibration)
    return report


def evaluate_model(
    model: torch.nn.Module,
    x_uint8: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    *,
    top_k: Sequence[int] = (1, 3, 5),
    batch_size: int = 1000,
    device: str | torch.device | None = None,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on uint8 images (N, 28, 28) with labels (N,); returns the report dict.

    Keys: `accuracy`, `per_class` {name: precision/recall/f1/support}, `macro` and `weighted`
    (precision/recall/f1), `confusion_matrix` (rows true, columns predicted), `top_k_accuracy`
    {"k": fraction}, `misclassified` [{sample_index, label, predicted, probability}] most
    confident first, `n`, `dataset`, `class_names`. `device` defaults to the model's own.
    """
    logits = predict_logits(model, x_uint8, batch_size=batch_size, device=device)
    return report_from_logits(logits, y, class_names, top_k=top_k, dataset=dataset)


def stored_calibration(meta: ModelMeta, logits: np.ndarray, y: np.ndarray) -> dict[str, Any] | None:
    """`calibration_metrics` of the temperature in model.json's `calibration` on these logits, or None."""
    from digitlab.evaluation.calibration import calibration_metrics

    if meta.calibration is None or len(y) == 0:
        return None
    return calibration_metrics(logits, y, meta.calibration.temperature)


def evaluate_run(
    checkpoint: Checkpoint | str | os.PathLike[str],
    dataset: Dataset | str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    top_k: Sequence[int] = (1, 3, 5),
    batch_size: int = 1000,
    limit: int | None = None,
) -> dict[str, Any]:
    """The report of a saved model on the test split of `dataset` (default: its own): `digitlab evaluate`.

    `checkpoint`, `dataset`: as `resolve_run` (which warns when the dataset is not the model's
    own). `limit`: the first N test images only. When model.json has a calibration temperature,
    the probabilities are divided by it (as `Predictor` does) and the report gets `calibration`
    (ECE and NLL before and after on these test images).
    """
    ckpt, ds, class_names = resolve_run(checkpoint, dataset, data_dir=data_dir)
    x, y = ds.x_test[:limit], ds.y_test[:limit]
    logits = predict_logits(ckpt.model, x, batch_size=batch_size)
    return report_from_logits(logits, y, class_names, top_k=top_k, dataset=ds.name,
                              calibration=stored_calibration(ckpt.meta, logits, y))


def write_report(report: dict[str, Any], run_dir: str | os.PathLike[str]) -> Path:
    """Write `report` as `run_dir/report.json` atomically; returns the path."""
    return atomic_write_json(Path(run_dir) / REPORT_NAME, report)


def classification_table(report: Mapping[str, Any], digits: int = 4) -> str:
    """scikit-learn's `classification_report` text (same layout and numbers) from a report dict.

    Rows: one per class (precision, recall, f1-score, support), then accuracy, macro avg and
    weighted avg; each line ends with a newline, as scikit-learn's does.
    """
    names = list(report["per_class"])
    width = max(len("weighted avg"), digits, *(len(n) for n in names))
    headers = ["precision", "recall", "f1-score", "support"]
    row = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    text = ("{:>{width}s} " + " {:>9}" * 4).format("", *headers, width=width) + "\n\n"
    for name in names:
        r = report["per_class"][name]
        text += row.format(name, r["precision"], r["recall"], r["f1"], r["support"], width=width, digits=digits)
    text += "\n"
    n = report["n"]
    accuracy_row = "{:>{width}s} " + " {:>9.{digits}}" * 2 + " {:>9.{digits}f}" + " {:>9}\n"
    text += accuracy_row.format("accuracy", "", "", report["accuracy"], n, width=width, digits=digits)
    for label, key in (("macro avg", "macro"), ("weighted avg", "weighted")):
        avg = report[key]
        text += row.format(label, avg["precision"], avg["recall"], avg["f1"], n, width=width, digits=digits)
    return text


def format_report(report: dict[str, Any]) -> str:
    """The terminal table: `classification_table`, then accuracy, top-k and calibration lines."""
    lines = [classification_table(report)]
    where = f" on {report['dataset']}" if report.get("dataset") else ""
    n_wrong = len(report.get("misclassified", []))
    lines.append(f"accuracy{where}: {report['accuracy']:.4f}  ({report['n'] - n_wrong}/{report['n']} correct)")
    if report.get("top_k_accuracy"):
        lines.append("top-k accuracy: " + "  ".join(f"top-{k} {v:.4f}" for k, v in report["top_k_accuracy"].items()))
    cal = report.get("calibration")
    if cal:
        lines.append(f"calibration: temperature {cal['temperature']:.4f}; ECE {cal['ece_before']:.4f} -> "
                     f"{cal['ece_after']:.4f}, NLL {cal['nll_before']:.4f} -> {cal['nll_after']:.4f} "
                     f"({cal['n_bins']} bins, {cal['n']} test images)")
    return "\n".join(lines)

"""Evaluate a model on labelled images and turn the result into `report.json` and a terminal table."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab._io import atomic_write_json
from digitlab.errors import DigitlabError
from digitlab.evaluation.metrics import confusion_matrix, precision_recall_f1, softmax, top_k_accuracy
from digitlab.inference.runner import predict_logits
from digitlab.layout import MODEL_JSON, REPORT

if TYPE_CHECKING:  # torch is imported lazily: `digitlab --help` should not pay for it
    import torch

REPORT_NAME = REPORT


def run_dataset(
    meta: dict[str, Any],
    dataset: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """The `digitlab.data` Dataset a checkpoint is evaluated on: `dataset`, else the one in its model.json.

    `run_dir` only names the checkpoint in the error raised when neither gives a dataset.
    """
    from digitlab.data import load

    name = dataset or meta.get("dataset")
    if not name:
        where = Path(run_dir) / MODEL_JSON if run_dir is not None else "the checkpoint's model.json"
        raise DigitlabError(f"{where} names no dataset to evaluate on; pass one (e.g. --dataset mnist)")
    return load(name, data_dir=data_dir)


def report_from_logits(
    logits: np.ndarray,
    y: np.ndarray,
    class_names: Sequence[str],
    *,
    top_k: Sequence[int] = (1, 3, 5),
    dataset: str | None = None,
) -> dict[str, Any]:
    """The evaluation report (a JSON-ready dict) from logits (N, C) and true labels (N,)."""
    y = np.asarray(y, dtype=np.int64).ravel()
    num_classes = len(class_names)
    if logits.shape != (y.size, num_classes):
        raise ValueError(f"logits shape {logits.shape} does not match {y.size} labels x {num_classes} classes")
    proba = softmax(logits.astype(np.float64))
    pred = proba.argmax(axis=1)
    confidence = proba[np.arange(y.size), pred]
    cm = confusion_matrix(y, pred, num_classes)
    precision, recall, f1, support = precision_recall_f1(cm)

    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]  # most confident mistakes first
    misclassified = [
        {"index": int(i), "true": int(t), "predicted": int(p), "confidence": float(c)}
        for i, t, p, c in zip(wrong, y[wrong], pred[wrong], confidence[wrong])
    ]
    return {
        "dataset": dataset,
        "n": int(y.size),
        "accuracy": float(np.mean(pred == y)),
        "class_names": [str(c) for c in class_names],
        "per_class": {
            str(name): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "macro": {
            "precision": float(precision.mean()),
            "recall": float(recall.mean()),
            "f1": float(f1.mean()),
        },
        "top_k_accuracy": {str(k): top_k_accuracy(y, proba, k) for k in top_k if 1 <= k <= num_classes},
        "confusion_matrix": cm.tolist(),
        "misclassified": misclassified,
    }


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

    Keys: `accuracy`, `per_class` {name: precision/recall/f1/support}, `macro`
    (precision/recall/f1), `confusion_matrix` (rows true, columns predicted), `top_k_accuracy`
    {"k": fraction}, `misclassified` [{index, true, predicted, confidence}] most confident
    first, `n`, `dataset`, `class_names`. `device` defaults to the model's own.
    """
    logits = predict_logits(model, x_uint8, batch_size=batch_size, device=device)
    return report_from_logits(logits, y, class_names, top_k=top_k, dataset=dataset)


def write_report(report: dict[str, Any], run_dir: str | os.PathLike[str]) -> Path:
    """Write `report` as `run_dir/report.json` atomically; returns the path."""
    return atomic_write_json(Path(run_dir) / REPORT_NAME, report)


def format_report(report: dict[str, Any]) -> str:
    """A terminal table: per-class precision/recall/F1/support, macro average, accuracy, top-k."""
    names = list(report["per_class"])
    width = max([len("macro avg"), *(len(n) for n in names)])
    head = f"{'class':>{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>8}"
    lines = [head, "-" * len(head)]
    for name in names:
        row = report["per_class"][name]
        lines.append(
            f"{name:>{width}}  {row['precision']:9.4f}  {row['recall']:9.4f}  {row['f1']:9.4f}  {row['support']:8d}"
        )
    lines.append("-" * len(head))
    macro = report["macro"]
    lines.append(
        f"{'macro avg':>{width}}  {macro['precision']:9.4f}  {macro['recall']:9.4f}  {macro['f1']:9.4f}  {report['n']:8d}"
    )
    lines.append("")
    where = f" on {report['dataset']}" if report.get("dataset") else ""
    n_wrong = len(report.get("misclassified", []))
    lines.append(f"accuracy{where}: {report['accuracy']:.4f}  ({report['n'] - n_wrong}/{report['n']} correct)")
    if report.get("top_k_accuracy"):
        lines.append("top-k accuracy: " + "  ".join(f"top-{k} {v:.4f}" for k, v in report["top_k_accuracy"].items()))
    return "\n".join(lines)

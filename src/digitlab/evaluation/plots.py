"""PNG plots of a run: prediction grid, training curves, confusion matrix, worst mistakes.

Headless: figures are drawn with matplotlib's Agg canvas directly (no pyplot, no display),
and written atomically. Each plot has a function taking arrays; `plot_run` redraws them all
from a run directory.
"""
from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab._io import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from digitlab.checkpoints import Checkpoint

from digitlab.layout import CONFUSION_PNG, CURVES_PNG, MISTAKES_PNG, PREDICTIONS_PNG, RunFiles
DPI = 100  # figure sizes below are in inches, so pixel size = inches * DPI
WRONG_COLOUR = "#d62728"  # red titles mark mistakes, as in the tutorials
GRID = 25  # plot_run's prediction grid: the first 25 test images, 5 x 5 as in the tutorials


def _figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # no bbox_inches="tight": keep the pixel size exact
    return atomic_write_bytes(path, buf.getvalue())


def _name(class_names: Sequence[str] | None, label: int) -> str:
    return str(class_names[label]) if class_names is not None else str(label)


def plot_prediction_grid(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    rows: int = 5,
    cols: int = 5,
) -> Path:
    """The tutorials' grid of the first rows*cols images (N, 28, 28), titled `label:L, predict:P`.

    Mistakes have a red title. Size: 2 * cols by 2 * rows inches at 100 dpi (1000 x 1000 px).
    """
    n = min(rows * cols, len(images))
    if n == 0:
        raise ValueError("no images to plot")
    fig = _figure(2.0 * cols, 2.0 * rows)
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        true, pred = int(labels[i]), int(predictions[i])
        colour = "black" if true == pred else WRONG_COLOUR
        ax.set_title(f"label:{_name(class_names, true)}, predict:{_name(class_names, pred)}", fontsize=9, color=colour)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.95, hspace=0.3, wspace=0.1)
    return _save(fig, path)


def plot_worst_mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    confidence: np.ndarray,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    n: int = 16,
) -> Path:
    """Gallery of the `n` most confident wrong predictions among images (N, 28, 28).

    Arrays may hold all samples (right ones are skipped) or only the mistakes.
    Size: 8 x 8.5 inches at 100 dpi (800 x 850 px).
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    confidence = np.asarray(confidence, dtype=np.float64)
    wrong = np.flatnonzero(labels != predictions)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:n]
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    fig = _figure(8.0, 8.5)
    fig.suptitle(f"Most confident mistakes ({len(order)} of {len(wrong)} wrong)", fontsize=12)
    for slot in range(rows * cols):
        ax = fig.add_subplot(rows, cols, slot + 1)
        ax.axis("off")
        if slot >= len(order):
            continue
        i = order[slot]
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(
            f"label:{_name(class_names, int(labels[i]))}, predict:{_name(class_names, int(predictions[i]))}\n"
            f"p={confidence[i]:.3f}",
            fontsize=8,
            color=WRONG_COLOUR,
        )
    if not len(order):
        fig.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=16)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9, hspace=0.45, wspace=0.1)
    return _save(fig, path)


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """Heat map of a confusion matrix (C, C) (rows true, columns predicted), counts written in cells.

    Colour is the row-normalised rate, so small classes are as visible as large ones.
    Size: 8 x 7 inches at 100 dpi (800 x 700 px).
    """
    cm = np.asarray(cm)
    c = cm.shape[0]
    support = cm.sum(axis=1, keepdims=True)
    rate = np.divide(cm, support, out=np.zeros(cm.shape, dtype=np.float64), where=support > 0)
    fig = _figure(8.0, 7.0)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(rate, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    ticks = np.arange(c)
    ax.set_xticks(ticks, [str(n) for n in class_names], rotation=45 if c > 10 else 0)
    ax.set_yticks(ticks, [str(n) for n in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    if c <= 20:  # beyond that the numbers no longer fit in the cells
        for (i, j), count in np.ndenumerate(cm):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if rate[i, j] > 0.5 else "black")
    fig.subplots_adjust(left=0.1, right=0.95, bottom=0.1, top=0.93)
    return _save(fig, path)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of a `metrics.jsonl` file, one JSON object per line (blank or broken lines skipped).

    A line cut short by a crash mid-write is skipped rather than failing the whole plot.
    """
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            records.append(obj)
    return records


def _epoch_series(records: Sequence[dict[str, Any]]) -> tuple[list[float], dict[str, list[float]]]:
    """Per-epoch values of every numeric key in records that carry an `epoch`; last value wins."""
    by_epoch: dict[float, dict[str, float]] = {}
    for rec in records:
        epoch = rec.get("epoch")
        if not isinstance(epoch, (int, float)):
            continue
        row = by_epoch.setdefault(float(epoch), {})
        for key, value in rec.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                row[key] = float(value)
    epochs = sorted(by_epoch)
    keys = sorted({k for row in by_epoch.values() for k in row})
    series = {k: [by_epoch[e].get(k, math.nan) for e in epochs] for k in keys}
    return epochs, series


def _is_loss(key: str) -> bool:
    return "loss" in key.lower()


def _is_accuracy(key: str) -> bool:
    k = key.lower()
    return "acc" in k and "top" not in k


def plot_training_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Loss and accuracy per epoch (train and validation) from `metrics.jsonl` records.

    Uses every numeric key containing `loss` (left panel) or `acc` (right panel) in records
    that have an `epoch`. Size: 12 x 4.5 inches at 100 dpi (1200 x 450 px).
    """
    from matplotlib.ticker import MaxNLocator

    epochs, series = _epoch_series(records)
    if not epochs:
        raise ValueError("no records with an 'epoch' key to plot")
    fig = _figure(12.0, 4.5)
    for col, (title, pick) in enumerate((("Loss", _is_loss), ("Accuracy", _is_accuracy))):
        ax = fig.add_subplot(1, 2, col + 1)
        keys = [k for k in series if pick(k)]
        for key in keys:
            k = key.lower()
            style = "--" if k.startswith(("val", "valid")) else ":" if k.startswith("test") else "-"
            ax.plot(epochs, series[key], style, marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if keys:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {title.lower()} recorded", ha="center", va="center", transform=ax.transAxes)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.12, top=0.9, wspace=0.2)
    return _save(fig, path)


def plot_run(
    run_dir: str | os.PathLike[str],
    dataset: Any = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    report: dict[str, Any] | None = None,
    batch_size: int = 1000,
    checkpoint: Checkpoint | None = None,
) -> list[Path]:
    """Redraw every plot of a run into its directory; returns the PNG paths written.

    `dataset`: a loaded `digitlab.data` Dataset, a dataset name, or None for the one named in
    `model.json` (loaded from `data_dir` if given). `report`: an `evaluate_model` report of this
    model on that dataset's whole test split; when given, the confusion matrix and mistakes come
    from it instead of a fresh pass over the test set (a report of another size is ignored).
    `checkpoint`: the run's loaded checkpoint when the caller has it (else it is loaded).
    """
    from digitlab.checkpoints import load_checkpoint
    from digitlab.evaluation.report import report_from_logits, run_dataset
    from digitlab.inference.runner import predict_logits

    ckpt = checkpoint if checkpoint is not None else load_checkpoint(run_dir)
    run = Path(ckpt.run_dir)
    class_names = list(ckpt.meta.get("class_names") or [str(i) for i in range(ckpt.meta["num_classes"])])
    if dataset is None or isinstance(dataset, str):
        dataset = run_dataset(ckpt.meta, dataset, data_dir=data_dir, run_dir=run)
    x, y = dataset.x_test, dataset.y_test

    if report is None or report.get("n") != len(y) or len(report.get("confusion_matrix", [])) != len(class_names):
        # No report, or one of another split or subset: its indices would point at other images.
        logits = predict_logits(ckpt.model, x, batch_size=batch_size)
        report = report_from_logits(logits, y, class_names, dataset=getattr(dataset, "name", None))
        grid_pred = logits[:GRID].argmax(axis=1)
    else:
        grid_pred = predict_logits(ckpt.model, x[:GRID], batch_size=batch_size).argmax(axis=1)

    paths = [
        plot_prediction_grid(x[:GRID], y[:GRID], grid_pred, run / PREDICTIONS_PNG, class_names=class_names),
        plot_confusion_matrix(np.asarray(report["confusion_matrix"]), class_names, run / CONFUSION_PNG),
    ]
    mistakes = report["misclassified"]
    idx = np.array([m["index"] for m in mistakes], dtype=np.int64)
    paths.append(
        plot_worst_mistakes(
            x[idx],
            np.array([m["true"] for m in mistakes], dtype=np.int64),
            np.array([m["predicted"] for m in mistakes], dtype=np.int64),
            np.array([m["confidence"] for m in mistakes], dtype=np.float64),
            run / MISTAKES_PNG,
            class_names=class_names,
        )
    )
    metrics_file = RunFiles(run).metrics
    if metrics_file.is_file():
        records = read_metrics(metrics_file)
        if any("epoch" in r for r in records):
            paths.append(plot_training_curves(records, run / CURVES_PNG))
    return paths

"""PNG plots of a run: prediction grid, training curves, confusion matrix, worst mistakes, reliability.

Headless: figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display) and
written atomically. Each plot has a `*_figure` function taking arrays that returns the
matplotlib Figure (what the tests inspect) and a `plot_*` function that saves it as PNG;
`run_figures` builds every figure of a run directory and `plot_run` writes them.
"""
from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab._io import atomic_write_bytes
from digitlab.layout import (
    CONFUSION_PNG,
    CURVES_PNG,
    MISTAKES_PNG,
    PREDICTIONS_PNG,
    RELIABILITY_PNG,
    RunFiles,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from digitlab.checkpoints import Checkpoint

DPI = 100  # figure sizes below are in inches, so pixel size = inches * DPI
WRONG_COLOUR = "#d62728"  # red titles mark mistakes, as in the tutorials
BEFORE_COLOUR, AFTER_COLOUR = "#ff7f0e", "#1f77b4"  # reliability diagram: before / after temperature scaling
GRID = 25  # plot_run's prediction grid: the first 25 test images, 5 x 5 as in the tutorials
MISTAKES = 16  # worst_mistakes.png: the 16 most confident mistakes, 4 x 4
SPLIT_WORDS = {"train": "training", "val": "validation", "valid": "validation", "validation": "validation",
               "test": "test"}  # metrics.jsonl key prefixes in the legend's words


def _figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write `fig` as a PNG of exactly its size in inches * DPI pixels, atomically; returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # no bbox_inches="tight": keep the pixel size exact
    return atomic_write_bytes(path, buf.getvalue())


def _name(class_names: Sequence[str] | None, label: int) -> str:
    return str(class_names[label]) if class_names is not None else str(label)


def run_title(what: str, run_name: str | None = None, accuracy: float | None = None,
              dataset: str | None = None) -> str:
    """A figure title: `what (run NAME, mnist test accuracy 99.50%)`, with the parts that are known."""
    parts = [f"run {run_name}"] if run_name else []
    if accuracy is not None:
        parts.append(f"{dataset + ' ' if dataset else ''}test accuracy {accuracy:.2%}")
    return f"{what} ({', '.join(parts)})" if parts else what


def prediction_grid_figure(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    rows: int = 5,
    cols: int = 5,
    title: str | None = None,
) -> Figure:
    """The tutorials' grid of the first rows*cols images (N, 28, 28), titled `label:L, predict:P`.

    Mistakes have a red title. Size: 2 * cols by 2 * rows inches at 100 dpi (1000 x 1000 px).
    """
    n = min(rows * cols, len(images))
    if n == 0:
        raise ValueError("no images to plot")
    fig = _figure(2.0 * cols, 2.0 * rows)
    fig.suptitle(title or f"First {n} test images: label vs prediction, mistakes in red", fontsize=13)
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        true, pred = int(labels[i]), int(predictions[i])
        colour = "black" if true == pred else WRONG_COLOUR
        ax.set_title(f"label:{_name(class_names, true)}, predict:{_name(class_names, pred)}", fontsize=9, color=colour)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.91, hspace=0.3, wspace=0.1)
    return fig


def plot_prediction_grid(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                         path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """`prediction_grid_figure(images, labels, predictions, **kwargs)` written to `path`."""
    return save_figure(prediction_grid_figure(images, labels, predictions, **kwargs), path)


def worst_mistakes_figure(
    images: np.ndarray,
    labels: np.ndarray,
    predictions: np.ndarray,
    probability: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    sample_indices: np.ndarray | None = None,
    n: int = MISTAKES,
    title: str | None = None,
) -> Figure:
    """Gallery of the `n` most confident wrong predictions among images (N, 28, 28).

    `probability` (N,) is the model's probability of its prediction; arrays may hold all samples
    (right ones are skipped) or only the mistakes. `sample_indices` (N,), when given, are shown
    as `#i` (the index into the test split). Size: 8 x 8.5 inches at 100 dpi (800 x 850 px).
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    probability = np.asarray(probability, dtype=np.float64)
    wrong = np.flatnonzero(labels != predictions)
    order = wrong[np.argsort(-probability[wrong], kind="stable")][:n]
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    fig = _figure(8.0, 8.5)
    fig.suptitle(title or f"Most confident mistakes ({len(order)} of {len(wrong)} wrong)", fontsize=12)
    for slot in range(rows * cols):
        ax = fig.add_subplot(rows, cols, slot + 1)
        ax.axis("off")
        if slot >= len(order):
            continue
        i = order[slot]
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
        where = f"#{int(sample_indices[i])}  " if sample_indices is not None else ""
        ax.set_title(
            f"label:{_name(class_names, int(labels[i]))}, predict:{_name(class_names, int(predictions[i]))}\n"
            f"{where}p={probability[i]:.3f}",
            fontsize=8,
            color=WRONG_COLOUR,
        )
    if not len(order):
        fig.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=16)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.9, hspace=0.45, wspace=0.1)
    return fig


def plot_worst_mistakes(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, probability: np.ndarray,
                        path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """`worst_mistakes_figure(images, labels, predictions, probability, **kwargs)` written to `path`."""
    return save_figure(worst_mistakes_figure(images, labels, predictions, probability, **kwargs), path)


def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str], *, title: str | None = None) -> Figure:
    """Heat map of a confusion matrix (C, C), rows true and columns predicted, non-zero counts written in.

    The colour is the count on a log scale (empty cells white), so a single mistake stands out
    from the empty cells as clearly as 1,000 correct images do. Counts are written in every
    non-zero cell when C <= 20. Size: 8 x 7 inches at 100 dpi (800 x 700 px).
    """
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    cm = np.asarray(cm, dtype=np.int64)
    c = cm.shape[0]
    cmap = colormaps["viridis"].with_extremes(bad="white")
    norm = LogNorm(vmin=1, vmax=max(int(cm.max()), 2))  # LogNorm needs vmax > vmin
    fig = _figure(8.0, 7.0)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(np.ma.masked_equal(cm, 0), cmap=cmap, norm=norm)
    fig.colorbar(im, ax=ax, label="images (log scale; white: none)")
    ticks = np.arange(c)
    ax.set_xticks(ticks, [str(n) for n in class_names], rotation=45 if c > 10 else 0)
    ax.set_yticks(ticks, [str(n) for n in class_names])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or "Confusion matrix", fontsize=11)
    if c <= 20:  # beyond that the numbers no longer fit in the cells
        for i, j in zip(*np.nonzero(cm)):
            r, g, b, _ = cmap(norm(cm[i, j]))
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")
    fig.subplots_adjust(left=0.1, right=0.95, bottom=0.1, top=0.93)
    return fig


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str],
                          **kwargs: Any) -> Path:
    """`confusion_matrix_figure(cm, class_names, **kwargs)` written to `path`."""
    return save_figure(confusion_matrix_figure(cm, class_names, **kwargs), path)


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


def series_label(key: str) -> str:
    """A metrics key in words, for legends: `val_accuracy` -> "validation accuracy", `train_loss` -> "training loss"."""
    words = [w for w in key.replace("-", "_").split("_") if w]
    if words and words[0].lower() in SPLIT_WORDS:
        words[0] = SPLIT_WORDS[words[0].lower()]
    return " ".join("accuracy" if w.lower() == "acc" else "learning rate" if w.lower() == "lr" else w for w in words)


def loss_note(training: Mapping[str, Any] | None) -> str | None:
    """Why training loss sits above validation loss, from model.json's `training` config; None if no reason."""
    if not training:
        return None
    smoothing = float(training.get("label_smoothing") or 0.0)
    causes = []
    if smoothing > 0:
        causes.append(f"with label smoothing {smoothing:g} (validation loss is plain cross-entropy)")
    if training.get("augment"):
        causes.append("on augmented images")
    if not causes:
        return None
    return ("Note: training loss is measured " + " and ".join(causes)
            + ", so it sits above the validation loss; the gap is expected, not under-fitting.")


def _lr_panel(ax: Axes, epochs: list[float], series: dict[str, list[float]],
              steps: Sequence[dict[str, Any]] | None) -> None:
    """The learning rate against the epoch: per step from steps.jsonl when it has `lr`, else per epoch."""
    step_points = [(float(r["epoch"]), float(r["lr"])) for r in steps or ()
                   if isinstance(r.get("epoch"), (int, float)) and isinstance(r.get("lr"), (int, float))]
    values: list[float] = []
    if step_points:
        x, y = zip(*sorted(step_points))
        ax.plot(x, y, "-", label="learning rate (per evaluation step)")
        values += y
    if "lr" in series:
        ax.plot(epochs, series["lr"], "o", markersize=3, label="learning rate (end of epoch)")
        values += [v for v in series["lr"] if not math.isnan(v)]
    ax.set_title("Learning rate")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    if not values:
        ax.text(0.5, 0.5, "no learning rate recorded", ha="center", va="center", transform=ax.transAxes)
        return
    if min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")  # warm-up and one-cycle schedules span decades
    ax.legend(fontsize=8)


def training_curves_figure(
    records: Sequence[dict[str, Any]],
    *,
    steps: Sequence[dict[str, Any]] | None = None,
    training: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Figure:
    """Loss, accuracy and learning rate per epoch from `metrics.jsonl` records (and `steps.jsonl`'s).

    Loss and accuracy panels: every numeric key containing `loss` / `acc` in records with an
    `epoch`, training solid, validation dashed, test dotted, the legend in words. `training`
    (model.json's config) adds a note when label smoothing or augmentation raise the training
    loss. Size: 15 x 5 inches at 100 dpi (1500 x 500 px).
    """
    from matplotlib.ticker import MaxNLocator

    epochs, series = _epoch_series(records)
    if not epochs:
        raise ValueError("no records with an 'epoch' key to plot")
    fig = _figure(15.0, 5.0)
    fig.suptitle(title or "Training curves", fontsize=12)
    for col, (what, pick) in enumerate((("Loss", _is_loss), ("Accuracy", _is_accuracy))):
        ax = fig.add_subplot(1, 3, col + 1)
        keys = [k for k in series if pick(k)]
        for key in keys:
            k = key.lower()
            style = "--" if k.startswith(("val", "valid")) else ":" if k.startswith("test") else "-"
            ax.plot(epochs, series[key], style, marker="o", markersize=3, label=series_label(key))
        ax.set_title(what)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss" if what == "Loss" else "accuracy")
        ax.grid(alpha=0.3)
        if keys:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no {what.lower()} recorded", ha="center", va="center", transform=ax.transAxes)
    _lr_panel(fig.add_subplot(1, 3, 3), epochs, series, steps)
    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    note = loss_note(training)
    if note:
        fig.text(0.5, 0.02, note, ha="center", va="bottom", fontsize=9, style="italic")
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.2 if note else 0.12, top=0.87, wspace=0.25)
    return fig


def plot_training_curves(records: Sequence[dict[str, Any]], path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """`training_curves_figure(records, **kwargs)` written to `path`."""
    return save_figure(training_curves_figure(records, **kwargs), path)


def reliability_figure(calibration: Mapping[str, Any], *, title: str | None = None) -> Figure:
    """Reliability diagram: accuracy per confidence bin before and after temperature scaling.

    `calibration`: report.json's `calibration` section (`calibration.calibration_metrics`),
    with `reliability` {"before", "after"} bins, `ece_before`, `ece_after`, `temperature`.
    Top panel: bars of the accuracy in each bin of the top probability, the diagonal of perfect
    calibration; bottom panel: images per bin (log scale). Size: 7 x 8 inches (700 x 800 px).
    """
    from digitlab.evaluation.calibration import ReliabilityBins

    before = ReliabilityBins.from_dict(calibration["reliability"]["before"])
    after = ReliabilityBins.from_dict(calibration["reliability"]["after"])
    left, width = before.edges[:-1], np.diff(before.edges)
    fig = _figure(7.0, 8.0)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.3)
    ax = fig.add_subplot(grid[0])
    ax.bar(left, np.nan_to_num(before.accuracy), width, align="edge", color=BEFORE_COLOUR, alpha=0.45,
           edgecolor=BEFORE_COLOUR, label=f"before scaling (ECE {calibration['ece_before']:.4f})")
    ax.bar(left, np.nan_to_num(after.accuracy), width, align="edge", fill=False, edgecolor=AFTER_COLOUR,
           linewidth=1.5, label=f"after temperature scaling, T = {calibration['temperature']:.3f} "
                                f"(ECE {calibration['ece_after']:.4f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy")
    ax.set_title(title or "Reliability diagram", fontsize=11)
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    counts = fig.add_subplot(grid[1], sharex=ax)
    counts.bar(left, before.count, width, align="edge", color=BEFORE_COLOUR, alpha=0.45, label="before scaling")
    counts.bar(left, after.count, width, align="edge", fill=False, edgecolor=AFTER_COLOUR, label="after scaling")
    if max(before.count.max(), after.count.max()) > 0:
        counts.set_yscale("log")
    counts.set(xlabel="confidence (top probability)", ylabel="images per bin")
    counts.legend(loc="upper left", fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.07, top=0.94)
    return fig


def plot_reliability(calibration: Mapping[str, Any], path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """`reliability_figure(calibration, **kwargs)` written to `path` (a run's `reliability.png`)."""
    return save_figure(reliability_figure(calibration, **kwargs), path)


def _mistakes_figure(report: Mapping[str, Any], x: np.ndarray, class_names: Sequence[str], title: str) -> Figure:
    """`worst_mistakes_figure` of a report's `misclassified` list, images taken from the evaluated `x`."""
    mistakes = report["misclassified"]
    idx = np.array([m["sample_index"] for m in mistakes], dtype=np.int64)
    return worst_mistakes_figure(
        x[idx],
        np.array([m["label"] for m in mistakes], dtype=np.int64),
        np.array([m["predicted"] for m in mistakes], dtype=np.int64),
        np.array([m["probability"] for m in mistakes], dtype=np.float64),
        class_names=class_names, sample_indices=idx, title=title,
    )


def run_figures(
    run_dir: str | os.PathLike[str],
    dataset: Any = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    report: dict[str, Any] | None = None,
    batch_size: int = 1000,
    checkpoint: Checkpoint | None = None,
) -> dict[Path, Figure]:
    """Every figure of a run, by the path `plot_run` writes it to (arguments as there)."""
    from digitlab.evaluation.report import (
        report_from_logits,
        resolve_run,
        stored_calibration,
    )
    from digitlab.models.runner import predict_logits

    ckpt, ds, class_names = resolve_run(checkpoint if checkpoint is not None else run_dir, dataset,
                                        data_dir=data_dir)
    run = Path(ckpt.run_dir)
    x, y = ds.x_test, ds.y_test
    if report is None or report.get("n") != len(y) or len(report.get("confusion_matrix", [])) != len(class_names):
        # No report, or one of another split or subset: its indices would point at other images.
        logits = predict_logits(ckpt.model, x, batch_size=batch_size)
        report = report_from_logits(logits, y, class_names, dataset=ds.name,
                                    calibration=stored_calibration(ckpt.meta, logits, y))
        grid_pred = logits[:GRID].argmax(axis=1)
    else:
        grid_pred = predict_logits(ckpt.model, x[:GRID], batch_size=batch_size).argmax(axis=1)

    def title(what: str) -> str:
        return run_title(what, run.name, report["accuracy"], ds.name)

    n_wrong = len(report["misclassified"])

    figures = {
        PREDICTIONS_PNG: prediction_grid_figure(x[:GRID], y[:GRID], grid_pred, class_names=class_names,
                                                title=title(f"First {min(GRID, len(x))} test images, mistakes in red")),
        CONFUSION_PNG: confusion_matrix_figure(np.asarray(report["confusion_matrix"]), class_names,
                                               title=title("Confusion matrix")),
        MISTAKES_PNG: _mistakes_figure(report, x, class_names,
                                       title(f"Most confident mistakes, {min(MISTAKES, n_wrong)} of {n_wrong} wrong")),
    }
    files = RunFiles(run)
    records = read_metrics(files.metrics) if files.metrics.is_file() else []
    if any("epoch" in r for r in records):
        figures[CURVES_PNG] = training_curves_figure(
            records, steps=read_metrics(files.steps) if files.steps.is_file() else None,
            training=ckpt.meta.training, title=title("Training curves"))
    if report.get("calibration"):
        figures[RELIABILITY_PNG] = reliability_figure(report["calibration"], title=title("Reliability diagram"))
    return {run / name: fig for name, fig in figures.items()}


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

    `dataset`: a loaded `digitlab.data` Dataset, a dataset name or IDX folder, or None for the
    one named in `model.json` (loaded from `data_dir` if given); another dataset than the
    model's own gives one DatasetMismatchWarning. `report`: an `evaluate_model` report of this
    model on that dataset's whole test split; when given, the confusion matrix, mistakes and
    reliability diagram come from it instead of a fresh pass over the test set (a report of
    another size is ignored). `checkpoint`: the run's loaded checkpoint when the caller has it.
    Titles name the run (its directory's name) and the test accuracy; `reliability.png` is
    drawn when the report has `calibration`, `training_curves.png` when `metrics.jsonl` has epochs.
    """
    figures = run_figures(run_dir, dataset, data_dir=data_dir, report=report, batch_size=batch_size,
                          checkpoint=checkpoint)
    return [save_figure(fig, path) for path, fig in figures.items()]

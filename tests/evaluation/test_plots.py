"""Plots from arrays: what each figure shows (titles, labels, legends, annotations, colours) and the PNG written."""
from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.colors import LogNorm, same_color
from PIL import Image

from digitlab.evaluation import plots
from digitlab.evaluation.calibration import calibration_metrics

CLASSES = [str(i) for i in range(10)]


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    n = 60
    return {
        "images": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
        "labels": rng.integers(0, 10, n),
        "predictions": rng.integers(0, 10, n),
        "probability": rng.uniform(0.1, 1.0, n),
    }


def _legend(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def _notes(fig) -> list[str]:
    """Texts written on the figure itself, other than its title."""
    return [t.get_text() for t in fig.texts if t.get_text() != fig.get_suptitle()]


def _image_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


def test_prediction_grid_marks_a_known_mistake_red(arrays):
    labels = np.arange(25) % 10
    predictions = labels.copy()
    predictions[7] = (labels[7] + 3) % 10  # the one mistake
    fig = plots.prediction_grid_figure(arrays["images"][:25], labels, predictions, title="grid of run demo")
    assert fig.get_suptitle() == "grid of run demo"
    cells = _image_axes(fig)
    assert len(cells) == 25
    for i, ax in enumerate(cells):
        assert ax.get_title() == f"label:{labels[i]}, predict:{predictions[i]}"
        red = same_color(ax.title.get_color(), plots.WRONG_COLOUR)
        assert red == (i == 7)
        np.testing.assert_array_equal(ax.images[0].get_array(), arrays["images"][i])


def test_prediction_grid_with_fewer_images_than_cells_and_its_png(tmp_path, arrays):
    fig = plots.prediction_grid_figure(arrays["images"][:3], arrays["labels"][:3], arrays["labels"][:3],
                                       class_names=[f"c{i}" for i in range(10)])
    assert len(_image_axes(fig)) == 3 and all(not ax.axison for ax in fig.axes)
    assert _image_axes(fig)[0].get_title() == f"label:c{arrays['labels'][0]}, predict:c{arrays['labels'][0]}"
    path = plots.save_figure(fig, tmp_path / "g.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (1000, 1000)


def test_worst_mistakes_show_the_most_confident_wrong_ones_in_order(arrays):
    idx = np.arange(1000, 1060)
    fig = plots.worst_mistakes_figure(**arrays, class_names=[f"c{i}" for i in range(10)], sample_indices=idx)
    wrong = np.flatnonzero(arrays["labels"] != arrays["predictions"])
    order = wrong[np.argsort(-arrays["probability"][wrong], kind="stable")][:16]
    titles = [ax.get_title() for ax in _image_axes(fig)]
    assert titles == [f"label:c{arrays['labels'][i]}, predict:c{arrays['predictions'][i]}\n"
                      f"#{idx[i]}  p={arrays['probability'][i]:.3f}" for i in order]
    assert all(same_color(ax.title.get_color(), plots.WRONG_COLOUR) for ax in _image_axes(fig))
    assert fig.get_suptitle() == f"Most confident mistakes ({len(order)} of {len(wrong)} wrong)"


def test_worst_mistakes_without_mistakes_says_so(arrays):
    fig = plots.worst_mistakes_figure(**dict(arrays, predictions=arrays["labels"]))
    assert not _image_axes(fig) and _notes(fig) == ["no mistakes"]


def test_confusion_matrix_writes_every_non_zero_count_and_shows_single_mistakes():
    cm = np.diag([980, 1130, 1030]).astype(int)
    cm[0, 2], cm[2, 1] = 1, 7
    fig = plots.confusion_matrix_figure(cm, ["a", "b", "c"], title="Confusion matrix (run demo)")
    ax = fig.axes[0]
    assert ax.get_title() == "Confusion matrix (run demo)"
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    written = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert written == {(i, j): str(cm[i, j]) for i, j in zip(*np.nonzero(cm))}  # zeros are left blank
    image = ax.images[0]
    assert isinstance(image.norm, LogNorm)  # a count of 1 is not lost next to 1,000
    rgba = image.to_rgba(image.get_array())
    assert same_color(rgba[0, 1], "white")  # empty cell
    one, seven, diagonal = rgba[0, 2], rgba[2, 1], rgba[1, 1]
    assert not same_color(one, "white") and not same_color(one, seven) and not same_color(seven, diagonal)


def test_confusion_matrix_png_size(tmp_path):
    path = plots.plot_confusion_matrix(np.eye(10, dtype=int) * 100, CLASSES, tmp_path / "cm.png")
    with Image.open(path) as im:
        assert im.size == (800, 700)


@pytest.mark.parametrize(("key", "words"), [("train_loss", "training loss"), ("val_accuracy", "validation accuracy"),
                                            ("test_acc", "test accuracy"), ("lr", "learning rate")])
def test_series_label(key, words):
    assert plots.series_label(key) == words


def _records(n: int = 5) -> list[dict]:
    return [{"epoch": e, "lr": 0.1 * 10.0 ** -(e - 1), "train_loss": 1 / e, "train_accuracy": 1 - 0.5 / e,
             "val_loss": 0.8 / e, "val_accuracy": 1 - 0.4 / e} for e in range(1, n + 1)]


def test_training_curves_legends_in_words_axis_labels_and_learning_rate(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in _records()) + "\n{\"epoch\": 6, \"train_lo")  # last line cut
    records = plots.read_metrics(f)
    assert records == _records()
    fig = plots.training_curves_figure(records, title="Training curves (run demo)")
    loss, acc, lr = fig.axes
    assert fig.get_suptitle() == "Training curves (run demo)"
    assert _legend(loss) == ["training loss", "validation loss"]
    assert _legend(acc) == ["training accuracy", "validation accuracy"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch"] * 3
    assert (loss.get_ylabel(), acc.get_ylabel(), lr.get_ylabel()) == ("cross-entropy loss", "accuracy", "learning rate")
    assert lr.get_title() == "Learning rate" and lr.get_yscale() == "log"  # 0.1 down to 1e-5
    np.testing.assert_allclose(lr.lines[0].get_ydata(), [r["lr"] for r in _records()])
    assert not _notes(fig)  # no note without a training config
    path = plots.plot_training_curves(records, tmp_path / "c.png")
    with Image.open(path) as im:
        assert im.size == (1500, 500)


def test_training_curves_take_the_finer_learning_rate_from_steps():
    steps = [{"step": s, "epoch": s / 10, "lr": 0.01 + 0.001 * s, "val_loss": 0.5} for s in range(1, 51)]
    fig = plots.training_curves_figure(_records(), steps=steps)
    lr = fig.axes[2]
    assert _legend(lr) == ["learning rate (per evaluation step)", "learning rate (end of epoch)"]
    np.testing.assert_allclose(lr.lines[0].get_xdata(), [s["epoch"] for s in steps])


@pytest.mark.parametrize(("training", "words"), [
    ({"label_smoothing": 0.1, "augment": True}, ["label smoothing 0.1", "augmented images"]),
    ({"label_smoothing": 0.0, "augment": True}, ["augmented images"]),
    ({"label_smoothing": 0.2, "augment": False}, ["label smoothing 0.2"]),
])
def test_training_curves_explain_a_training_loss_above_validation(training, words):
    fig = plots.training_curves_figure(_records(), training=training)
    (note,) = _notes(fig)
    assert "above the validation loss" in note and all(w in note for w in words)
    assert ("smoothing" in note) == ("label smoothing 0.1" in words or "label smoothing 0.2" in words)


def test_training_curves_no_note_for_plain_training():
    assert not _notes(plots.training_curves_figure(_records(), training={"label_smoothing": 0.0, "augment": False}))


def test_training_curves_need_epochs():
    with pytest.raises(ValueError, match="epoch"):
        plots.training_curves_figure([{"step": 1, "loss": 0.3}])


def test_reliability_diagram_shows_both_ece_values_and_the_bins(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(2000, 10))
    y = rng.integers(0, 10, 2000)
    cal = calibration_metrics(logits, y, 3.0)
    fig = plots.reliability_figure(cal, title="Reliability diagram (run demo)")
    top, counts = fig.axes
    assert top.get_title() == "Reliability diagram (run demo)"
    assert top.get_xlabel() == "confidence (top probability)" and top.get_ylabel() == "accuracy"
    assert _legend(top) == ["perfect calibration", f"before scaling (ECE {cal['ece_before']:.4f})",
                            f"after temperature scaling, T = 3.000 (ECE {cal['ece_after']:.4f})"]
    before_bars, after_bars = top.containers
    for bars, when in ((before_bars, "before"), (after_bars, "after")):
        want = np.nan_to_num(np.array(cal["reliability"][when]["accuracy"], dtype=float))  # empty bins: no bar
        np.testing.assert_allclose([b.get_height() for b in bars], want)
    assert [b.get_height() for b in counts.containers[1]] == cal["reliability"]["after"]["count"]
    np.testing.assert_array_equal(top.lines[0].get_xydata(), [[0, 0], [1, 1]])  # the diagonal
    assert counts.get_ylabel() == "images per bin"
    with Image.open(plots.plot_reliability(cal, tmp_path / "r.png")) as im:
        assert im.size == (700, 800)


def test_run_title():
    assert plots.run_title("Confusion matrix", "demo", 0.995, "mnist") == \
        "Confusion matrix (run demo, mnist test accuracy 99.50%)"
    assert plots.run_title("Confusion matrix") == "Confusion matrix"

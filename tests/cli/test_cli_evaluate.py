"""`digitlab evaluate`, `digitlab plot`, `evaluate_run` and `plots.plot_run` on a real checkpoint and MNIST."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from digitlab.checkpoints import load_checkpoint
from digitlab.cli import main
from digitlab.evaluation import DatasetMismatchWarning, evaluate_model, evaluate_run
from digitlab.evaluation.calibration import calibration_metrics
from digitlab.evaluation.plots import plot_run, run_figures
from digitlab.models.runner import predict_logits

SIZES = {"predictions.png": (1000, 1000), "confusion_matrix.png": (800, 700), "worst_mistakes.png": (800, 850),
         "training_curves.png": (1500, 500), "reliability.png": (700, 800)}


def _edit_meta(run, **changes) -> None:
    path = run / "model.json"
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def test_evaluate_cli_writes_report_matching_the_library(softmax_run, mnist, mnist_dir, capsys):
    assert main(["evaluate", str(softmax_run), "--data-dir", str(mnist_dir)]) == 0
    out, err = capsys.readouterr()
    saved = json.loads((softmax_run / "report.json").read_text())
    ckpt = load_checkpoint(softmax_run)
    want = evaluate_model(ckpt.model, mnist.x_test, mnist.y_test, ckpt.meta.class_names, dataset="mnist")
    assert saved == json.loads(json.dumps(evaluate_run(softmax_run, mnist))) == json.loads(json.dumps(want))
    assert "calibration" not in saved  # model.json has no temperature
    assert f"{want['accuracy']:.4f}" in out and "macro avg" in out and "weighted avg" in out
    assert "warning" not in err


def test_evaluate_cli_dry_run_json(softmax_run, mnist_dir, capsys):
    assert main(["evaluate", str(softmax_run), "--data-dir", str(mnist_dir), "--dry-run", "--json",
                 "--batch-size", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 100 and sum(map(sum, report["confusion_matrix"])) == 100
    assert not (softmax_run / "report.json").exists()


def test_plot_run_draws_all_four_titled_with_the_run(softmax_run, mnist):
    figures = {p.name: fig for p, fig in run_figures(softmax_run, mnist).items()}
    report = evaluate_run(softmax_run, mnist)
    title = f"(run {softmax_run.name}, mnist test accuracy {report['accuracy']:.2%})"
    assert sorted(figures) == sorted(["predictions.png", "confusion_matrix.png", "worst_mistakes.png",
                                      "training_curves.png"])
    for name in ("predictions.png", "worst_mistakes.png", "training_curves.png"):
        assert figures[name].get_suptitle().endswith(title), name
    assert figures["confusion_matrix.png"].axes[0].get_title() == f"Confusion matrix {title}"
    assert figures["confusion_matrix.png"].axes[0].images[0].get_array().sum() == 10_000

    paths = plot_run(softmax_run, mnist)
    assert sorted(p.name for p in paths) == sorted(figures)
    for p in paths:
        assert p.parent == softmax_run
        with Image.open(p) as im:
            assert im.size == SIZES[p.name]


def test_calibrated_run_gets_its_calibration_in_the_report_and_a_reliability_diagram(softmax_run, mnist, capsys,
                                                                                      mnist_dir):
    _edit_meta(softmax_run, calibration={"temperature": 0.5})
    report = evaluate_run(softmax_run, mnist)
    logits = predict_logits(load_checkpoint(softmax_run).model, mnist.x_test)
    assert report["calibration"] == calibration_metrics(logits, mnist.y_test, 0.5)
    figures = {p.name: fig for p, fig in run_figures(softmax_run, mnist, report=report).items()}
    top = figures["reliability.png"].axes[0]
    assert top.get_title().startswith("Reliability diagram (run ")
    assert f"ECE {report['calibration']['ece_after']:.4f}" in top.get_legend().get_texts()[2].get_text()
    assert main(["evaluate", str(softmax_run), "--data-dir", str(mnist_dir), "--no-write"]) == 0
    assert "calibration: temperature 0.5000" in capsys.readouterr().out


def test_plot_cli_loads_dataset_named_in_model_json(softmax_run, mnist_dir, capsys):
    (softmax_run / "metrics.jsonl").unlink()  # no training log: the curves are skipped, the rest drawn
    assert main(["plot", str(softmax_run), "--data-dir", str(mnist_dir)]) == 0
    written = capsys.readouterr().out.split()
    assert str(softmax_run / "predictions.png") in written and "training_curves.png" not in " ".join(written)


def test_another_dataset_than_the_models_own_warns_once(softmax_run, mnist, mnist_dir, capsys):
    _edit_meta(softmax_run, dataset="kmnist")
    with pytest.warns(DatasetMismatchWarning) as caught:
        report = evaluate_run(softmax_run, mnist)
    assert len(caught) == 1 and "'kmnist'" in str(caught[0].message) and "'mnist'" in str(caught[0].message)
    assert report["dataset"] == "mnist"
    with pytest.warns(DatasetMismatchWarning) as caught:
        plot_run(softmax_run, mnist)
    assert len(caught) == 1
    for command in ("evaluate", "plot"):
        assert main([command, str(softmax_run), "--dataset", "mnist", "--data-dir", str(mnist_dir)]) == 0
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith("digitlab: warning: ") and "kmnist" in err[0], command


def test_plot_run_uses_a_given_report_and_ignores_a_partial_one(softmax_run, mnist, monkeypatch):
    from digitlab.evaluation import plots

    ckpt = load_checkpoint(softmax_run)
    full = evaluate_model(ckpt.model, mnist.x_test, mnist.y_test, ckpt.meta.class_names)
    seen = []
    real = plots.confusion_matrix_figure
    monkeypatch.setattr(plots, "confusion_matrix_figure",
                        lambda cm, names, **kw: seen.append(cm) or real(cm, names, **kw))
    fake = dict(full, confusion_matrix=(np.eye(10, dtype=int) * 1000).tolist())  # recognisably not recomputed
    plot_run(softmax_run, mnist, report=fake, checkpoint=ckpt)
    partial = evaluate_model(ckpt.model, mnist.x_test[:100], mnist.y_test[:100], ckpt.meta.class_names)
    plot_run(softmax_run, mnist, report=partial)
    assert seen[0].tolist() == fake["confusion_matrix"]
    assert seen[1].tolist() == full["confusion_matrix"]  # the 100-image report was not used


def test_evaluate_without_any_dataset_name_says_what_to_do(softmax_run, capsys):
    _edit_meta(softmax_run, dataset=None)
    assert main(["evaluate", str(softmax_run)]) == 1
    err = capsys.readouterr().err
    assert str(softmax_run / "model.json") in err and "--dataset" in err

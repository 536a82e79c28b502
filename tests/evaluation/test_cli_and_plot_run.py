"""`digitlab evaluate`, `digitlab plot` and `plots.plot_run` on a real checkpoint and MNIST."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from digitlab.checkpoints import load_checkpoint
from digitlab.cli import main
from digitlab.evaluation import evaluate_model
from digitlab.evaluation.plots import plot_run


def test_evaluate_cli_writes_report_matching_the_library(softmax_run, mnist, mnist_dir, capsys):
    assert main(["evaluate", str(softmax_run), "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    saved = json.loads((softmax_run / "report.json").read_text())
    ckpt = load_checkpoint(softmax_run)
    want = evaluate_model(ckpt.model, mnist.x_test, mnist.y_test, ckpt.meta["class_names"], dataset="mnist")
    assert saved["n"] == 10000 and saved["accuracy"] == want["accuracy"]
    assert saved["confusion_matrix"] == want["confusion_matrix"]
    assert f"{want['accuracy']:.4f}" in out and "macro avg" in out


def test_evaluate_cli_dry_run_json(softmax_run, mnist_dir, capsys):
    assert main(["evaluate", str(softmax_run), "--data-dir", str(mnist_dir), "--dry-run", "--json",
                 "--batch-size", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 100 and sum(map(sum, report["confusion_matrix"])) == 100
    assert not (softmax_run / "report.json").exists()


def test_plot_run_draws_all_four(softmax_run, mnist):
    paths = plot_run(softmax_run, mnist)
    assert sorted(p.name for p in paths) == sorted(
        ["predictions.png", "confusion_matrix.png", "worst_mistakes.png", "training_curves.png"])
    sizes = {"predictions.png": (1000, 1000), "confusion_matrix.png": (800, 700),
             "worst_mistakes.png": (800, 850), "training_curves.png": (1200, 450)}
    for p in paths:
        assert p.parent == softmax_run and p.stat().st_size > 1000
        with Image.open(p) as im:
            assert im.size == sizes[p.name]
            assert np.asarray(im.convert("L")).std() > 5  # something was drawn


def test_plot_cli_loads_dataset_named_in_model_json(softmax_run, mnist_dir, capsys):
    (softmax_run / "metrics.jsonl").unlink()  # no training log: the curves are skipped, the rest drawn
    assert main(["plot", str(softmax_run), "--data-dir", str(mnist_dir)]) == 0
    written = capsys.readouterr().out.split()
    assert str(softmax_run / "predictions.png") in written and "training_curves.png" not in " ".join(written)


def test_plot_run_uses_a_given_report_and_ignores_a_partial_one(softmax_run, mnist, monkeypatch):
    from digitlab.evaluation import plots

    ckpt = load_checkpoint(softmax_run)
    full = evaluate_model(ckpt.model, mnist.x_test, mnist.y_test, ckpt.meta["class_names"])
    seen = []
    real = plots.plot_confusion_matrix
    monkeypatch.setattr(plots, "plot_confusion_matrix", lambda cm, names, path: seen.append(cm) or real(cm, names, path))
    fake = dict(full, confusion_matrix=(np.eye(10, dtype=int) * 1000).tolist())  # recognisably not recomputed
    plot_run(softmax_run, mnist, report=fake)
    partial = evaluate_model(ckpt.model, mnist.x_test[:100], mnist.y_test[:100], ckpt.meta["class_names"])
    plot_run(softmax_run, mnist, report=partial)
    assert seen[0].tolist() == fake["confusion_matrix"]
    assert seen[1].tolist() == full["confusion_matrix"]  # the 100-image report was not used


def test_evaluate_without_any_dataset_name_says_what_to_do(softmax_run, capsys):
    meta_path = softmax_run / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["dataset"] = None
    meta_path.write_text(json.dumps(meta))
    assert main(["evaluate", str(softmax_run)]) == 1
    err = capsys.readouterr().err
    assert str(meta_path) in err and "--dataset" in err

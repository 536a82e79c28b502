"""Checks that need a trained model: the shared `trained_run` fixture (a small cnn, ~98.5%)."""
from __future__ import annotations

import shutil

import numpy as np

from digitlab.export import export_onnx
from digitlab.export.onnx import compare_onnx
from digitlab.inference import Predictor
from digitlab.vision import preprocess_image


def test_preprocessed_mnist_keeps_trained_accuracy(trained_run, mnist):
    x, y = mnist.x_test[:3000], mnist.y_test[:3000]
    p = Predictor.load(trained_run, backend="torch")
    raw = np.mean(p.predict(x) == y)
    pre = np.mean(p.predict(np.stack([preprocess_image(im) for im in x])) == y)
    assert raw > 0.95  # the fixture is a trained model
    assert abs(raw - pre) <= 0.01


def test_trained_onnx_parity_and_predictor_agreement(trained_run, mnist, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)  # the shared fixture stays free of model.onnx
    x = mnist.x_test[:1000]
    assert compare_onnx(run, export_onnx(run), x) < 1e-4
    t, o = Predictor.load(run, backend="torch"), Predictor.load(run, backend="onnx")
    np.testing.assert_allclose(o.predict_proba(x), t.predict_proba(x), atol=1e-5)
    assert np.mean(o.predict(x) == t.predict(x)) == 1.0


def test_hand_drawn_digit_is_recognised(trained_run):
    """A '7' and a '1' drawn dark on white, off-centre, at a size nothing like MNIST's."""
    from PIL import Image, ImageDraw

    p = Predictor.load(trained_run, backend="torch")
    seven = Image.new("L", (400, 300), 255)
    ImageDraw.Draw(seven).line([(60, 40), (190, 40), (110, 260)], fill=0, width=22)
    one = Image.new("L", (300, 300), 240)
    ImageDraw.Draw(one).line([(200, 30), (185, 270)], fill=20, width=20)
    got = p.predict(np.stack([preprocess_image(seven), preprocess_image(one)]))
    assert got.tolist() == [7, 1]

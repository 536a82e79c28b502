"""The CTC line reader: output layout and lengths, size, and that it learns a tiny set."""
from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.inference.ctc import pad_lines
from digitlab.layout import BLANK, LINE_HEIGHT, NUM_CLASSES
from digitlab.models import MODELS
from digitlab.models.fuse import fuse_for_inference
from digitlab.models.reader import LineReader, reader_config, weight_bytes
from digitlab.synth.lines import LineStyle, LineSynth

MAX_WEIGHT_BYTES = 2_000_000  # the brief: <= 2 MB of float32 weights


@pytest.mark.parametrize(("stride", "lstm"), [(4, 0), (8, 0), (4, 16)])
def test_log_probs_are_time_major_and_normalised(stride: int, lstm: int) -> None:
    torch.manual_seed(0)
    model = LineReader(stride=stride, lstm=lstm).eval()
    out = model(torch.rand(3, 1, LINE_HEIGHT, 96))
    assert out.shape == (96 // stride, 3, NUM_CLASSES) and out.dtype == torch.float32
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(96 // stride, 3))


def test_frames_do_not_see_the_padding_far_away() -> None:
    """A line's frames barely change when the batch is padded wider (padding is black background)."""
    torch.manual_seed(0)
    model = LineReader().eval()
    x = torch.rand(1, 1, LINE_HEIGHT, 64)
    wide = torch.cat([x, torch.zeros(1, 1, LINE_HEIGHT, 64)], 3)
    torch.testing.assert_close(model(wide)[:8], model(x)[:8], atol=1e-4, rtol=1e-4)


def test_output_lengths_round_up() -> None:
    model = LineReader(stride=4)
    assert model.output_lengths(torch.tensor([4, 5, 8, 17])).tolist() == [1, 2, 2, 5]


@pytest.mark.parametrize("lstm", [0, 64])
def test_weights_fit_the_budget(lstm: int) -> None:
    assert weight_bytes(LineReader(lstm=lstm)) <= MAX_WEIGHT_BYTES


def test_config_rebuilds_the_model() -> None:
    model = LineReader(lstm=8, context=1, hidden=48)
    again = LineReader(**reader_config(model))
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]


def test_not_in_the_classifier_registry() -> None:
    """The registry is for (N, 1, 28, 28) -> (N, C) classifiers; the reader has its own contract."""
    assert LineReader not in MODELS.values()


def test_bad_input_and_config_say_what_to_do() -> None:
    with pytest.raises(DigitlabError, match="pad_lines"):
        LineReader()(torch.rand(1, 1, 28, 28))
    with pytest.raises(DigitlabError, match="stride 4 or 8"):
        LineReader(stride=3)


def _drawn_digits() -> tuple[np.ndarray, np.ndarray]:
    """Ten uint8 (28, 28) digits 0-9 drawn by cv2.putText, bright on black, and their labels."""
    images = np.zeros((10, 28, 28), np.uint8)
    for d in range(10):
        cv2.putText(images[d], str(d), (7, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2, cv2.LINE_AA)
    return images, np.arange(10)


def test_a_few_dozen_steps_reduce_the_loss_on_a_tiny_set() -> None:
    torch.manual_seed(0)
    batch = LineSynth(*_drawn_digits(), nondigit_split=None).make(8, np.random.default_rng(0), LineStyle(length=(1, 3)))
    x, widths = pad_lines(batch.images)
    targets = torch.from_numpy(np.concatenate(batch.labels))
    lengths = torch.tensor([len(lab) for lab in batch.labels])
    model = LineReader(channels=(8, 8, 16, 16), hidden=32, context=1, dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    losses = []
    for _ in range(40):
        loss = loss_fn(model(x), targets, model.output_lengths(widths), lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_batchnorm_folds_into_the_convs_for_inference() -> None:
    """digitlab.models.fuse works on the reader: same log-probabilities, fewer BatchNorm layers."""
    torch.manual_seed(0)
    model = LineReader()
    model.train()
    for _ in range(3):  # running statistics away from their initial values
        model(torch.rand(4, 1, LINE_HEIGHT, 64))
    model.eval()
    fused = fuse_for_inference(model)
    x = torch.rand(2, 1, LINE_HEIGHT, 80)
    torch.testing.assert_close(fused(x), model(x), atol=1e-4, rtol=1e-4)
    count = sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert count < sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_exports_to_onnx_with_any_width() -> None:
    """The folded reader exports (TorchScript exporter) with a free batch and width; ONNX Runtime agrees."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = fuse_for_inference(LineReader().eval())
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.rand(1, 1, LINE_HEIGHT, 64),), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n", 3: "w"}, "y": {0: "t", 1: "n"}}, dynamo=False)
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 1, LINE_HEIGHT, 120)
    got = session.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-4)

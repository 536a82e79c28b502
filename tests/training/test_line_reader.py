"""The line reader's prototype trainer: batches for CTCLoss, a short fit, and the save/load round trip."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from digitlab.errors import DigitlabError
from digitlab.layout import LINE_HEIGHT
from digitlab.models.reader import LineReader
from digitlab.synth.lines import LineSynth
from digitlab.training.line_reader import (
    PLAN_AFTER,
    ReaderTrainConfig,
    ctc_batch,
    fit_reader,
    load_reader,
    save_reader,
)

TINY = {"channels": (8, 8, 16, 16), "hidden": 16, "context": 1}  # a reader that trains in a blink


@pytest.fixture(scope="module")
def synth() -> LineSynth:
    images = np.zeros((10, 28, 28), np.uint8)
    for d in range(10):
        cv2.putText(images[d], str(d), (7, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2, cv2.LINE_AA)
    return LineSynth(images, np.arange(10), nondigit_split=None)


def test_ctc_batch_concatenates_targets(synth: LineSynth) -> None:
    batch = synth.make(4, np.random.default_rng(0), "spaced")
    x, widths, targets, lengths = ctc_batch(batch, stride=4)
    assert x.shape[:3] == (4, 1, LINE_HEIGHT) and x.shape[3] % 4 == 0 and widths.tolist() == batch.widths().tolist()
    assert targets.tolist() == np.concatenate(batch.labels).tolist()
    assert lengths.tolist() == [len(lab) for lab in batch.labels]


def test_fit_logs_losses_and_saved_reader_reads_the_same(synth: LineSynth, tmp_path) -> None:
    style = "spaced"
    fit = fit_reader(LineReader(**TINY), synth, ReaderTrainConfig(steps=4, batch_size=4, log_every=2,
                                                                  condition=style))
    assert [s for s, _ in fit.losses] == [2, 4] and np.isfinite([v for _, v in fit.losses]).all()
    assert fit.lines == 16 and not fit.model.training
    save_reader(tmp_path, fit.model, extra={"note": "test"})
    again = load_reader(tmp_path)
    x = torch.rand(2, 1, LINE_HEIGHT, 40)
    torch.testing.assert_close(again(x), fit.model(x))


def test_errors_say_what_to_do(synth: LineSynth, tmp_path) -> None:
    with pytest.raises(DigitlabError, match="save_reader"):
        load_reader(tmp_path)
    with pytest.raises(DigitlabError, match="steps"):
        fit_reader(LineReader(**TINY), synth, ReaderTrainConfig(steps=0))


def test_a_time_budget_cuts_the_steps_after_timing_the_first(synth: LineSynth) -> None:
    config = ReaderTrainConfig(steps=500, batch_size=2, log_every=10, condition="spaced", max_seconds=1e-9)
    fit = fit_reader(LineReader(**TINY), synth, config)
    assert fit.stopped_at == PLAN_AFTER + 1 and fit.lines == 2 * (PLAN_AFTER + 1)
    assert fit.losses[-1][0] == PLAN_AFTER + 1

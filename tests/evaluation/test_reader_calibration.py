"""Calibrating the line reader's character probabilities (`digitlab.evaluation.line_reading.calibrate_reader`).

Log-probabilities are built here with a known confidence and a known share of right characters,
so the fitted temperature and the ECE are checked against what calibration must give.
"""
from __future__ import annotations

import numpy as np
import pytest

from digitlab.evaluation.line_reading import binary_ece, calibrate_reader, char_confidences

C = 12  # blank, ten digits, not-a-digit


def _line(chars: list[int], peak_logit: float) -> np.ndarray:
    """Frames: blank, char, blank, char, ...; each char's frame has `peak_logit` on it and 0 elsewhere."""
    frames = []
    for c in chars:
        blank = np.zeros(C)
        blank[0] = 8.0
        frame = np.zeros(C)
        frame[c] = peak_logit
        frames += [blank, frame]
    logits = np.array(frames + [frames[0]])
    return logits - np.log(np.exp(logits).sum(1, keepdims=True))


def test_an_overconfident_reader_is_cooled_and_its_ece_falls():
    rng = np.random.default_rng(0)
    log_probs, truths = [], []
    for _ in range(300):
        chars = rng.integers(1, 11, 5).tolist()
        line = _line(chars, peak_logit=9.0)  # ~0.999 sure of every character...
        wrong = rng.random(5) < 0.2  # ...but 20% are wrong
        truth = "".join(str((c - 1 + (3 if w else 0)) % 10) for c, w in zip(chars, wrong, strict=True))
        log_probs.append(line)
        truths.append(truth)
    cal = calibrate_reader(log_probs, truths)
    assert cal.chars == 1500
    assert cal.temperature > 1.5
    assert cal.ece_before > 0.15 and cal.ece_after < 0.05


def test_char_confidences_align_reads_to_truths():
    line = _line([3, 5, 11], peak_logit=6.0)  # reads "24?"
    rows, classes, right = char_confidences([line], ["247"])
    assert classes.tolist() == [3, 5, 11] and right.tolist() == [True, True, False]
    assert rows.shape == (3, C)


def test_binary_ece_of_honest_confidences_is_small():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 50_000)
    right = rng.random(50_000) < p
    assert binary_ece(p, right) < 0.01
    assert binary_ece(np.full(1000, 0.9), np.zeros(1000, bool)) == pytest.approx(0.9)


def test_a_reader_that_reads_nothing_keeps_temperature_one():
    blank = np.log(np.full((6, C), 1e-6))
    blank[:, 0] = 0.0
    cal = calibrate_reader([blank], ["12"])
    assert cal.temperature == 1.0 and cal.chars == 0

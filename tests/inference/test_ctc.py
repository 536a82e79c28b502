"""Greedy CTC decoding against hand-built posteriors and an independent reference; line batching."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from digitlab.errors import DigitlabError
from digitlab.inference.ctc import fit_line, greedy_decode, pad_lines, read_lines, text_of
from digitlab.layout import ALPHABET, BASELINE, BLANK, DIGIT_PX, INK_LEVEL, LINE_HEIGHT, NUM_CLASSES
from digitlab.models.reader import LineReader


def _posteriors(path: list[int], peak: list[float]) -> torch.Tensor:
    """Log-probabilities (T, 1, C) whose best class at frame t is path[t] with posterior peak[t]."""
    p = np.zeros((len(path), NUM_CLASSES))
    for t, (c, q) in enumerate(zip(path, peak, strict=True)):
        p[t] = (1 - q) / (NUM_CLASSES - 1)
        p[t, c] = q
    return torch.from_numpy(np.log(p)).float()[:, None, :]


def test_repeats_merge_blanks_separate_and_probabilities_are_peaks() -> None:
    # frames: _ 3 3 _ 3 5 5 _ 11   (classes; 3 = digit "2", 5 = digit "4", 11 = a mark)
    path = [BLANK, 3, 3, BLANK, 3, 5, 5, BLANK, 11]
    peak = [0.9, 0.6, 0.8, 0.95, 0.7, 0.5, 0.55, 0.9, 0.65]
    (chars,) = greedy_decode(_posteriors(path, peak), stride=4)
    assert [c.label for c in chars] == [3, 3, 5, 11] and text_of(chars) == "224?"
    np.testing.assert_allclose([c.probability for c in chars], [0.8, 0.7, 0.55, 0.65], rtol=1e-5)
    assert [c.frames for c in chars] == [(1, 3), (4, 5), (5, 7), (8, 9)]
    assert [c.span for c in chars] == [(4, 12), (16, 20), (20, 28), (32, 36)]


def test_lengths_cut_each_line_and_all_blank_reads_nothing() -> None:
    a = _posteriors([2, BLANK, 4, 4, 6], [0.9] * 5)
    b = _posteriors([BLANK] * 5, [0.9] * 5)
    chars = greedy_decode(torch.cat([a, b], 1), torch.tensor([3, 5]), stride=8)
    assert [text_of(c) for c in chars] == ["13", ""]
    assert chars[0][1].span == (16, 24)


def test_matches_a_reference_collapse_on_random_posteriors() -> None:
    """itertools.groupby over the argmax path, then blanks dropped: the textbook best path."""
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(0, 2, (30, 5, NUM_CLASSES))).float()
    lengths = rng.integers(1, 31, 5)
    decoded = greedy_decode(logits.log_softmax(-1), lengths)
    for i in range(5):
        best = logits[:lengths[i], i].argmax(-1).tolist()
        reference = [ALPHABET[k - 1] for k, _ in itertools.groupby(best) if k != BLANK]
        assert text_of(decoded[i]) == "".join(reference)


def test_pad_lines_pads_right_with_black_to_a_multiple_of_the_stride() -> None:
    lines = [np.full((LINE_HEIGHT, 10), 255, np.uint8), np.full((LINE_HEIGHT, 21), 51, np.uint8)]
    x, widths = pad_lines(lines, stride=4)
    assert x.shape == (2, 1, LINE_HEIGHT, 24) and widths.tolist() == [10, 21]
    assert x[0, 0, :, :10].eq(1).all() and x[0, 0, :, 10:].eq(0).all()
    torch.testing.assert_close(x[1, 0, 0, 0], torch.tensor(0.2))
    with pytest.raises(DigitlabError, match="scale it to 32"):
        pad_lines([np.zeros((28, 28), np.uint8)])


def test_read_lines_keeps_the_input_order() -> None:
    """Lines are batched by width internally; answers come back in the caller's order."""
    torch.manual_seed(0)
    model = LineReader()
    lines = [np.random.default_rng(k).integers(0, 256, (LINE_HEIGHT, w), dtype=np.uint8) for k, w in
             enumerate((120, 40, 80))]
    together = read_lines(model, lines, batch_size=2)
    alone = [read_lines(model, [line])[0] for line in lines]
    assert [text_of(c) for c in together] == [text_of(c) for c in alone]


def test_fit_line_scales_the_ink_to_the_digit_height_on_the_baseline() -> None:
    ink = np.zeros((100, 300), np.uint8)
    ink[20:64, 10:290] = 255  # 44 px of ink: twice DIGIT_PX
    line = fit_line(ink)
    rows = np.flatnonzero(line.max(1) > INK_LEVEL)
    assert line.shape == (LINE_HEIGHT, 150) and line.dtype == np.uint8
    assert rows[-1] + 1 == BASELINE and len(rows) == DIGIT_PX
    assert fit_line(np.zeros((5, 9), np.uint8)).shape[0] == LINE_HEIGHT

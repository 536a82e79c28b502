"""Finding lines of writing and normalising them for the reader (`digitlab.vision.lines`).

Pictures are drawn here with known rectangles and MNIST digits at known places, so line
membership, order, height and baseline are checked against what was drawn.
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digitlab.layout import BASELINE, DIGIT_PX, LINE_HEIGHT
from digitlab.vision.ink import find_ink
from digitlab.vision.lines import MAX_LINE_PX, MIN_DIGIT_PX, _squeezed, baseline, find_lines


def _paper(h: int, w: int) -> np.ndarray:
    return np.full((h, w), 245, np.uint8)


def _digit_row(page: np.ndarray, x0: int, y_bottom: int, digits: list[np.ndarray], size: int, step: int) -> None:
    for k, d in enumerate(digits):
        glyph = cv2.resize(d, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
        x = x0 + k * step
        region = page[y_bottom - size:y_bottom, x:x + size]
        region[:] = np.minimum(region, (245 - glyph * 225).astype(np.uint8))


def test_two_lines_are_found_top_to_bottom_with_their_own_ink(mnist):
    page = _paper(300, 700)
    _digit_row(page, 40, 120, list(mnist.x_test[:5]), 56, 90)
    _digit_row(page, 40, 250, list(mnist.x_test[5:9]), 56, 90)
    layout = find_lines(find_ink(page))
    assert len(layout.lines) == 2
    top, bottom = layout.lines
    assert top.bbox[3] <= 130 and bottom.bbox[1] >= 180  # nothing of the other line
    for line in layout.lines:
        assert line.image.shape[0] == LINE_HEIGHT and line.image.dtype == np.uint8
        rows = np.flatnonzero(line.image.max(1) > 64)
        assert BASELINE - 3 <= rows[-1] <= BASELINE + 3  # the digits sit on the reader's baseline...
        assert rows[-1] - rows[0] >= 0.6 * DIGIT_PX  # ...at about the reader's digit height


def test_columns_map_back_to_the_picture(mnist):
    page = _paper(200, 600)
    _digit_row(page, 50, 150, list(mnist.x_test[:4]), 56, 120)
    line = find_lines(find_ink(page)).lines[0]
    ink_cols = np.flatnonzero(line.image.max(0) > 64)
    x0, y0, x1, y1 = line.box_of(int(ink_cols[0]), int(ink_cols[-1]) + 1)
    assert abs(x0 - line.bbox[0]) <= 3 and abs(x1 - line.bbox[2]) <= 3
    assert y0 >= line.bbox[1] and y1 <= line.bbox[3]


def test_a_digit_written_far_off_the_line_lands_on_the_baseline(mnist):
    page = _paper(260, 700)
    digits = list(mnist.x_test[:5])
    for k, d in enumerate(digits):
        _digit_row(page, 40 + 120 * k, 180 + (20 if k == 2 else 0), [d], 56, 0)  # the third half a digit lower
    line = find_lines(find_ink(page)).lines[0]
    bottoms = []
    for k in range(5):  # each digit's columns in the line image, found from its place on the page
        cols = [c for c in range(line.image.shape[1]) if 40 + 120 * k <= line.xmap[c] < 96 + 120 * k]
        rows = np.flatnonzero(line.image[:, cols].max(1) > 64)
        bottoms.append(rows[-1])
    others = [b for k, b in enumerate(bottoms) if k != 2]
    assert min(others) - 2 <= bottoms[2] <= max(others) + 2  # 20 px lower on the page: ~11 px in the line, undone


def test_specks_and_noise_are_no_lines():
    rng = np.random.default_rng(0)
    page = _paper(800, 800)
    for x, y in rng.integers(5, 795, (3000, 2)).tolist():
        cv2.circle(page, (x, y), 1, 30, -1)
    assert find_lines(find_ink(page)).lines == []  # specks are shorter than MIN_DIGIT_PX
    assert MIN_DIGIT_PX > 3


def test_a_very_long_line_is_cut_into_bounded_pieces(mnist):
    page = _paper(120, 30_000)
    digits = [mnist.x_test[k % 50] for k in range(300)]
    _digit_row(page, 20, 100, digits, 56, 99)
    t = time.perf_counter()
    layout = find_lines(find_ink(page))
    elapsed = time.perf_counter() - t
    assert len(layout.lines) >= 2
    assert all(line.image.shape[1] <= MAX_LINE_PX + 200 for line in layout.lines)
    assert sum(int((line.image.max(0) > 64).sum()) for line in layout.lines) > 0
    del elapsed  # timing is a benchmark's business; the bound is on the pieces' width


@given(st.lists(st.booleans(), min_size=1, max_size=200), st.integers(1, 30))
@settings(max_examples=200, deadline=None)
def test_squeezing_keeps_every_inked_column_and_caps_gaps(inked, max_gap):
    inked = np.array(inked)
    keep = _squeezed(inked, max_gap)
    assert np.all(np.diff(keep) > 0)  # in order, no repeats
    assert set(np.flatnonzero(inked)) <= set(keep.tolist())
    kept = inked[keep]
    runs = np.diff(np.flatnonzero(np.concatenate([[True], kept, [True]])))
    assert (runs - 1).max(initial=0) <= max(max_gap, 1)


def test_baseline_follows_whole_digits_and_ignores_small_wander():
    own = np.zeros((100, 300), bool)
    own[20:60, 10:40] = True  # a digit with its bottom at 60
    own[22:62, 60:90] = True  # 2 px lower: within the wander kept as written
    own[50:90, 120:150] = True  # 30 px lower: taken out
    whole = np.array([[10, 20, 40, 60], [60, 22, 90, 62], [120, 50, 150, 90]])
    base = baseline(own, 40.0, whole)
    assert base.shape == (300,)
    assert abs(base[25] - base[75]) < 1e-6  # small wander: one baseline
    assert base[135] - base[25] == pytest.approx(90 - 62 - 0.12 * 40, abs=0.5)  # 62: the anchors' median

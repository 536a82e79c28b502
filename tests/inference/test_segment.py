"""segment: lines, merges and splits from the ink's geometry, with a stand-in classifier; line removal."""
from __future__ import annotations

import cv2
import numpy as np

from digitlab.inference.ink import find_ink, on_border, remove_lines
from digitlab.inference.prediction import Prediction
from digitlab.inference.preprocess import faint_components, piece_ink, to_profile
from digitlab.inference.segment import segment

NAMES = [str(i) for i in range(10)]


def _confident(x: np.ndarray) -> list[Prediction]:
    """A classifier that reads every piece as a 7 with probability 0.9: only the geometry decides."""
    p = np.full(10, 0.1 / 9)
    p[7] = 0.9
    return [Prediction.from_probabilities(p, NAMES, "stand-in") for _ in range(len(x))]


def _read(picture: np.ndarray):
    ink = find_ink(picture)
    faint = faint_components(ink)
    return segment(ink, _confident, lambda own, box: to_profile(piece_ink(ink, own, box, faint)[0]))


def _page(h: int = 400, w: int = 900) -> np.ndarray:
    return np.full((h, w), 255, np.uint8)


def _bar(img: np.ndarray, x: int, y0: int, y1: int, pen: int = 16) -> None:
    cv2.line(img, (x, y0), (x + 20, y1), 0, pen, cv2.LINE_AA)


def test_separate_strokes_are_separate_digits_left_to_right():
    img = _page()
    for x in (100, 300, 520, 700):
        _bar(img, x, 100, 300)
    lines = _read(img)
    assert len(lines) == 1
    xs = [p.box[0] for p in lines[0]]
    assert len(xs) == 4 and xs == sorted(xs)
    for piece, x in zip(lines[0], (100, 300, 520, 700)):
        assert piece.box[0] <= x <= piece.box[2] and piece.reason is None


def test_a_detached_bar_above_a_body_is_one_digit():
    """A 5 whose top bar does not touch its body: the bar overlaps the body horizontally, so one piece."""
    img = _page()
    cv2.line(img, (300, 100), (420, 100), 0, 16, cv2.LINE_AA)  # the bar
    cv2.ellipse(img, (350, 230), (70, 80), 0, -100, 200, 0, 16, cv2.LINE_AA)  # the body, 25 px below
    lines = _read(img)
    assert len(lines) == 1 and len(lines[0]) == 1
    x0, y0, x1, y1 = lines[0][0].box
    assert y0 <= 100 <= y1 and y1 >= 300 and x0 <= 300 and x1 >= 420


def test_two_lines_read_top_to_bottom():
    img = _page(700)
    for x in (100, 300):
        _bar(img, x, 60, 260)
    for x in (150, 400, 650):
        _bar(img, x, 400, 600)
    lines = _read(img)
    assert [len(line) for line in lines] == [2, 3]
    assert max(p.box[3] for p in lines[0]) < min(p.box[1] for p in lines[1])


def test_slanted_line_of_digits_stays_one_line():
    """A line of digits climbing 60% of a digit's height from first to last is still one line."""
    img = _page(500, 1000)
    for k, x in enumerate((80, 280, 480, 680, 880)):
        _bar(img, x, 300 - 30 * k, 450 - 30 * k)
    assert [len(line) for line in _read(img)] == [5]


def test_specks_are_not_digits():
    img = _page()
    _bar(img, 400, 100, 300)
    rng = np.random.default_rng(0)
    for x, y in rng.integers(20, 380, size=(20, 2)):
        cv2.circle(img, (int(x) * 2, int(y)), 1, 0, -1)
    lines = _read(img)
    assert [len(line) for line in lines] == [1]


def test_blank_picture_has_no_lines():
    assert _read(_page()) == []


def test_rules_go_and_the_strokes_crossing_them_stay():
    h, w = 480, 640
    mask = np.zeros((h, w), np.uint8)
    rules = np.zeros_like(mask)
    for y in range(40, h, 60):
        cv2.line(rules, (0, y), (w - 1, y + 8), 1, 2)
    stroke = np.zeros_like(mask)
    cv2.line(stroke, (300, 80), (330, 400), 1, 14)  # a 1 crossing five rules
    cv2.line(stroke, (200, 150), (280, 150), 1, 14)  # a short bar between two rules
    mask = rules | stroke
    out, lines = remove_lines(mask)
    assert lines >= 7
    assert out[stroke > 0].mean() > 0.99  # the strokes kept, where rules crossed them too
    assert out[(rules > 0) & (stroke == 0)].mean() < 0.02  # the rules gone


def test_a_long_thick_stroke_is_not_a_rule():
    mask = np.zeros((400, 600), np.uint8)
    cv2.line(mask, (300, 20), (300, 380), 1, 30)  # a 1 nearly as tall as the picture
    out, lines = remove_lines(mask)
    assert lines == 0 and np.array_equal(out, mask)


def test_desk_along_the_border_is_not_writing():
    labels = np.zeros((200, 300), np.int32)
    labels[:, 260:] = 1  # a strip of desk along the right edge
    labels[20:180, 100:130] = 2  # a thick 1 ...
    labels[0:200, 200:215] = 3  # ... and one cropped tightly, touching top and bottom
    n = 4
    stats = np.zeros((n, 5), np.int32)
    for lab in range(1, n):
        ys, xs = np.nonzero(labels == lab)
        stats[lab] = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, len(xs))
    assert on_border(labels, stats).tolist() == [False, True, False, False]

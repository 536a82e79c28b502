"""segment: lines, merges and splits from the ink's geometry, with a stand-in classifier; cut paths; line removal."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from digitlab.inference.cuts import cut_paths, split
from digitlab.inference.ink import find_ink, on_border, remove_lines
from digitlab.inference.prediction import Prediction
from digitlab.inference.preprocess import faint_components, piece_ink, to_profile
from digitlab.inference.segment import _pair_logit, best_split, segment

NAMES = [str(i) for i in range(10)]


def _confident(x: np.ndarray) -> tuple[list[Prediction], np.ndarray]:
    """A classifier that reads every piece as a 7 with probability 0.9, as surely a digit: only the geometry decides."""
    p = np.full(10, 0.1 / 9)
    p[7] = 0.9
    return [Prediction.from_probabilities(p, NAMES, "stand-in") for _ in range(len(x))], np.zeros(len(x))


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


# -- cut paths and merges, on geometry whose answer is known ---------------------------------------------

def _bars(slant: int, bridge_y: int | None, h: int = 120, w: int = 220, pen: int = 12) -> tuple[np.ndarray, ...]:
    """(all ink, left bar, right bar, bridge) as bool masks: two parallel bars `slant` px sideways over their
    height, 60 px apart, joined by a horizontal bridge at row `bridge_y` (None: not joined)."""
    left, right, bridge = (np.zeros((h, w), np.uint8) for _ in range(3))
    cv2.line(left, (40, 10), (40 + slant, h - 10), 1, pen)
    cv2.line(right, (100, 10), (100 + slant, h - 10), 1, pen)
    if bridge_y is not None:
        y = bridge_y
        x0 = 40 + slant * (y - 10) // (h - 20)
        cv2.line(bridge, (x0, y), (x0 + 60, y), 1, 6)
    return (left | right | bridge) > 0, left > 0, right > 0, (bridge > 0) & (left == 0) & (right == 0)


def test_the_cheapest_cut_between_two_bars_crosses_only_their_bridge():
    own, left, right, bridge = _bars(slant=0, bridge_y=60)
    cuts = cut_paths(own, stroke=12, margin=6, max_cuts=3)
    best = min(cuts, key=lambda c: c.strokes)
    assert np.all((best.xs > 46) & (best.xs <= 94))  # every row: between the bars' inner edges
    assert best.strokes == pytest.approx(7 / 12, abs=0.2)  # the bridge's 6-7 px, in pen widths


def test_a_cut_follows_slanted_overlapping_bars():
    """Bars slanting 60 px over 100 rows (31 degrees) overlap horizontally (each spans 60 + 12 px, 60 apart):
    no vertical cut separates them, a bent one does, and its sides hold one bar each."""
    own, left, right, bridge = _bars(slant=60, bridge_y=70)
    cuts = cut_paths(own, stroke=12, margin=6, max_cuts=4)
    best = min(cuts, key=lambda c: c.strokes)
    parts = split(own, [best])
    assert parts[0][left].all() and parts[1][right].all()  # each bar whole on its side
    assert not parts[0][right].any() and not parts[1][left].any()
    assert best.strokes < 1.0  # only the bridge is crossed


def test_split_partitions_the_ink_and_cuts_do_not_cross():
    rng = np.random.default_rng(0)
    own = np.zeros((90, 260), np.uint8)
    for _ in range(12):
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, [260, 90, 260, 90]))
        cv2.line(own, (x0, y0), (x1, y1), 1, 7)
    own = own > 0
    cuts = cut_paths(own, stroke=7, margin=5, max_cuts=6)
    assert 1 <= len(cuts) <= 6
    for a, b in zip(cuts[:-1], cuts[1:]):
        assert np.all(a.xs <= b.xs)
    parts = split(own, cuts)
    assert len(parts) == len(cuts) + 1
    assert np.array_equal(np.sum(parts, axis=0), own.astype(int))  # every ink pixel in exactly one part


def test_tall_blobs_are_cut_at_a_reduced_size_in_bounded_time():
    own = np.zeros((1000, 3000), bool)
    own[:, ::150] = True
    own[500, :] = True  # a comb of 20 teeth joined by one row
    cuts = cut_paths(own, stroke=3, margin=10, max_cuts=8)
    assert 1 <= len(cuts) <= 8
    assert all(c.xs.shape == (1000,) and c.strokes < 2 for c in cuts)  # through the 1-px spine only


def test_parts_of_one_digit_join_and_neighbours_do_not():
    H = 100.0
    bar_over_body = _pair_logit((10, 0, 70, 12), (5, 25, 75, 100), distance=13, H=H)  # a 5's bar, 13 px above
    side_by_side = _pair_logit((0, 0, 60, 100), (85, 2, 145, 98), distance=25, H=H)  # two digits, 25 px apart
    assert bar_over_body > 0 > side_by_side


def test_best_split_is_the_best_of_every_segmentation():
    """Against brute force: every way of cutting n atoms into consecutive spans, summed."""
    import itertools

    rng = np.random.default_rng(1)
    for _ in range(20):
        n = int(rng.integers(1, 7))
        spans = [(i, j) for i in range(n) for j in range(i + 1, min(n, i + 3) + 1)]
        score = {s: float(rng.normal()) for s in spans}
        best, best_total = None, -np.inf
        for bits in itertools.product([0, 1], repeat=n - 1):
            ends = [k + 1 for k, b in enumerate(bits) if b] + [n]
            pieces = list(zip([0] + ends[:-1], ends))
            if all(p in score for p in pieces) and sum(score[p] for p in pieces) > best_total:
                best, best_total = pieces, sum(score[p] for p in pieces)
        assert best_split(n, score) == best

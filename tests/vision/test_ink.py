"""vision.ink: notebook lines removed and the strokes crossing them kept; desk along the border is not writing."""
from __future__ import annotations

import cv2
import numpy as np

from digitlab.vision.ink import linked_groups, on_border, remove_lines


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


def test_linked_groups_are_the_transitive_closure_in_order_of_first_index():
    rng = np.random.default_rng(0)
    for k in (0, 1, 2, 7, 30):
        linked = rng.random((k, k)) < 0.08
        linked |= linked.T
        reach = linked | np.eye(k, dtype=bool)
        for _ in range(k):  # the transitive closure by repeated squaring of the boolean matrix: independent
            reach = (reach.astype(np.int64) @ reach.astype(np.int64)) > 0
        want: list[list[int]] = []
        for i in range(k):
            if not any(i in g for g in want):
                want.append(np.flatnonzero(reach[i]).tolist())
        assert linked_groups(linked) == want

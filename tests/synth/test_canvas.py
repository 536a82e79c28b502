"""Canvases as the web page and other apps send them: size, colours, alpha, pen width, placement."""
from __future__ import annotations

import cv2
import numpy as np

from digitlab.synth import build_set
from digitlab.synth.strokes import thin


def _pen_width(ink: np.ndarray) -> float:
    """A stroke mask's (bool (h, w)) width: twice the median distance to its edge along its centre lines."""
    dist = cv2.distanceTransform(np.pad(ink, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    return 2 * float(np.median(dist[thin(ink)]))


def test_page_canvas_is_280_black_with_white_22px_strokes(digits):
    for s in build_set("canvas_default", 4, seed=1, mnist_test=digits):
        assert s.image.shape == (280, 280, 4) and s.format == "png"
        assert (s.image[:, :, 3] == 255).all()  # the page fills its canvas black: opaque
        rgb = s.image[:, :, :3].astype(int)
        assert (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all()  # white on black
        assert np.median(rgb) == 0 and rgb.max() == 255
        assert s.params["pen_px"] == round(0.08 * 280) == 22
        assert abs(_pen_width(rgb[:, :, 0] > 127) - 22) <= 2.5


def test_pen_widths_span_thin_to_very_thick(digits):
    for name, lo, hi in (("canvas_thin", 0.02, 0.035), ("canvas_thick", 0.12, 0.15)):
        for s in build_set(name, 3, seed=2, mnist_test=digits):
            side = s.image.shape[0]
            assert lo * side - 1 <= s.params["pen_px"] <= hi * side + 1
            assert abs(_pen_width(s.image[:, :, 0] > 127) - s.params["pen_px"]) <= 2.5


def test_transparent_canvas_has_alpha_as_ink(digits):
    for s in build_set("canvas_transparent", 4, seed=3, mnist_test=digits):
        a = s.image[:, :, 3]
        assert s.image.shape[2] == 4 and 200 <= s.image.shape[1] <= 800
        assert (a == 0).mean() > 0.5 and a.max() == 255
        ink = s.image[a > 200][:, :3].astype(int)
        assert ink.max() <= 130  # dark strokes


def test_drawings_sit_anywhere_and_at_many_sizes(digits):
    samples = build_set("canvas_default", 20, seed=4, mnist_test=digits)
    centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for s in samples for b in s.boxes])
    heights = np.array([b[3] - b[1] for s in samples for b in s.boxes])
    assert np.abs(centres - 140).max() > 30  # off-centre drawings
    assert heights.max() - heights.min() > 50
    small = build_set("canvas_small", 6, seed=4, mnist_test=digits)
    assert max(b[3] - b[1] for s in small for b in s.boxes) < 0.5 * 280


def test_number_canvas_is_the_wide_page_canvas(digits):
    for s in build_set("canvas_number", 3, seed=5, mnist_test=digits):
        assert s.image.shape == (280, 840, 4) and s.params["pen_px"] == 22
        assert 2 <= len(s.boxes) == len(s.text) <= 6


def test_broken_canvas_digits_have_more_pieces(digits):
    def pieces(name: str) -> float:
        out = []
        for s in build_set(name, 12, seed=6, mnist_test=digits):
            out.append(cv2.connectedComponents((s.image[:, :, 0] > 127).astype(np.uint8))[0] - 1)
        return float(np.mean(out))
    assert pieces("canvas_broken") > pieces("canvas_default") + 0.5

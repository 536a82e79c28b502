"""Marks: thinning, skeleton segments, the pixel geometry of rendering, broken strokes, jitter."""
from __future__ import annotations

import cv2
import numpy as np

from digitlab.synth.strokes import (
    StrokeMark,
    break_strokes,
    faithful,
    hand_jitter,
    jittered,
    normalised,
    polylines_mark,
    raster_mark,
    render_mark,
    skeleton_segments,
    stroke_fidelity,
    stroke_mark,
    thin,
)


def _components(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def test_thin_gives_a_one_pixel_centre_line_of_a_thick_bar():
    mask = np.zeros((40, 60), bool)
    mask[15:24, 5:55] = True  # 9 px thick, centre row 19
    skel = thin(mask)
    rows = np.nonzero(skel)[0]
    assert skel.sum() > 35  # most of the length survives
    assert np.all(np.abs(rows - 19) <= 1)
    assert not (skel[:-1, :-1] & skel[1:, :-1] & skel[:-1, 1:] & skel[1:, 1:]).any()  # no 2x2 block anywhere
    assert _components(skel) == 1


def test_thin_keeps_a_ring_a_ring():
    mask = np.zeros((50, 50), np.uint8)
    cv2.circle(mask, (25, 25), 15, 1, 5)
    skel = thin(mask > 0)
    assert _components(skel) == 1
    # the hole survives: the background outside the skeleton has two components (inside, outside)
    assert cv2.connectedComponents((~skel).astype(np.uint8), connectivity=4)[0] - 1 == 2
    radius = np.hypot(*(np.array(np.nonzero(skel)) - 25))
    assert abs(np.median(radius) - 15) <= 1.5


def test_skeleton_segments_join_8_neighbours_without_doubling():
    skel = np.zeros((5, 6), bool)
    skel[2, 0:5] = True  # a horizontal run of 5 pixels: 4 links
    skel[0, 5] = True  # a lone pixel: a dot
    segs = skeleton_segments(skel)
    links = segs[np.any(segs[:, 0] != segs[:, 1], axis=1)]
    dots = segs[np.all(segs[:, 0] == segs[:, 1], axis=1)]
    assert len(links) == 4 and len(dots) == 1
    assert np.all(np.abs(links[:, 0] - links[:, 1]).sum(1) == 1)
    l_shape = np.zeros((3, 3), bool)
    l_shape[0, 0] = l_shape[1, 0] = l_shape[1, 1] = True  # the diagonal (0,0)-(1,1) is covered by the L
    assert len(skeleton_segments(l_shape)) == 2


def test_raster_mark_lands_on_the_box_its_matrix_says():
    img = np.zeros((28, 28), np.uint8)
    img[4:24, 10:18] = 255  # ink 8 wide, 20 tall: unit box is [0, 0.4] x [0, 1]
    mark = raster_mark(img, smooth=0.0)
    assert abs(mark.aspect - 0.4) < 1e-9
    matrix = np.array([[100.0, 0, 30], [0, 100.0, 20]])  # unit -> 100 px, shifted by (30, 20)
    cov = render_mark(mark, matrix, (160, 120))
    ys, xs = np.nonzero(cov > 0.5)
    assert abs(xs.min() - 30) <= 1 and abs(xs.max() + 1 - 70) <= 1
    assert abs(ys.min() - 20) <= 1 and abs(ys.max() + 1 - 120) <= 1


def test_raster_threshold_changes_stroke_width():
    img = np.zeros((28, 28), np.uint8)
    cv2.line(img, (14, 4), (14, 23), 255, 3, cv2.LINE_AA)
    mark = raster_mark(img)
    matrix = np.array([[200.0, 0, 60], [0, 200.0, 20]])
    bold = render_mark(mark, matrix, (240, 200), threshold=0.3).sum()
    thin_ = render_mark(mark, matrix, (240, 200), threshold=0.7).sum()
    assert bold > 1.3 * thin_


def test_stroke_mark_is_drawn_with_the_pen_width_asked():
    img = np.zeros((28, 28), np.uint8)
    cv2.line(img, (14, 4), (14, 23), 255, 3, cv2.LINE_AA)
    raw = stroke_mark(img)
    # redrawn with the source's own pen (3 px of its 24-px ink box), the stroke is as long as the source:
    # thinning's shortened ends are pushed back out
    scale = 200 / 24
    cov = render_mark(raw, np.array([[scale * 24, 0, 100], [0, scale * 24, 20]]), (260, 240), pen_px=3 * scale)
    ys = np.nonzero(cov > 0.5)[0]
    assert 0.8 * 200 <= ys.max() - ys.min() + 1 <= 1.02 * 200  # unextended ends give ~0.69
    mark = normalised(raw.segments)  # the unit box is now the skeleton's extent
    matrix = np.array([[200.0, 0, 100], [0, 200.0, 20]])
    for pen in (6.0, 18.0):
        cov = render_mark(mark, matrix, (240, 240), pen_px=pen)
        dist = cv2.distanceTransform((cov > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
        assert abs(2 * dist.max() - pen) <= 2.5
        ys = np.nonzero(cov > 0.5)[0]
        assert abs((ys.max() - ys.min() + 1) - (200 + pen)) <= 3  # the round caps add the pen


def test_polylines_mark_spans_the_unit_height():
    mark = polylines_mark([np.array([[0, 0], [2, 0], [2, 4]], np.float32)])
    pts = mark.segments.reshape(-1, 2)
    assert np.isclose(pts[:, 1].min(), 0) and np.isclose(pts[:, 1].max(), 1)
    assert np.isclose(mark.aspect, 0.5)


def test_hand_jitter_keeps_shared_points_shared_and_moves_a_little():
    rng = np.random.default_rng(0)
    a = np.array([[0.2, 0.3], [0.5, 0.5]], np.float32)
    segs = np.stack([np.stack([a[0], a[1]]), np.stack([a[1], a[0] + 0.3])])
    out = hand_jitter(segs, rng)
    assert np.array_equal(out[0, 1], out[1, 0])  # the joint stays a joint
    assert np.abs(out - segs).max() < 0.2
    mark = jittered(StrokeMark(segs, 0.6), rng)
    pts = mark.segments.reshape(-1, 2)
    assert np.isclose(pts[:, 1].min(), 0, atol=1e-6) and np.isclose(pts[:, 1].max(), 1, atol=1e-6)


def test_break_strokes_cuts_a_drawn_l_in_two():
    img = np.zeros((28, 28), np.uint8)
    cv2.polylines(img, [np.array([[8, 4], [8, 22], [20, 22]])], False, 255, 2)
    mark = stroke_mark(img)
    matrix = np.array([[200.0, 0, 20], [0, 200.0, 20]])
    whole = render_mark(mark, matrix, (260, 260), pen_px=10) > 0.5
    assert _components(whole) == 1
    broken = break_strokes(mark, None, np.random.default_rng(3), pen=0.05)
    assert len(broken.segments) < len(mark.segments)
    assert _components(render_mark(broken, matrix, (260, 260), pen_px=10) > 0.5) == 2


def test_break_strokes_of_a_four_separates_its_junction():
    img = np.zeros((28, 28), np.uint8)
    cv2.polylines(img, [np.array([[9, 4], [6, 16], [20, 16]])], False, 255, 2)
    cv2.line(img, (16, 6), (16, 24), 255, 2)
    mark = stroke_mark(img)
    matrix = np.array([[200.0, 0, 20], [0, 200.0, 20]])
    assert _components(render_mark(mark, matrix, (260, 260), pen_px=10) > 0.5) == 1
    pieces = [_components(render_mark(break_strokes(mark, 4, np.random.default_rng(s), pen=0.05), matrix,
                                      (260, 260), pen_px=10) > 0.5) for s in range(6)]
    assert max(pieces) >= 2


def _ring(size: int = 28) -> np.ndarray:
    img = np.zeros((size, size), np.uint8)
    cv2.circle(img, (14, 14), 8, 255, 2, cv2.LINE_AA)
    return img


def test_a_tracing_is_faithful_to_its_picture_and_a_lost_or_added_part_is_not():
    ring = _ring()
    traced = stroke_mark(ring)
    recall, precision = stroke_fidelity(ring, traced)
    assert recall > 0.97 and precision > 0.97 and faithful(ring, traced)
    # Half the strokes lost (a 9 redrawn as a 1): the picture's other half is not matched.
    left = traced.segments[traced.segments[:, :, 0].mean(axis=1) < traced.aspect / 2]
    half = StrokeMark(left, traced.aspect)
    recall, precision = stroke_fidelity(ring, half)
    assert 0.35 < recall < 0.65 and precision > 0.97 and not faithful(ring, half)
    # The same ring traced, drawn over a C (the ring with its right part gone): strokes where no ink is.
    c = ring.copy()
    c[:, 19:] = 0
    recall, precision = stroke_fidelity(c, traced)
    assert precision < 0.9 and not faithful(c, traced)

"""Predictor.read on numbers written here from MNIST test digits, with known strings.

The digits are MNIST test images the `trained_run` model (a small cnn) reads correctly on their own,
so what is measured is finding, merging and splitting them: every number is made by
`paper_scenes.number` (independent of the code under test) and has a known string and known boxes.
"""
from __future__ import annotations

import numpy as np
import pytest

from digitlab.inference import Predictor
from digitlab.inference.reading import read
from support import paper_scenes as scenes


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.load(trained_run, backend="torch")


@pytest.fixture(scope="module")
def pool(predictor, mnist):
    """Per class, MNIST test digits the model reads correctly with at least 0.8 probability, both as they are
    and written alone on paper as the scenes write them (so that what fails is finding them, not reading them)."""
    x, y = mnist.x_test[:3000], mnist.y_test[:3000]
    proba = predictor.predict_proba(x)
    out = []
    for c in range(10):
        some = x[(y == c) & (proba.argmax(1) == c) & (proba.max(1) >= 0.8)][:40]
        alone = [scenes.flat(scenes.place(scenes.coverage(d, 120), (300, 300), (60, 60))) for d in some]
        read = predictor.predict_images(alone, top_k=1)
        out.append(some[[p.label == c and p.probability >= 0.8 and not p.rejected for p in read]])
    return out


def _number(pool, seed: int, **options) -> tuple[np.ndarray, str, list]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, int(rng.integers(2, 6)))
    digits = [pool[c][rng.integers(len(pool[c]))] for c in labels]
    ink, boxes = scenes.number(digits, rng=rng, **options)
    return ink, "".join(str(c) for c in labels), boxes


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def _share_read(predictor, pool, n: int, photo: dict | None = None, **options) -> float:
    ok = 0
    for seed in range(n):
        ink, text, _ = _number(pool, seed, **options)
        picture = scenes.photo(ink, seed=seed, **photo) if photo else scenes.flat(ink)
        ok += predictor.read(picture).text == text
    return ok / n


def test_spaced_numbers_are_read_exactly_with_their_boxes(predictor, pool):
    for seed in range(12):
        ink, text, boxes = _number(pool, seed, gap=0.3)
        reading = predictor.read(scenes.flat(ink))
        assert reading.text == text
        found = [d.box for d in reading.digits if not d.rejected]
        assert len(found) == len(boxes) and all(_iou(a, b) > 0.6 for a, b in zip(found, boxes))
        assert reading.model_id == predictor.reader.model_id


def test_close_numbers_on_a_lit_ruled_page_in_blue_ink(predictor, pool):
    photo = dict(light="linear", light_strength=0.4, lines="ruled", line_pitch=150, ink_rgb=scenes.BLUE_INK)
    assert _share_read(predictor, pool, 12, photo, gap=0.1) >= 10 / 12


def test_touching_digits_are_split(predictor, pool):
    assert _share_read(predictor, pool, 12, gap=-0.04) >= 7 / 12  # neighbours overlapping by 4% of a digit


def test_broken_digits_are_merged(predictor, pool):
    assert _share_read(predictor, pool, 12, gap=0.3, break_at=0.4) >= 9 / 12  # one stroke of each has a gap


def test_two_lines_are_read_top_to_bottom(predictor, pool):
    top, t_text, _ = _number(pool, 1, gap=0.3)
    bottom, b_text, _ = _number(pool, 2, gap=0.3)
    width = max(top.shape[1], bottom.shape[1])
    page = np.zeros((top.shape[0] + bottom.shape[0], width), np.float32)
    page[: top.shape[0], : top.shape[1]] = top
    page[top.shape[0] :, : bottom.shape[1]] = bottom
    assert predictor.read(scenes.flat(page)).text == f"{t_text}\n{b_text}"


def test_a_single_digit_reads_as_itself(predictor, pool):
    right = 0  # the line reader reads single digits in photos about 95% right (docs/reading.md): 9 of 10 here
    for c in range(10):
        ink = scenes.place(scenes.coverage(pool[c][0], 150), (400, 300), (120, 60))
        reading = predictor.read(scenes.jpeg(scenes.photo(ink, seed=c, light="radial", light_strength=0.3)))
        right += reading.text == str(c)
    assert right >= 9


def test_blank_picture_reads_as_nothing(predictor):
    reading = predictor.read(np.full((200, 300), 240, np.uint8))
    assert reading.text == "" and reading.digits == []


def test_specks_and_dashes_are_rejected_pieces_not_digits(predictor, pool):
    ink, text, _ = _number(pool, 3, gap=0.4)
    h, w = ink.shape
    ink[h // 2 - 3 : h // 2 + 3, w - 50 : w - 10] = 1.0  # a long dash after the number
    reading = predictor.read(scenes.flat(ink))
    assert reading.text == text
    assert all(d.reason for d in reading.digits if d.rejected)


def test_read_takes_files_and_names_them_in_errors(predictor, tmp_path):
    from digitlab.errors import DigitlabError

    with pytest.raises(DigitlabError, match="missing.png"):
        read(predictor.reader, tmp_path / "missing.png")

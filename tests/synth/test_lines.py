"""Synthetic text lines: shapes, determinism, and that the labels and extents say what was drawn."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from digitlab.errors import DigitlabError
from digitlab.synth.line_marks import NOT_A_DIGIT, digit_glyphs, nondigit_glyphs
from digitlab.synth.lines import (
    CONDITIONS,
    INK_LEVEL,
    LINE_HEIGHT,
    LineStyle,
    LineSynth,
    condition_set,
    labels_to_text,
)

# No slant, size change, pen change, blur or dimming: ink lands exactly where the layout put it.
CLEAN = LineStyle(gap=(0.5, 1.0), size_jitter=0.0, slant=(0.0, 0.0), slant_jitter=0.0, thicken=0.0, thin=0.0,
                  blur=(0.0, 0.0), contrast=(1.0, 1.0))
BLOCK_H = 22  # = lines.DIGIT_PX: a block this tall is pasted at scale 1, so its columns are kept exactly


def _blocks() -> tuple[np.ndarray, np.ndarray]:
    """Ten 28x28 "digits": digit d is a solid block BLOCK_H tall and 2d + 2 wide, so its width names it."""
    images = np.zeros((10, 28, 28), np.uint8)
    for d in range(10):
        images[d, 3:3 + BLOCK_H, 2:2 + 2 * d + 2] = 255
    return images, np.arange(10)


def _ink_runs(image: np.ndarray) -> list[tuple[int, int]]:
    """[x0, x1) of each run of inked columns (some pixel above INK_LEVEL), left to right."""
    cols = np.concatenate([[0], (image.max(0) > INK_LEVEL).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(cols))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


@pytest.fixture(scope="session")
def synth(digits: tuple[np.ndarray, np.ndarray]) -> LineSynth:
    """Lines of conftest's drawn digits, with a small bank of training-split marks."""
    return LineSynth(*digits, nondigit_split="train", bank_size=40)


@pytest.mark.parametrize("condition", list(CONDITIONS))
def test_shapes_and_types(synth: LineSynth, condition: str) -> None:
    batch = synth.make(20, np.random.default_rng(0), condition)
    assert len(batch) == 20
    for image, labels, spans, kinds in zip(batch.images, batch.labels, batch.spans, batch.kinds, strict=True):
        assert image.dtype == np.uint8 and image.ndim == 2 and image.shape[0] == LINE_HEIGHT
        assert labels.dtype == np.int64 and spans.dtype == np.int32 and spans.shape == (len(labels), 2)
        assert len(kinds) == len(labels) and ((labels >= 1) & (labels <= NOT_A_DIGIT)).all()
        assert ((spans[:, 0] >= 0) & (spans[:, 0] < spans[:, 1]) & (spans[:, 1] <= image.shape[1])).all()
        assert (np.diff(spans[:, 1]) > 0).all()  # left to right
    assert batch.texts == [labels_to_text(lab) for lab in batch.labels]


def test_same_seed_same_lines_other_seed_other_lines(synth: LineSynth) -> None:
    a, b, c = (synth.make(10, np.random.default_rng(s), "train") for s in (5, 5, 6))
    assert all(np.array_equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    assert a.texts == b.texts and all(np.array_equal(x, y) for x, y in zip(a.spans, b.spans, strict=True))
    assert a.texts != c.texts


def test_condition_sets_are_seeded() -> None:
    images, labels = _blocks()
    one = condition_set("touching", 5, seed=3, digits=images, labels=labels)
    two = condition_set("touching", 5, seed=3, digits=images, labels=labels)
    assert one.texts == two.texts and all(np.array_equal(x, y) for x, y in zip(one.images, two.images, strict=True))


def test_labels_and_extents_match_the_ink_of_clean_spaced_lines() -> None:
    """Found independently from the pixels: one ink run per character, where the span says, as wide as its digit."""
    images, labels = _blocks()
    batch = LineSynth(images, labels, nondigit_split=None).make(30, np.random.default_rng(1), CLEAN)
    for image, classes, spans in zip(batch.images, batch.labels, batch.spans, strict=True):
        runs = _ink_runs(image)
        assert runs == [tuple(s) for s in spans.tolist()]
        widths = np.array([x1 - x0 for x0, x1 in runs])
        np.testing.assert_array_equal(widths, 2 * (classes - 1) + 2)  # block width names the digit


def test_overlapping_and_touching_lines_bring_characters_together(synth: LineSynth) -> None:
    rng = np.random.default_rng(2)
    for condition, lo, hi in (("overlapping", -0.36, -0.11), ("touching", -0.13, 0.03), ("spaced", 0.29, 1.01)):
        batch = synth.make(30, rng, condition)
        for spans in batch.spans:
            widths = spans[:, 1] - spans[:, 0]
            gaps = spans[1:, 0] - spans[:-1, 1]
            narrower = np.minimum(widths[1:], widths[:-1])
            assert ((gaps >= np.floor(lo * narrower) - 1) & (gaps <= np.ceil(hi * narrower) + 1)).all(), condition


def test_noise_only_lines_have_ink_but_no_characters(synth: LineSynth) -> None:
    batch = synth.make(40, np.random.default_rng(3), "noise_only")
    assert all(len(lab) == 0 for lab in batch.labels) and set(batch.texts) == {""}
    assert sum(im.max() > INK_LEVEL for im in batch.images) >= 20  # noise_p = 0.75: most lines are not blank


def test_mixed_lines_label_their_marks(synth: LineSynth) -> None:
    batch = synth.make(20, np.random.default_rng(4), "mixed_nondigit")
    for labels, kinds in zip(batch.labels, batch.kinds, strict=True):
        assert 1 <= (labels == NOT_A_DIGIT).sum() <= 3
        assert [k != "digit" for k in kinds] == (labels == NOT_A_DIGIT).tolist()


def test_nondigit_banks_keep_splits_apart(fonts_installed: None) -> None:
    train, held = nondigit_glyphs("train", 30, 0), nondigit_glyphs("heldout", 30, 0)
    assert (train.classes == NOT_A_DIGIT).all() and len(held) == 30
    chars = {k.split(":")[1] for k in train.kinds if k.startswith(("printed", "hand"))}
    held_chars = {k.split(":")[1] for k in held.kinds if k.startswith(("printed", "hand"))}
    assert chars and held_chars and not chars & held_chars


def test_errors_say_what_to_do(synth: LineSynth) -> None:
    with pytest.raises(DigitlabError, match="use one of"):
        synth.make(1, np.random.default_rng(0), "spaced_out")
    with pytest.raises(DigitlabError, match="nondigit_split"):
        LineSynth(*_blocks(), nondigit_split=None).make(1, np.random.default_rng(0), "mixed_nondigit")
    with pytest.raises(DigitlabError, match="x_train"):
        digit_glyphs(np.zeros((2, 28, 28), np.float32), np.zeros(2))
    assert replace(CLEAN, gap=(0.0, 0.0)).gap == (0.0, 0.0)

"""The banks lines are written with: digit crops, and printed marks placed as a writer would."""
from __future__ import annotations

import numpy as np

from digitlab.synth import fonts
from digitlab.synth.line_marks import DIGIT_CLASS_OFFSET, digit_glyphs, printed

SANS = str(fonts.FONT_ROOT / "dejavu" / "DejaVuSans.ttf")  # fonts-dejavu-core: always installed


def test_digit_crops_are_tight_views_with_shifted_classes() -> None:
    images = np.zeros((3, 28, 28), np.uint8)
    images[0, 5:15, 8:12] = 200
    images[2, 0:28, 27] = 255
    bank = digit_glyphs(images, np.array([4, 5, 6]))
    assert len(bank) == 2  # the blank image is left out
    assert bank.images[0].shape == (10, 4) and bank.images[1].shape == (28, 1)
    assert bank.classes.tolist() == [4 + DIGIT_CLASS_OFFSET, 6 + DIGIT_CLASS_OFFSET]
    assert np.shares_memory(bank.images[0], images)


def test_printed_marks_keep_their_size_and_baseline() -> None:
    cap, x, p, eq = (printed(SANS, c) for c in "Hxp=")
    assert cap is not None and x is not None and p is not None and eq is not None
    assert abs(cap[1] - 1) < 0.02 and abs(cap[2]) < 0.02  # "H" is the reference: one digit tall, on the line
    assert 0.6 < x[1] < 0.85 and abs(x[2]) < 0.02  # x-height, on the baseline
    assert p[2] > 0.15  # the descender hangs below the baseline
    assert eq[2] < -0.1  # "=" floats above it


def test_a_glyph_the_font_lacks_is_not_drawn_as_a_box() -> None:
    assert printed(SANS, "\u4e2d") is None  # a CJK character: DejaVu Sans has none

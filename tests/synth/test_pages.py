"""Pages of digits and pages of noise (`digitlab.synth.pages`)."""
from __future__ import annotations

import numpy as np
import pytest

from digitlab.errors import DigitlabError
from digitlab.synth.pages import NOISE_KINDS, PAGE_SIZE, digit_page, noise_page


def test_a_digit_page_holds_its_text_in_a_grid(mnist):
    page, text = digit_page(mnist.x_test, mnist.y_test, np.random.default_rng(0), lines=5, per_line=8)
    assert page.shape == (PAGE_SIZE[1], PAGE_SIZE[0]) and page.dtype == np.uint8
    rows = text.split("\n")
    assert len(rows) == 5 and all(len(r) == 8 and r.isdigit() for r in rows)
    assert page.min() < 100 and np.median(page) > 200  # dark ink on light paper


def test_the_same_seed_gives_the_same_page(mnist):
    a = digit_page(mnist.x_test, mnist.y_test, np.random.default_rng(3), lines=2, per_line=4)
    b = digit_page(mnist.x_test, mnist.y_test, np.random.default_rng(3), lines=2, per_line=4)
    assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_too_many_digits_for_the_page_is_an_error(mnist):
    with pytest.raises(DigitlabError, match="do not fit"):
        digit_page(mnist.x_test, mnist.y_test, np.random.default_rng(0), lines=200, per_line=200)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_pages_are_pages(kind):
    page = noise_page(kind, np.random.default_rng(0), size=(400, 300), count=500)
    assert page.shape == (300, 400) and page.dtype == np.uint8 and page.min() < page.max()


def test_an_unknown_noise_kind_names_the_known_ones():
    with pytest.raises(DigitlabError, match="specks"):
        noise_page("speck", np.random.default_rng(0))

"""Non-digit splits: disjoint generators, fonts, characters and seeds; nothing digit-like by default."""
from __future__ import annotations

import numpy as np
import pytest

from digitlab.synth import NONDIGIT_FAMILIES, build_set, shapes
from digitlab.synth.fonts import FAMILIES, font_paths, glyph
from digitlab.synth.nondigits import make_nondigit

DIGIT_LIKE = set("0123456789OoIlSsZzBbgq")


pytestmark = pytest.mark.usefixtures("fonts_installed")  # glyphs of Debian's fonts


def test_train_and_heldout_share_nothing():
    train, held = NONDIGIT_FAMILIES["train"], NONDIGIT_FAMILIES["heldout"]
    assert not set(train.font_families) & set(held.font_families)
    assert not set(train.letters) & set(held.letters)
    assert not set(train.symbols) & set(held.symbols)
    assert not set(train.doodles) & set(held.doodles)
    assert not set(train.scribbles) & set(held.scribbles)
    stems = [{p.stem for p in font_paths(f.font_families)} for f in (train, held)]
    assert stems[0] and stems[1] and not stems[0] & stems[1]


def test_digit_like_shapes_are_only_in_the_ambiguous_group():
    amb = NONDIGIT_FAMILIES["ambiguous"]
    for split in ("train", "heldout"):
        fam = NONDIGIT_FAMILIES[split]
        assert not set(fam.letters + fam.symbols) & DIGIT_LIKE
        assert not set(fam.letters) & set(amb.letters) and not set(fam.symbols) & set(amb.symbols)
        assert not set(fam.doodles) & set(amb.doodles)
    assert DIGIT_LIKE - set("0123456789") <= set(amb.letters)
    assert {"circle", "bar", "box"} <= set(amb.doodles)


def test_every_character_renders_in_every_font_of_its_split():
    for split, fam in NONDIGIT_FAMILIES.items():
        for path in font_paths(fam.font_families):
            for char in fam.letters + fam.symbols:
                assert glyph(str(path), char, 48).max() > 127, (split, path.stem, char)


def test_every_generator_makes_visible_polylines():
    rng = np.random.default_rng(0)
    for name, gen in {**shapes.DOODLES, **shapes.SCRIBBLES}.items():
        lines = gen(rng)
        pts = np.concatenate(lines)
        assert np.isfinite(pts).all() and np.ptp(pts, axis=0).max() > 0.5, name


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_samples_come_from_their_split_only(split):
    fam = NONDIGIT_FAMILIES[split]
    prefixes = {"dejavu": "DejaVu", "liberation": "Liberation", "freefont": "Free"}
    allowed = tuple(prefixes[f] for f in fam.font_families)
    for group in ("letters", "symbols", "doodles", "scribbles"):
        for s in build_set(f"nondigit_{group}", 6, seed=1, split=split, max_side=360):
            p = s.params
            assert p["split"] == split and p["group"] == group
            kinds = {"letters": fam.letters, "symbols": fam.symbols, "doodles": fam.doodles,
                     "scribbles": fam.scribbles}[group]
            assert p["what"] in kinds
            if p["font"] is not None:
                assert p["font"].startswith(allowed)


def test_splits_draw_from_different_seed_streams():
    a = build_set("nondigit_letters", 3, seed=0, split="train", max_side=300)
    b = build_set("nondigit_letters", 3, seed=0, split="heldout", max_side=300)
    assert all(x.image.shape != y.image.shape or not np.array_equal(x.image, y.image) for x, y in zip(a, b))


def test_hand_drawn_and_printed_glyphs_both_occur():
    rng = np.random.default_rng(2)
    made = [make_nondigit("letters", "train", rng) for _ in range(20)]
    assert {m.printed for m in made} == {True, False}
    assert FAMILIES["dejavu"]  # the training fonts exist


def test_ambiguous_group_has_no_scribbles():
    from digitlab.errors import DigitlabError

    with pytest.raises(DigitlabError, match="no scribbles"):
        build_set("nondigit_scribbles", 1, split="ambiguous")
    assert build_set("nondigit_letters", 1, split="ambiguous", max_side=300)[0].params["what"] in (
        NONDIGIT_FAMILIES["ambiguous"].letters)

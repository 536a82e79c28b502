"""build_set: determinism by seed, ground truth consistent with the pixels, every condition's invariants."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from digitlab.errors import DigitlabError
from digitlab.synth import CONDITIONS, build_set, clean_version, condition_names

FAST = [c for c in condition_names() if c != "photo_large"]
SIDE = 480  # photos capped at this long side: quick, every factor still drawn


def _same(a, b) -> bool:
    return a.image.shape == b.image.shape and np.array_equal(a.image, b.image) and a.params == b.params


def test_same_seed_same_samples_and_a_sample_does_not_depend_on_n(digits):
    a = build_set("number_mixed", 3, seed=5, mnist_test=digits, max_side=SIDE)
    b = build_set("number_mixed", 3, seed=5, mnist_test=digits, max_side=SIDE)
    assert all(_same(x, y) for x, y in zip(a, b))
    assert _same(build_set("number_mixed", 1, seed=5, mnist_test=digits, start=2, max_side=SIDE)[0], a[2])
    c = build_set("number_mixed", 3, seed=6, mnist_test=digits, max_side=SIDE)
    assert not any(_same(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize("name", FAST)
def test_every_condition_makes_what_it_says(name, digits, request):
    cond = CONDITIONS[name]
    if cond.needs_fonts:
        request.getfixturevalue("fonts_installed")
    for s in build_set(name, 2, seed=1, mnist_test=digits, max_side=SIDE):
        h, w = s.image.shape[:2]
        assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] in (3, 4)
        assert s.kind == cond.kind and s.condition == name
        json.dumps(s.params)  # the parameters are plain data
        for x0, y0, x1, y1 in s.boxes:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        if s.kind == "nondigit":
            assert s.label is None and s.text is None and len(s.boxes) == 1
        else:
            assert len(s.boxes) == len(s.digits) > 0 and s.digits.isdigit()
            assert (s.label == int(s.text)) if s.kind == "digit" else (s.label is None and len(s.digits) >= 2)
        file = Image.open(io.BytesIO(s.data))  # the file an app would send
        assert file.format == s.format.upper()
        shown = ImageOps.exif_transpose(file)
        assert (shown.width, shown.height) == (w, h)


def test_labels_are_the_mnist_labels_of_the_digits_drawn(digits):
    x, y = digits
    made = build_set("photo_plain", 4, seed=2, mnist_test=digits, max_side=SIDE)
    for s in made + build_set("canvas_default", 4, mnist_test=digits):
        assert s.label == int(y[s.params["mnist_index"]])
    for s in build_set("number_two_lines", 3, seed=2, mnist_test=digits, max_side=SIDE):
        assert s.digits == "".join(str(int(y[d["mnist_index"]])) for d in s.params["digits"])
        assert s.text.count("\n") == 1


def _ink(sample) -> np.ndarray:
    """Where the clean version of `sample` has ink: bool (h, w)."""
    return clean_version(sample).image[:, :, 0] < 128


@pytest.mark.parametrize("name", ["photo_rotated", "photo_far", "canvas_default", "printed_photo", "nondigit_doodles"])
def test_a_single_box_is_the_tight_box_of_the_ink(name, digits, request):
    if CONDITIONS[name].needs_fonts:
        request.getfixturevalue("fonts_installed")
    for s in build_set(name, 3, seed=3, mnist_test=digits, max_side=SIDE):
        x0, y0, x1, y1 = s.boxes[0]
        ys, xs = np.nonzero(_ink(s))  # half-tone ink: within 3 px of the box's edges
        assert abs(xs.min() - x0) <= 3 and abs(ys.min() - y0) <= 3
        assert abs(xs.max() + 1 - x1) <= 3 and abs(ys.max() + 1 - y1) <= 3
        ys, xs = np.nonzero(clean_version(s).image[:, :, 0] < 250)  # the faintest ink: inside, give or take 1 px
        assert xs.min() >= x0 - 1 and ys.min() >= y0 - 1 and xs.max() < x1 + 1 and ys.max() < y1 + 1


@pytest.mark.parametrize("name", ["number_plain", "number_touching", "number_broken", "number_two_lines",
                                  "canvas_number", "printed_number"])
def test_number_boxes_enclose_all_the_ink_and_each_holds_some(name, digits, request):
    if CONDITIONS[name].needs_fonts:
        request.getfixturevalue("fonts_installed")
    for s in build_set(name, 3, seed=4, mnist_test=digits, max_side=SIDE):
        ink = _ink(s)
        inside = np.zeros_like(ink)
        for x0, y0, x1, y1 in s.boxes:
            assert ink[y0:y1, x0:x1].sum() > 20
            inside[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = True
        assert not (ink & ~inside).any()


def test_boxes_follow_reading_order(digits):
    for s in build_set("number_plain", 4, seed=7, mnist_test=digits, max_side=SIDE):
        centres = [(b[0] + b[2]) / 2 for b in s.boxes]
        assert centres == sorted(centres)


def test_touching_neighbours_overlap_or_touch(digits):
    gaps = []
    for s in build_set("number_touching", 6, seed=8, mnist_test=digits, max_side=SIDE):
        gaps += [b[0] - a[2] for a, b in zip(s.boxes, s.boxes[1:])]
    assert np.mean(np.array(gaps) <= 1) > 0.5


def test_clean_version_is_the_same_ink_on_white(digits):
    for s in build_set("photo_plain", 3, seed=9, mnist_test=digits, max_side=SIDE):
        clean = clean_version(s)
        assert clean.image.shape[:2] == s.image.shape[:2]
        assert np.median(clean.image) == 255 and clean.image.min() < 20
        ink = clean.image[:, :, 0] < 30
        paper = clean.image[:, :, 0] == 255
        grey = s.image.mean(2)
        assert grey[ink].mean() < 0.6 * grey[paper].mean()  # the photo's ink is where the clean ink is
        upright = clean_version(s, upright=True)
        (a, b) = (np.asarray(s.boxes[0]), np.asarray(upright.boxes[0]))
        assert np.abs((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2).max() < 0.15 * (a[3] - a[1])


def test_clean_version_of_a_canvas_keeps_its_boxes(digits):
    s = build_set("canvas_transparent", 1, seed=1, mnist_test=digits, max_side=SIDE)[0]
    clean = clean_version(s)
    assert clean.boxes == s.boxes and clean.image.shape == (*s.image.shape[:2], 3)
    assert np.array_equal(clean.image[:, :, 0] < 128, s.image[:, :, 3] > 127)


def test_errors_name_the_problem(digits):
    with pytest.raises(DigitlabError, match="mnist_test"):
        build_set("photo_plain", 1)
    with pytest.raises(DigitlabError, match="uint8"):
        build_set("photo_plain", 1, mnist_test=(digits[0].astype(np.float32), digits[1]))
    with pytest.raises(DigitlabError, match="labels"):
        build_set("photo_plain", 1, mnist_test=(digits[0], digits[1][:3]))
    with pytest.raises(DigitlabError, match="condition 'photo_nope' is unknown"):
        build_set("photo_nope", 1)
    with pytest.raises(DigitlabError, match="split"):
        build_set("nondigit_letters", 1, split="test")
    with pytest.raises(DigitlabError, match="max_side"):
        build_set("printed_fonts", 1, max_side=8)
    assert build_set("printed_fonts", 0) == []


def test_conditions_that_draw_glyphs_say_so():
    assert CONDITIONS["printed_fonts"].needs_fonts and CONDITIONS["nondigit_letters"].needs_fonts
    assert not CONDITIONS["photo_plain"].needs_fonts and not CONDITIONS["nondigit_doodles"].needs_fonts


def test_max_side_scales_the_same_scene_down(digits):
    big = build_set("photo_plain", 2, seed=3, mnist_test=digits)
    small = build_set("photo_plain", 2, seed=3, mnist_test=digits, max_side=300)
    for b, s in zip(big, small):
        k = 300 / max(b.image.shape[:2])
        assert max(s.image.shape[:2]) == 300 and s.params["mnist_index"] == b.params["mnist_index"]
        assert np.allclose(np.asarray(s.boxes[0]), np.asarray(b.boxes[0]) * k, atol=0.04 * 300)


def test_exif_photos_store_rotated_pixels_and_the_tag_that_undoes_it(digits):
    for s in build_set("photo_exif", 3, seed=2, mnist_test=digits, max_side=SIDE):
        raw = Image.open(io.BytesIO(s.data))
        orientation = raw.getexif().get(0x0112)
        assert orientation == s.params["exif_orientation"] in (3, 6, 8)
        h, w = s.image.shape[:2]
        assert raw.size == ((h, w) if orientation in (6, 8) else (w, h))
        shown = np.asarray(ImageOps.exif_transpose(raw).convert("RGB")).astype(int)
        assert np.abs(shown - s.image).mean() < 1.0


def test_missing_fonts_are_named_with_the_packages_to_install(tmp_path, monkeypatch):
    from digitlab.synth import fonts

    monkeypatch.setattr(fonts, "FONT_ROOT", tmp_path)
    assert fonts.missing_families() == list(fonts.FAMILIES)
    with pytest.raises(DigitlabError, match="fonts-liberation"):
        fonts.font_paths(("liberation",))

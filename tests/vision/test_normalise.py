"""preprocess_image / load_image against expectations computed independently of the code."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.errors import DigitlabError
from digitlab.vision import load_image, preprocess_image
from digitlab.vision.normalise import preprocess


def _centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    m = img.astype(np.float64)
    total = m.sum()
    return float((m.sum(axis=1) * np.arange(m.shape[0])).sum() / total), float(
        (m.sum(axis=0) * np.arange(m.shape[1])).sum() / total
    )


def _ink_box(img: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def _seven(size=(300, 200), ink=0, paper=255, mode="L") -> Image.Image:
    """A '7' drawn with thick strokes near the top-left corner of a large canvas."""
    img = Image.new(mode, size, paper)
    ImageDraw.Draw(img).line([(30, 25), (110, 25), (60, 170)], fill=ink, width=14)
    return img


def _assert_mnist_like(out: np.ndarray) -> None:
    assert out.shape == (28, 28) and out.dtype == np.uint8
    cy, cx = _centre_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    h, w = _ink_box(out)
    assert max(h, w) <= 20 and max(h, w) >= 18  # fitted to the 20x20 box, longer side ~20
    assert out.max() >= 200 and out[0].max() == 0 and out[:, 0].max() == 0  # bright ink, black paper


def test_dark_on_white_off_centre_digit_is_inverted_fitted_and_centred():
    img = _seven()
    out = preprocess_image(img)
    _assert_mnist_like(out)
    h, w = _ink_box(out)
    assert h == 20 and w < 20  # the 7 is taller than wide: height fills the box, aspect kept
    # Aspect ratio kept: the drawn 7 spans ~94 x 159 px (stroke included), i.e. w/h ~0.59.
    assert w / h == pytest.approx(94 / 159, abs=0.1)


def test_light_on_dark_input_is_not_inverted():
    a = preprocess_image(_seven())
    b = preprocess_image(_seven(ink=255, paper=0))
    np.testing.assert_array_equal(a, b)


def test_rgba_on_transparent_canvas_is_composited_on_white():
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))  # transparent black: naive greyscale is all black
    ImageDraw.Draw(img).line([(30, 25), (110, 25), (60, 170)], fill=(0, 0, 0, 255), width=14)
    out = preprocess_image(img)
    _assert_mnist_like(out)
    np.testing.assert_array_equal(out, preprocess_image(_seven(size=(200, 200))))


def test_white_strokes_on_transparent_canvas_still_found():
    img = Image.new("RGBA", (200, 200), (255, 255, 255, 0))
    ImageDraw.Draw(img).line([(30, 25), (110, 25), (60, 170)], fill=(255, 255, 255, 255), width=14)
    _assert_mnist_like(preprocess_image(img))


@pytest.mark.parametrize("mode", ["RGB", "P", "I;16", "1"])
def test_other_modes_match_greyscale(mode):
    grey = _seven()
    img = grey.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    np.testing.assert_array_equal(preprocess_image(img), preprocess_image(grey))


def test_arrays_in_other_dtypes_match_uint8():
    grey = np.asarray(_seven())
    want = preprocess_image(grey)
    np.testing.assert_array_equal(preprocess_image(grey.astype(np.float32) / 255), want)
    np.testing.assert_array_equal(preprocess_image(np.stack([grey] * 3, axis=-1)), want)
    np.testing.assert_array_equal(preprocess_image(grey[None]), want)


def test_faint_noise_and_a_far_speck_do_not_move_the_digit():
    clean = np.asarray(_seven(), dtype=np.float64)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255)
    noisy[190:193, 280:283] = 0  # a dark speck in the far corner
    a, b = preprocess_image(clean.astype(np.uint8)), preprocess_image(noisy.astype(np.uint8))
    assert _ink_box(a) == _ink_box(b)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 8


def test_mnist_images_pass_through_nearly_unchanged(mnist):
    x = mnist.x_test[:500]
    out = np.stack([preprocess_image(im) for im in x])
    diff = np.abs(out.astype(int) - x.astype(int))
    assert np.mean(diff.max(axis=(1, 2)) <= 2) > 0.95
    assert diff.mean() < 1.0


@pytest.mark.parametrize("image", [Image.new("L", (50, 50), 255), np.zeros((28, 28), np.uint8),
                                   np.full((40, 30, 3), 128, np.uint8)])
def test_blank_image_is_an_error(image):
    with pytest.raises(DigitlabError, match="blank"):
        preprocess_image(image, name="x.png")


def test_blank_error_names_the_image():
    with pytest.raises(DigitlabError, match="scan.png"):
        preprocess_image(Image.new("L", (10, 10), 0), name="scan.png")


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_load_image_reads_file_and_bytes(tmp_path):
    path = tmp_path / "seven.png"
    path.write_bytes(_png(_seven()))
    img = load_image(path)
    assert img.size == (300, 200)
    np.testing.assert_array_equal(np.asarray(load_image(path.read_bytes())), np.asarray(img))


@pytest.mark.parametrize(
    "content, match",
    [(None, "no such file"), (b"", "empty"), (b"this is not an image at all", "not an image"),
     ("truncated", "corrupt or truncated")],
)
def test_load_image_errors_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad.png"
    if content == "truncated":
        content = _png(_seven())[:300]
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DigitlabError, match=match) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_load_image_folder_is_an_error(tmp_path):
    with pytest.raises(DigitlabError, match="folder"):
        load_image(tmp_path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    # A 1-bit 20000x20000 PNG compresses to a few kB but would decode to 400 million pixels.
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000), 0).save(path, optimize=True)
    assert path.stat().st_size < 200_000
    with pytest.raises(DigitlabError, match="too large|pixels") as info:
        load_image(path)
    assert "bomb.png" in str(info.value)


def test_explicit_pixel_limit(tmp_path):
    path = tmp_path / "big.png"
    _seven().save(path)
    with pytest.raises(DigitlabError, match="60000 pixels"):
        load_image(path, max_pixels=50_000)


def test_oversized_file_is_refused_without_reading_it(tmp_path, monkeypatch):
    from digitlab.vision import decode

    path = tmp_path / "huge.png"
    path.write_bytes(_png(_seven()))
    monkeypatch.setattr(decode, "MAX_FILE_BYTES", 100)
    with pytest.raises(DigitlabError, match="huge.png: file is"):
        load_image(path)


def test_error_types_let_callers_tell_too_large_from_blank(tmp_path):
    """The service maps these types to HTTP codes; they must not depend on message wording."""
    import io

    from PIL import Image

    from digitlab.errors import BlankImageError, DigitlabError, ImageTooLargeError
    from digitlab.vision import load_image, preprocess_image

    buf = io.BytesIO()
    Image.new("L", (200, 200), 0).save(buf, format="PNG")
    with pytest.raises(ImageTooLargeError):
        load_image(buf.getvalue(), name="big.png", max_pixels=100)
    with pytest.raises(BlankImageError):
        preprocess_image(Image.new("L", (50, 50), 255), name="white.png")
    assert issubclass(ImageTooLargeError, DigitlabError) and issubclass(BlankImageError, DigitlabError)


# --- profiles: "mnist" (MNIST, KMNIST) and "fashion" (Fashion-MNIST) -------------------------------

def _rectangle(size=(300, 200), box=(180, 40, 220, 120)) -> Image.Image:
    """A dark 40x80 (w x h) rectangle on white, off-centre, as a photographed product."""
    img = Image.new("L", size, 255)
    ImageDraw.Draw(img).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=30)
    return img


def test_fashion_profile_fills_the_frame_and_centres_by_bounding_box():
    out = preprocess_image(_rectangle(), profile="fashion")
    assert out.shape == (28, 28) and out.dtype == np.uint8
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert abs(h - 28) <= 1  # the longer side (80 px) spans the whole frame
    assert abs(w - 28 * 40 / 80) <= 1  # aspect ratio kept
    assert abs(rows[0] - (27 - rows[-1])) <= 1 and abs(cols[0] - (27 - cols[-1])) <= 1  # bbox centred
    assert out.max() >= 200  # dark object on white -> bright on black


def test_mnist_profile_is_the_default_and_keeps_the_20px_box():
    img = _rectangle()
    out = preprocess_image(img, profile="mnist")
    np.testing.assert_array_equal(out, preprocess_image(img))
    assert max(_ink_box(out)) == 20


def test_unknown_profile_is_an_error_listing_the_profiles():
    with pytest.raises(DigitlabError, match=r"'cifar'.*mnist, fashion"):
        preprocess_image(_rectangle(), name="x.png", profile="cifar")


def test_profiles_match_the_registry():
    from typing import get_args

    from digitlab.data import DATASETS
    from digitlab.data.registry import Preprocessing
    from digitlab.vision.normalise import PROFILES

    assert set(get_args(Preprocessing)) == set(PROFILES)
    assert {name: spec.preprocessing for name, spec in DATASETS.items()} == {
        "mnist": "mnist", "kmnist": "mnist", "fashion-mnist": "fashion"}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


@pytest.mark.skipif(not SYSTEM_FASHION.is_dir(),
                    reason=f"Debian's dataset-fashion-mnist not installed ({SYSTEM_FASHION})")
def test_fashion_mnist_images_pass_through_the_fashion_profile():
    from digitlab.data import load

    x = load("fashion-mnist").x_test[:200]
    fashion = np.stack([preprocess_image(im, profile="fashion") for im in x])
    mnist = np.stack([preprocess_image(im, profile="mnist") for im in x])
    corr_fashion = np.array([_corr(a, b) for a, b in zip(fashion, x)])
    corr_mnist = np.array([_corr(a, b) for a, b in zip(mnist, x)])
    # The object already fills the frame, bbox-centred: most images come back nearly as they were.
    assert np.mean(corr_fashion > 0.9) >= 0.9
    assert np.abs(fashion.astype(int) - x.astype(int)).mean() < 3  # grey levels, of 0..255 (MNIST profile: ~47)
    # The MNIST profile shrinks them into 20x20: far from the originals (why the profiles exist).
    assert np.mean(corr_mnist > 0.9) < 0.2


# --- photos of paper: the same digit under each condition gives the 28x28 it gives on flat paper ---------
# Scenes are drawn here (tests/support/paper_scenes.py), independently of the code under test: an
# MNIST test digit as ink, on paper under one condition, photographed (blur, noise, JPEG 85); the
# reference is the same ink in black on plain white paper. A 28x28 within a few grey levels of the
# reference means the lighting, the lines, the ink colour and the desk were all taken away.

from support import paper_scenes as scenes  # noqa: E402

PHOTO_CONDITIONS = {
    "linear gradient": dict(light="linear", light_strength=0.5),
    "radial light": dict(light="radial", light_strength=0.45),
    "hard shadow edge across the digit": dict(shadow="hard", shadow_strength=0.55),
    "soft shadow": dict(shadow="soft", shadow_strength=0.5),
    "ruled paper": dict(lines="ruled", line_pitch=70),
    "squared paper": dict(lines="squared", line_pitch=45),
    "blue ballpoint on ruled paper": dict(ink_rgb=scenes.BLUE_INK, lines="ruled"),
    "pencil": dict(ink_rgb=scenes.PENCIL, opacity=0.55),
    "page edge, dark desk": dict(desk="dark"),
    "page edge, wooden desk": dict(desk="wood"),
    "dust and specks": dict(specks=25),
    "sensor noise": dict(noise=8.0),
}
PHOTO_DIGITS = range(8)  # the first eight MNIST test digits


def _aligned_mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two 28x28 images at their best alignment within one pixel.

    MNIST places the digit by rounding its centre of mass to a whole pixel: the same digit drawn
    twice may land one pixel apart, which says nothing about the cleaning.
    """
    a, b = a.astype(int), np.pad(b.astype(int), 1)
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return min(float(np.abs(a - b[1 + dy : 29 + dy, 1 + dx : 29 + dx]).mean()) for dy, dx in shifts)


def _on_paper(mnist, i: int) -> np.ndarray:
    return scenes.place(scenes.coverage(mnist.x_test[i], 180), (640, 480), (120 + 20 * i, 130))


@pytest.mark.parametrize("condition", list(PHOTO_CONDITIONS))
def test_photo_conditions_give_the_digit_as_on_flat_paper(mnist, condition):
    diffs = []
    for i in PHOTO_DIGITS:
        ink = _on_paper(mnist, i)
        want = preprocess_image(scenes.flat(ink))
        got = preprocess_image(load_image(scenes.jpeg(scenes.photo(ink, seed=i, **PHOTO_CONDITIONS[condition]))))
        diffs.append(_aligned_mad(got, want))
    # mean absolute difference in grey levels (0..255): every digit within 12, on average within 6
    assert max(diffs) <= 12 and np.mean(diffs) <= 6, np.round(diffs, 1)


def test_flat_paper_reference_is_the_mnist_digit(mnist):
    """The reference itself: the digit written large on white paper comes back close to its MNIST image."""
    corr = [_corr(preprocess_image(scenes.flat(_on_paper(mnist, i))), mnist.x_test[i]) for i in PHOTO_DIGITS]
    assert min(corr) > 0.8, np.round(corr, 3)


def test_ruled_line_through_a_seven_keeps_its_bar_and_stem():
    """A 7 whose bar sits on a rule and whose stem crosses two: the rules go, the 7 stays whole."""
    ink = np.zeros((480, 640), np.float32)
    cv2.line(ink, (250, 140), (390, 140), 1.0, 22, cv2.LINE_AA)  # the bar, on the rule at y = 140
    cv2.line(ink, (390, 140), (300, 380), 1.0, 22, cv2.LINE_AA)  # the stem, across the rules below
    want = preprocess_image(scenes.flat(ink))
    photo = scenes.photo(ink, lines="ruled", line_pitch=80, line_width=3, line_angle=0.0, ink_rgb=scenes.BLUE_INK)
    assert _aligned_mad(preprocess_image(load_image(scenes.jpeg(photo))), want) <= 8


def _canvas(side: int, pen: int) -> np.ndarray:
    img = Image.new("L", (side, side), 0)
    ImageDraw.Draw(img).line([(0.3 * side, 0.2 * side), (0.7 * side, 0.2 * side), (0.45 * side, 0.8 * side)],
                             fill=255, width=pen)
    return np.asarray(img)


def _output_stroke(img: np.ndarray) -> float:
    """Stroke width of a 28x28 at its half-grey level: 2 x area / perimeter (OpenCV contours)."""
    binary = (img > 127).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return 2 * binary.sum() / sum(cv2.arcLength(c, True) for c in contours)


@pytest.mark.parametrize("pen", [2, 6, 22, 50])
def test_canvas_strokes_of_any_pen_come_out_as_wide_as_mnist_strokes(pen):
    """MNIST's strokes: 2 x area / perimeter 1.25-4.25 px (1st-99th percentile of the test set)."""
    width = _output_stroke(preprocess_image(_canvas(280, pen)))
    assert 1.25 <= width <= 4.25


def test_big_jpeg_is_decoded_small_and_the_box_is_in_input_pixels():
    ink = np.zeros((3000, 4000), np.float32)
    cv2.line(ink, (1500, 1000), (1800, 1000), 1.0, 60, cv2.LINE_AA)
    cv2.line(ink, (1800, 1000), (1600, 2000), 1.0, 60, cv2.LINE_AA)
    data = scenes.jpeg(scenes.flat(ink), 90)
    img = load_image(data)
    assert max(img.size) < 2000 and img.info["digitlab.full_size"] == (4000, 3000)  # DCT-scaled decode
    result = preprocess(img)
    want = (1470, 970, 1831, 2031)  # the strokes' extent: the end points +- half the pen
    assert all(abs(a - b) <= 12 for a, b in zip(result.box, want)), result.box


def test_exif_rotated_photo_reads_as_shown(tmp_path):
    ink = np.zeros((300, 400), np.float32)
    cv2.line(ink, (150, 60), (250, 60), 1.0, 12, cv2.LINE_AA)
    cv2.line(ink, (250, 60), (180, 250), 1.0, 12, cv2.LINE_AA)
    upright = scenes.flat(ink)
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))  # turned as a phone stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to show"
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    assert _corr(preprocess_image(load_image(buf.getvalue())), preprocess_image(upright)) > 0.95


def test_huge_transparent_canvas_matches_the_small_one():
    """A 3000x3000 RGBA PNG is reduced (premultiplied, in strips) to the same picture as a 300x300 one."""
    def canvas(side: int) -> Image.Image:
        img = Image.new("RGBA", (side, side), (255, 255, 255, 0))
        ImageDraw.Draw(img).line([(0.3 * side, 0.2 * side), (0.7 * side, 0.2 * side), (0.45 * side, 0.8 * side)],
                                 fill=(20, 20, 30, 255), width=side // 12)
        return img

    assert _corr(preprocess_image(canvas(3000)), preprocess_image(canvas(300))) > 0.95


# --- Preprocessed: the facts about the ink --------------------------------------------------------------

def test_preprocess_reports_blank_without_raising():
    result = preprocess(Image.new("L", (64, 64), 255))
    assert result.blank and result.box is None and result.objects == 0
    assert result.image.shape == (28, 28) and not result.image.any()


def test_preprocess_counts_separate_objects_not_specks():
    one = np.asarray(_seven(), dtype=np.uint8).copy()
    rng = np.random.default_rng(1)
    for y, x in rng.integers(0, 190, size=(12, 2)):
        one[y : y + 2, 200 + x % 90 : 202 + x % 90] = 0  # dust: 2x2 specks
    result = preprocess(one)
    assert result.objects == 1 and not result.blank
    two = np.full((200, 400), 255, np.uint8)
    two[:, :200] = np.asarray(_seven(size=(200, 200)))
    two[:, 200:] = np.asarray(_seven(size=(200, 200)))
    assert preprocess(two).objects == 2


def test_preprocess_box_is_the_digit_in_input_pixels():
    img = _seven()
    rows, cols = np.nonzero(np.asarray(img) < 255)
    assert preprocess(img).box == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


# --- formats -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["TGA", "PCX", "ICO"])
def test_formats_outside_the_allowlist_are_refused_undecoded(fmt):
    from digitlab.errors import UnsupportedImageError

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), 255).save(buf, format=fmt)
    with pytest.raises(UnsupportedImageError, match=f"{fmt} images are not accepted.*PNG"):
        load_image(buf.getvalue(), name="x")


def test_damaged_png_header_is_a_digitlab_error():
    data = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0cIHDR" + b"\x00" * 16  # a 12-byte IHDR of zeros
    with pytest.raises(DigitlabError, match="bad.png"):
        load_image(data, name="bad.png")

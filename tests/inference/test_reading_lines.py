"""The bundled line reader behind `read` (`digitlab.inference.reader`, `digitlab.inference.reading.read`).

Lines and pages are made here from MNIST *test* digits (the reader trained on training digits) with
known text: `digitlab.synth.lines.condition_set` and `digitlab.synth.pages`. The bars are below the
benchmark's targets (docs/reading.md has the measured figures); they catch a reader that is broken,
mis-normalised or mis-decoded, not a point of accuracy.
"""
from __future__ import annotations

import difflib
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from digitlab.errors import DigitlabError
from digitlab.inference.reader import Reader
from digitlab.inference.reading import read
from digitlab.synth.lines import condition_set
from digitlab.synth.pages import NOISE_KINDS, digit_page, noise_page


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader.load()


def _digits_right(truth: str, read_text: str) -> int:
    """Digits of `truth` read in order (lines aligned one to one)."""
    return sum(sum(b.size for b in difflib.SequenceMatcher(None, a, r).get_matching_blocks())
               for a, r in zip(truth.split("\n"), read_text.split("\n"), strict=False))


def test_the_bundled_reader_reads_held_out_lines(reader, mnist):
    lines = condition_set("spaced", 60, seed=11, digits=mnist.x_test, labels=mnist.y_test)
    read_texts = ["".join(c.char for c in chars) for chars in reader.read_lines(lines.images)]
    exact = np.mean([a == b for a, b in zip(lines.texts, read_texts, strict=True)])
    assert exact >= 0.85
    assert reader.model_id.startswith("line_reader-")


def test_touching_digits_are_told_apart(reader, mnist):
    lines = condition_set("touching", 60, seed=12, digits=mnist.x_test, labels=mnist.y_test)
    read_texts = ["".join(c.char for c in chars) for chars in reader.read_lines(lines.images)]
    assert np.mean([a == b for a, b in zip(lines.texts, read_texts, strict=True)]) >= 0.8


def test_batches_read_as_single_lines(reader, mnist):
    lines = condition_set("train", 12, seed=13, digits=mnist.x_test, labels=mnist.y_test).images
    together = reader.read_lines(lines)
    alone = [reader.read_lines([im])[0] for im in lines]
    assert [[c.char for c in a] for a in together] == [[c.char for c in a] for a in alone]
    for a, b in zip(together, alone, strict=True):
        assert np.allclose([c.probability for c in a], [c.probability for c in b], atol=1e-4)


def test_marks_that_are_not_digits_are_refused(reader, mnist):
    lines = condition_set("mixed_nondigit", 40, seed=14, digits=mnist.x_test, labels=mnist.y_test)
    chars = [c for line in reader.read_lines(lines.images) for c in line]
    marks = [c for c in chars if c.char == "?"]
    assert marks and all(c.rejected and c.reason == "not a digit" for c in marks)
    truth_marks = sum(t.count("?") for t in lines.texts)
    assert len(marks) >= 0.4 * truth_marks


def test_a_page_is_read_completely_and_in_order(reader, mnist):
    page, text = digit_page(mnist.x_test, mnist.y_test, np.random.default_rng(5), lines=8, per_line=30,
                            size=(1920, 640))  # the 40-line page's line spacing (and so its jitter)
    reading = read(reader, page)
    assert reading.text.count("\n") == 7  # every line, none merged or split
    assert _digits_right(text, reading.text) >= 0.97 * len(text.replace("\n", ""))
    boxes = [d.box for d in reading.digits if not d.rejected]
    assert all(0 <= x0 < x1 <= page.shape[1] and 0 <= y0 < y1 <= page.shape[0] for x0, y0, x1, y1 in boxes)


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_pages_without_digits_read_as_nothing(reader, kind):
    page = noise_page(kind, np.random.default_rng(0), size=(960, 1600), count=5000)
    assert read(reader, page).text == ""


def test_a_small_number_in_a_large_photo_is_read_from_full_resolution(reader, mnist):
    """Digits 40 px tall in a 4000 px wide picture: 10 px at working size, so lines are cut at full size."""
    page = np.full((1200, 4000), 240, np.uint8)
    text = ""
    for k in range(6):
        d = mnist.x_test[k]
        glyph = cv2.resize(d, (40, 40)).astype(np.float32) / 255
        page[500:540, 1800 + 36 * k:1840 + 36 * k] = np.minimum(
            page[500:540, 1800 + 36 * k:1840 + 36 * k], (240 - glyph * 220).astype(np.uint8))
        text += str(int(mnist.y_test[k]))
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, format="JPEG", quality=92)
    reading = read(reader, buf.getvalue())
    assert reading.text == text
    x0, _, x1, _ = reading.digits[0].box
    assert 1790 <= x0 <= 1830 and x1 - x0 < 60  # boxes in the input's own pixels


def test_a_folder_that_is_no_reader_is_an_error(tmp_path):
    with pytest.raises(DigitlabError, match="no line reader"):
        Reader.load(tmp_path)


def test_onnx_runtime_reads_as_pytorch(mnist):
    onnx, torch_ = Reader.load(backend="onnx", num_threads=1), Reader.load(backend="torch")
    assert (onnx.backend, torch_.backend) == ("onnx", "torch")
    lines = condition_set("touching", 20, seed=15, digits=mnist.x_test, labels=mnist.y_test).images
    a, b = onnx.read_lines(lines), torch_.read_lines(lines)
    assert [[c.char for c in x] for x in a] == [[c.char for c in x] for x in b]
    assert np.allclose([c.probability for x in a for c in x], [c.probability for x in b for c in x], atol=1e-4)


def test_an_unknown_backend_names_the_known_ones():
    with pytest.raises(DigitlabError, match="torch"):
        Reader.load(backend="tensorrt")


def test_the_reader_vetoes_marks_the_classifier_would_accept(mnist):
    """predict_image of a digit model: a picture the reader reads as non-digit marks only is rejected."""
    from digitlab.inference import Predictor
    from digitlab.inference.reading import reads_no_digit
    from digitlab.synth import build_set

    with_reader, alone = Predictor.load(), Predictor.load(reader_refusal=False)
    samples = build_set("nondigit_letters", 40, seed=0, mnist_test=(mnist.x_test, mnist.y_test), split="heldout")
    vetoed = [s for s in samples if not alone.predict_image(s.image).rejected
              and reads_no_digit(with_reader.reader, s.image)]
    assert vetoed, "the reader refused none of the letters the classifier accepted"
    for s in vetoed[:3]:
        p = with_reader.predict_image(s.image)
        assert p.rejected and p.reason == "not a digit"
    digits = build_set("photo_plain", 20, seed=0, mnist_test=(mnist.x_test, mnist.y_test), split="heldout")
    assert sum(with_reader.predict_image(s.image).rejected for s in digits) <= 2


def test_more_writing_than_one_read_takes_is_refused_clearly(reader, mnist, monkeypatch):
    import digitlab.inference.reading as reading

    page, _ = digit_page(mnist.x_test, mnist.y_test, np.random.default_rng(8), lines=4, per_line=20,
                         size=(1200, 400))
    monkeypatch.setattr(reading, "MAX_READ_COLUMNS", 500)
    with pytest.raises(DigitlabError, match="crop it into parts"):
        read(reader, page, name="page.png")

"""`read`: every digit in a picture, as text; the one implementation behind `Predictor.read`, the CLI and the API.

The picture is cleaned as for a single digit (`digitlab.inference.ink`: lighting, paper, ruled
lines), its writing grouped into lines (`digitlab.inference.lines`), and every line read at once
by the line reader (`digitlab.inference.reader.Reader`, a CNN trained with CTC on synthetic lines):
touching and overlapping digits are separated by the model, not by hand-made cuts, and marks that
are not digits are read as the not-a-digit symbol and refused (`ReadDigit.rejected`, reason "not a
digit"). Refused characters stay in `Reading.digits` and are left out of `Reading.text`.

Resolution: lighting, ink and lines are found on the picture at working size (long side at most
WORK_SIDE). When its digits are smaller than READ_DIGIT_PX there and the input has more pixels,
the picture is cleaned again at the resolution that makes them READ_DIGIT_PX tall (at most the
input's own, at most READ_MAX_PIXELS), and the lines are read from that: a page of 2,000 small
digits keeps every stroke.

The segmentation reader (`read_segmented`: components cut and merged into 28x28 digits for the
classifier) is kept for comparison in the benchmarks.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from digitlab.errors import DigitlabError
from digitlab.inference.ink import find_ink
from digitlab.inference.lines import MIN_DIGIT_PX, LineLayout, TextLine, find_lines
from digitlab.inference.prediction import Prediction, ReadDigit, Reading
from digitlab.inference.preprocess import (
    MAX_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    Box,
    ImageInput,
    Picture,
    faint_components,
    load_image,
    picture,
    piece_ink,
    to_profile,
)
from digitlab.inference.rejection import energy
from digitlab.inference.segment import Classify, Piece, segment

if TYPE_CHECKING:
    from digitlab.inference.predictor import Predictor
    from digitlab.inference.reader import ReadChar, Reader

VETO_PROBABILITY = 0.9  # a single picture is refused when the reader is this sure its marks are not digits:
# on 60 pictures per condition, refused letters rose from 23% to 70% and doodles from 75% to 88%, while real
# digit pictures refused rose by 0-3 points (at any probability: letters 85%, digits up to +7 points)
READ_DIGIT_PX = 32  # lines are read where digits are at least this tall (the reader scales them to 22 px)
MAX_READ_COLUMNS = 100_000  # a picture's lines are at most this wide in all (reader px; a page of 2,000 digits
# takes 72,000, 10,000 scattered strokes 124,000): more is refused in a fraction of a second, not read for 2+ s
READ_MAX_PIXELS = 16_000_000  # ...from at most this many pixels (bounded memory: a 12 MP photo fits)


def read(reader: Reader, image: ImageInput, *, name: str | None = None,
         max_pixels: int = MAX_IMAGE_PIXELS) -> Reading:
    """Every digit in `image` (a path, file bytes, binary file, PIL image or array), read left to right,
    lines top to bottom (joined by "\\n"). Boxes are [x0, y0, x1, y1) in the input's pixels.

    A blank picture reads as "" with no digits. Raises DigitlabError (naming `name`) for files
    that cannot be read and arrays that are not images.
    """
    pic, layout = read_layout(image, name=name, max_pixels=max_pixels)
    columns = sum(line.image.shape[1] for line in layout.lines)
    if columns > MAX_READ_COLUMNS:
        label = name or (str(image) if isinstance(image, (str, os.PathLike)) else "image")
        raise DigitlabError(f"{label}: holds more writing than one read takes ({len(layout.lines)} lines, "
                            f"{columns:,} columns at the reader's scale, at most {MAX_READ_COLUMNS:,}: about "
                            f"{MAX_READ_COLUMNS // 40:,} digits); crop it into parts and read each")
    chars = reader.read_lines([line.image for line in layout.lines]) if layout.lines else []
    digits, texts = [], []
    for line, line_chars in zip(layout.lines, chars, strict=True):
        for c, (x0, x1) in zip(line_chars, char_columns(line_chars, line), strict=True):
            digits.append(ReadDigit(label=c.label, class_name=str(c.label), probability=c.probability,
                                    box=pic.to_input(line.box_of(x0, x1)), rejected=c.rejected, reason=c.reason))
        texts.append("".join(c.char for c in line_chars if not c.rejected))
    return Reading(text="\n".join(t for t in texts if t), digits=digits, model_id=reader.model_id)


def reads_no_digit(reader: Reader, image: ImageInput, *, name: str | None = None,
                   sure: float = VETO_PROBABILITY) -> bool:
    """True when the reader finds marks in `image` and reads every one of them as "not a digit" with a
    calibrated probability of at least `sure`."""
    _, layout = read_layout(image, name=name)
    chars = [c for line in reader.read_lines([ln.image for ln in layout.lines]) for c in line] if layout.lines else []
    return bool(chars) and all(c.char == "?" and c.probability >= sure for c in chars)


def char_columns(chars: Sequence[ReadChar], line: TextLine) -> list[tuple[int, int]]:
    """Each character's columns in its line: from midway to its left neighbour's spike to midway to its right's."""
    if not chars:
        return []
    centres = [(c.span[0] + c.span[1]) / 2 for c in chars]
    cuts = [0, *(round((a + b) / 2) for a, b in zip(centres, centres[1:], strict=False)), line.image.shape[1]]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


def read_layout(image: ImageInput, *, name: str | None = None,
                max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[Picture, LineLayout]:
    """(the picture the lines were cut from, its lines): see the module docstring on resolution."""
    label = name or (str(image) if isinstance(image, (str, os.PathLike)) else "image")
    data: Any = image
    if not isinstance(image, (np.ndarray, Image.Image, str, os.PathLike, bytes)):
        data = image.read(MAX_FILE_BYTES + 1)  # a file object is read once, for both passes (size checked)
    source: Any = data if isinstance(data, (np.ndarray, Image.Image)) else load_image(
        data, name=label, max_pixels=max_pixels)
    pic = picture(source, name=label)
    layout = find_lines(find_ink(pic.pixels))
    side = _reading_side(pic, layout)
    if side is None:
        return pic, layout
    if not isinstance(data, (np.ndarray, Image.Image)):
        source = load_image(data, name=label, max_pixels=max_pixels, min_side=side)
    pic = picture(source, name=label, side=side)
    return pic, find_lines(find_ink(pic.pixels))


def _reading_side(pic: Picture, layout: LineLayout) -> int | None:
    """The long side to clean the picture again at, for digits READ_DIGIT_PX tall; None: working size will do."""
    work, full = max(pic.pixels.shape[:2]), max(pic.size)
    if layout.height >= READ_DIGIT_PX or full <= work or layout.height * full / work < MIN_DIGIT_PX:
        return None  # large enough already; no more pixels to be had; or specks even at full size
    side = min(full, math.ceil(work * READ_DIGIT_PX / layout.height),
               int(full * math.sqrt(READ_MAX_PIXELS / (pic.size[0] * pic.size[1]))))
    return side if side > work * 1.2 else None


def read_segmented(predictor: Predictor, image: ImageInput, *, name: str | None = None,
                   max_pixels: int = MAX_IMAGE_PIXELS) -> Reading:
    """The segmentation reader (kept for comparison): components cut and merged into digits for the classifier."""
    pic, lines = read_pieces(predictor, image, name=name, max_pixels=max_pixels)
    digits = [ReadDigit(label=p.prediction.label, class_name=p.prediction.class_name,
                        probability=p.prediction.probability, box=pic.to_input(p.box), rejected=p.reason is not None,
                        reason=p.reason) for line in lines for p in line]
    return Reading(text=text_of(lines), digits=digits, model_id=predictor.model_id)


def text_of(lines: Sequence[Sequence[Piece]]) -> str:
    """The text of pieces found line by line: the accepted pieces' class names, lines joined by "\\n"."""
    texts = ("".join(p.prediction.class_name for p in line if p.reason is None) for line in lines)
    return "\n".join(t for t in texts if t)


def read_pieces(predictor: Predictor, image: ImageInput, *, name: str | None = None,
                max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[Picture, list[list[Piece]]]:
    """(the picture at working size, the pieces found line by line): what `read` reports, with each
    piece's 28x28 and its box in working pixels (`Picture.to_input` maps it to the input's)."""
    label = name or (str(image) if isinstance(image, (str, os.PathLike)) else "image")
    source: Any = image if isinstance(image, (np.ndarray, Image.Image)) else load_image(
        image, name=label, max_pixels=max_pixels)
    pic = picture(source, name=label)
    ink = find_ink(pic.pixels)
    faint = faint_components(ink)
    profile = predictor.preprocessing

    def normalise(own: np.ndarray, box: Box) -> np.ndarray:
        return to_profile(piece_ink(ink, own, box, faint)[0], profile)

    return pic, segment(ink, classifier(predictor), normalise)


def classifier(predictor: Predictor) -> Classify:
    """What `segment` asks of a classifier, from `predictor`: for uint8 images (N, 28, 28) already in its
    format, one Prediction each (with the model's not-a-digit decision) and each one's support, the
    log-sum-exp of its logits / T (-energy / T)."""
    def classify(x: np.ndarray) -> tuple[Sequence[Prediction], np.ndarray]:
        logits = predictor.predict_logits(x)
        support = -energy(logits, predictor.temperature) / predictor.temperature
        return [predictor.prediction(row, top_k=1) for row in logits], support

    return classify

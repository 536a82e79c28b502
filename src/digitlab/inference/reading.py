"""`read`: every digit in a picture, as text; the one implementation behind `Predictor.read`, the CLI and the API.

The picture is cleaned as for a single digit (`digitlab.vision.ink`: lighting, paper, ruled
lines), its writing grouped into lines (`digitlab.vision.lines`), and every line read at once
by the line reader (`digitlab.inference.reader.Reader`, a CNN trained with CTC on synthetic lines):
touching and overlapping digits are separated by the model, not by hand-made cuts, and marks that
are not digits are read as the not-a-digit symbol and refused (`ReadDigit.rejected`, reason "not a
digit"). Refused characters stay in `Reading.digits` and are left out of `Reading.text`.

The picture's lines are found at the resolution their digits need (`digitlab.vision.lines.read_layout`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from digitlab.errors import DigitlabError
from digitlab.prediction import ReadDigit, Reading
from digitlab.vision.decode import MAX_IMAGE_PIXELS, ImageInput, label_of
from digitlab.vision.lines import TextLine, read_layout

if TYPE_CHECKING:
    from digitlab.inference.reader import ReadChar, Reader
    from digitlab.vision.picture import Cleaned

VETO_PROBABILITY = 0.9  # a single picture is refused when the reader is this sure its marks are not digits:
# on 60 pictures per condition, refused letters rose from 23% to 70% and doodles from 75% to 88%, while real
# digit pictures refused rose by 0-3 points (at any probability: letters 85%, digits up to +7 points)
MAX_READ_COLUMNS = 100_000  # a picture's lines are at most this wide in all (reader px; a page of 2,000 digits
# takes 72,000, 10,000 scattered strokes 124,000): more is refused in a fraction of a second, not read for 2+ s


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
        label = label_of(image, name)
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
                   sure: float = VETO_PROBABILITY, cleaned: Cleaned | None = None) -> bool:
    """True when the reader finds marks in `image` and reads every one of them as "not a digit" with a
    calibrated probability of at least `sure`. `cleaned`: the picture's `clean` when already found."""
    _, layout = read_layout(image, name=name, cleaned=cleaned)
    chars = [c for line in reader.read_lines([ln.image for ln in layout.lines]) for c in line] if layout.lines else []
    return bool(chars) and all(c.char == "?" and c.probability >= sure for c in chars)


def char_columns(chars: Sequence[ReadChar], line: TextLine) -> list[tuple[int, int]]:
    """Each character's columns in its line: from midway to its left neighbour's spike to midway to its right's."""
    if not chars:
        return []
    centres = [(c.span[0] + c.span[1]) / 2 for c in chars]
    cuts = [0, *(round((a + b) / 2) for a, b in zip(centres, centres[1:], strict=False)), line.image.shape[1]]
    return list(zip(cuts[:-1], cuts[1:], strict=True))

"""`read`: every digit in a picture, as text; the one implementation behind `Predictor.read`, the CLI and the API.

The picture is cleaned exactly as for a single digit (`digitlab.inference.preprocess` and
`digitlab.inference.ink`), segmented into digits (`digitlab.inference.segment`), and every piece
is normalised like a single digit and classified in one batched call of the predictor's
`predict_prepared`, whose `Prediction.rejected` (a not-a-digit score, when the model has one)
rejects pieces alongside the cheap checks (a speck, a dash). Rejected pieces stay in
`Reading.digits` (rejected=True, with the reason) and are left out of `Reading.text`.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from digitlab.inference.ink import find_ink
from digitlab.inference.prediction import Prediction, ReadDigit, Reading
from digitlab.inference.preprocess import (
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


def read(predictor: Predictor, image: ImageInput, *, name: str | None = None,
         max_pixels: int = MAX_IMAGE_PIXELS) -> Reading:
    """Every digit in `image` (a path, file bytes, binary file, PIL image or array), read left to right,
    lines top to bottom (joined by "\\n"). Boxes are [x0, y0, x1, y1) in the input's pixels.

    A blank picture reads as "" with no digits. Raises DigitlabError (naming `name`) for files
    that cannot be read and arrays that are not images.
    """
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

"""The one exception type digitlab raises for bad input, so callers and the CLI can catch it."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest of `choices` to a misspelt `name`, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class DigitlabError(Exception):
    """A problem with an input (a file, an argument, a checkpoint) that the user can fix.

    The message names the input, says what is wrong and what to do about it.
    """


class ImageTooLargeError(DigitlabError):
    """An image whose size (bytes or declared pixels) is beyond what a digit picture needs."""


class BlankImageError(DigitlabError):
    """An image with no ink standing out from its background: nothing to recognise."""


class InputShapeError(DigitlabError, ValueError):
    """An array that is not the uint8 (N, 28, 28) images a model takes (also a ValueError)."""


class UnsupportedImageError(DigitlabError):
    """An image file in a format outside the allowlist (PNG, JPEG, GIF, BMP, TIFF, WebP), refused undecoded."""

"""The one exception type digitlab raises for bad input, so callers and the CLI can catch it."""


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

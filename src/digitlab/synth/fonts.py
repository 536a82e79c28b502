"""Debian's TrueType fonts, grouped by family, and glyphs rendered from them as uint8 pictures.

Families: DejaVu (Sans, Serif, Mono, condensed; regular, bold, oblique/italic), Liberation
(Sans, Serif, Mono, Sans Narrow) and GNU FreeFont (FreeSans, FreeSerif, FreeMono), from the
Debian packages fonts-dejavu-core/-extra, fonts-liberation and fonts-freefont-ttf.
`font_paths` uses the files that are installed; `missing_families` says which family has none.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitlab.errors import DigitlabError

FONT_ROOT = Path("/usr/share/fonts/truetype")
FAMILIES: dict[str, tuple[str, ...]] = {  # family -> font file stems
    "dejavu": (
        "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSans-BoldOblique",
        "DejaVuSansCondensed", "DejaVuSansCondensed-Bold", "DejaVuSerif", "DejaVuSerif-Bold",
        "DejaVuSerif-Italic", "DejaVuSerif-BoldItalic", "DejaVuSerifCondensed", "DejaVuSansMono",
        "DejaVuSansMono-Bold", "DejaVuSansMono-Oblique",
    ),
    "liberation": (
        "LiberationSans-Regular", "LiberationSans-Bold", "LiberationSans-Italic", "LiberationSans-BoldItalic",
        "LiberationSansNarrow-Regular", "LiberationSansNarrow-Bold", "LiberationSerif-Regular",
        "LiberationSerif-Bold", "LiberationSerif-Italic", "LiberationSerif-BoldItalic",
        "LiberationMono-Regular", "LiberationMono-Bold", "LiberationMono-Italic",
    ),
    "freefont": (
        "FreeSans", "FreeSansBold", "FreeSansOblique", "FreeSansBoldOblique", "FreeSerif", "FreeSerifBold",
        "FreeSerifItalic", "FreeSerifBoldItalic", "FreeMono", "FreeMonoBold", "FreeMonoOblique",
    ),
}
_FOLDERS = {"dejavu": "dejavu", "liberation": "liberation", "freefont": "freefont"}
DEBIAN_PACKAGES = ("fonts-dejavu-core", "fonts-dejavu-extra", "fonts-liberation", "fonts-freefont-ttf")
GLYPH_SIZE = 192  # font size in pixels for rendered glyphs (ink ~140 px tall for a digit)


def font_paths(families: tuple[str, ...] = tuple(FAMILIES)) -> list[Path]:
    """The installed font files of `families` (keys of FAMILIES), in a fixed order.

    Raises DigitlabError when none of them is installed.
    """
    paths = []
    for family in families:
        for stem in FAMILIES[family]:
            path = FONT_ROOT / _FOLDERS[family] / f"{stem}.ttf"
            if path.is_file():
                paths.append(path)
    if not paths:
        raise DigitlabError(f"no fonts of {', '.join(families)} under {FONT_ROOT}; install the Debian packages "
                            f"{' '.join(DEBIAN_PACKAGES)}")
    return paths


def missing_families() -> list[str]:
    """The families of FAMILIES with no font file installed (printed and non-digit sets need them all)."""
    return [f for f in FAMILIES if not any((FONT_ROOT / _FOLDERS[f] / f"{s}.ttf").is_file() for s in FAMILIES[f])]


@functools.lru_cache(maxsize=4096)
def glyph(path: str, char: str, size: int = GLYPH_SIZE) -> np.ndarray:
    """`char` rendered in the font at `path`, bright on black: uint8 (h, w), ink padded by a quarter size.

    Raises DigitlabError when the font has no visible glyph for `char`.
    """
    font = ImageFont.truetype(path, size)
    left, top, right, bottom = font.getbbox(char)
    pad = size // 4
    img = Image.new("L", (int(right - left) + 2 * pad, int(bottom - top) + 2 * pad), 0)
    ImageDraw.Draw(img).text((pad - left, pad - top), char, fill=255, font=font)
    out = np.asarray(img)
    if out.max() < 128:
        raise DigitlabError(f"font {path} has no visible glyph for {char!r}; pick another font")
    out.setflags(write=False)
    return out


def advance(path: str, text: str, size: int = GLYPH_SIZE) -> float:
    """Horizontal advance of `text` in pixels at `size` (where the next character would start)."""
    return float(ImageFont.truetype(path, size).getlength(text))

"""What synthetic text lines are written with: banks of ink crops (digits, non-digit marks) with their sizes.

A `Glyphs` bank holds uint8 pictures cropped to their ink (bright on black, as MNIST), the class
each stands for (see `digitlab.synth.lines`: 1..10 digits 0-9, 11 not-a-digit), and where its ink
sits against a digit: its height in digit heights and how far its bottom drops below the baseline
(a "p" hangs below it, a "~" floats above it). Banks are made once and reused: a line only warps
and pastes crops, which keeps line making fast.

Non-digit banks come in the splits of `digitlab.synth.nondigits` ("train", "heldout"): the split's
letters and symbols (and, for "train", EXTRA_MARKS) printed in its fonts and in handwriting fonts of
its own (HANDWRITING_FONTS), the same letters redrawn by hand as pen strokes, and the split's
doodles and scribbles.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitlab.errors import DigitlabError
from digitlab.synth import fonts
from digitlab.synth.nondigits import family, make_nondigit
from digitlab.synth.strokes import render_mark

DIGIT_CLASS_OFFSET = 1  # class of digit d is d + 1: class 0 is CTC's blank
NOT_A_DIGIT = 11  # the class of every non-digit mark
INK_LEVEL = 40  # uint8 level above which a source pixel is ink when cropping (MNIST's faint halo is below)
RENDER_PX = 28  # height (px) non-digit marks are drawn at: near a line's digit height, so warps barely resample
FONT_PX = 40  # font size for printed marks: a digit's ink is then ~28 px tall, like RENDER_PX
PEN = (0.09, 0.16)  # pen width of hand-drawn marks, in mark heights: MNIST strokes are ~2.5 px in 20
HANDWRITING_FONTS: dict[str, tuple[str, ...]] = {  # split -> font files under fonts.FONT_ROOT, disjoint
    "train": ("fifthhorseman/dkg.ttf", "fifthhorseman/dkgBd.ttf", "fifthhorseman/dkgIt.ttf",
              "fifthhorseman/dkgBI.ttf", "humor-sans/Humor-Sans.ttf", "breip/Breip.ttf"),
    "heldout": ("femkeklaver/femkeklaver.ttf", "klee/KleeOne-Regular.ttf", "klee/KleeOne-SemiBold.ttf"),
}
EXTRA_MARKS = {  # printed marks beyond nondigits.FAMILIES' (whose letters are all used): more shapes to learn from
    "train": "αηκλμπφχψωΓΔΛΞΠΦΨΩ€£¥§¶µ©®±√∞≈≠",  # Greek and symbols that look like no digit
}
HANDWRITING_PACKAGES = ("fonts-dkg-handwriting", "fonts-humor-sans", "fonts-breip", "fonts-femkeklaver", "fonts-klee")
CAP_HEIGHT = 0.7  # cap height / font size, for a font without an "H"
MAX_MARK_HEIGHT = 1.4  # tallest printed mark, in digit heights (a "}" or "@" in a large-bodied font)
UNMAPPED = "\U0010fffd"  # a private-use code point no font maps: what a missing glyph draws as
GLYPH_TRIES = 100  # random (font, character) draws before concluding the split's fonts draw nothing
BANK_MIX = {"printed": 0.4, "hand": 0.2, "doodles": 0.2, "scribbles": 0.2}  # shares of a non-digit bank


@dataclass(frozen=True)
class Glyphs:
    """A bank of ink crops: images[i] uint8 (h_i, w_i), its class, relative height, drop and kind."""

    images: tuple[np.ndarray, ...]
    classes: np.ndarray  # int64 (n,): 1..10 for digits 0-9, NOT_A_DIGIT for marks
    heights: np.ndarray  # float32 (n,): ink height in digit heights (1 for a digit)
    drops: np.ndarray  # float32 (n,): ink bottom below the baseline, in digit heights (< 0: above)
    kinds: tuple[str, ...]  # "digit", "printed:A", "hand:x", "doodle:heart", "scribble:coil"

    def __len__(self) -> int:
        return len(self.images)


def digit_glyphs(images: np.ndarray, labels: np.ndarray) -> Glyphs:
    """A bank of the digits `images` uint8 (N, h, w) with `labels` int (N,), each cropped to its ink.

    Images without ink are left out. The crops are views of `images` (no copy).
    """
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise DigitlabError(f"digit_glyphs: need uint8 images (N, h, w) and N labels, got {images.dtype} "
                            f"{images.shape} and {len(labels)} labels; pass e.g. ds.x_train, ds.y_train")
    ink = np.greater(images, INK_LEVEL)
    rows, cols = np.any(ink, axis=2), np.any(ink, axis=1)  # (N, h), (N, w)
    keep = np.flatnonzero(rows.any(1))
    y0, x0 = rows.argmax(1), cols.argmax(1)
    y1 = images.shape[1] - rows[:, ::-1].argmax(1)
    x1 = images.shape[2] - cols[:, ::-1].argmax(1)
    crops = tuple(images[i, y0[i]:y1[i], x0[i]:x1[i]] for i in keep)
    n = len(keep)
    return Glyphs(crops, np.asarray(labels, np.int64)[keep] + DIGIT_CLASS_OFFSET, np.ones(n, np.float32),
                  np.zeros(n, np.float32), ("digit",) * n)


def _crop(picture: np.ndarray) -> np.ndarray | None:
    """`picture` uint8 (h, w) cropped to its ink; None when it has none."""
    ink = picture > INK_LEVEL
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size == 0:
        return None
    return np.ascontiguousarray(picture[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])


def _ink_rows(font: ImageFont.FreeTypeFont, char: str) -> tuple[np.ndarray, int, int] | None:
    """`char` drawn in `font`: (uint8 ink crop, its top and bottom + 1 in px from the baseline); None if blank."""
    left, top, right, bottom = font.getbbox(char, anchor="ls")
    if right <= left or bottom <= top:
        return None
    img = Image.new("L", (int(right - left) + 8, int(bottom - top) + 8), 0)
    ImageDraw.Draw(img).text((4 - left, 4 - top), char, fill=255, font=font, anchor="ls")
    picture = np.asarray(img)
    rows = np.flatnonzero((picture > INK_LEVEL).any(1))
    crop = _crop(picture)
    if crop is None:
        return None
    baseline = int(4 - top)  # the baseline's row in `picture`
    return crop, int(rows[0]) - baseline, int(rows[-1]) + 1 - baseline


def _missing(font: ImageFont.FreeTypeFont, char: str) -> bool:
    """Whether `font` has no glyph for `char`: FreeType would draw its .notdef box, as for UNMAPPED."""
    mask, notdef = font.getmask(char), font.getmask(UNMAPPED)
    return bool(mask.size == notdef.size and np.array_equal(np.asarray(mask), np.asarray(notdef)))


@functools.lru_cache(maxsize=8192)
def printed(path: str, char: str) -> tuple[np.ndarray, float, float] | None:
    """`char` in the font at `path`: (uint8 ink crop, height and drop in the font's digit heights); None if blank.

    Measured on the drawn ink against the font's "H" (digits are about cap height; some
    handwriting fonts have small old-style figures), so a lowercase "x" stays smaller than a digit,
    a "p" hangs below the baseline and a "=" floats above it, as when written beside digits.
    """
    font = ImageFont.truetype(path, FONT_PX)
    cap, got = _ink_rows(font, "H"), _ink_rows(font, char)
    if got is None or _missing(font, char):
        return None
    digit_h = float(cap[2] - cap[1]) if cap is not None else CAP_HEIGHT * FONT_PX
    crop, _, bottom = got
    return crop, min(crop.shape[0] / digit_h, MAX_MARK_HEIGHT), bottom / digit_h


def handwriting_paths(split: str) -> list[Path]:
    """The installed handwriting fonts of `split` (HANDWRITING_FONTS); may be empty."""
    family(split)  # checks the split's name
    return [fonts.FONT_ROOT / rel for rel in HANDWRITING_FONTS.get(split, ()) if (fonts.FONT_ROOT / rel).is_file()]


def _printed_mark(split: str, rng: np.random.Generator) -> tuple[np.ndarray, float, float, str]:
    """A random letter or symbol of `split` in one of its fonts (Debian's and handwriting)."""
    fam = family(split)
    paths = [str(p) for p in fonts.font_paths(fam.font_families) + handwriting_paths(split)]
    chars = fam.letters + fam.symbols + EXTRA_MARKS.get(split, "")
    for _ in range(GLYPH_TRIES):  # a font may lack a glyph (e.g. "÷" in a handwriting font): draw again
        char = chars[int(rng.integers(len(chars)))]
        got = printed(paths[int(rng.integers(len(paths)))], char)
        if got is not None:
            return got[0], got[1], got[2], f"printed:{char}"
    raise DigitlabError(f"no font of split {split!r} draws its letters or symbols ({', '.join(paths)}); "
                        f"reinstall the Debian packages {' '.join(fonts.DEBIAN_PACKAGES)}")


def _drawn_mark(group: str, split: str, rng: np.random.Generator) -> tuple[np.ndarray, float, float, str]:
    """A hand-drawn mark of `group` (letters, symbols, doodles, scribbles) of `split`, rendered RENDER_PX tall."""
    nd = make_nondigit(group, split, rng, printed=False)
    pen = float(rng.uniform(*PEN)) * RENDER_PX
    pad = int(np.ceil(pen)) + 1
    aspect = nd.mark.aspect
    matrix = np.array([[RENDER_PX, 0, pad], [0, RENDER_PX, pad]], np.float64)
    shape = (RENDER_PX + 2 * pad, int(np.ceil(aspect * RENDER_PX)) + 2 * pad)
    picture = (render_mark(nd.mark, matrix, shape, pen_px=pen) * 255).astype(np.uint8)
    crop = _crop(picture)
    if crop is None:  # a degenerate mark: a dot stands in
        crop = np.full((3, 3), 255, np.uint8)
    small = group == "symbols" or (group == "letters" and nd.what.islower() and nd.what not in "bdfhklt")
    height = float(rng.uniform(0.45, 0.75) if small else rng.uniform(0.8, 1.15))
    kind = {"letters": "hand", "symbols": "hand", "doodles": "doodle", "scribbles": "scribble"}[group]
    return crop, height, 0.0, f"{kind}:{nd.what}"


@functools.lru_cache(maxsize=8)
def nondigit_glyphs(split: str, n: int = 600, seed: int = 0) -> Glyphs:
    """A bank of `n` non-digit marks of `split` ("train" or "heldout"), made once per (split, n, seed).

    Shares BANK_MIX: printed letters/symbols, the same redrawn by hand, doodles, scribbles.
    Raises DigitlabError when the split's fonts are missing (install fonts.DEBIAN_PACKAGES).
    """
    if split not in ("train", "heldout"):
        raise DigitlabError(f"nondigit_glyphs: split {split!r} is not drawn in lines; use 'train' or 'heldout'")
    rng = np.random.default_rng([seed, 0x11E5, len(split)])
    groups = rng.choice(list(BANK_MIX), size=n, p=list(BANK_MIX.values()))
    marks = []
    for group in groups:
        if group == "printed":
            marks.append(_printed_mark(split, rng))
        elif group == "hand":
            marks.append(_drawn_mark("letters" if rng.random() < 0.7 else "symbols", split, rng))
        else:
            marks.append(_drawn_mark(str(group), split, rng))
    images, heights, drops, kinds = zip(*marks, strict=True)
    return Glyphs(tuple(images), np.full(n, NOT_A_DIGIT, np.int64), np.array(heights, np.float32),
                  np.array(drops, np.float32), tuple(kinds))

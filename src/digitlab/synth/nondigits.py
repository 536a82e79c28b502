"""What the "not a digit" sets are made of, per split, and the marks they draw.

Two disjoint families, chosen by `split`, so a detector trained on one is evaluated on shapes,
fonts and symbols it has never seen:

- "train": fonts DejaVu (printed glyphs, and the skeletons of hand-drawn ones); letters
  A E F H K M d f h k m; symbols # % + * ~ ^ ×; doodles star, grid, triangle, house, lightning,
  cloud, zigzag, sun, hatched_box; scribbles random_walk, hatching.
- "heldout": fonts Liberation and FreeFont; letters N P R V W X Y n p r v w x; symbols
  @ & = ? < > ÷; doodles smiley, heart, spiral, arrow, circle_cross, flower, wave, eye, fish;
  scribbles coil, tangle, scribble_ball.
- "ambiguous": all fonts; letters O o Q D C c U u I i l L j J T t Z z S s B b G g q a e y;
  symbols ! $ / | ( ) - _ [ ] { }; doodles circle, bar, box, s_curve; no scribbles.

"ambiguous" holds what legitimately looks like a digit (an O is a 0, an l or a bar a 1, an S a 5, a
B an 8, a g or q a 9, a b or G a 6, a Z a 2); no default set uses it. Seeds differ too: each split
has its own stream (`build_set` mixes the split name into every sample's seed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitlab.errors import DigitlabError
from digitlab.synth import fonts, shapes
from digitlab.synth.strokes import (
    Mark,
    jittered,
    polylines_mark,
    raster_mark,
    stroke_mark,
)

SPLITS = ("train", "heldout", "ambiguous")


@dataclass(frozen=True)
class Family:
    """The generators of one split: font families, characters and shape kinds."""

    font_families: tuple[str, ...]
    letters: str
    symbols: str
    doodles: tuple[str, ...]
    scribbles: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    "train": Family(("dejavu",), "AEFHKMdfhkm", "#%+*~^×",
                    ("star", "grid", "triangle", "house", "lightning", "cloud", "zigzag", "sun", "hatched_box"),
                    ("random_walk", "hatching")),
    "heldout": Family(("liberation", "freefont"), "NPRVWXYnprvwx", "@&=?<>÷",
                      ("smiley", "heart", "spiral", "arrow", "circle_cross", "flower", "wave", "eye", "fish"),
                      ("coil", "tangle", "scribble_ball")),
    "ambiguous": Family(("dejavu", "liberation", "freefont"), "OoQDCcUuIilLjJTtZzSsBbGgqaey", "!$/|()-_[]{}",
                        ("circle", "bar", "box", "s_curve"), ()),
}


def family(split: str) -> Family:
    """The Family of `split` ("train", "heldout" or "ambiguous"); DigitlabError otherwise."""
    if split not in FAMILIES:
        raise DigitlabError(f"split {split!r} is unknown; use one of {', '.join(SPLITS)}")
    return FAMILIES[split]


@dataclass(frozen=True)
class NonDigit:
    """One drawn non-digit: its mark, what it is, and whether it is printed (font) or hand-drawn."""

    mark: Mark
    group: str  # "letters", "symbols", "doodles" or "scribbles"
    what: str  # the character, or the doodle/scribble kind
    printed: bool  # True: a font glyph as ink; False: pen strokes
    font: str | None  # font file stem, for glyphs


def make_nondigit(group: str, split: str, rng: np.random.Generator, *, printed: bool | None = None) -> NonDigit:
    """A random non-digit of `group` from the `split` family; `printed` forces glyph ink (True) or strokes.

    letters/symbols: a glyph of a random font of the split, as printed ink or redrawn by hand
    (the skeleton of a sans or mono font's glyph, with jitter); doodles/scribbles: the split's
    generators, always hand-drawn.
    """
    fam = family(split)
    if group in ("letters", "symbols"):
        chars = fam.letters if group == "letters" else fam.symbols
        char = chars[int(rng.integers(len(chars)))]
        paths = fonts.font_paths(fam.font_families)
        path = paths[int(rng.integers(len(paths)))]
        is_printed = bool(rng.random() < 0.5) if printed is None else printed
        picture = fonts.glyph(str(path), char)
        if is_printed:
            return NonDigit(raster_mark(picture, upscale=1, smooth=0.7), group, char, True, path.stem)
        sans = [p for p in paths if "Serif" not in p.stem] or paths  # serifs drawn by hand look odd
        path = sans[int(rng.integers(len(sans)))]
        small = fonts.glyph(str(path), char, size=48)
        mark = stroke_mark(small, upsample=2, join_pieces=False)
        return NonDigit(jittered(mark, rng), group, char, False, path.stem)
    kinds = {"doodles": fam.doodles, "scribbles": fam.scribbles}.get(group)
    if kinds is None:
        raise DigitlabError(f"non-digit group {group!r} is unknown; use letters, symbols, doodles or scribbles")
    if not kinds:
        raise DigitlabError(f"split {split!r} has no {group}; use split 'train' or 'heldout'")
    kind = kinds[int(rng.integers(len(kinds)))]
    generator = shapes.DOODLES.get(kind) or shapes.SCRIBBLES[kind]
    mark = polylines_mark([np.asarray(p, np.float32) for p in generator(rng)])
    return NonDigit(jittered(mark, rng, 1.5), group, kind, False, None)


"""Sample makers: one random Sample of a kind (photo digit, number, canvas, printed, non-digit) per call.

Each maker takes (rng, source, split, **options) and returns a Sample whose `condition` is left
empty (build_set fills it in). `max_side` caps a photo's longer side (the scene is scaled down
as a whole; canvases ignore it), for quick fixtures. Digits come from the MNIST *test* arrays given as a DigitSource:
as ink (a RasterMark of the 28x28 picture) or redrawn (the picture's skeleton as pen strokes
with hand jitter), or from fonts (printed).
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass, replace

import numpy as np
from PIL import Image, ImageOps

from digitlab.errors import DigitlabError
from digitlab.synth import fonts
from digitlab.synth.canvas import PAGE_SIDE, render_canvas
from digitlab.synth.compose import DEFAULT_STYLE, Item, Layout, RowStyle, layout
from digitlab.synth.nondigits import make_nondigit
from digitlab.synth.photo import PhotoFactors, PhotoSpec, pen_for_ink, render_photo
from digitlab.synth.sample import InkRecord, Sample
from digitlab.synth.strokes import (
    Mark,
    break_strokes,
    faithful,
    jittered,
    raster_mark,
    stroke_mark,
)

REPICKS = 10  # a broken digit is drawn from strokes: draws of another digit while the tracing loses its shape
MAX_LAYOUT_ROW = 640  # layout pixels per digit height: finer ink than this is not visible after the camera


@dataclass(frozen=True)
class DigitSource:
    """MNIST test digits: x uint8 (N, 28, 28) bright on black, y int (N,) labels 0-9."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def of(cls, mnist_test: tuple[np.ndarray, np.ndarray] | None) -> DigitSource:
        """Validate `mnist_test` = (x, y); DigitlabError naming what is wrong."""
        if mnist_test is None:
            raise DigitlabError("this condition draws MNIST test digits: pass mnist_test=(x_test, y_test), "
                                "e.g. from digitlab.data.load('mnist')")
        x, y = (np.asarray(a) for a in mnist_test)
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8 or len(x) == 0:
            raise DigitlabError(f"mnist_test images have shape {x.shape} {x.dtype}; expected uint8 (N, 28, 28), N > 0")
        if y.shape != (len(x),) or not np.isin(y, np.arange(10)).all():
            raise DigitlabError(f"mnist_test labels have shape {y.shape}; expected (N,) = ({len(x)},) of digits 0-9")
        return cls(x, y)


def _pick_digit(src: DigitSource, rng: np.random.Generator) -> tuple[int, int]:
    i = int(rng.integers(len(src.x)))
    return i, int(src.y[i])


def digit_item(src: DigitSource, rng: np.random.Generator, *, how: str, pen: float, threshold: float,
               broken: bool = False) -> tuple[Item, dict]:
    """A random MNIST test digit as an Item drawn `how` ("ink", "strokes" or "mixed"), and what was chosen.

    broken=True redraws it as strokes with a gap (see strokes.break_strokes). A tracing that does not
    redraw its digit (`strokes.faithful`: about 2.6% of MNIST test digits, mostly 6s and 9s whose loop
    the skeleton loses) is not used: the digit is drawn as ink instead, or, when broken, another one is
    drawn (so that no picture's label is wrong).
    """
    i, label = _pick_digit(src, rng)
    if how == "mixed":
        how = "strokes" if rng.random() < 0.55 else "ink"
    if broken:
        how = "strokes"
    mark: Mark
    traced = stroke_mark(src.x[i]) if how == "strokes" else None
    for _ in range(REPICKS if broken else 0):  # a broken digit needs strokes: another digit whose tracing holds
        if traced is not None and faithful(src.x[i], traced):
            break
        i, label = _pick_digit(src, rng)
        traced = stroke_mark(src.x[i])
    if traced is not None and not broken and not faithful(src.x[i], traced):
        how, traced = "ink", None  # the skeleton lost or closed a loop (an 8 as a 9, a 3 as a 0): keep the ink
    if traced is None:
        mark = raster_mark(src.x[i])
    else:
        strokes = jittered(traced, rng)
        mark = break_strokes(strokes, label, rng, pen) if broken else strokes
    return Item(mark, label, str(label), threshold, pen), {"mnist_index": i, "drawn_as": how, "broken": broken}


def font_item(rng: np.random.Generator, families: tuple[str, ...], char: str | None = None) -> tuple[Item, dict]:
    """A printed digit (random unless `char`) in a random font of `families`, and the font's name."""
    paths = fonts.font_paths(families)
    path = paths[int(rng.integers(len(paths)))]
    char = char if char is not None else str(int(rng.integers(10)))
    mark = raster_mark(fonts.glyph(str(path), char), upscale=1, smooth=0.7)
    return Item(mark, int(char) if char.isdigit() else None, char, 0.5, 0.0), {"font": path.stem}


def _photo_sample(lay: Layout, spec: PhotoSpec, rng: np.random.Generator, kind: str, text: str | None,
                  params: dict) -> Sample:
    photo = render_photo(lay, spec, rng)
    cov = (np.clip(lay.coverage, 0, 1) * 255 + 0.5).astype(np.uint8)
    ink = InkRecord(cov, photo.homography, (spec.width, spec.height), tuple(lay.hulls))
    label = int(text) if kind == "digit" and text else None
    info = {"medium": "photo", **params, "layout_row_px": lay.row_px, "photo": asdict(spec)}
    return Sample(photo.image, kind, "", label, text, photo.boxes, info, photo.data, "jpeg", ink)


def _row_px(spec: PhotoSpec) -> float:
    return float(min(MAX_LAYOUT_ROW, max(24.0, spec.fraction * min(spec.width, spec.height))))


def photo_digit(rng: np.random.Generator, src: DigitSource | None, split: str, *, factors: PhotoFactors,
                how: str = "mixed", max_side: int | None = None) -> Sample:
    """A phone photo of one handwritten MNIST test digit on paper (see PhotoFactors)."""
    assert src is not None
    spec = factors.sample(rng, max_side)
    pen, thr = pen_for_ink(spec.ink, rng)
    item, info = digit_item(src, rng, how=how, pen=pen, threshold=thr)
    lay = layout([[item]], rng, RowStyle(slant_deg=3), _row_px(spec))
    return _photo_sample(lay, spec, rng, "digit", item.char, {**info, "pen": pen, "threshold": thr})


def _split_lines(items: list[Item], two_lines: bool, rng: np.random.Generator) -> list[list[Item]]:
    if not two_lines or len(items) < 2:
        return [items]
    cut = int(rng.integers(1, len(items)))
    return [items[:cut], items[cut:]]


def _text(lines: list[list[Item]]) -> str:
    return "\n".join("".join(it.char or "?" for it in line) for line in lines)


def photo_number(rng: np.random.Generator, src: DigitSource | None, split: str, *, factors: PhotoFactors,
                 style: RowStyle = DEFAULT_STYLE, length: tuple[int, int] = (2, 6), two_lines: bool = False,
                 broken: float = 0.0, how: str = "mixed", max_side: int | None = None) -> Sample:
    """A phone photo of a handwritten number of `length` digits (optionally two lines, broken digits)."""
    assert src is not None
    spec = factors.sample(rng, max_side)
    pen, thr = pen_for_ink(spec.ink, rng)
    n = int(rng.integers(length[0], length[1] + 1)) + (1 if two_lines else 0)
    breaks = rng.random(n) < broken
    if broken > 0 and not breaks.any():
        breaks[int(rng.integers(n))] = True
    how_n = how if how != "mixed" else ("strokes" if rng.random() < 0.55 else "ink")  # one writer, one pen
    made = [digit_item(src, rng, how=how_n, pen=pen, threshold=thr, broken=bool(b)) for b in breaks]
    lines = _split_lines([m[0] for m in made], two_lines, rng)
    if spec.paper == "ruled" and len(lines) > 1:  # the second line sits on a later rule
        k = np.ceil(1.25 / spec.line_spacing) * spec.line_spacing
        style = replace(style, line_gap=(float(k), float(k)))
    lay = layout(lines, rng, style, _row_px(spec))
    params = {"digits": [m[1] for m in made], "pen": pen, "threshold": thr, "gap": list(style.gap)}
    return _photo_sample(lay, spec, rng, "number", _text(lines), params)


def printed(rng: np.random.Generator, src: DigitSource | None, split: str, *, factors: PhotoFactors,
            length: tuple[int, int] = (1, 1), families: tuple[str, ...] = tuple(fonts.FAMILIES),
            max_side: int | None = None) -> Sample:
    """Printed digits (one, or a number of `length`) in one random font, photographed per `factors`."""
    spec = factors.sample(rng, max_side)
    n = int(rng.integers(length[0], length[1] + 1))
    first, info = font_item(rng, families)
    items = [first] + [_same_font(info["font"], families, rng) for _ in range(n - 1)]
    g = float(rng.uniform(0.06, 0.22))
    style = RowStyle(gap=(g, g + 0.02), size_jitter=0.0, baseline_jitter=0.0, slant_deg=0.0)
    lay = layout([items], rng, style, _row_px(spec))
    kind = "digit" if n == 1 else "number"
    return _photo_sample(lay, spec, rng, kind, _text([items]), {"drawn_as": "font", **info})


def _same_font(stem: str, families: tuple[str, ...], rng: np.random.Generator) -> Item:
    path = next(p for p in fonts.font_paths(families) if p.stem == stem)
    char = str(int(rng.integers(10)))
    return Item(raster_mark(fonts.glyph(str(path), char), upscale=1, smooth=0.7), int(char), char, 0.5, 0.0)


def _canvas_sample(lines: list[list[Item]], rng: np.random.Generator, kind: str, text: str | None, params: dict,
                   *, size: tuple[int, int], pen_share: tuple[float, float], fill: tuple[float, float],
                   background: str, style: RowStyle = DEFAULT_STYLE) -> Sample:
    pen_px = float(round(rng.uniform(*pen_share) * size[1]))
    fill = (max(fill[0], min(4.5 * pen_px / size[1], 0.8)), max(fill[1], min(4.5 * pen_px / size[1], 0.8) + 0.05))
    dark = ((0, 0, 0), (20, 20, 30), (25, 40, 120), (40, 40, 40))
    ink = (255, 255, 255) if background == "black" else dark[int(rng.integers(len(dark)))]
    drawing = render_canvas(lines, rng, size=size, pen_px=pen_px, fill=fill, background=background, ink_rgb=ink,
                            style=style)
    cov = (drawing.coverage * 255 + 0.5).astype(np.uint8)
    hulls = tuple(np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]], np.float32) for b in drawing.boxes)
    rec = InkRecord(cov, np.eye(3), size, hulls)
    label = int(text) if kind == "digit" and text else None
    info = {"medium": "canvas", "background": background, "size": list(size), "pen_px": pen_px, **params}
    return Sample(drawing.image, kind, "", label, text, drawing.boxes, info, drawing.data, "png", rec)


def canvas_digit(rng: np.random.Generator, src: DigitSource | None, split: str, *,
                 size: tuple[int, int] = (PAGE_SIDE, PAGE_SIDE), pen: tuple[float, float] = (0.08, 0.08),
                 fill: tuple[float, float] = (0.4, 0.85), background: str = "black", broken: float = 0.0,
                 sizes: tuple[int, int] | None = None, max_side: int | None = None) -> Sample:
    """One MNIST test digit drawn with a round pen on a canvas (the web page's by default).

    pen: pen width as a share of the canvas height; fill: digit height share; sizes: random square side.
    """
    assert src is not None
    if sizes is not None:
        side = int(rng.integers(sizes[0], sizes[1] + 1))
        size = (side, side) if rng.random() < 0.6 else (side, int(side * rng.uniform(0.6, 1.0)))
    pen_unit = float(np.mean(pen) / np.mean(fill))  # pen width / digit height, for cutting a gap
    item, info = digit_item(src, rng, how="strokes", pen=pen_unit, threshold=0.5, broken=bool(rng.random() < broken))
    return _canvas_sample([[item]], rng, "digit", item.char, info, size=size, pen_share=pen, fill=fill,
                          background=background, style=RowStyle(slant_deg=3))


def canvas_number(rng: np.random.Generator, src: DigitSource | None, split: str, *, size: tuple[int, int] = (840, 280),
                  pen: tuple[float, float] = (0.08, 0.08), length: tuple[int, int] = (2, 6),
                  background: str = "black", max_side: int | None = None) -> Sample:
    """A number of `length` digits drawn left to right on a wide canvas (the page's number mode)."""
    assert src is not None
    n = int(rng.integers(length[0], length[1] + 1))
    made = [digit_item(src, rng, how="strokes", pen=0.12, threshold=0.5) for _ in range(n)]
    lines = [[m[0] for m in made]]
    return _canvas_sample(lines, rng, "number", _text(lines), {"digits": [m[1] for m in made]}, size=size,
                          pen_share=pen, fill=(0.45, 0.8), background=background)


def nondigit(rng: np.random.Generator, src: DigitSource | None, split: str, *, groups: tuple[str, ...],
             factors: PhotoFactors, media: tuple[float, float, float] = (0.4, 0.4, 0.2),
             max_side: int | None = None) -> Sample:
    """A non-digit of one of `groups` from `split`, on paper (photo), the page's canvas or a transparent one.

    media: probabilities of (photo, black canvas, transparent canvas); printed glyphs always go on paper.
    """
    group = groups[int(rng.integers(len(groups)))]
    nd = make_nondigit(group, split, rng)
    params = {"group": group, "what": nd.what, "printed": nd.printed, "font": nd.font, "split": split}
    medium = "photo" if nd.printed else str(rng.choice(["photo", "black", "transparent"], p=list(media)))
    if medium == "photo":
        spec = factors.sample(rng, max_side)
        pen, thr = pen_for_ink(spec.ink, rng)
        item = Item(nd.mark, None, None, 0.5 if nd.printed else thr, pen)
        lay = layout([[item]], rng, RowStyle(), _row_px(spec))
        return _photo_sample(lay, spec, rng, "nondigit", None, params)
    item = Item(nd.mark, None, None, 0.5, 0.1)
    if medium == "black":
        return _canvas_sample([[item]], rng, "nondigit", None, params, size=(PAGE_SIDE, PAGE_SIDE),
                              pen_share=(0.08, 0.08), fill=(0.35, 0.85), background="black")
    side = int(rng.integers(200, 700))
    return _canvas_sample([[item]], rng, "nondigit", None, params, size=(side, side), pen_share=(0.025, 0.12),
                          fill=(0.35, 0.85), background="transparent")


def with_exif_rotation(sample: Sample, rng: np.random.Generator) -> Sample:
    """`sample` (a photo) stored as a phone does: rotated pixels plus an EXIF Orientation tag (3, 6 or 8).

    `image` stays what a viewer shows (the upright photo, re-decoded); `data` holds the rotated file.
    """
    orientation = int(rng.choice([6, 6, 8, 3]))
    turns = {6: 1, 8: -1, 3: 2}[orientation]  # stored = upright turned counter-clockwise this many times
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(sample.image, turns)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=int(sample.params["photo"]["jpeg_quality"]), exif=exif.tobytes())
    data = buf.getvalue()
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    return replace(sample, image=shown, data=data, params={**sample.params, "exif_orientation": orientation})


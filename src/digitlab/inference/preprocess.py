"""The one image preprocessing: any picture -> a 28x28 uint8 image in a dataset's format.

Used by `digitlab predict`, `digitlab read`, the HTTP API and the web page. Three steps:

1. The picture at a bounded size (`picture`): decoded small (JPEG DCT scaling in `load_image`),
   shrunk by area averaging to at most WORK_SIDE, transparency composited, uint8 grey or RGB.
2. Its ink (`digitlab.inference.ink.find_ink`): the paper's lighting removed (gradients, shadows,
   the desk), ink found by thresholds set by the paper's noise, blue and coloured ink as dark as
   black, notebook lines removed; then the object: ink components grouped, specks and what lies
   on the picture's border left out, the strongest group kept (`ink_objects`).
3. The dataset's own normalisation, by profile:
   - "mnist" follows how MNIST was made (LeCun et al.): the digit, bright ink on black, is fitted
     into a 20x20 box keeping its aspect ratio (anti-aliased), then placed in a 28x28 field so
     its centre of mass is at the centre. Strokes far thinner or thicker than MNIST's (median 2.3 px,
     1st-99th percentile 1.25-4.25) are brought into its range. KMNIST uses the same format.
   - "fashion" follows how Fashion-MNIST was made (Xiao, Rasul, Vollgraf): the product, trimmed,
     has its longer side resized to 28 keeping the aspect ratio and is centred in 28x28 by its
     bounding box. No lighting removal (a product is a large dark area, not a pen stroke).
The dataset registry says which profile a dataset uses (`DatasetSpec.preprocessing`).
An image already in the profile's format (an MNIST test image) passes through nearly unchanged.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digitlab.errors import BlankImageError, DigitlabError, ImageTooLargeError, UnsupportedImageError
from digitlab.inference.ink import InkMap, find_ink, on_border, percentile_u8
from digitlab.layout import BOX, CENTRE, SIDE

SIZE = SIDE  # output side, as MNIST

MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard: ~ a 7000 x 5700 photo; a digit needs far less
MAX_FILE_BYTES = 64 * 1024 * 1024  # files are read whole; no digit picture needs more
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")  # Pillow decoders load_image uses
WORK_SIDE = 1024  # pictures are cleaned at this long side at most, shrunk by a whole factor (so 513-1024)
DECODE_SIDE = 768  # JPEGs are decoded by DCT scaling (1/2, 1/4, 1/8) down to this long side at least
ORIENTATION = 0x0112  # the EXIF tag of the camera's rotation
STRIP_PIXELS = 4_000_000  # a large picture is reduced in strips of about this many pixels
FULL_SIZE = "digitlab.full_size"  # Image.info key: the (width, height) a reduced decode stands for
MIN_CONTRAST = 10.0  # fashion: ink must stand out from the paper by this much (0-255), else "blank"
CORE_TRIM = 0.01  # fashion: mass fraction trimmed from each side to find the object's core
MAX_NOISE_FRACTION = 0.25  # fashion: paper noise above this share of the contrast is an object at the border
SPECK_SHARE = 0.02  # ink components smaller than this share of the largest are specks
MIN_PIXELS = 3  # ... and so are components of fewer pixels
GROUP_REACH = (0.12, 0.3)  # components within this share of the largest one's size are one object (a 5's bar)
PART_SHARE = 0.08  # ...and substantial ones (this share of its area) within the larger reach
OBJECT_SHARE = 0.2  # groups with this share of the chosen one's (border-weighted) ink count as other objects
BORDER_PENALTY = 0.3  # an object touching the picture's border (desk, page edge) counts this much...
DENSE_BORDER_PENALTY = 0.05  # ...and a dense one (a strip of desk or shadow) this much
MNIST_STROKE = (1.25, 4.25)  # MNIST's stroke widths (2 x area / perimeter at 28 px): 1st-99th percentile
STROKE_TARGET = (1.8, 3.2)  # strokes outside MNIST_STROKE are brought to this range
FAINT_REACH = 2  # flat pictures: faint ink up to this many pixels from the object's pixels is its anti-aliased edge
FINE = 4  # stroke widths are adjusted on the digit at FINE times the output's resolution

ImageSource = str | os.PathLike[str] | bytes | BinaryIO  # what load_image opens
ImageInput = ImageSource | Image.Image | np.ndarray  # what Predictor.predict_image takes
Box = tuple[int, int, int, int]  # [x0, y0, x1, y1], x1 / y1 exclusive


@dataclass(frozen=True)
class _Profile:
    """How the cropped object is sized and placed in the 28x28 output."""

    box: int  # the object's longer side after resizing, in pixels
    centring: Literal["mass", "box"]  # centre of mass at (CENTRE, CENTRE), or bounding box centred


# Keys match `digitlab.data.registry.Preprocessing` (the registry names each dataset's profile).
PROFILES: dict[str, _Profile] = {
    "mnist": _Profile(box=BOX, centring="mass"),  # MNIST, KMNIST
    "fashion": _Profile(box=SIZE, centring="box"),  # Fashion-MNIST: the object fills the frame
}


@dataclass(frozen=True)
class Picture:
    """A picture at working size: `pixels` uint8 grey (h, w) or RGB (h, w, 3); `size` = the input's (width, height)."""

    pixels: np.ndarray
    size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) input pixels per working pixel."""
        h, w = self.pixels.shape[:2]
        return self.size[0] / w, self.size[1] / h

    def to_input(self, box: Box) -> Box:
        """A working-pixel box [x0, y0, x1, y1) in input pixels (rounded outwards, clipped to the input)."""
        sx, sy = self.scale
        x0, y0, x1, y1 = box
        return (max(0, int(np.floor(x0 * sx))), max(0, int(np.floor(y0 * sy))),
                min(self.size[0], int(np.ceil(x1 * sx))), min(self.size[1], int(np.ceil(y1 * sy))))


@dataclass(frozen=True)
class Preprocessed:
    """One picture preprocessed: the 28x28 the model sees, and cheap facts about the ink found.

    image: uint8 (28, 28), bright ink on black (all zeros when blank).
    blank: no ink stands out from the background (then box is None and the counts are 0).
    box: the object's [x0, y0, x1, y1) in the input's pixels.
    components: significant connected ink components in the whole picture (specks left out).
    objects: separate things written or drawn: groups of components with at least OBJECT_SHARE of
        the chosen one's ink (so dust, specks and remnants of lines do not count); 1 for one digit,
        more for a number or several marks (`image` is the strongest).
    coverage: share of the picture's pixels that are ink (after cleaning).
    density: share of the object's box that is ink.
    stroke: the object's stroke width in output pixels (2 x area / perimeter), before normalising it.
    flat: the background was flat (a drawing or a scan): no lighting was removed.
    lines: notebook line segments removed.
    """

    image: np.ndarray
    blank: bool
    box: Box | None = None
    components: int = 0
    objects: int = 0
    coverage: float = 0.0
    density: float = 0.0
    stroke: float = 0.0
    flat: bool = True
    lines: int = 0


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    min_side: int | None = DECODE_SIDE,
) -> Image.Image:
    """Open and fully decode an image file (path, bytes or binary file object), EXIF-rotated.

    A JPEG larger than `min_side` (long side) is decoded at a reduced size by DCT scaling (1/2,
    1/4 or 1/8, keeping at least `min_side`), which is several times faster and smaller; its
    full (width, height) is then in `image.info["digitlab.full_size"]` (None: decode in full).
    Raises DigitlabError naming the file when it is missing, empty, unreadable, not an image,
    damaged, bigger than MAX_FILE_BYTES, or larger than `max_pixels` (checked from the header,
    before decoding, so a decompression bomb costs nothing); UnsupportedImageError (undecoded) for
    formats outside ALLOWED_FORMATS. Multi-frame images (GIF, TIFF) give their first frame.
    """
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "uploaded image")
    data = _read_bytes(source, label)
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make every bomb an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = _open(data, label)
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{label}: image is {width}x{height} = {width * height} pixels, more than the "
                f"{max_pixels} allowed (decompression-bomb guard); shrink or crop it"
            )
        if width == 0 or height == 0:
            raise DigitlabError(f"{label}: image has no pixels ({width}x{height})")
        try:
            if min_side and img.format in ("JPEG", "MPO") and max(width, height) >= 2 * min_side:
                step = max(s for s in (1, 2, 4, 8) if max(width, height) // s >= min_side)
                img.draft(img.mode, (width // step, height // step))
            img.load()
            decoded = img.size
            if img.getexif().get(ORIENTATION, 1) != 1:
                img = ImageOps.exif_transpose(img)  # phone photos: apply the camera's rotation (else a copy)
        except Image.DecompressionBombWarning as exc:
            raise ImageTooLargeError(f"{label}: image is too large to be a digit ({exc}); crop or shrink it") from exc
        except Exception as exc:  # noqa: BLE001 - a damaged file makes Pillow raise many types; all mean "corrupt"
            raise DigitlabError(
                f"{label}: image data is corrupt or truncated ({exc}); re-save or re-export it") from exc
    if decoded != (width, height):
        img.info[FULL_SIZE] = (width, height) if img.size == decoded else (height, width)
    return img


def _open(data: bytes, label: str) -> Image.Image:
    """The image in `data`, opened (header only) by one of ALLOWED_FORMATS' decoders; DigitlabError otherwise.

    A file in another format Pillow knows (EPS, TGA, ICO, PCX, ...) is an UnsupportedImageError,
    refused before any of it is decoded (EPS would run Ghostscript).
    """
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        pass
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{label}: image is too large to be a digit ({exc}); crop or shrink it") from exc
    except Exception as exc:  # noqa: BLE001 - a damaged header makes Pillow raise OSError, ValueError, ...
        raise DigitlabError(f"{label}: cannot be opened as an image ({exc}); re-save or re-export it") from exc
    accepted = ", ".join(f if f != "WEBP" else "WebP" for f in ALLOWED_FORMATS)
    try:
        other = Image.open(io.BytesIO(data)).format  # identification only: headers, nothing decoded
    except Exception:  # noqa: BLE001 - not an image at all
        other = None
    if other:
        raise UnsupportedImageError(f"{label}: {other} images are not accepted; give a {accepted} file")
    raise DigitlabError(f"{label}: not an image Pillow can read; give a {accepted} file")


def _read_bytes(source: ImageSource, label: str) -> bytes:
    """The whole file of `source` (path, bytes or binary file object), size-checked."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise DigitlabError(f"{label}: no such file; check the path")
        if path.is_dir():
            raise DigitlabError(f"{label}: is a folder, not an image file")
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ImageTooLargeError(
                    f"{label}: file is {size / 2**20:.0f} MiB, more than the {MAX_FILE_BYTES // 2**20} MiB "
                    "allowed for an image of a digit; shrink or crop it"
                )
            data = path.read_bytes()
        except OSError as exc:
            raise DigitlabError(f"{label}: cannot be read ({exc.strerror or exc}); check its permissions") from exc
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = source.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ImageTooLargeError(f"{label}: file is more than the {MAX_FILE_BYTES // 2**20} MiB allowed "
                                     "for an image of a digit; shrink or crop it")
    if not data:
        raise DigitlabError(f"{label}: the file is empty (0 bytes); give a PNG or JPEG image of a digit")
    return data


# -- the picture at working size -----------------------------------------------------------------

def picture(image: Image.Image | np.ndarray, *, name: str = "image", side: int = WORK_SIDE) -> Picture:
    """`image` (PIL image of any mode, or array (H, W), (H, W, 1|2|3|4), (1, H, W) of any dtype) at working size.

    Transparency is composited over white (over black when that leaves nothing to see: light
    strokes on a transparent canvas); the long side is shrunk to at most `side` by the smallest
    whole factor (box average, premultiplied by alpha; fast and exact). Raises DigitlabError for
    arrays of other shapes or dtypes.
    """
    if isinstance(image, Image.Image):
        size = tuple(image.info.get(FULL_SIZE) or image.size)
        arr = _from_pil(image, side)
    else:
        arr = _uint8_array(np.asarray(image), name)
        size = (arr.shape[1], arr.shape[0])
        if arr.ndim == 3 and arr.shape[2] in (2, 4):
            arr = _from_pil(Image.fromarray(arr, "LA" if arr.shape[2] == 2 else "RGBA"), side)
    if arr.size == 0:
        raise DigitlabError(f"{name}: image has no pixels")
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr = _composite(arr)
    return Picture(np.ascontiguousarray(_shrunk(arr, side)), (int(size[0]), int(size[1])))


_PIL_MODES = {"1": "L", "P": "RGB", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}  # to the four modes used here


def _from_pil(img: Image.Image, side: int) -> np.ndarray:
    """uint8 array (h, w[, 2|3|4]) of a PIL image, reduced (premultiplied) to less than twice `side`."""
    if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit integer and float greyscale
        return _uint8_array(np.asarray(img), "image")
    mode = _PIL_MODES.get(img.mode, img.mode if img.mode in ("L", "LA", "RGB", "RGBA") else "RGB")
    if img.mode == "P" and "transparency" in img.info:
        mode = "RGBA"
    if mode != img.mode:
        img = img.convert(mode)
    factor = -(-max(img.size) // side)
    if factor < 2:
        return np.asarray(img)
    # Box average by a whole factor (fast; Pillow premultiplies RGBA / LA), in strips of rows so a
    # huge picture never has a second full-size copy (its RGBa conversion) in memory.
    rows = factor * max(1, STRIP_PIXELS // (img.width * factor))
    strips = [np.asarray(img.crop((0, top, img.width, min(top + rows, img.height))).reduce(factor))
              for top in range(0, img.height - factor + 1, rows)]
    return np.concatenate(strips, axis=0)


def _uint8_array(arr: np.ndarray, name: str) -> np.ndarray:
    """uint8 (H, W) or (H, W, 2|3|4) from an array of any dtype (0-1 floats, 16-bit values are scaled)."""
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (2, 3, 4)):
        raise DigitlabError(
            f"{name}: image array has shape {arr.shape}; expected (H, W) greyscale or (H, W, 3|4) RGB(A)")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype == np.uint16:
        return cv2.convertScaleAbs(arr, alpha=1 / 257)
    if np.issubdtype(arr.dtype, np.floating):
        x = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        scale = 255.0 if x.size and float(x.max()) <= 1.0 else 1.0
    elif np.issubdtype(arr.dtype, np.integer):
        x = arr.astype(np.float32)
        scale = 1 / 257 if x.size and float(x.max()) > 255 else 1.0  # 16-bit values in a wider integer type
    else:
        raise DigitlabError(f"{name}: image array has dtype {arr.dtype}; expected an integer, float or bool array")
    return np.clip(np.rint(x * np.float32(scale)), 0, 255).astype(np.uint8)


def _composite(arr: np.ndarray) -> np.ndarray:
    """Grey or RGB uint8 of an LA / RGBA array over white paper; over black if that leaves nothing to see."""
    colour = arr[..., :-1].astype(np.float32)
    alpha = arr[..., -1:].astype(np.float32) / 255.0
    over_white = colour * alpha + 255.0 * (1.0 - alpha)
    if np.ptp(over_white) < MIN_CONTRAST and np.ptp(alpha) > 0:
        over_white = colour * alpha  # light strokes on a transparent canvas
    out = np.clip(np.rint(over_white), 0, 255).astype(np.uint8)
    return out[..., 0] if out.shape[2] == 1 else out


def _shrunk(image: np.ndarray, side: int) -> np.ndarray:
    """`image` shrunk by the smallest whole factor that brings its long side to at most `side` (box average)."""
    h, w = image.shape[:2]
    factor = -(-max(h, w) // side)
    if factor <= 1:
        return image
    return cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)


# -- objects: the ink grouped into things ---------------------------------------------------------

@dataclass(frozen=True)
class InkObject:
    """A group of ink components (one digit, or a digit and its detached bar), in working pixels."""

    labels: tuple[int, ...]  # component labels in the `ObjectMap.labels` image
    box: Box
    mass: float  # summed darkness
    area: int  # ink pixels
    touches_border: bool

    @property
    def density(self) -> float:
        x0, y0, x1, y1 = self.box
        return self.area / max(1, (x1 - x0) * (y1 - y0))


@dataclass(frozen=True)
class ObjectMap:
    """An InkMap's significant components and their groups, largest-mass group first."""

    labels: np.ndarray  # int32 (h, w): component label per pixel (0 = none; specks are 0)
    stats: np.ndarray  # int32 (n, 5): OpenCV's x, y, width, height, area per label
    components: int
    objects: list[InkObject]
    faint: np.ndarray | None = None  # int32 (h, w): components of all ink above 0 (flat pictures only)


def ink_objects(ink: InkMap, reach: tuple[float, float] = GROUP_REACH) -> ObjectMap:
    """The significant ink components of `ink` grouped by proximity into objects, best first.

    Specks (fewer than MIN_PIXELS, or under SPECK_SHARE of the largest component) and components
    along the picture's border (`ink.on_border`: the desk, a page edge; unless that is all there
    is: a tight crop, an object filling the frame) are dropped.
    Components whose boxes are closer than `reach[0]` x the largest component's size join one
    object; two substantial ones (each at least PART_SHARE of the largest's area: the parts of a
    broken digit, a 4 in two strokes) join up to `reach[1]` x that size apart. Objects are
    ordered by ink mass, those touching the picture's border (a desk, a page edge) counting less.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.mask, connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    if n <= 1:
        return ObjectMap(labels, stats, 0, [])
    junk = on_border(labels, stats)
    if not junk[1:].all():  # everything along the border: a tight crop, or an object filling the frame
        areas[junk] = 0
    keep = areas >= max(MIN_PIXELS, SPECK_SHARE * areas.max())
    keep[0] = False
    lut = np.where(keep, np.arange(n), 0).astype(np.int32)
    labels = lut[labels]
    kept = np.flatnonzero(keep)
    big = int(np.argmax(areas))
    size = max(stats[big, cv2.CC_STAT_WIDTH], stats[big, cv2.CC_STAT_HEIGHT])
    part = areas[kept] >= PART_SHARE * areas[big]
    h, w = labels.shape
    x, y, bw, bh = (stats[kept, i] for i in range(4))
    edge = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)  # on the border: joins only what it overlaps
    groups = _group_boxes(stats[kept, :4], reach[0] * size, reach[1] * size, part, edge)
    objects = []
    for members in groups:
        labs = tuple(int(kept[i]) for i in members)
        mass = sum(_mass(ink.darkness, labels, stats[lab], lab) for lab in labs)
        objects.append(_object(labs, stats, mass, (h, w)))
    objects.sort(key=lambda o: -_score(o))
    return ObjectMap(labels, stats, int(keep.sum()), objects, faint_components(ink))


def faint_components(ink: InkMap) -> np.ndarray | None:
    """int32 (h, w): components of all ink above the paper's noise (a flat picture's faint edges); None for photos."""
    if not ink.flat:
        return None
    return cv2.connectedComponents((ink.darkness > _floor(ink)).astype(np.uint8), connectivity=8)[1]


def _mass(darkness: np.ndarray, labels: np.ndarray, stat: np.ndarray, lab: int) -> float:
    x, y, w, h = (int(v) for v in stat[:4])
    return float(darkness[y : y + h, x : x + w][labels[y : y + h, x : x + w] == lab].sum(dtype=np.int64))


def _group_boxes(boxes: np.ndarray, reach: float, far: float, part: np.ndarray, edge: np.ndarray) -> list[list[int]]:
    """Indices of `boxes` (k, 4: x, y, w, h) grouped (transitively): boxes whose gap is at most `reach`
    pixels join, and two boxes both marked `part` (bool (k,)) up to `far` pixels apart; a box
    marked `edge` (on the picture's border: desk texture, a page's rim) only joins boxes it overlaps."""
    x0, y0 = boxes[:, 0].astype(np.float64), boxes[:, 1].astype(np.float64)
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    gx = np.maximum(0, np.maximum(x0[:, None] - x1[None], x0[None] - x1[:, None]))
    gy = np.maximum(0, np.maximum(y0[:, None] - y1[None], y0[None] - y1[:, None]))
    gap = np.hypot(gx, gy)
    near = (gap <= reach) | ((gap <= far) & part[:, None] & part[None])
    near &= (gap == 0) | ~(edge[:, None] | edge[None])
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(near, 1))):
        parent[root(int(i))] = root(int(j))
    out: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        out.setdefault(root(i), []).append(i)
    return list(out.values())


def _object(labs: tuple[int, ...], stats: np.ndarray, mass: float, shape: tuple[int, int]) -> InkObject:
    s = stats[list(labs)]
    x0, y0 = int(s[:, 0].min()), int(s[:, 1].min())
    x1, y1 = int((s[:, 0] + s[:, 2]).max()), int((s[:, 1] + s[:, 3]).max())
    h, w = shape
    border = x0 == 0 or y0 == 0 or x1 == w or y1 == h
    return InkObject(labs, (x0, y0, x1, y1), mass, int(s[:, 4].sum()), bool(border))


def _score(obj: InkObject) -> float:
    if not obj.touches_border:
        return obj.mass
    return obj.mass * (DENSE_BORDER_PENALTY if obj.density > 0.4 else BORDER_PENALTY)


# -- the 28x28 ------------------------------------------------------------------------------------

def object_ink(ink: InkMap, objects: ObjectMap, obj: InkObject) -> tuple[np.ndarray, Box]:
    """(float32 (h, w) in [0, 1]: the object's ink and nothing else, its box [x0, y0, x1, y1) in working pixels)."""
    x0, y0, x1, y1 = obj.box
    own = np.isin(objects.labels[y0:y1, x0:x1], obj.labels)
    return piece_ink(ink, own, obj.box, objects.faint)


def piece_ink(ink: InkMap, own: np.ndarray, box: Box, faint: np.ndarray | None) -> tuple[np.ndarray, Box]:
    """(float32 (h, w) in [0, 1]: the ink of the pixels `own` (bool, the shape of `box`), its box in working pixels).

    The pixels with the faint anti-aliased edge around them: in a photo, grown by a pixel; in a
    flat picture (`faint`: the components of all ink above the noise), the ink touching them up
    to FAINT_REACH pixels away, as drawn. Darkness is scaled so the stroke's core is 1 (a photo:
    its 90th percentile; a drawing: its peak, so grey levels are kept).
    """
    h, w = ink.mask.shape
    x0, y0, x1, y1 = box
    pad = FAINT_REACH if faint is not None else 1
    X0, Y0, X1, Y1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    mine = np.zeros((Y1 - Y0, X1 - X0), bool)
    mine[y0 - Y0 : y1 - Y0, x0 - X0 : x1 - X0] = own
    dark = ink.darkness[Y0:Y1, X0:X1]
    if faint is not None:
        near = cv2.dilate(mine.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pad + 1,) * 2)) > 0
        comp = faint[Y0:Y1, X0:X1]
        hit = np.zeros(int(comp.max()) + 1, bool)
        hit[comp[mine]] = True
        hit[0] = False
        support = hit[comp] & near
        values = np.where(support, dark.astype(np.float32) - _floor(ink), 0)
        values /= max(float(values.max()), 1.0)
    else:
        support = cv2.dilate(mine.view(np.uint8), np.ones((3, 3), np.uint8)) > 0
        floor = _floor(ink)
        core = percentile_u8(np.ascontiguousarray(dark), 90, mine.view(np.uint8))
        values = np.clip((dark.astype(np.float32) - floor) / max(core - floor, 1.0), 0.0, 1.0) * support
    rows, cols = np.flatnonzero(values.max(axis=1) > 0), np.flatnonzero(values.max(axis=0) > 0)
    if rows.size == 0:
        return values[:0, :0], (x0, y0, x0, y0)
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return values[r0:r1, c0:c1], (X0 + c0, Y0 + r0, X0 + c1, Y0 + r1)


def _floor(ink: InkMap) -> float:
    """Darkness at or below this is the paper's noise (3 sigma)."""
    return 3.0 * ink.noise


def stroke_width(ink: np.ndarray) -> float:
    """Stroke width in pixels of float ink (h, w) in [0, 1]: 2 x area / perimeter of the pixels above 0.5."""
    binary = (ink > 0.5).astype(np.uint8)
    area = int(binary.sum())
    if area == 0:
        return 0.0
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * area / max(perimeter, 1.0)


def to_mnist(ink: np.ndarray, *, box: int = BOX, adjust: bool = True) -> tuple[np.ndarray, float]:
    """(uint8 (28, 28), stroke width): float ink (h, w) in [0, 1] fitted to `box` and centred by mass, as MNIST.

    The longer side becomes `box` pixels keeping the aspect ratio (area averaging when shrinking:
    anti-aliased), and the centre of mass lands at (CENTRE, CENTRE) by an integer shift. When
    `adjust`, strokes outside MNIST_STROKE (measured at the output's scale) are thinned or
    thickened into STROKE_TARGET first, at FINE times the output's resolution.
    """
    h, w = ink.shape
    scale = box / max(h, w)
    width = stroke_width(ink) * scale
    if adjust and width > 0 and not MNIST_STROKE[0] <= width <= MNIST_STROKE[1]:
        ink = _restroke(ink, scale, width)
    return _place(_fit(ink, box)), width


def to_profile(ink: np.ndarray, profile: str = "mnist") -> np.ndarray:
    """uint8 (28, 28) of float ink (h, w) in [0, 1], normalised as `profile`'s dataset (see the module docstring)."""
    spec = _profile(profile, "image")
    if spec.centring == "mass":
        return to_mnist(ink, box=spec.box)[0]
    digit = _fit(ink, spec.box)
    h, w = digit.shape
    out = np.zeros((SIZE, SIZE), np.float32)
    top, left = (SIZE - h + 1) // 2, (SIZE - w + 1) // 2
    out[top : top + h, left : left + w] = digit
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _fit(ink: np.ndarray, box: int) -> np.ndarray:
    h, w = ink.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return ink
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(ink, size, interpolation=method), 0.0, 1.0)


def _restroke(ink: np.ndarray, scale: float, width: float) -> np.ndarray:
    """`ink` redrawn at FINE x the output scale with its strokes eroded or dilated into STROKE_TARGET, re-cropped."""
    fine = _fit(ink, round(max(ink.shape) * scale * FINE))
    target = min(max(width, STROKE_TARGET[0]), STROKE_TARGET[1])
    r = int(round(abs(target - width) * FINE / 2))
    if r == 0:
        return ink
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    fine = np.pad(fine, r)  # room for thickened strokes
    fine = cv2.erode(fine, kernel) if width > target else cv2.dilate(fine, kernel)
    rows, cols = np.flatnonzero(fine.max(axis=1) > 0.02), np.flatnonzero(fine.max(axis=0) > 0.02)
    if rows.size == 0:
        return ink
    return fine[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _place(digit: np.ndarray) -> np.ndarray:
    """uint8 (28, 28) with `digit` (float, at most 28 x 28, in [0, 1]) pasted so its centre of mass is at the centre."""
    h, w = digit.shape
    mass = float(digit.sum())
    cy = float((digit.sum(axis=1) * np.arange(h)).sum() / mass) if mass else (h - 1) / 2
    cx = float((digit.sum(axis=0) * np.arange(w)).sum() / mass) if mass else (w - 1) / 2
    top = min(max(round(CENTRE - cy), 0), SIZE - h)  # integer shift (no resampling blur), kept inside
    left = min(max(round(CENTRE - cx), 0), SIZE - w)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + h, left : left + w] = digit
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


# -- the entry points -----------------------------------------------------------------------------

def _profile(profile: str, name: str) -> _Profile:
    spec = PROFILES.get(profile)
    if spec is None:
        raise DigitlabError(f"{name}: preprocessing profile {profile!r} is unknown; use one of {', '.join(PROFILES)}")
    return spec


def preprocess(image: Image.Image | np.ndarray, *, name: str = "image", profile: str = "mnist") -> Preprocessed:
    """A picture -> `Preprocessed`: the uint8 (28, 28) of `profile`'s dataset and facts about its ink.

    Unlike `preprocess_image`, a blank picture is not an error: it gives `blank=True` and an
    all-zero image. Raises DigitlabError for an unknown profile or an unusable array.
    """
    spec = _profile(profile, name)
    pic = picture(image, name=name)
    if spec.centring == "box":
        return _fashion(pic, spec)
    ink = find_ink(pic.pixels)
    objects = ink_objects(ink)
    if not objects.objects:
        return Preprocessed(np.zeros((SIZE, SIZE), np.uint8), True, flat=ink.flat, lines=ink.lines)
    best = objects.objects[0]
    crop, box = object_ink(ink, objects, best)
    out, width = to_mnist(crop, box=spec.box)
    return Preprocessed(
        image=out, blank=False, box=pic.to_input(box), components=objects.components,
        objects=sum(_score(o) >= OBJECT_SHARE * _score(best) for o in objects.objects),
        coverage=float(np.count_nonzero(objects.labels)) / objects.labels.size,
        density=best.density, stroke=width, flat=ink.flat, lines=ink.lines,
    )


def preprocess_image(
    image: Image.Image | np.ndarray, *, name: str = "image", profile: str = "mnist"
) -> np.ndarray:
    """A picture -> uint8 (28, 28), bright ink on black, in the format of `profile`'s dataset (see `preprocess`).

    Any polarity, lighting, ink colour, ruled or squared paper; PIL images of any mode or arrays
    (H, W), (H, W, 3|4) of any dtype. `name` is used in error messages. Raises BlankImageError
    (a DigitlabError) when no ink stands out, DigitlabError for an unknown profile.
    """
    result = preprocess(image, name=name, profile=profile)
    if result.blank:
        raise BlankImageError(
            f"{name}: image is blank (no ink stands out from the background); give a picture of a digit"
        )
    return result.image


# -- Fashion-MNIST: the object trimmed and fitted, no lighting removal ----------------------------

def _fashion(pic: Picture, spec: _Profile) -> Preprocessed:
    """The "fashion" profile: border paper removed, the object connected to its core, longer side 28, box-centred."""
    grey = pic.pixels if pic.pixels.ndim == 2 else cv2.cvtColor(pic.pixels, cv2.COLOR_RGB2GRAY)
    ink = _fashion_ink(grey.astype(np.float32))
    if not ink.any():
        return Preprocessed(np.zeros((SIZE, SIZE), np.uint8), True)
    mask = _core_connected(ink)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    obj = np.where(mask, ink, 0.0)[y0:y1, x0:x1]
    h, w = obj.shape
    scale = spec.box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        resized = Image.fromarray(obj, "F").resize(size, Image.Resampling.LANCZOS)
        obj = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)  # Lanczos rings below 0
    h, w = obj.shape
    top, left = (SIZE - h + 1) // 2, (SIZE - w + 1) // 2  # an odd margin: the spare pixel above / left
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + h, left : left + w] = obj
    n = cv2.connectedComponents(mask.astype(np.uint8))[0] - 1
    return Preprocessed(np.rint(out).astype(np.uint8), False, pic.to_input((x0, y0, x1, y1)), n, 1,
                        float(mask.mean()), float(mask[y0:y1, x0:x1].mean()), 0.0, True, 0)


def _fashion_ink(x: np.ndarray) -> np.ndarray:
    """Bright-on-black float32 ink: paper (the border's median) and its noise removed, peak at 255; zeros if none."""
    border = np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])
    paper = float(np.median(border))
    if paper - x.min() > x.max() - paper:
        x, border, paper = 255.0 - x, 255.0 - border, 255.0 - paper  # dark ink on light paper
    deviation = border - paper
    positive = deviation[deviation > 0]
    noise = 0.0
    if positive.size >= 0.25 * deviation.size:  # widespread: paper noise, not a stroke touching the edge
        noise = 3.0 * float(np.median(positive)) / 0.6745
        if noise > MAX_NOISE_FRACTION * (float(x.max()) - paper):
            noise = 0.0  # an object touching much of the border (fills the frame), not noise
    ink = np.clip(x - paper - noise, 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        return np.zeros_like(ink)
    return ink * (255.0 / peak)


def _trimmed_span(profile: np.ndarray, frac: float) -> tuple[int, int]:
    """[lo, hi) of a mass profile after dropping up to `frac` of the mass from each end."""
    c = np.cumsum(profile) / profile.sum()
    lo = int(np.searchsorted(c, frac, side="right"))
    hi = int(np.searchsorted(c, 1.0 - frac, side="left")) + 1
    return min(lo, hi - 1), hi


def _core_connected(ink: np.ndarray) -> np.ndarray:
    """bool mask: the ink components (8-neighbour) that reach the core (CORE_TRIM of the mass trimmed off each side)."""
    r0, r1 = _trimmed_span(ink.sum(axis=1), CORE_TRIM)
    c0, c1 = _trimmed_span(ink.sum(axis=0), CORE_TRIM)
    n, comp = cv2.connectedComponents((ink > 0).astype(np.uint8), connectivity=8)
    hit = np.zeros(n, bool)
    hit[comp[r0:r1, c0:c1][ink[r0:r1, c0:c1] > 0]] = True
    hit[0] = False
    return hit[comp]

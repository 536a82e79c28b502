"""Objects: ink components grouped into things (a digit and its detached bar); specks and border ink left out."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitlab.vision.ink import CORE_PERCENTILE, NOISE_SIGMAS, InkMap, linked_groups, on_border, percentile_u8
from digitlab.vision.picture import Box

SPECK_SHARE = 0.02  # ink components smaller than this share of the largest are specks
MIN_PIXELS = 3  # ... and so are components of fewer pixels
GROUP_REACH = (0.12, 0.3)  # components within this share of the largest one's size are one object (a 5's bar)
PART_SHARE = 0.08  # ...and substantial ones (this share of its area) within the larger reach
OBJECT_SHARE = 0.2  # groups with this share of the chosen one's (border-weighted) ink count as other objects
BORDER_PENALTY = 0.3  # an object touching the picture's border (desk, page edge) counts this much...
DENSE_BORDER_PENALTY = 0.05  # ...and a dense one (a strip of desk or shadow) this much
DENSE_SHARE = 0.4  # an object whose ink fills this share of its box is dense: a strip of desk or shadow, not a stroke
FAINT_REACH = 2  # flat pictures: faint ink up to this many pixels from the object's pixels is its anti-aliased edge


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
    marked `edge` (on the picture's border: desk texture, a page's rim) only joins boxes it overlaps.
    Each group ascending, groups in the order of their first box."""
    x0, y0 = boxes[:, 0].astype(np.float64), boxes[:, 1].astype(np.float64)
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    gx = np.maximum(0, np.maximum(x0[:, None] - x1[None], x0[None] - x1[:, None]))
    gy = np.maximum(0, np.maximum(y0[:, None] - y1[None], y0[None] - y1[:, None]))
    gap = np.hypot(gx, gy)
    near = (gap <= reach) | ((gap <= far) & part[:, None] & part[None])
    near &= (gap == 0) | ~(edge[:, None] | edge[None])
    return linked_groups(near)


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
    return obj.mass * (DENSE_BORDER_PENALTY if obj.density > DENSE_SHARE else BORDER_PENALTY)


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
    its CORE_PERCENTILE; a drawing: its peak, so grey levels are kept).
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
        core = percentile_u8(np.ascontiguousarray(dark), CORE_PERCENTILE, mine.view(np.uint8))
        values = np.clip((dark.astype(np.float32) - floor) / max(core - floor, 1.0), 0.0, 1.0) * support
    rows, cols = np.flatnonzero(values.max(axis=1) > 0), np.flatnonzero(values.max(axis=0) > 0)
    if rows.size == 0:
        return values[:0, :0], (x0, y0, x0, y0)
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return values[r0:r1, c0:c1], (X0 + c0, Y0 + r0, X0 + c1, Y0 + r1)


def _floor(ink: InkMap) -> float:
    """Darkness at or below this is the paper's noise (NOISE_SIGMAS sigma)."""
    return NOISE_SIGMAS * ink.noise


def count_objects(objects: ObjectMap, best: InkObject) -> int:
    """Separate things in the picture: groups with at least OBJECT_SHARE of `best`'s (border-weighted) ink."""
    return sum(_score(o) >= OBJECT_SHARE * _score(best) for o in objects.objects)

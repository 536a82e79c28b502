"""Phone photos of writing on paper: paper, lines, lighting, shadows, ink, camera, JPEG.

`PhotoFactors` is a distribution over scenes (ranges and choices); `PhotoFactors.sample(rng)`
draws one `PhotoSpec` (every factor fixed); `render_photo(layout, spec, rng)` renders the ink of
a `Layout` (written on the page) as a phone would photograph it and returns the decoded JPEG
with each item's box. Everything is computed in output pixels with whole-array NumPy/OpenCV
operations; the slowly varying fields (lighting, soft shadows, paper cloudiness, desk) at a
reduced size and resized, so a 4032x3024 photo takes about a second.

Geometry: the page's coordinates are the layout's pixels. One homography H (layout px -> image
px: scale, rotation, perspective tilt, shift) maps the ink, the ruled/squared lines, the page
edge and the boxes, so they stay consistent.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TypeVar

import cv2
import numpy as np

from digitlab.synth.compose import Layout

TINTS: dict[str, tuple[float, float, float]] = {  # paper colour under neutral light, 0-255 RGB
    "white": (247, 247, 244), "cream": (245, 237, 212), "grey": (214, 214, 210), "recycled": (228, 220, 200),
}
INKS = ("black", "blue", "pencil", "marker")
PAPERS = ("plain", "ruled", "squared")
LIGHTS = ("flat", "linear", "radial", "vignette")
SHADOWS = ("none", "soft", "hard")
BLURS = ("none", "defocus", "motion")
DESKS: dict[str, tuple[float, float, float]] = {
    "wood": (135, 92, 58), "dark": (48, 47, 46), "grey": (120, 124, 130), "white": (212, 212, 206),
    "green": (52, 88, 68),
}
_MARKER_RGB = ((18, 18, 22), (25, 45, 150), (185, 30, 35), (25, 105, 55))
_BLUE_RGB = ((28, 48, 150), (35, 65, 175), (22, 32, 115))


@dataclass(frozen=True)
class PhotoSpec:
    """Every factor of one photo. Pixel amounts are for a 1000-px long side and scale with the image."""

    width: int
    height: int
    fraction: float  # nominal digit height / shorter image side
    offset: tuple[float, float]  # where the ink sits in the free space, -1..1 each (0 = centred)
    paper: str  # "plain", "ruled" or "squared"
    line_spacing: float  # ruled/squared line pitch in digit heights
    line_rgb: tuple[int, int, int]
    margin: bool  # ruled: a red margin line left of the writing
    tint: str  # a key of TINTS
    texture: float  # paper grain and cloudiness, 0-1
    light: str  # "flat", "linear", "radial" or "vignette"
    light_strength: float  # darkest / brightest = 1 - light_strength
    light_angle: float  # degrees: gradient direction, or where the radial spot is
    exposure: float  # overall brightness multiplier
    white_balance: tuple[float, float, float]  # per-channel gains
    shadow: str  # "none", "soft" or "hard"
    shadow_strength: float  # light removed inside the shadow
    ink: str  # "black", "blue", "pencil" or "marker"
    ink_rgb: tuple[int, int, int]
    ink_opacity: float
    rotation: float  # degrees
    tilt: tuple[float, float]  # perspective: keystone per shorter side, x and y
    blur: str  # "none", "defocus" or "motion"
    blur_px: float  # Gaussian sigma (defocus) or a third of the streak length (motion)
    motion_angle: float  # degrees
    noise: float  # sensor noise sigma at mid grey, 0-255
    sharpen: float  # unsharp-mask amount (phone processing)
    jpeg_quality: int
    page_edge: bool  # the page ends inside the image; the desk shows beyond
    desk: str  # a key of DESKS
    specks: int  # dust and dirt specks on the paper


T = TypeVar("T")


def _pick(rng: np.random.Generator, options: tuple[T, ...]) -> T:
    return options[int(rng.integers(len(options)))]


def _between(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


@dataclass(frozen=True)
class PhotoFactors:
    """A distribution of PhotoSpecs: choices and (low, high) ranges. The defaults are a mild photo."""

    long_side: tuple[int, int] = (640, 1280)
    aspects: tuple[float, ...] = (4 / 3, 3 / 4, 16 / 9, 9 / 16, 1.0)  # width / height
    exact_size: tuple[int, int] | None = None  # (long, short): e.g. (4032, 3024), either orientation
    fraction: tuple[float, float] = (0.3, 0.65)
    offset: float = 0.6
    papers: tuple[str, ...] = ("plain",)
    line_spacing: tuple[float, float] | None = None  # None: by paper (ruled 0.45-1.5, squared 0.25-0.6)
    tints: tuple[str, ...] = ("white",)
    texture: tuple[float, float] = (0.2, 0.8)
    lights: tuple[str, ...] = ("flat", "linear", "radial")
    light_strength: tuple[float, float] = (0.02, 0.12)
    exposure: tuple[float, float] = (0.88, 1.02)
    white_balance: float = 0.03
    shadows: tuple[str, ...] = ("none",)
    shadow_strength: tuple[float, float] = (0.3, 0.6)
    inks: tuple[str, ...] = ("black",)
    rotation: float = 3.0
    tilt: float = 0.04
    blurs: tuple[str, ...] = ("none", "defocus")
    blur_px: tuple[float, float] = (0.3, 0.9)
    noise: tuple[float, float] = (1.0, 3.0)
    sharpen: tuple[float, float] = (0.0, 0.4)
    jpeg_quality: tuple[int, int] = (82, 93)
    page_edge: float = 0.0  # probability
    desks: tuple[str, ...] = tuple(DESKS)
    specks: tuple[int, int] = (0, 4)

    def sample(self, rng: np.random.Generator, max_side: int | None = None) -> PhotoSpec:
        """One PhotoSpec drawn from these factors; `max_side` caps the longer side (scaling the size only)."""
        width, height = self._size(rng)
        if max_side is not None and max(width, height) > max_side:
            k = max_side / max(width, height)
            width, height = max(1, round(width * k)), max(1, round(height * k))
        paper = str(_pick(rng, self.papers))
        spacing = self.line_spacing or ((0.45, 1.5) if paper == "ruled" else (0.25, 0.6))
        ruled_rgb = _pick(rng, ((150, 182, 225), (165, 175, 190), (130, 170, 215)))
        ink = str(_pick(rng, self.inks))
        wb = 1 + rng.uniform(-self.white_balance, self.white_balance)
        return PhotoSpec(
            width=width, height=height, fraction=_between(rng, self.fraction),
            offset=(float(rng.uniform(-1, 1) * self.offset), float(rng.uniform(-1, 1) * self.offset)),
            paper=paper, line_spacing=_between(rng, spacing), line_rgb=ruled_rgb,
            margin=bool(rng.random() < 0.5), tint=str(_pick(rng, self.tints)), texture=_between(rng, self.texture),
            light=str(_pick(rng, self.lights)), light_strength=_between(rng, self.light_strength),
            light_angle=float(rng.uniform(0, 360)), exposure=_between(rng, self.exposure),
            white_balance=(float(wb), 1.0, float(2 - wb)), shadow=str(_pick(rng, self.shadows)),
            shadow_strength=_between(rng, self.shadow_strength), ink=ink, ink_rgb=_ink_rgb(ink, rng),
            ink_opacity=_ink_opacity(ink, rng), rotation=float(rng.uniform(-self.rotation, self.rotation)),
            tilt=(float(rng.uniform(-self.tilt, self.tilt)), float(rng.uniform(-self.tilt, self.tilt))),
            blur=str(_pick(rng, self.blurs)), blur_px=_between(rng, self.blur_px),
            motion_angle=float(rng.uniform(0, 180)), noise=_between(rng, self.noise),
            sharpen=_between(rng, self.sharpen),
            jpeg_quality=int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)),
            page_edge=bool(rng.random() < self.page_edge), desk=str(_pick(rng, self.desks)),
            specks=int(rng.integers(self.specks[0], self.specks[1] + 1)),
        )

    def _size(self, rng: np.random.Generator) -> tuple[int, int]:
        if self.exact_size is not None:
            long, short = self.exact_size
            return (long, short) if rng.random() < 0.5 else (short, long)
        long = int(rng.integers(self.long_side[0], self.long_side[1] + 1))
        aspect = float(_pick(rng, self.aspects))
        if aspect >= 1:
            return long, max(1, round(long / aspect))
        return max(1, round(long * aspect)), long


def _ink_rgb(ink: str, rng: np.random.Generator) -> tuple[int, int, int]:
    fixed = {"black": (22, 22, 28), "pencil": (78, 78, 84)}
    base = fixed[ink] if ink in fixed else _pick(rng, _MARKER_RGB if ink == "marker" else _BLUE_RGB)
    shade = rng.normal(0, 6)  # inks vary in darkness, a little in hue
    r, g, b = (int(np.clip(c + shade + rng.normal(0, 2), 0, 255)) for c in base)
    return r, g, b


def _ink_opacity(ink: str, rng: np.random.Generator) -> float:
    lo, hi = {"black": (0.82, 0.95), "blue": (0.75, 0.92), "pencil": (0.4, 0.7), "marker": (0.9, 0.97)}[ink]
    return float(rng.uniform(lo, hi))


def pen_for_ink(ink: str, rng: np.random.Generator) -> tuple[float, float]:
    """(pen width as a share of the digit height, raster threshold) typical of `ink`."""
    pen = {"black": (0.035, 0.09), "blue": (0.03, 0.075), "pencil": (0.035, 0.075), "marker": (0.12, 0.2)}[ink]
    thr = {"black": (0.35, 0.6), "blue": (0.4, 0.6), "pencil": (0.45, 0.65), "marker": (0.2, 0.35)}[ink]
    return float(rng.uniform(*pen)), float(rng.uniform(*thr))


# ---- geometry ---------------------------------------------------------------------------------

def _ink_points(layout: Layout) -> np.ndarray:
    pts = [h for h in layout.hulls if len(h)]
    return np.concatenate(pts) if pts else np.array([[0, 0], [1, 1]], np.float32)


def transform(points: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Points float (n, 2) mapped by the 3x3 homography `h` (continuous coordinates)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    q = np.hstack([p, np.ones((len(p), 1))]) @ h.T
    return (q[:, :2] / q[:, 2:3]).astype(np.float64)


def camera_homography(layout: Layout, spec: PhotoSpec) -> np.ndarray:
    """H (3x3): layout pixels -> image pixels, so the ink lands as `spec` says, fully inside the frame."""
    w, h = spec.width, spec.height
    short = min(w, h)
    ink = _ink_points(layout)
    centre = (ink.min(0) + ink.max(0)) / 2
    a = np.deg2rad(spec.rotation)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    persp = np.array([[1, 0, 0], [0, 1, 0], [spec.tilt[0] / short, spec.tilt[1] / short, 1]])
    move = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]])
    margin = 0.03 * short
    scale = spec.fraction * short / layout.row_px
    for _ in range(4):  # shrink until the ink fits (perspective makes it a few steps)
        h0 = persp @ rot @ np.diag([scale, scale, 1]) @ move
        q = transform(ink, h0)
        size = q.max(0) - q.min(0)
        fit = min((w - 2 * margin) / size[0], (h - 2 * margin) / size[1])
        if fit >= 1:
            break
        scale *= 0.98 * fit
    lo, hi = q.min(0), q.max(0)
    slack = np.maximum(np.array([w, h]) - 2 * margin - (hi - lo), 0) / 2
    target = np.array([w, h]) / 2 + np.asarray(spec.offset) * slack
    shift = target - (lo + hi) / 2
    return np.array([[1, 0, shift[0]], [0, 1, shift[1]], [0, 0, 1]]) @ h0


def boxes_of(hulls: list[np.ndarray], h: np.ndarray, size: tuple[int, int]) -> list[list[int]]:
    """Each hull's box [x0, y0, x1, y1] (end-exclusive pixel edges) after `h`, clipped to size (w, h)."""
    out = []
    for hull in hulls:
        if len(hull) == 0:
            out.append([0, 0, 0, 0])
            continue
        q = transform(hull, h)
        x0, y0 = np.floor(q.min(0)).astype(int)
        x1, y1 = np.ceil(q.max(0)).astype(int)
        out.append([int(max(x0, 0)), int(max(y0, 0)), int(min(x1, size[0])), int(min(y1, size[1]))])
    return out


def warp_coverage(coverage: np.ndarray, h: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Layout coverage float32 (h_l, w_l) warped by `h` into an image of size (w, h): float32 (h, w)."""
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    m = np.linalg.inv(half) @ h @ half  # continuous -> pixel-index convention of OpenCV
    return cv2.warpPerspective(coverage, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# ---- fields at reduced size -------------------------------------------------------------------

def _low_size(size: tuple[int, int], side: int = 256) -> tuple[int, int]:
    w, h = size
    k = side / max(w, h)
    return max(2, round(w * k)), max(2, round(h * k))


def _up(field_low: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(field_low.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise float32 (h, w) at size (w, h); `sigma` in pixels of that size."""
    white = rng.standard_normal((size[1], size[0]), dtype=np.float32)
    n = cv2.GaussianBlur(white, (0, 0), sigma)
    return (n - n.mean()) / max(float(n.std()), 1e-6)


def lighting(spec: PhotoSpec, rng: np.random.Generator) -> np.ndarray:
    """Illumination float32 (h, w, 3): light fall-off x exposure x white balance (slowly varying)."""
    size = (spec.width, spec.height)
    lw, lh = _low_size(size, 96)
    u, v = np.meshgrid((np.arange(lw) + 0.5) / lw, (np.arange(lh) + 0.5) / lh)
    aspect = spec.width / spec.height
    g = spec.light_strength
    a = np.deg2rad(spec.light_angle)
    if spec.light == "linear":
        proj = ((u - 0.5) * np.cos(a) + (v - 0.5) * np.sin(a)) / (0.5 * (abs(np.cos(a)) + abs(np.sin(a))))
        light = 1 - g * (1 - proj) / 2
    elif spec.light == "radial":
        cu, cv = 0.5 + 0.35 * np.cos(a), 0.5 + 0.35 * np.sin(a)
        r = np.hypot((u - cu) * aspect, v - cv) / np.hypot(aspect, 1)
        light = 1 - g * np.clip(r / 0.8, 0, 1) ** 1.3
    elif spec.light == "vignette":
        r = np.hypot((u - 0.5) * aspect, v - 0.5) / np.hypot(aspect / 2, 0.5)
        light = 1 - g * r ** 2.2
    else:
        light = np.ones_like(u)
    if spec.light != "flat":  # no real light is perfectly even
        light = light * (1 + 0.006 * _smooth_noise(rng, (lw, lh), 8))
    gains = spec.exposure * np.asarray(spec.white_balance, np.float32)
    return _up(light, size)[:, :, None] * gains


def shadow_mask(spec: PhotoSpec, rng: np.random.Generator) -> np.ndarray:
    """Shadow coverage float32 (h, w) in [0, 1]: a hand's or a phone's shadow, soft or hard edged."""
    w, h = spec.width, spec.height
    short = min(w, h)
    a = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.cos(a), np.sin(a)])
    along = np.array([-normal[1], normal[0]])
    depth = rng.uniform(0.15, 0.5)  # share of the frame, along the normal, in shadow
    centre = np.array([w, h]) / 2
    reach = 0.5 * (abs(normal[0]) * w + abs(normal[1]) * h)
    edge0 = centre + normal * reach * (1 - 2 * depth)
    t = np.linspace(-1.5, 1.5, 120) * max(w, h)
    if rng.random() < 0.5:  # a hand: bumpy, knuckle-like edge
        bumps = np.sum([rng.uniform(0.01, 0.04) * short * np.sin(t / short * rng.uniform(3, 9) + rng.uniform(0, 6.3))
                        for _ in range(3)], axis=0)
    else:  # a phone or a book: a straight edge, a slight angle
        bumps = t * rng.uniform(-0.15, 0.15)
    boundary = edge0 + along * t[:, None] - normal * bumps[:, None]
    far = boundary[::-1] + normal * 3 * max(w, h)
    poly = np.vstack([boundary, far])
    lw, lh = _low_size((w, h), 128)
    depth_field = _up(1 - 0.25 * np.abs(_smooth_noise(rng, (lw, lh), 20)), (w, h))  # shade deepens unevenly
    if spec.shadow == "soft":
        lw, lh = _low_size((w, h), 256)
        k = lw / w
        low = np.zeros((lh, lw), np.uint8)
        cv2.fillPoly(low, [np.round(poly * k * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
        sigma = rng.uniform(0.03, 0.1) * short * k
        return _up(cv2.GaussianBlur(low.astype(np.float32) / 255, (0, 0), sigma), (w, h)) * depth_field
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    sigma = rng.uniform(0.6, 2.0) * max(w, h) / 1000
    return cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), sigma) * depth_field


# ---- paper, lines, desk -----------------------------------------------------------------------

def paper(spec: PhotoSpec, rng: np.random.Generator) -> np.ndarray:
    """The bare paper float32 (h, w, 3) in 0-1: tint, cloudiness and grain (recycled: fibres)."""
    size = (spec.width, spec.height)
    lw, lh = _low_size(size, 192)
    tint = np.asarray(TINTS[spec.tint], np.float32) / 255
    shade = _up(_smooth_noise(rng, (lw, lh), 14), size) * (0.007 * spec.texture)
    gw, gh = max(2, spec.width // 2), max(2, spec.height // 2)  # grain is soft at phone resolution
    grain = rng.standard_normal((gh, gw), dtype=np.float32) * (0.012 * spec.texture)
    shade += _up(grain, size)
    shade += 1
    out = shade[:, :, None] * tint
    if spec.tint == "recycled":
        _specks(out, rng, int(0.00004 * spec.width * spec.height) + 30, (0.45, 0.8), colours=True)
    if spec.specks:
        _specks(out, rng, spec.specks, (0.3, 0.75))
    return out


def _specks(img: np.ndarray, rng: np.random.Generator, n: int, darkness: tuple[float, float],
            colours: bool = False) -> None:
    """Darken `img` (h, w, 3) in place with `n` small dots and short fibres (dust, dirt, paper fibres)."""
    h, w = img.shape[:2]
    scale = max(w, h) / 1000
    mask = np.zeros((h, w), np.uint8)
    for _ in range(n):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        value = int(255 * rng.uniform(*darkness))
        if rng.random() < 0.7:
            r = max(1, round(rng.uniform(0.4, 1.6) * scale * 16))
            cv2.circle(mask, (int(x * 16), int(y * 16)), r, value, -1, cv2.LINE_AA, 4)
        else:
            length = rng.uniform(3, 12) * scale
            a = rng.uniform(0, np.pi)
            end = (int((x + length * np.cos(a)) * 16), int((y + length * np.sin(a)) * 16))
            cv2.line(mask, (int(x * 16), int(y * 16)), end, value // 2, max(1, round(scale)), cv2.LINE_AA, 4)
    tint = np.array([0.55, 0.5, 0.42] if colours else [0.35, 0.35, 0.35], np.float32)
    where = np.flatnonzero(mask)  # specks cover little: touch only their pixels
    flat_img = img.reshape(-1, 3)
    flat_img[where] *= 1 - (mask.ravel()[where].astype(np.float32) / 255)[:, None] * (1 - tint)


def _page_region(layout: Layout, h: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(bounds (x0, y0, x1, y1) of the visible page in layout px, the ink box in layout px)."""
    w, hh = size
    corners = transform(np.array([[0, 0], [w, 0], [w, hh], [0, hh]]), np.linalg.inv(h))
    ink = _ink_points(layout)
    return np.r_[corners.min(0), corners.max(0)], np.r_[ink.min(0), ink.max(0)]


def _draw_lines(segments: list[tuple[np.ndarray, np.ndarray]], h: np.ndarray, size: tuple[int, int],
                width_px: float) -> np.ndarray:
    """Anti-aliased lines (layout px end points) drawn after `h`: coverage float32 (h, w)."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    thickness = max(1, round(width_px))
    for p0, p1 in segments:
        q = np.round(transform(np.array([p0, p1]), h) * 16 - 8).astype(np.int64)
        q = np.clip(q, -(2**30), 2**30)
        cv2.line(mask, tuple(int(v) for v in q[0]), tuple(int(v) for v in q[1]), 255, thickness, cv2.LINE_AA, 4)
    cov = mask.astype(np.float32) / 255
    return cov * min(1.0, width_px) if width_px < 1 else cov


RuledLines = list[tuple[np.ndarray, tuple[int, int, int], float]]


def rule_lines(layout: Layout, spec: PhotoSpec, h: np.ndarray, rng: np.random.Generator) -> RuledLines:
    """The printed lines of ruled or squared paper: [(coverage (h, w), rgb, opacity)]; [] for plain."""
    if spec.paper == "plain":
        return []
    size = (spec.width, spec.height)
    (vx0, vy0, vx1, vy1), (ix0, _iy0, _ix1, iy1) = _page_region(layout, h, size)
    pitch = spec.line_spacing * layout.row_px
    scale = float(np.sqrt(abs(np.linalg.det(h[:2, :2]))))  # ~ image px per layout px near the ink
    width_px = max(0.6, pitch * scale * rng.uniform(0.018, 0.035))
    pad = 0.1 * max(vx1 - vx0, vy1 - vy0)
    if spec.paper == "ruled":
        base = layout.baselines[0] if layout.baselines else iy1
        phase = base + rng.normal(0, 0.03) * layout.row_px if spec.line_spacing >= 0.9 else rng.uniform(0, pitch)
    else:
        phase = rng.uniform(0, pitch)
    ys = phase + pitch * np.arange(np.floor((vy0 - phase) / pitch) - 1, np.ceil((vy1 - phase) / pitch) + 2)
    segs = [(np.array([vx0 - pad, y]), np.array([vx1 + pad, y])) for y in ys]
    if spec.paper == "squared":
        px = rng.uniform(0, pitch)
        xs = px + pitch * np.arange(np.floor((vx0 - px) / pitch) - 1, np.ceil((vx1 - px) / pitch) + 2)
        segs += [(np.array([x, vy0 - pad]), np.array([x, vy1 + pad])) for x in xs]
    out = [(_draw_lines(segs, h, size, width_px), spec.line_rgb, float(rng.uniform(0.45, 0.85)))]
    if spec.paper == "ruled" and spec.margin:
        xm = ix0 - rng.uniform(0.3, 1.6) * layout.row_px
        margin = [(np.array([xm, vy0 - pad]), np.array([xm, vy1 + pad]))]
        out.append((_draw_lines(margin, h, size, width_px * 1.3), (225, 110, 120), float(rng.uniform(0.6, 0.9))))
    return out


def page_mask(layout: Layout, spec: PhotoSpec, h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Where the page is, float32 (h, w) in [0, 1]: one or two of its edges cross the image."""
    size = (spec.width, spec.height)
    (vx0, vy0, vx1, vy1), (ix0, iy0, ix1, iy1) = _page_region(layout, h, size)
    bounds = [vx0 - 0.1 * (vx1 - vx0), vy0 - 0.1 * (vy1 - vy0), vx1 + 0.1 * (vx1 - vx0), vy1 + 0.1 * (vy1 - vy0)]
    sides = rng.permutation(4)[: int(rng.choice([1, 1, 2]))]
    keep = 0.3 * layout.row_px
    for side in sides:  # 0 left, 1 top, 2 right, 3 bottom: cut inside the view, never into the ink
        extent = (vx1 - vx0) if side in (0, 2) else (vy1 - vy0)
        d = rng.uniform(0.04, 0.25) * extent
        if side == 0:
            bounds[0] = min(vx0 + d, ix0 - keep)
        elif side == 1:
            bounds[1] = min(vy0 + d, iy0 - keep)
        elif side == 2:
            bounds[2] = max(vx1 - d, ix1 + keep)
        else:
            bounds[3] = max(vy1 - d, iy1 + keep)
    x0, y0, x1, y1 = bounds
    quad = transform(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), h)
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(mask, np.round(quad * 16 - 8).astype(np.int32), 255, cv2.LINE_AA, 4)
    return mask.astype(np.float32) / 255


def desk(spec: PhotoSpec, page: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The table under the page float32 (h, w, 3): wood grain or plain surfaces, the page's drop shadow."""
    size = (spec.width, spec.height)
    lw, lh = _low_size(size, 256)
    base = np.asarray(DESKS[spec.desk], np.float32) / 255 * rng.uniform(0.85, 1.1)
    u, v = np.meshgrid(np.arange(lw), np.arange(lh))
    if spec.desk == "wood":
        a = rng.uniform(0, np.pi)
        s = u * np.cos(a) + v * np.sin(a)
        rings = np.sin(s / rng.uniform(2, 5) + 3 * _smooth_noise(rng, (lw, lh), 10))
        grain = 0.12 * rings + 0.05 * _smooth_noise(rng, (lw, lh), 1)
    else:
        grain = 0.03 * _smooth_noise(rng, (lw, lh), 1) + 0.04 * _smooth_noise(rng, (lw, lh), 20)
    low_page = cv2.resize(page, (lw, lh), interpolation=cv2.INTER_AREA)
    drop = cv2.GaussianBlur(low_page, (0, 0), 0.012 * lw + 1)
    shade = (1 + grain) * (1 - 0.45 * drop)
    return _up(shade, size)[:, :, None] * base


# ---- ink and camera ---------------------------------------------------------------------------

def ink_on(img: np.ndarray, cov: np.ndarray, spec: PhotoSpec, rng: np.random.Generator) -> None:
    """Lay ink of coverage `cov` (h, w) on `img` (h, w, 3) in place, with the texture of the ink type.

    Only the window around the ink is touched.
    """
    rows, cols = np.flatnonzero(cov.max(1) > 0), np.flatnonzero(cov.max(0) > 0)
    if rows.size == 0:
        return
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    c = cov[y0:y1, x0:x1]
    size = (int(x1 - x0), int(y1 - y0))
    if spec.ink == "pencil":  # graphite skips the paper's valleys: a grainy, lighter line
        scale = max(spec.width, spec.height) / 1000
        grain = cv2.GaussianBlur(rng.random((size[1], size[0]), dtype=np.float32), (0, 0), 0.7 * max(scale, 0.6))
        grain = (grain - grain.mean()) / max(float(grain.std()), 1e-6)
        density = np.clip(0.75 + 0.3 * grain, 0.25, 1.0)
    elif spec.ink in ("blue", "black"):  # a ballpoint lays down uneven amounts along the stroke
        lw, lh = _low_size(size, 64)
        density = 1 - 0.05 * np.abs(_up(_smooth_noise(rng, (lw, lh), 3), size))
    else:
        density = np.float32(1.0)
    a = (c * density * np.float32(spec.ink_opacity))[:, :, None]
    img[y0:y1, x0:x1] *= 1 - a * (1 - np.asarray(spec.ink_rgb, np.float32) / 255)


def camera(img: np.ndarray, spec: PhotoSpec, rng: np.random.Generator) -> np.ndarray:
    """Blur, sensor noise and sharpening of a float32 (h, w, 3) 0-1 image; returns uint8 (h, w, 3)."""
    scale = max(spec.width, spec.height) / 1000
    if spec.blur == "defocus" and spec.blur_px * scale > 0.25:
        img = cv2.GaussianBlur(img, (0, 0), spec.blur_px * scale)
    elif spec.blur == "motion":
        length = max(2, round(3 * spec.blur_px * scale))
        k = np.zeros((2 * length + 1, 2 * length + 1), np.float32)
        a = np.deg2rad(spec.motion_angle)
        c = length
        cv2.line(k, (int(c - length * np.cos(a)), int(c - length * np.sin(a))),
                 (int(c + length * np.cos(a)), int(c + length * np.sin(a))), 1.0, 1, cv2.LINE_AA)
        img = cv2.filter2D(img, -1, k / k.sum())
    if spec.sharpen > 0:
        soft = cv2.GaussianBlur(img, (0, 0), 1.2 * float(np.clip(scale, 0.5, 2.0)))
        img = cv2.addWeighted(img, 1 + spec.sharpen, soft, -spec.sharpen, 0)
    # Sensor noise: luminance at full resolution (half for >4 MP, as phones denoise), chroma at half;
    # its sigma grows with the square root of the signal (shot noise).
    big = spec.width * spec.height > 4_000_000
    size = (spec.width, spec.height)
    half = (max(2, spec.width // 2), max(2, spec.height // 2))
    lum = rng.standard_normal((half[1], half[0]) if big else (spec.height, spec.width), dtype=np.float32)
    lum = _up(lum, size) if big else lum
    sigma = cv2.sqrt(np.maximum(img[:, :, 1], np.float32(0.02)))
    lum *= sigma
    lum *= np.float32(spec.noise / 255 * np.sqrt(2))
    chroma = _up(rng.standard_normal((half[1], half[0], 2), dtype=np.float32), size)
    chroma *= np.float32(0.3 * spec.noise / 255)
    img += lum[:, :, None]
    img[:, :, 0] += chroma[:, :, 0]
    img[:, :, 2] += chroma[:, :, 1]
    img *= 255
    np.clip(img, 0, 255, out=img)
    return (img + 0.5).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int) -> tuple[np.ndarray, bytes]:
    """Encode uint8 (h, w, 3) RGB as JPEG at `quality`; returns (the decoded RGB, the file bytes)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    data = buf.tobytes()
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError("OpenCV could not decode the JPEG it wrote")
    decoded = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return decoded, data


@dataclass
class Photo:
    """A rendered photo: decoded RGB uint8 (h, w, 3), its JPEG bytes, item boxes, the homography."""

    image: np.ndarray
    data: bytes
    boxes: list[list[int]]
    homography: np.ndarray
    extras: dict = field(default_factory=dict)


def render_photo(layout: Layout, spec: PhotoSpec, rng: np.random.Generator) -> Photo:
    """Photograph `layout`'s ink on paper as `spec` says; boxes are each item's ink after the camera geometry."""
    size = (spec.width, spec.height)
    h = camera_homography(layout, spec)
    img = paper(spec, rng)
    for cov, line_rgb, opacity in rule_lines(layout, spec, h, rng):
        img *= 1 - (cov * opacity)[:, :, None] * (1 - np.asarray(line_rgb, np.float32) / 255)
    ink_on(img, warp_coverage(layout.coverage, h, size), spec, rng)
    if spec.page_edge:
        page = page_mask(layout, spec, h, rng)
        img = img * page[:, :, None] + desk(spec, page, rng) * (1 - page)[:, :, None]
    img *= lighting(spec, rng)
    if spec.shadow != "none":
        s = shadow_mask(spec, rng)[:, :, None] * spec.shadow_strength
        img *= 1 - s * np.array([1.0, 0.97, 0.88], np.float32)  # shade is lit by the bluish sky/room: blue stays
    rgb = camera(img, spec, rng)
    decoded, data = jpeg(rgb, spec.jpeg_quality)
    return Photo(decoded, data, boxes_of(layout.hulls, h, size), h)


def flat(spec: PhotoSpec) -> PhotoSpec:
    """`spec` without effects: flat white paper, black ink, no light fall-off, shadow, blur or noise."""
    return replace(spec, paper="plain", tint="white", texture=0.0, light="flat", exposure=1.0,
                   white_balance=(1.0, 1.0, 1.0), shadow="none", ink="black", ink_rgb=(0, 0, 0), ink_opacity=1.0,
                   blur="none", noise=0.0, sharpen=0.0, page_edge=False, specks=0)

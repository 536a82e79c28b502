"""Doodles and scribbles as polylines: each generator returns a list of float32 (K, 2) (x, y) arrays.

Coordinates are in a box of about 1 x 1, y down; `polylines_mark` rescales them. Each generator
takes a NumPy Generator and draws its own variation (proportions, counts, angles). The kinds are
grouped by split in `digitlab.synth.nondigits`; none is a plain circle, bar or box (digit-like).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Polylines = list[np.ndarray]
Generator = Callable[[np.random.Generator], Polylines]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 48) -> np.ndarray:
    """Points float32 (n, 2) on an ellipse arc from angle a0 to a1 (radians, y down)."""
    t = np.linspace(a0, a1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1).astype(np.float32)


def _poly(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, np.float32)


def _closed(p: np.ndarray) -> np.ndarray:
    return np.vstack([p, p[:1]])


# ---- training split doodles -------------------------------------------------------------------

def star(rng: np.random.Generator) -> Polylines:
    """A five- (or six-) pointed star drawn as one closed zigzag."""
    k = int(rng.choice([5, 5, 6]))
    inner = rng.uniform(0.35, 0.5)
    t = np.arange(2 * k) * np.pi / k - np.pi / 2 + rng.normal(0, 0.1)
    r = np.where(np.arange(2 * k) % 2 == 0, 1.0, inner)
    return [_closed(np.stack([r * np.cos(t), r * np.sin(t)], 1).astype(np.float32))]


def grid(rng: np.random.Generator) -> Polylines:
    """A tic-tac-toe grid or a 3x3 grid: separate straight strokes, longer than the cells."""
    n = int(rng.choice([2, 3]))
    pos = np.linspace(0, 1, n + 2)[1:-1] + rng.normal(0, 0.03, (2, n))
    lines = [_poly((p, -0.05), (p + rng.normal(0, 0.03), 1.05)) for p in pos[0]]
    lines += [_poly((-0.05, p), (1.05, p + rng.normal(0, 0.03))) for p in pos[1]]
    return lines


def triangle(rng: np.random.Generator) -> Polylines:
    """A closed triangle, apex anywhere along the top."""
    apex = rng.uniform(0.2, 0.8)
    return [_closed(_poly((apex, 0), (1, rng.uniform(0.8, 1)), (0, 1)))]


def house(rng: np.random.Generator) -> Polylines:
    """A square with a roof and a door."""
    roof = rng.uniform(0.3, 0.5)
    door = rng.uniform(0.35, 0.55)
    return [_closed(_poly((0, roof), (0.5, 0), (1, roof), (1, 1), (0, 1))),
            _poly((door, 1), (door, 0.7), (door + 0.18, 0.7), (door + 0.18, 1))]


def lightning(rng: np.random.Generator) -> Polylines:
    """A lightning bolt outline."""
    a, b = rng.uniform(0.45, 0.6), rng.uniform(0.35, 0.5)
    return [_closed(_poly((0.35, 0), (0.8, 0), (0.6, b), (0.85, b), (0.2, 1.1), (0.4, a), (0.15, a)))]


def cloud(rng: np.random.Generator) -> Polylines:
    """A bumpy closed cloud outline (scalloped)."""
    k = int(rng.integers(5, 9))
    t = np.linspace(0, 2 * np.pi, 240)
    r = 1 + 0.22 * np.abs(np.sin(k * t / 2 + rng.uniform(0, np.pi)))
    return [np.stack([1.6 * r * np.cos(t), r * np.sin(t)], 1).astype(np.float32)]


def zigzag(rng: np.random.Generator) -> Polylines:
    """A wide sawtooth zigzag of 4-8 teeth."""
    k = int(rng.integers(4, 9))
    x = np.linspace(0, 1.6, 2 * k + 1)
    y = np.where(np.arange(2 * k + 1) % 2 == 0, 0.0, rng.uniform(0.3, 0.6))
    return [np.stack([x, y], 1).astype(np.float32)]


def sun(rng: np.random.Generator) -> Polylines:
    """A small circle with 7-12 rays."""
    k = int(rng.integers(7, 13))
    out = [_arc(0, 0, 0.45, 0.45, 0, 2 * np.pi)]
    for a in np.arange(k) * 2 * np.pi / k + rng.uniform(0, 1):
        out.append(_poly((0.6 * np.cos(a), 0.6 * np.sin(a)), (1.0 * np.cos(a), 1.0 * np.sin(a))))
    return out


def hatched_box(rng: np.random.Generator) -> Polylines:
    """A square filled with 3-6 diagonal hatching lines."""
    out = [_closed(_poly((0, 0), (1, 0), (1, 1), (0, 1)))]
    for c in np.linspace(0.25, 1.75, int(rng.integers(3, 7))):
        x0, y0 = max(0.0, c - 1), min(1.0, c)
        x1, y1 = min(1.0, c), max(0.0, c - 1)
        out.append(_poly((x0, y0), (x1, y1)))
    return out


# ---- held-out split doodles -------------------------------------------------------------------

def smiley(rng: np.random.Generator) -> Polylines:
    """A face: circle, two eyes, a smile."""
    e = rng.uniform(0.15, 0.25)
    out = [_arc(0, 0, 1, 1, 0, 2 * np.pi, 72)]
    out += [_arc(-0.35, -0.3, e * 0.5, e, 0, 2 * np.pi, 16), _arc(0.35, -0.3, e * 0.5, e, 0, 2 * np.pi, 16)]
    out.append(_arc(0, 0.05, 0.55, rng.uniform(0.35, 0.55), 0.15 * np.pi, 0.85 * np.pi))
    return out


def heart(rng: np.random.Generator) -> Polylines:
    """A heart (the classic parametric curve)."""
    t = np.linspace(0, 2 * np.pi, 160)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [np.stack([x * rng.uniform(0.9, 1.15), y], 1).astype(np.float32)]


def spiral(rng: np.random.Generator) -> Polylines:
    """An Archimedean spiral of 2-3.5 turns."""
    turns = rng.uniform(2, 3.5)
    t = np.linspace(0, 2 * np.pi * turns, int(90 * turns))
    r = 0.05 + t / t[-1]
    sign = rng.choice([-1, 1])
    return [np.stack([r * np.cos(sign * t), r * np.sin(sign * t)], 1).astype(np.float32)]


def arrow(rng: np.random.Generator) -> Polylines:
    """An arrow, pointing anywhere except near-vertical (a vertical arrow reads as a 1)."""
    a = rng.uniform(-np.pi / 3, np.pi / 3) + rng.choice([0, np.pi])
    d = np.array([np.cos(a), np.sin(a)])
    tip, tail = d, -d
    head = [tip - 0.45 * (np.array([[np.cos(s), -np.sin(s)], [np.sin(s), np.cos(s)]]) @ d) for s in (0.5, -0.5)]
    return [_poly(tuple(tail), tuple(tip)), _poly(tuple(head[0]), tuple(tip), tuple(head[1]))]


def circle_cross(rng: np.random.Generator) -> Polylines:
    """A circle with an X or a + through it."""
    out = [_arc(0, 0, 1, 1, 0, 2 * np.pi, 72)]
    a = rng.choice([0.25 * np.pi, 0.0])
    for s in (a, a + np.pi / 2):
        out.append(_poly((1.15 * np.cos(s), 1.15 * np.sin(s)), (-1.15 * np.cos(s), -1.15 * np.sin(s))))
    return out


def flower(rng: np.random.Generator) -> Polylines:
    """A flower: a small centre and 5-7 petal loops."""
    k = int(rng.integers(5, 8))
    t = np.linspace(0, 2 * np.pi, 300)
    r = 0.3 + 0.7 * np.abs(np.cos(k * t / 2))
    return [np.stack([r * np.cos(t), r * np.sin(t)], 1).astype(np.float32), _arc(0, 0, 0.15, 0.15, 0, 2 * np.pi, 16)]


def wave(rng: np.random.Generator) -> Polylines:
    """A horizontal sine squiggle of 2-4 periods."""
    periods = rng.uniform(2, 4)
    x = np.linspace(0, 1.8, 120)
    return [np.stack([x, rng.uniform(0.15, 0.3) * np.sin(2 * np.pi * periods * x / 1.8)], 1).astype(np.float32)]


def eye(rng: np.random.Generator) -> Polylines:
    """An almond eye (two arcs meeting at the corners) with an iris."""
    h = rng.uniform(0.35, 0.55)
    x = np.linspace(-1, 1, 40)
    lid = h * (1 - x ** 2)
    return [np.stack([1.4 * x, -lid], 1).astype(np.float32), np.stack([1.4 * x, lid], 1).astype(np.float32),
            _arc(0, 0, 0.28, 0.28, 0, 2 * np.pi, 24)]


def fish(rng: np.random.Generator) -> Polylines:
    """A fish: a lens-shaped body, a triangular tail, an eye."""
    body = np.vstack([_arc(0, 0.6, 1, 1.1, 1.2 * np.pi, 1.8 * np.pi), _arc(0, -0.6, 1, 1.1, 0.2 * np.pi, 0.8 * np.pi)])
    tail = _closed(_poly((0.8, 0), (1.4, -0.35), (1.4, 0.35)))
    return [body, tail, _arc(-0.45, -0.1, 0.06, 0.06, 0, 2 * np.pi, 8)]


# ---- scribbles --------------------------------------------------------------------------------

def random_walk(rng: np.random.Generator) -> Polylines:
    """A smooth random-walk scribble: 1-2 long strokes that turn and double back (training split)."""
    out = []
    for _ in range(int(rng.integers(1, 3))):
        n = int(rng.integers(120, 260))
        turn = np.cumsum(rng.normal(0, 0.25, n))
        heading = np.cumsum(turn * 0.1 + rng.normal(0, 0.15, n))
        steps = np.stack([np.cos(heading), np.sin(heading)], 1)
        p = np.cumsum(steps, 0)
        out.append(((p - p.mean(0)) / np.ptp(p, 0).max()).astype(np.float32))
    return out


def hatching(rng: np.random.Generator) -> Polylines:
    """A crossing-out scribble: back-and-forth strokes filling a region (training split)."""
    k = int(rng.integers(6, 14))
    y = np.linspace(0, 1, k) + rng.normal(0, 0.02, k)
    x = np.where(np.arange(k) % 2 == 0, rng.uniform(0, 0.15, k), rng.uniform(0.85, 1.1, k))
    pts = np.stack([x, y], 1)
    a = rng.uniform(-0.6, 0.6)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return [(pts @ rot.T).astype(np.float32)]


def coil(rng: np.random.Generator) -> Polylines:
    """A looping coil scribble, like cursive "eeee" (held-out split)."""
    loops = rng.uniform(3, 7)
    t = np.linspace(0, 2 * np.pi * loops, int(60 * loops))
    r = rng.uniform(0.25, 0.45)
    x = t / t[-1] * 1.8 + r * np.cos(t)
    y = r * 1.2 * np.sin(t) + rng.normal(0, 0.02) * t
    return [np.stack([x, y], 1).astype(np.float32)]


def tangle(rng: np.random.Generator) -> Polylines:
    """A closed knotted curve of random harmonics (held-out split)."""
    t = np.linspace(0, 2 * np.pi, 400)
    x = np.zeros_like(t)
    y = np.zeros_like(t)
    for k in range(1, 6):
        x += rng.normal(0, 1 / k) * np.cos(k * t + rng.uniform(0, 6.3))
        y += rng.normal(0, 1 / k) * np.sin(k * t + rng.uniform(0, 6.3))
    return [np.stack([x, y], 1).astype(np.float32)]


def scribble_ball(rng: np.random.Generator) -> Polylines:
    """A dense ball of overlapping loops, as when someone scribbles a shape dark (held-out split)."""
    n = int(rng.integers(6, 12))
    t = np.linspace(0, 2 * np.pi * n, 60 * n)
    drift = np.cumsum(rng.normal(0, 0.01, (len(t), 2)), 0)
    r = rng.uniform(0.6, 1.0) + 0.2 * np.sin(t * rng.uniform(0.05, 0.2))
    return [(np.stack([r * np.cos(t), 0.8 * r * np.sin(t)], 1) + drift).astype(np.float32)]


# ---- digit-like shapes, excluded from both splits (the 'ambiguous' group) ----------------------

def circle(rng: np.random.Generator) -> Polylines:
    """A plain circle or ellipse: reads as a 0."""
    return [_arc(0, 0, rng.uniform(0.6, 1), 1, 0, 2 * np.pi, 72)]


def bar(rng: np.random.Generator) -> Polylines:
    """A single straight, near-vertical stroke: reads as a 1."""
    return [_poly((0, 0), (rng.normal(0, 0.1), 1))]


def box(rng: np.random.Generator) -> Polylines:
    """A plain rectangle: a squarish 0."""
    return [_closed(_poly((0, 0), (rng.uniform(0.6, 1), 0), (rng.uniform(0.6, 1), 1), (0, 1)))]


def s_curve(rng: np.random.Generator) -> Polylines:
    """An S-shaped curve: reads as a 5 (or 2 mirrored)."""
    top = _arc(0, -0.5, 0.5, 0.5, -0.1 * np.pi, -1.5 * np.pi, 40)
    return [np.vstack([top, _arc(0, 0.5, 0.5, 0.5, -0.5 * np.pi, 0.6 * np.pi, 40)])]


DOODLES: dict[str, Generator] = {
    "star": star, "grid": grid, "triangle": triangle, "house": house, "lightning": lightning, "cloud": cloud,
    "zigzag": zigzag, "sun": sun, "hatched_box": hatched_box, "smiley": smiley, "heart": heart,
    "spiral": spiral, "arrow": arrow, "circle_cross": circle_cross, "flower": flower, "wave": wave, "eye": eye,
    "fish": fish, "circle": circle, "bar": bar, "box": box, "s_curve": s_curve,
}
SCRIBBLES: dict[str, Generator] = {
    "random_walk": random_walk, "hatching": hatching, "coil": coil, "tangle": tangle, "scribble_ball": scribble_ball,
}

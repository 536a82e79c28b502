"""Cut paths through touching digits: paths of least ink from a component's top to its bottom.

`cut_paths(own, stroke=..., margin=..., max_cuts=...)` finds where a connected blob of ink (two or
more digits that touch or overlap) may be cut apart. A cut is a path from the top row of the blob
to its bottom row, one pixel per row, moving at most one pixel sideways per row (bending up to 45
degrees, each sideways step costing a little so it stays straight where nothing is in its way),
whose cost is the ink it crosses. The classic vertical cut at a minimum of the column projection
is the special case of a straight path; a bent path follows the gap between slanted, overlapping
neighbours and crosses only the stroke where they touch (the "drop-fall" family: Congedo,
Dimauro, Impedovo, Pirlo 1995; Khan 1998; here as a shortest path by dynamic programming, as in
Wang and Jean 1994's path of least resistance).

Candidates of two kinds are taken in turn, the cheapest of each first: straight cuts at the minima
of the column projection (the classic vertical cut: it keeps a stroke that touches a neighbour
with its own digit), and bent ones, the paths of least ink through the cells of a few anchor rows
(top, quarter, middle, three quarters, bottom) at the local minima of their costs along the row.
The least ink of a path through every cell comes from two passes of a dynamic programme
(downwards and upwards, one vectorised NumPy row per row), and the paths are traced back from it.
Candidates that split the ink as an earlier one does (within SAME_CUT of the ink), leave too little
ink on a side, or lie within `margin` of the blob's sides are dropped; at most `max_cuts` are kept,
ordered left to right and made not to cross (so the pieces between consecutive cuts are well
defined: `split`). Blobs taller than CUT_SIDE rows are searched at a reduced size (bounded time).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CUT_SIDE = 96  # blobs taller than this many rows are searched at a whole-factor reduced size
SIDE_STEP = 0.05  # cost of a sideways step, in ink pixels crossed: straight where free, bent at little cost
ANCHORS = (0.0, 0.25, 0.5, 0.75, 1.0)  # rows (share of the height) whose least-ink paths are candidates
SAME_CUT = 0.04  # cuts whose left sides differ by less than this share of the ink are the same cut
MIN_SIDE = 0.04  # a cut leaves at least this share of the ink on each side


@dataclass(frozen=True)
class Cut:
    """One cut through a blob of height h: pixels (y, x) with x < xs[y] lie on its left."""

    xs: np.ndarray  # int32 (h,)
    strokes: float  # ink crossed, in stroke widths (about the number of strokes cut)

    @property
    def centre(self) -> float:
        return float(self.xs.mean())


def cut_paths(own: np.ndarray, *, stroke: float, margin: int, max_cuts: int) -> list[Cut]:
    """Up to `max_cuts` cuts through the ink `own` (bool (h, w)), left to right, not crossing each other.

    stroke: the pen's width in pixels (to count strokes crossed); margin: no cut whose mean column
    is within this many pixels of either side.
    """
    h, w = own.shape
    if max_cuts <= 0 or w <= 2 * margin or not own.any():
        return []
    f = max(1, -(-h // CUT_SIDE))
    cost = _reduced(own, f)  # share of ink per cell (hc, wc)
    forward, up = _least_ink(cost, SIDE_STEP)
    backward, down = _least_ink(cost[::-1], SIDE_STEP)
    backward, down = backward[::-1], down[::-1]  # down[y, x]: the step to the next row (up[y, x]: to the previous)
    through = forward + backward - cost  # (hc, wc): the least ink of a path through each cell
    hc, wc = cost.shape
    bent: list[tuple[float, int, int]] = []
    lo, hi = max(1, margin // f), min(wc - 1, wc - margin // f)
    for share in ANCHORS:
        r = min(hc - 1, int(round(share * (hc - 1))))
        bent += [(float(through[r, x]), r, x) for x in _minima(through[r], lo, hi)]
    column = np.convolve(cost.sum(axis=0), np.ones(3) / 3, mode="same")  # straight cuts: the column projection
    straight = [(float(column[x]), -1, x) for x in _minima(column, lo, hi)]
    cum = np.concatenate([np.zeros((h, 1), np.int32), np.cumsum(own, axis=1, dtype=np.int32)], axis=1)
    total = float(cum[:, -1].sum())
    kept: list[tuple[np.ndarray, np.ndarray, float]] = []
    for c, r, x in _alternate(sorted(bent), sorted(straight)):
        if r < 0:
            xs = np.full(h, min(w, x * f + f // 2), np.int64)
            c = float(cost[:, x].sum())
        else:
            xs = np.clip(np.repeat(_trace(up, down, r, x), f)[:h] * f + f // 2, 0, w)
        if not margin <= xs.mean() <= w - margin:
            continue
        left = cum[np.arange(h), xs]
        if not MIN_SIDE * total <= left.sum() <= (1 - MIN_SIDE) * total:
            continue
        if any(np.abs(left - other).sum() < SAME_CUT * total for _, other, _ in kept):
            continue
        kept.append((xs, left, c * f / max(stroke, 1.0)))
        if len(kept) == max_cuts:
            break
    kept.sort(key=lambda k: float(k[0].mean()))
    out: list[Cut] = []
    for xs, _, strokes in kept:
        if out:
            xs = np.maximum(xs, out[-1].xs)  # not crossing the cut on its left
        out.append(Cut(xs.astype(np.int32), strokes))
    return out


def split(own: np.ndarray, cuts: list[Cut]) -> list[np.ndarray]:
    """The ink `own` (bool (h, w)) between consecutive `cuts` (left to right): len(cuts) + 1 bool masks (h, w)."""
    h, w = own.shape
    cols = np.arange(w)[None, :]
    bounds = [np.zeros(h, np.int32)] + [c.xs for c in cuts] + [np.full(h, w, np.int32)]
    return [own & (cols >= a[:, None]) & (cols < b[:, None]) for a, b in zip(bounds[:-1], bounds[1:])]


def _alternate(a: list[tuple[float, int, int]], b: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """a[0], b[0], a[1], b[1], ...: the cheapest of each kind first."""
    out = [v for pair in zip(a, b) for v in pair]
    n = min(len(a), len(b))
    return out + a[n:] + b[n:]


def _reduced(own: np.ndarray, f: int) -> np.ndarray:
    """float32 (ceil(h/f), ceil(w/f)): the share of ink in each f x f cell."""
    if f == 1:
        return own.astype(np.float32)
    h, w = own.shape
    hc, wc = -(-h // f), -(-w // f)
    padded = np.zeros((hc * f, wc * f), np.float32)
    padded[:h, :w] = own
    return padded.reshape(hc, f, wc, f).mean(axis=(1, 3))


def _least_ink(cost: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """(least cost (h, w) of a path from row 0 to each cell, int8 (h, w) step to the previous row's column).

    A path takes one cell per row and moves by -1, 0 or +1 columns a row; each sideways move costs `side`.
    """
    h, w = cost.shape
    total = np.empty((h, w), np.float32)
    step = np.zeros((h, w), np.int8)
    total[0] = cost[0]
    inf = np.float32(np.inf)
    for y in range(1, h):
        prev = total[y - 1]
        options = np.stack([
            np.concatenate([[inf], prev[:-1]]) + side,  # from the column on the left
            prev,
            np.concatenate([prev[1:], [inf]]) + side,  # from the column on the right
        ])
        best = options.argmin(axis=0)
        total[y] = cost[y] + options[best, np.arange(w)]
        step[y] = best - 1
    return total, step


def _minima(profile: np.ndarray, lo: int, hi: int) -> list[int]:
    """Columns in [lo, hi) where `profile` has a local minimum (the middle of a flat bottom)."""
    out = []
    x = lo
    while x < hi:
        end = x
        while end + 1 < hi and profile[end + 1] == profile[x]:
            end += 1
        left = profile[x - 1] if x > 0 else np.inf
        right = profile[end + 1] if end + 1 < len(profile) else np.inf
        if profile[x] < left and profile[x] < right or (profile[x] <= left and profile[x] <= right and end > x):
            out.append((x + end) // 2)
        x = end + 1
    return out


def _trace(up: np.ndarray, down: np.ndarray, r: int, x: int) -> np.ndarray:
    """int (h,): the columns of the least path through (r, x), from the steps of the two passes."""
    h = up.shape[0]
    xs = np.empty(h, np.int64)
    xs[r] = x
    for y in range(r, 0, -1):
        xs[y - 1] = xs[y] + up[y, xs[y]]
    for y in range(r, h - 1):
        xs[y + 1] = xs[y] + down[y, xs[y]]
    return xs

"""Every digit in a picture: ink components grouped into lines, then cut and merged into digits.

`segment(ink, classify)` takes the cleaned ink of a picture (`digitlab.inference.ink.InkMap`, the
same cleaning as a single digit's) and a classifier of 28x28 images, and returns the digits it
finds, line by line (top to bottom), each left to right, each normalised exactly as a single digit.

How, and why:
- Components: connected ink, specks (under SPECK_SHARE of the largest) and what lies along the
  picture's border (desk, page edge: `ink.on_border`) left out. The digit height H is a high
  percentile of the taller components' heights; lengths below are in units of H.
- Lines: tall components (>= MAIN_HEIGHT) sorted left to right join the line whose last member
  they overlap vertically the most (so a slanted line of digits stays one line); small ones (a 5's
  bar, a broken stroke, a dot) join the line of the nearest tall one, or are dropped when far.
- Atoms: each component is an atom. Components that may hold several digits (wider than
  CUT_WIDTH x H, or read unsurely, rejected, or too wide for the digit they are read as: the
  classifier's first pass over the components decides) are also cut along paths of least ink from
  their top to their bottom, bent to follow the gap between slanted, overlapping neighbours
  (`digitlab.inference.cuts`), into several atoms.
- Candidate pieces: spans of consecutive atoms (by centre) up to MAX_PIECE_WIDTH wide, each
  normalised like a single digit and classified (two batched calls in all).
- Digits: a dynamic programme picks the spans covering the line whose summed score is highest.
  A piece scores -WEIGHTS . `features`: the classifier's log-probability (relative to the line's
  surest piece, so any model's confidence scale works), the model's not-a-digit decision, its height
  and width against H and its aspect against its class's in MNIST (parts of digits are low, merged
  pairs wide), the log-odds that its separate components are parts of one digit (`_pair_logit`:
  overlapping, close, one of them small, as a 5's bar or a 4 in two strokes), and the cuts made at
  its sides and the strokes they cross. The weights are fitted on synth numbers by a structured
  perceptron (`benchmarks/fit_segment.py`). So detached strokes are merged, touching digits split
  where the classifier reads both sides as digits, and a wide digit stays whole.
- Bounded time: at most MAX_CUTS cuts per component, MAX_ATOMS atoms and MAX_PIECE_WIDTH per
  piece, MAX_CANDIDATES pieces per picture (fewer cuts when there would be more).
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from digitlab.inference.cuts import Cut, cut_paths, split
from digitlab.inference.ink import InkMap, on_border
from digitlab.inference.lines import (  # the components and lines are found by the same rules as the line reader's
    ATTACH_REACH,
    DIGIT_HEIGHT_PERCENTILE,
    LINE_GAP,
    LINE_OVERLAP,
    MAIN_HEIGHT,
    MIN_PIXELS,
    SPECK_SHARE,
)
from digitlab.inference.prediction import Prediction
from digitlab.inference.preprocess import stroke_width

Box = tuple[int, int, int, int]
# uint8 (N, 28, 28) -> (one Prediction per image, float (N,): how much each looks like any class at all, the
# log of the sum of exp(logit / T) (-energy / T, Liu et al. 2020): higher for digits than for parts or pairs of them)
Classify = Callable[[np.ndarray], tuple[Sequence[Prediction], np.ndarray]]
Normalise = Callable[[np.ndarray, Box], np.ndarray]  # (own pixels bool (h, w), box) -> uint8 (28, 28)
Distances = dict[tuple[int, int], float]  # (label a, label b), a < b -> pixels between the two components


class Entry(NamedTuple):
    """A classified candidate piece."""

    image: np.ndarray  # uint8 (28, 28)
    box: Box  # working pixels
    prediction: Prediction
    support: float  # log-sum-exp of its logits / T (see Classify)


Table = dict[tuple[int, int], Entry]  # span [i, j) of atoms -> its Entry

SPLIT_WIDTH = 0.5  # components wider than this (x H) may be touching digits: candidate cuts...
CUT_WIDTH = 0.9  # ...and are cut when wider than this (x H), or read less surely than CUT_SURE x the line's
CUT_SURE = 0.9  # surest component, or rejected, or too wide for the digit they are read as
CUT_MARGIN = 0.75  # no cut whose mean column is closer than this (x the pen width) to a component's side
CUTS_PER_H = 4.0  # candidate cuts per H of a component's width...
MAX_CUTS = 12  # ...and at most this many
MAX_ATOMS = 8  # atoms per piece
MAX_PIECE_WIDTH = 1.6  # pieces wider than this (x H) are not considered
MAX_CANDIDATES = 800  # candidate pieces per picture (bounded time); beyond, fewer cuts are tried
PRUNE = 4.0  # spans of several atoms whose shape alone costs more than this (nats) are not classified
MIN_LOG_P = -9.0  # log-probabilities (relative to the surest piece) are clipped here
LOW_FROM, VERY_LOW_FROM = 0.8, 0.5  # piece heights (x H) below these cost per H: parts of digits, not digits
WIDE_FROM = 1.1  # piece widths (x H) above this cost per H: two digits, or a wide digit
ASPECT_FREE = 1.5  # a digit's width / height beyond this many sds from its class's mean: (z - free)^2 / 2
# MNIST's width / height per digit (mean, sd; training images 0-19999, ink > 40 of 255)
DIGIT_ASPECT = ((0.92, 0.17), (0.46, 0.20), (0.96, 0.21), (0.82, 0.17), (0.82, 0.16), (0.97, 0.24), (0.75, 0.16),
                (0.80, 0.17), (0.79, 0.17), (0.71, 0.14))
# log-odds that two components are parts of one digit (`_pair_logit`): logistic regression on pairs of
# components less than 0.6 H apart in synth numbers (plain, broken, touching, canvas, mixed; seed 0; AUC
# 0.95 on seed 1): bias + overlap share (of the narrower, -1..1) - distance (x H) - the lower one's height (x H)
JOIN_BIAS, JOIN_OVERLAP, JOIN_DISTANCE, JOIN_TALL = 1.85, 3.4, 2.7, 4.7
JOIN_REACH = 0.6  # distances are measured up to this (x H); farther components count as this far
# A piece's score is -WEIGHTS . features (`features`): log units, higher is better
FEATURES = (
    "log_p",  # -log of the classifier's probability, relative to the line's surest piece
    "support",  # how much less it looks like any digit than the line's most digit-like piece (Classify)
    "piece",  # 1: every piece costs (fewer pieces when the classifier is as sure)
    "low", "very_low",  # H below LOW_FROM, VERY_LOW_FROM x H of the piece's height
    "wide",  # H above WIDE_FROM x H of its width
    "aspect",  # its width / height against its class's in MNIST
    "apart",  # -log-odds that its components are parts of one digit (0 for one component)
    "cuts", "cut_strokes",  # cuts through components made at its sides (halved), strokes they cross
    "rejected",  # the classifier's not-a-digit decision
    "small",  # a small component alone: a mark, or a part of a digit left out
)
WEIGHTS = np.array([1, 0, 0, 6.24, 0.978, 0.88, 0.219, 0.273, 0, 0.316, 0.99, 1.12])
TOO_SMALL, TOO_WIDE = 0.3, 2.5  # cheap rejection: piece height below this x H, or width / height above this


@dataclass(frozen=True)
class Atom:
    """The pixels of one component between two cuts (or all of it): the unit pieces are made of."""

    label: int  # the component's label
    index: int  # its place among the component's atoms, left to right
    parts: int  # how many atoms the component was cut into (1: whole)
    box: Box  # tight box of these pixels, working pixels
    mask: np.ndarray  # bool, the shape of `box`: these pixels
    small: bool  # the component is below MAIN_HEIGHT (a part of a digit, or a mark)
    left_cut: float  # strokes crossed by the cut on its left (0.0: the component's own edge)
    right_cut: float  # ... and on its right

    @property
    def centre(self) -> float:
        return (self.box[0] + self.box[2]) / 2


@dataclass(frozen=True)
class Piece:
    """One digit (or rejected mark) found: its box in working pixels, its 28x28 and its prediction."""

    box: Box
    image: np.ndarray  # uint8 (28, 28)
    prediction: Prediction
    line: int
    reason: str | None  # why it is not a digit (cheap checks or the classifier's rejection), else None


@dataclass(frozen=True)
class _Components:
    labels: np.ndarray  # int32 (h, w)
    boxes: dict[int, Box]  # label -> box
    height: float  # H
    stroke: float  # the pen's width in pixels (2 x area / perimeter of the ink)


def segment(ink: InkMap, classify: Classify, normalise: Normalise) -> list[list[Piece]]:
    """The digits of `ink`, line by line (top to bottom), each line left to right.

    `classify` reads uint8 (N, 28, 28) images (one batched call for every candidate piece);
    `normalise` makes the 28x28 of a piece from its pixels (bool, the shape of its box) and box.
    """
    found = candidates(ink, classify, normalise)
    if found is None:
        return []
    height, lines = found
    out: list[list[Piece]] = []
    for n, line in enumerate(lines):
        chosen = best_split(len(line.atoms), scores(line, height))
        out.append([make_piece(line.table[span], line.atoms[span[0]:span[1]], height, n) for span in chosen])
    return out


@dataclass(frozen=True)
class Line:
    """One line's atoms and its candidate pieces (each span of atoms classified)."""

    atoms: list[Atom]  # ordered by centre
    table: Table
    distances: Distances  # pixels between its components, where less than JOIN_REACH x H

    @property
    def best(self) -> tuple[float, float]:
        """The highest probability and the highest support among its candidates."""
        return (max(e.prediction.probability for e in self.table.values()),
                max(e.support for e in self.table.values()))


def candidates(ink: InkMap, classify: Classify, normalise: Normalise) -> tuple[float, list[Line]] | None:
    """(H, each line's atoms and candidate pieces, classified); None when there is no ink.

    Two batched passes of the classifier: first the components and their merges, then the pieces
    made by cutting the components that may hold more than one digit (`_to_cut`: wide ones, and
    those the classifier does not read surely as a digit of their shape), so a number whose digits
    stand apart costs one pass over few pieces.
    """
    comps = _components(ink)
    if comps is None:
        return None
    H = comps.height
    lines = _lines(comps)
    distances = [_distances(line, comps) for line in lines]
    whole = [_atoms(line, comps, cut=(), max_cuts=0) for line in lines]
    known = _classified([(a, _spans(a, H, d)) for a, d in zip(whole, distances)], {}, classify, normalise)
    if not known:
        return None
    cut = [_to_cut(a, known, H) for a in whole]
    max_cuts = MAX_CUTS
    while True:  # bounded time: fewer cuts per component until the candidates fit
        atoms = [_atoms(line, comps, cut=c, max_cuts=max_cuts) for line, c in zip(lines, cut)]
        spans = [_spans(a, H, d) for a, d in zip(atoms, distances)]
        if max_cuts == 0 or sum(len(sp) for sp in spans) <= MAX_CANDIDATES:
            break
        max_cuts //= 2
    known = _classified(list(zip(atoms, spans)), known, classify, normalise)
    out = []
    for line_atoms, line_spans, line_distances in zip(atoms, spans, distances):
        table = {(i, j): known[_key(line_atoms[i:j])] for i, j in line_spans}
        out.append(Line(line_atoms, table, line_distances))
    return H, out


PieceKey = tuple[tuple[int, int, int], ...]  # (label, atom index, atoms of that label) of each atom of a piece


def _key(atoms: Sequence[Atom]) -> PieceKey:
    return tuple(sorted((a.label, a.index, a.parts) for a in atoms))


def _classified(lines: list[tuple[list[Atom], list[tuple[int, int]]]], known: dict[PieceKey, Entry],
                classify: Classify, normalise: Normalise) -> dict[PieceKey, Entry]:
    """`known` with every span of `lines` not yet in it normalised and classified (one batched call)."""
    todo: dict[PieceKey, tuple[np.ndarray, Box]] = {}
    for atoms, spans in lines:
        for i, j in spans:
            key = _key(atoms[i:j])
            if key not in known and key not in todo:
                own, box = _pixels(atoms[i:j])
                todo[key] = (normalise(own, box), box)
    if not todo:
        return known
    predictions, support = classify(np.stack([image for image, _ in todo.values()]))
    out = dict(known)
    for (key, (image, box)), prediction, sup in zip(todo.items(), predictions, np.asarray(support, np.float64)):
        out[key] = Entry(image, box, prediction, float(sup))
    return out


def _to_cut(atoms: list[Atom], known: dict[PieceKey, Entry], H: float) -> set[int]:
    """Labels of the components that may hold several digits: wider than CUT_WIDTH x H, rejected, read
    less surely than CUT_SURE of the line's surest component, or too wide for the digit they are read as."""
    whole = [(a, known[_key([a])]) for a in atoms if not a.small]
    if not whole:
        return set()
    sure = max(entry.prediction.probability for _, entry in whole)
    out = set()
    for a, (_, box, p, _) in whole:
        w, h = box[2] - box[0], box[3] - box[1]
        if w <= SPLIT_WIDTH * H:
            continue
        mean, sd = DIGIT_ASPECT[p.label] if p.class_name in _DIGITS else (0.8, 0.2)
        if w > CUT_WIDTH * H or p.rejected or p.probability < CUT_SURE * sure or (w / h - mean) / sd > ASPECT_FREE:
            out.add(a.label)
    return out


def _components(ink: InkMap) -> _Components | None:
    """Significant components: specks and dense blobs on the border left out; None when there are none."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.mask, connectivity=8)
    if n <= 1:
        return None
    h, w = labels.shape
    junk = on_border(labels, stats)  # the desk, a page edge, a shadow's rim: not writing...
    if junk[1:].all():
        junk[:] = False  # ...unless that is all there is (a tight crop)
    areas = np.where(junk, 0, stats[:, cv2.CC_STAT_AREA])
    biggest = int(areas[1:].max())
    boxes: dict[int, Box] = {}
    for lab in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[lab])
        if junk[lab] or area < max(MIN_PIXELS, SPECK_SHARE * biggest):
            continue
        boxes[lab] = (x, y, x + bw, y + bh)
    if not boxes:
        return None
    heights = np.array([b[3] - b[1] for b in boxes.values()], np.float64)
    height = float(np.percentile(heights[heights >= 0.5 * heights.max()], DIGIT_HEIGHT_PERCENTILE))
    keep = np.zeros(n, bool)
    keep[list(boxes)] = True
    stroke = stroke_width(keep[labels].astype(np.float32))
    return _Components(labels, boxes, max(height, 1.0), max(stroke, 1.0))


def _lines(comps: _Components) -> list[list[int]]:
    """Component labels per line, lines top to bottom: tall components chained left to right, small ones attached."""
    H = comps.height
    tall = sorted((lab for lab, b in comps.boxes.items() if b[3] - b[1] >= MAIN_HEIGHT * H),
                  key=lambda lab: comps.boxes[lab][0])
    lines: list[list[int]] = []
    for lab in tall:
        y0, y1 = comps.boxes[lab][1], comps.boxes[lab][3]
        best, best_overlap = None, 0.0
        for i, line in enumerate(lines):
            b = comps.boxes[line[-1]]
            overlap = (min(y1, b[3]) - max(y0, b[1])) / min(y1 - y0, b[3] - b[1])
            if overlap >= LINE_OVERLAP and overlap > best_overlap:
                best, best_overlap = i, overlap
        if best is None:
            lines.append([lab])
        else:
            lines[best].append(lab)
    if not lines:
        return []
    lines = _merge_stacked(lines, comps)
    line_of = {lab: i for i, line in enumerate(lines) for lab in line}
    h, w = comps.labels.shape
    for lab, b in comps.boxes.items():
        if lab in line_of or b[0] == 0 or b[1] == 0 or b[2] == w or b[3] == h:
            continue  # a small mark on the border (desk texture, a page's rim) is not part of a digit
        gaps = [(_gap(b, comps.boxes[t]), line_of[t]) for t in tall]
        gap, i = min(gaps)
        if gap <= ATTACH_REACH * H:
            lines[i].append(lab)
    centre = [np.mean([(comps.boxes[lab][1] + comps.boxes[lab][3]) / 2 for lab in line]) for line in lines]
    return [lines[i] for i in np.argsort(centre)]


def _merge_stacked(lines: list[list[int]], comps: _Components) -> list[list[int]]:
    """Lines whose vertical spans overlap (LINE_OVERLAP of the lower one) or nearly touch (a gap under
    LINE_GAP x H): one line; the halves of a digit broken across are not two lines of writing."""
    def span(line: list[int]) -> tuple[int, int]:
        return min(comps.boxes[lab][1] for lab in line), max(comps.boxes[lab][3] for lab in line)

    merged = True
    while merged and len(lines) > 1:
        merged = False
        for i in range(len(lines)):
            for j in range(i + 1, len(lines)):
                (a0, a1), (b0, b1) = span(lines[i]), span(lines[j])
                overlap = min(a1, b1) - max(a0, b0)
                if overlap >= LINE_OVERLAP * min(a1 - a0, b1 - b0) or -overlap < LINE_GAP * comps.height:
                    lines[i] = sorted(lines[i] + lines.pop(j), key=lambda lab: comps.boxes[lab][0])
                    merged = True
                    break
            if merged:
                break
    return lines


def _gap(a: Box, b: Box) -> float:
    gx = max(0, a[0] - b[2], b[0] - a[2])
    gy = max(0, a[1] - b[3], b[1] - a[3])
    return float(np.hypot(gx, gy))


def _atoms(line: list[int], comps: _Components, *, cut: Collection[int], max_cuts: int) -> list[Atom]:
    """The atoms of one line, ordered by centre: whole components, those labelled in `cut` (when wider
    than SPLIT_WIDTH x H) cut along least-ink paths (about CUTS_PER_H per H of width, at most `max_cuts`)."""
    H = comps.height
    out: list[Atom] = []
    for lab in line:
        x0, y0, x1, y1 = comps.boxes[lab]
        small = (y1 - y0) < MAIN_HEIGHT * H
        own = comps.labels[y0:y1, x0:x1] == lab
        cuts: list[Cut] = []
        if max_cuts and lab in cut and not small and x1 - x0 > SPLIT_WIDTH * H:
            n = min(max_cuts, int(np.ceil(CUTS_PER_H * (x1 - x0) / H)))
            cuts = cut_paths(own, stroke=comps.stroke, margin=max(1, int(CUT_MARGIN * comps.stroke)), max_cuts=n)
        strokes = [0.0] + [c.strokes for c in cuts] + [0.0]
        parts = [(m, strokes[k], strokes[k + 1]) for k, m in enumerate(split(own, cuts))]
        parts = [p for p in parts if p[0].any()]
        for k, (mask, left, right) in enumerate(parts):
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            out.append(Atom(lab, k, len(parts), (x0 + c0, y0 + r0, x0 + c1, y0 + r1), mask[r0:r1, c0:c1], small,
                            left if k else 0.0, right if k < len(parts) - 1 else 0.0))
    out.sort(key=lambda atom: atom.centre)
    return out


def _spans(atoms: list[Atom], H: float, distances: Distances) -> list[tuple[int, int]]:
    """[i, j) spans of consecutive atoms that may form one piece: at most MAX_ATOMS, MAX_PIECE_WIDTH wide,
    and (but single atoms, so that every segmentation has one) costing under PRUNE by their shape alone."""
    out = []
    for i in range(len(atoms)):
        x0, y0, x1, y1 = atoms[i].box
        for j in range(i + 1, min(len(atoms), i + MAX_ATOMS) + 1):
            b = atoms[j - 1].box
            x0, y0, x1, y1 = min(x0, b[0]), min(y0, b[1]), max(x1, b[2]), max(y1, b[3])
            if j > i + 1 and x1 - x0 > MAX_PIECE_WIDTH * H:
                break
            if j == i + 1 or WEIGHTS @ _shape(atoms[i:j], (x0, y0, x1, y1), H, distances) <= PRUNE:
                out.append((i, j))
    return out


def _pixels(atoms: Sequence[Atom]) -> tuple[np.ndarray, Box]:
    """(bool pixels of the atoms within their joint box, the box)."""
    x0, y0 = min(a.box[0] for a in atoms), min(a.box[1] for a in atoms)
    x1, y1 = max(a.box[2] for a in atoms), max(a.box[3] for a in atoms)
    own = np.zeros((y1 - y0, x1 - x0), bool)
    for a in atoms:
        ax0, ay0, ax1, ay1 = a.box
        own[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] |= a.mask
    return own, (x0, y0, x1, y1)


def features(atoms: Sequence[Atom], entry: Entry, H: float, best: tuple[float, float],
             distances: Distances) -> np.ndarray:
    """float64 (len(FEATURES),): what the score of one candidate piece is made of (costs >= 0, but `apart`).

    best: the line's highest probability and support (`Line.best`: the classifier's own scales);
    distances: between the line's components (`Line.distances`). A small component alone (a mark,
    or a part of a digit left out) has only the `small` feature.
    """
    box, prediction = entry.box, entry.prediction
    f = _shape(atoms, box, H, distances)
    if f[_F["small"]]:
        return f
    f[_F["log_p"]] = min(-MIN_LOG_P, max(0.0, -float(np.log(max(prediction.probability / best[0], 1e-12)))))
    f[_F["support"]] = min(-MIN_LOG_P, max(0.0, best[1] - entry.support))
    if prediction.class_name in _DIGITS:
        h, w = box[3] - box[1], box[2] - box[0]
        mean, sd = DIGIT_ASPECT[int(prediction.class_name)]
        f[_F["aspect"]] = 0.5 * max(0.0, abs(w / max(h, 1) - mean) / sd - ASPECT_FREE) ** 2
    f[_F["rejected"]] = float(prediction.rejected)
    return f


def _shape(atoms: Sequence[Atom], box: Box, H: float, distances: Distances) -> np.ndarray:
    """The features of a piece that need no classifier (the others are 0): its size, joins and cuts."""
    f = np.zeros(len(FEATURES))
    if len(atoms) == 1 and atoms[0].small:
        f[_F["small"]] = 1.0
        return f
    h, w = (box[3] - box[1]) / H, (box[2] - box[0]) / H
    f[_F["piece"]] = 1.0
    f[_F["low"]] = max(0.0, LOW_FROM - h)
    f[_F["very_low"]] = max(0.0, VERY_LOW_FROM - h)
    f[_F["wide"]] = max(0.0, w - WIDE_FROM)
    f[_F["apart"]] = -_join_score(atoms, H, distances)
    f[_F["cuts"]], f[_F["cut_strokes"]] = _cuts_made(atoms)
    return f


_DIGITS = frozenset("0123456789")
_F = {name: k for k, name in enumerate(FEATURES)}


def _join_score(atoms: Sequence[Atom], H: float, distances: Distances) -> float:
    """Log-odds that the components among `atoms` are parts of one digit (0.0 for pieces of one component).

    Each pair of components has the log-odds `_pair_logit` (of their parts in the piece, and of the
    distance between the whole components' pixels); the components are linked by the pairs of a maximum
    spanning tree (Prim), and the score is the sum of its links: a bar joins the body it lies on,
    whatever else the piece holds.
    """
    parts: dict[int, list[int]] = {}
    for a in atoms:
        b = parts.setdefault(a.label, list(a.box))
        b[0], b[1], b[2], b[3] = min(b[0], a.box[0]), min(b[1], a.box[1]), max(b[2], a.box[2]), max(b[3], a.box[3])
    if len(parts) == 1:
        return 0.0
    labels = list(parts)
    k = len(labels)
    logit = np.full((k, k), -np.inf)
    for i in range(k):
        for j in range(i + 1, k):
            d = distances.get((min(labels[i], labels[j]), max(labels[i], labels[j])), JOIN_REACH * H)
            box_i, box_j = parts[labels[i]], parts[labels[j]]
            logit[i, j] = logit[j, i] = _pair_logit((box_i[0], box_i[1], box_i[2], box_i[3]),
                                                    (box_j[0], box_j[1], box_j[2], box_j[3]), d, H)
    linked, total = [0], 0.0
    while len(linked) < k:
        rest = [j for j in range(k) if j not in linked]
        i, j = max(((i, j) for i in linked for j in rest), key=lambda ij: logit[ij])
        total += float(logit[i, j])
        linked.append(j)
    return total


def _distances(line: list[int], comps: _Components) -> Distances:
    """(a, b) -> pixels between components a < b of a line, for those less than JOIN_REACH x H apart."""
    reach = int(np.ceil(JOIN_REACH * comps.height))
    h, w = comps.labels.shape
    out: Distances = {}
    for a in line:
        x0, y0, x1, y1 = comps.boxes[a]
        X0, Y0, X1, Y1 = max(0, x0 - reach), max(0, y0 - reach), min(w, x1 + reach), min(h, y1 + reach)
        near = [b for b in line if b != a and _gap(comps.boxes[a], comps.boxes[b]) < reach and (min(a, b), max(a, b))
                not in out]
        if not near:
            continue
        region = comps.labels[Y0:Y1, X0:X1]
        dist = cv2.distanceTransform((region != a).astype(np.uint8),
                                     cv2.DIST_L2, 3)
        for b in near:
            hit = region == b
            out[(min(a, b), max(a, b))] = float(dist[hit].min()) if hit.any() else float(reach)
    return out


def _pair_logit(a: Box, b: Box, distance: float, H: float) -> float:
    """Log-odds that two components (boxes `a`, `b`, their pixels `distance` apart) belong to one digit.

    Parts of one digit overlap horizontally (a 5's bar over its body, a 4's strokes), lie close, and
    one of them is small; neighbouring digits stand side by side, apart, both full height.
    """
    overlap = (min(a[2], b[2]) - max(a[0], b[0])) / max(1, min(a[2] - a[0], b[2] - b[0]))
    low = min(a[3] - a[1], b[3] - b[1]) / H
    return (JOIN_BIAS + JOIN_OVERLAP * float(np.clip(overlap, -1.0, 1.0)) - JOIN_DISTANCE * distance / H
            - JOIN_TALL * min(low, 1.0))


def _cuts_made(atoms: Sequence[Atom]) -> tuple[float, float]:
    """(cuts, strokes they cross) between the piece's atoms and atoms outside it, each halved (a cut
    bounds two pieces, so a segmentation counts each of its cuts once)."""
    inside = {(a.label, a.index) for a in atoms}
    cuts = strokes = 0.0
    for a in atoms:
        if a.left_cut and (a.label, a.index - 1) not in inside:
            cuts, strokes = cuts + 0.5, strokes + 0.5 * a.left_cut
        if a.right_cut and (a.label, a.index + 1) not in inside:
            cuts, strokes = cuts + 0.5, strokes + 0.5 * a.right_cut
    return cuts, strokes


def feature_matrix(line: Line, H: float) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The line's candidate spans and their features float64 (len(spans), len(FEATURES)), row by row."""
    spans, best = list(line.table), line.best  # the line's best, once: not per span
    return spans, np.stack([features(line.atoms[i:j], line.table[(i, j)], H, best, line.distances) for i, j in spans])


def scores(line: Line, H: float, weights: np.ndarray = WEIGHTS) -> dict[tuple[int, int], float]:
    """Each candidate span's score: -weights . features (log units; higher is better)."""
    spans, phi = feature_matrix(line, H)
    return dict(zip(spans, (-(phi @ weights)).tolist()))


def best_split(n: int, score: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    """The spans [i, j) covering atoms 0..n-1 in order with the highest total score (dynamic programme)."""
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    back: list[tuple[int, int] | None] = [None] * (n + 1)
    for (i, j) in sorted(score, key=lambda s: (s[1], s[0])):
        total = best[i] + score[(i, j)]
        if total > best[j]:
            best[j], back[j] = total, (i, j)
    if not np.isfinite(best[n]):
        return []
    spans, j = [], n
    while j > 0:
        span = back[j]
        assert span is not None
        spans.append(span)
        j = span[0]
    return spans[::-1]


def make_piece(entry: Entry, atoms: Sequence[Atom], H: float, line: int) -> Piece:
    """The Piece of a chosen span, with its reason when it is not a digit (the classifier's, or cheap checks)."""
    image, box, prediction, _ = entry
    h, w = box[3] - box[1], box[2] - box[0]
    reason = None
    if prediction.rejected:
        reason = prediction.reason or "not a digit"
    elif all(a.small for a in atoms) or h < TOO_SMALL * H:
        reason = "too small to be a digit (a mark or a speck)"
    elif w > TOO_WIDE * h:
        reason = "too wide for a digit (a dash or a line)"
    return Piece(box, image, prediction, line, reason)

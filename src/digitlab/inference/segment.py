"""Every digit in a picture: ink components grouped into lines, then cut and merged into digits.

`segment(ink, classify)` takes the cleaned ink of a picture (`digitlab.inference.ink.InkMap`, the
same cleaning as a single digit's) and a classifier of 28x28 images, and returns the digits it
finds, line by line (top to bottom), each left to right, each normalised exactly as a single digit.

How, and why:
- Components: connected ink, specks (under SPECK_SHARE of the largest) and what lies along the
  picture's border (desk, page edge: `ink.on_border`) left out. The digit height H is the median height of the
  tall components; lengths below are in units of H.
- Lines: tall components (>= MAIN_HEIGHT) sorted left to right join the line whose last member
  they overlap vertically the most (so a slanted line of digits stays one line); small ones (a 5's
  bar, a broken stroke, a dot) join the line of the nearest tall one, or are dropped when far.
- Atoms: each component is an atom; a component wider than SPLIT_WIDTH (touching or overlapping
  digits) is also cut at the lowest columns of its vertical projection (candidate cuts).
- Digits: a dynamic programme over the atoms of a line, in order, picks the segmentation whose
  pieces the classifier reads most surely (one batched call for all candidate pieces; each piece
  scores the log of its best class's probability relative to the line's surest piece, so a model
  trained with label smoothing, never more than ~0.9 sure, is judged on its own scale), with
  priors in log units: a piece much lower than H, much wider than H, or
  joining atoms across an empty gap costs; cutting through ink costs per stroke crossed; two pieces
  overlapping much horizontally (strokes of one digit) cost. So detached strokes (a 5's bar, a 4
  in two strokes) are merged, touching digits are split, and a wide digit stays whole.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from digitlab.inference.ink import InkMap, on_border
from digitlab.inference.prediction import Prediction

Box = tuple[int, int, int, int]
Classify = Callable[[np.ndarray], Sequence[Prediction]]  # uint8 (N, 28, 28) -> one Prediction per image
Normalise = Callable[[np.ndarray, Box], np.ndarray]  # (own pixels bool (h, w), box) -> uint8 (28, 28)

SPECK_SHARE = 0.02  # components under this share of the largest one's area are specks
MIN_PIXELS = 3
MAIN_HEIGHT = 0.45  # components at least this tall (x H) carry lines; smaller ones are parts or marks
ATTACH_REACH = 0.6  # a small component farther than this (x H) from every tall one is dropped
LINE_OVERLAP = 0.3  # a tall component joins a line when it overlaps its last member vertically this much
LINE_GAP = 0.15  # lines closer than this (x H) vertically are one (a digit broken across its middle)
DIGIT_HEIGHT_PERCENTILE = 80  # H: this percentile of the heights of the taller components
SPLIT_WIDTH = 0.5  # components wider than this (x H) may be touching digits: candidate cuts
CUT_MARGIN = 0.18  # no cut closer than this (x H) to a component's side, or to another cut
MAX_CUTS = 4  # candidate cuts per component
MAX_ATOMS = 5  # atoms per piece
MAX_PIECE_WIDTH = 1.6  # pieces wider than this (x H) are not considered
MAX_CANDIDATES = 800  # candidate pieces per picture (bounded time); beyond, no cuts are tried
MIN_LOG_P = -9.0  # log-probabilities (relative to the surest piece) are clipped here
PIECE_COST = 0.1  # every piece: fewer pieces when the classifier is as sure
# priors, in nats
LOW_PIECE = 10.0  # per H below 0.5 H of piece height
WIDE_PIECE = 6.0  # per H above WIDE_FROM of piece width (MNIST's widest: 2s and 5s, 1.67 x their height at p99)
WIDE_FROM = 1.6
JOIN_APART = 1.2  # joining two components that overlap horizontally by less than half the narrower...
GAP_JOIN = 8.0  # ...plus this per H of empty gap between them (parts of one digit overlap; neighbours do not)
SMALL_JOIN = 0.3  # the join costs of a small atom (a bar, a dot) are scaled by this
CUT_BASE, CUT_CROSSING = 0.2, 0.2 # a cut through a component, plus per stroke crossed
ASPECT_FREE = 1.5  # a digit's width / height beyond this many sds from its class's mean costs (z - free)^2 / 2
# MNIST's width / height per digit (mean, sd; training images 0-19999, ink > 40 of 255)
DIGIT_ASPECT = ((0.92, 0.17), (0.46, 0.20), (0.96, 0.21), (0.82, 0.17), (0.82, 0.16), (0.97, 0.24), (0.75, 0.16),
                (0.80, 0.17), (0.79, 0.17), (0.71, 0.14))
OVERLAP_SPLIT = 4.0  # per unit of horizontal overlap share beyond OVERLAP_FREE between neighbouring pieces
OVERLAP_FREE = 0.25
SMALL_ALONE = 1.0  # a small atom alone (a mark, not a digit): its cost instead of the classifier's
TOO_SMALL, TOO_WIDE = 0.3, 2.5  # cheap rejection: piece height below this x H, or width / height above this


@dataclass(frozen=True)
class Atom:
    """Pixels of one component between two columns: the unit pieces are made of."""

    label: int
    x0: int  # column range [x0, x1) in working pixels
    x1: int
    box: Box  # tight box of these pixels
    small: bool  # below MAIN_HEIGHT (a part of a digit, or a mark)
    crossings: int  # strokes crossed by the cut at its right side (0: the component ends there)

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


def segment(ink: InkMap, classify: Classify, normalise: Normalise) -> list[list[Piece]]:
    """The digits of `ink`, line by line (top to bottom), each line left to right.

    `classify` reads uint8 (N, 28, 28) images (one batched call for every candidate piece);
    `normalise` makes the 28x28 of a piece from its pixels (bool, the shape of its box) and box.
    """
    comps = _components(ink)
    if comps is None:
        return []
    lines = _lines(comps)
    atoms = [_atoms(line, comps, cuts=True) for line in lines]
    if sum(_count_candidates(a, comps.height) for a in atoms) > MAX_CANDIDATES:
        atoms = [_atoms(line, comps, cuts=False) for line in lines]
    spans = [_candidate_spans(a, comps.height) for a in atoms]
    images, boxes = [], []
    for line_atoms, line_spans in zip(atoms, spans):
        for i, j in line_spans:
            own, box = _pixels(line_atoms[i:j], comps.labels)
            images.append(normalise(own, box))
            boxes.append(box)
    if not images:
        return []
    predictions = list(classify(np.stack(images)))
    out: list[list[Piece]] = []
    k = 0
    for n, (line_atoms, line_spans) in enumerate(zip(atoms, spans)):
        table = {span: (images[k + m], boxes[k + m], predictions[k + m]) for m, span in enumerate(line_spans)}
        k += len(line_spans)
        chosen = _best_split(line_atoms, table, comps.height)
        pieces = [_piece(table[span], line_atoms[span[0]:span[1]], comps.height, n) for span in chosen]
        out.append(pieces)
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
    return _Components(labels, boxes, max(height, 1.0))


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


def _atoms(line: list[int], comps: _Components, *, cuts: bool) -> list[Atom]:
    """The atoms of one line, ordered by centre: whole components, wide ones also cut at projection minima."""
    H = comps.height
    out: list[Atom] = []
    for lab in line:
        x0, y0, x1, y1 = comps.boxes[lab]
        small = (y1 - y0) < MAIN_HEIGHT * H
        own = comps.labels[y0:y1, x0:x1] == lab
        xs = [x0, x1]
        crossings = [0]
        if cuts and not small and x1 - x0 > SPLIT_WIDTH * H:
            xs, crossings = _cuts(own, x0, H)
        for a, b, c in zip(xs[:-1], xs[1:], crossings):
            cols = own[:, a - x0 : b - x0]
            rows = np.flatnonzero(cols.any(axis=1))
            if rows.size == 0:
                continue
            out.append(Atom(lab, a, b, (a, y0 + int(rows[0]), b, y0 + int(rows[-1]) + 1), small, c))
    out.sort(key=lambda atom: atom.centre)
    return out


def _cuts(own: np.ndarray, x0: int, H: float) -> tuple[list[int], list[int]]:
    """(column boundaries [x0, c1, ..., x1], strokes crossed at each boundary but the last: 0 for the end)."""
    w = own.shape[1]
    proj = own.sum(axis=0).astype(np.float32)
    smooth = cv2.blur(proj[None], (3, 1))[0]
    margin = max(1, int(CUT_MARGIN * H))
    order = np.argsort(smooth[margin : w - margin], kind="stable") + margin
    chosen: list[int] = []
    for c in order.tolist():
        if len(chosen) >= MAX_CUTS:
            break
        is_min = smooth[c] <= smooth[max(0, c - 1)] and smooth[c] <= smooth[min(w - 1, c + 1)]
        if is_min and all(abs(c - d) >= margin for d in chosen):
            chosen.append(c)
    chosen.sort()
    crossings = [_runs(own[:, c]) for c in chosen]
    return [x0] + [x0 + c for c in chosen] + [x0 + w], crossings + [0]


def _runs(column: np.ndarray) -> int:
    """How many separate runs of ink a column crosses."""
    c = column.astype(np.int8)
    return int(np.count_nonzero(np.diff(np.concatenate([[0], c])) == 1))


def _spans(atoms: list[Atom], H: float) -> list[tuple[int, int]]:
    out = []
    for i in range(len(atoms)):
        x0 = atoms[i].box[0]
        x1 = atoms[i].box[2]
        for j in range(i + 1, min(len(atoms), i + MAX_ATOMS) + 1):
            x0, x1 = min(x0, atoms[j - 1].box[0]), max(x1, atoms[j - 1].box[2])
            if j > i + 1 and x1 - x0 > MAX_PIECE_WIDTH * H:
                break
            out.append((i, j))
    return out


def _count_candidates(atoms: list[Atom], H: float) -> int:
    return len(_spans(atoms, H))


def _candidate_spans(atoms: list[Atom], H: float) -> list[tuple[int, int]]:
    """[i, j) spans of consecutive atoms that may form one piece (at most MAX_ATOMS, MAX_PIECE_WIDTH wide)."""
    return _spans(atoms, H)


def _pixels(atoms: Sequence[Atom], labels: np.ndarray) -> tuple[np.ndarray, Box]:
    """(bool pixels of the atoms within their joint box, the box)."""
    x0, y0 = min(a.box[0] for a in atoms), min(a.box[1] for a in atoms)
    x1, y1 = max(a.box[2] for a in atoms), max(a.box[3] for a in atoms)
    own = np.zeros((y1 - y0, x1 - x0), bool)
    region = labels[y0:y1, x0:x1]
    for a in atoms:
        own[:, a.x0 - x0 : a.x1 - x0] |= region[:, a.x0 - x0 : a.x1 - x0] == a.label
    return own, (x0, y0, x1, y1)


def _piece_score(atoms: Sequence[Atom], box: Box, prediction: Prediction, H: float, sure: float) -> float:
    """Log-score of one candidate piece: the classifier's confidence (relative to `sure`) plus shape priors."""
    if len(atoms) == 1 and atoms[0].small:
        return -SMALL_ALONE
    score = max(MIN_LOG_P, float(np.log(max(prediction.probability / sure, 1e-12)))) - PIECE_COST
    score = min(score, 0.0)
    if prediction.rejected:
        score += MIN_LOG_P / 2
    h, w = box[3] - box[1], box[2] - box[0]
    score -= LOW_PIECE * max(0.0, 0.5 - h / H)
    score -= WIDE_PIECE * max(0.0, w / H - WIDE_FROM)
    if prediction.class_name in _DIGITS:
        mean, sd = DIGIT_ASPECT[int(prediction.class_name)]
        score -= 0.5 * max(0.0, abs(w / max(h, 1) - mean) / sd - ASPECT_FREE) ** 2
    return score - _join_cost(atoms, H)


_DIGITS = frozenset("0123456789")


def _join_cost(atoms: Sequence[Atom], H: float) -> float:
    """Cost of joining the components among `atoms` into one piece (pieces of one component cost nothing)."""
    parts: dict[int, list[int]] = {}
    small: dict[int, bool] = {}
    for a in atoms:
        box = parts.setdefault(a.label, [a.box[0], a.box[2]])
        box[0], box[1] = min(box[0], a.box[0]), max(box[1], a.box[2])
        small[a.label] = small.get(a.label, True) and a.small
    spans = sorted((x0, x1, small[lab]) for lab, (x0, x1) in parts.items())
    cost = 0.0
    right, right_small = spans[0][1], spans[0][2]
    for x0, x1, is_small in spans[1:]:
        narrower = max(1, min(x1 - x0, right - spans[0][0]))
        share = (min(x1, right) - x0) / max(1, min(x1 - x0, narrower))
        c = JOIN_APART * min(1.0, max(0.0, (0.5 - share) / 0.5)) + GAP_JOIN * max(0, x0 - right) / H
        cost += c * (SMALL_JOIN if is_small or right_small else 1.0)
        right, right_small = max(right, x1), is_small and right_small
    return cost


def _boundary_cost(left: Sequence[Atom], right: Sequence[Atom], H: float) -> float:
    """Cost of ending one piece at `left[-1]` and starting the next at `right[0]`."""
    cost = 0.0
    if left[-1].label == right[0].label and left[-1].x1 == right[0].x0:
        cost += CUT_BASE + CUT_CROSSING * left[-1].crossings
    lx0, lx1 = min(a.box[0] for a in left), max(a.box[2] for a in left)
    rx0, rx1 = min(a.box[0] for a in right), max(a.box[2] for a in right)
    overlap = min(lx1, rx1) - max(lx0, rx0)
    if overlap > 0:
        share = overlap / max(1, min(lx1 - lx0, rx1 - rx0))
        cost += OVERLAP_SPLIT * max(0.0, share - OVERLAP_FREE)
    return cost


def _best_split(atoms: list[Atom], table: dict, H: float) -> list[tuple[int, int]]:
    """The spans covering all atoms, in order, with the highest total score (dynamic programme).

    A state is the last span (i, j); its best total includes the boundary cost with the span
    before it, so the choice is exact for these scores.
    """
    n = len(atoms)
    sure = max(entry[2].probability for entry in table.values())
    score = {span: _piece_score(atoms[span[0]:span[1]], entry[1], entry[2], H, sure) for span, entry in table.items()}
    ending: dict[int, list[tuple[int, int]]] = {}
    for span in table:
        ending.setdefault(span[1], []).append(span)
    best: dict[tuple[int, int], float] = {}
    back: dict[tuple[int, int], tuple[int, int] | None] = {}
    for span in sorted(table, key=lambda s: (s[1], s[0])):
        i, j = span
        if i == 0:
            best[span], back[span] = score[span], None
            continue
        options = [(best[p] - _boundary_cost(atoms[p[0]:i], atoms[i:j], H), p) for p in ending.get(i, []) if p in best]
        if options:
            total, prev = max(options)
            best[span], back[span] = total + score[span], prev
    finals = [s for s in ending.get(n, []) if s in best]
    if not finals:
        return []
    state: tuple[int, int] | None = max(finals, key=lambda s: best[s])
    spans = []
    while state is not None:
        spans.append(state)
        state = back[state]
    return spans[::-1]


def _piece(entry: tuple, atoms: Sequence[Atom], H: float, line: int) -> Piece:
    image, box, prediction = entry
    h, w = box[3] - box[1], box[2] - box[0]
    reason = None
    if prediction.rejected:
        reason = prediction.reason or "not a digit"
    elif all(a.small for a in atoms) or h < TOO_SMALL * H:
        reason = "too small to be a digit (a mark or a speck)"
    elif w > TOO_WIDE * h:
        reason = "too wide for a digit (a dash or a line)"
    return Piece(box, image, prediction, line, reason)

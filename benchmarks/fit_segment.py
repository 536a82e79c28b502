"""Fit the weights of `digitlab.inference.segment`'s piece score on synth numbers: `python -m benchmarks.fit_segment`.

    .venv/bin/python -m benchmarks.fit_segment [RUN] --seeds 100,101 --n 40 --epochs 10

A segmentation's score is the sum over its pieces of -WEIGHTS . features (segment.features: the
classifier's log-probability, height and width against the line's digit height, aspect, how likely
separate components are parts of one digit, cuts made, ...). The weights are fitted by an averaged
structured perceptron (Collins 2002) with non-negative weights: for every line of every training
picture, the best segmentation under the current weights (segment.best_split) is compared with the
best one that reads the truth (each digit a piece whose box matches the digit's, IoU >= MATCH, with
the right label; other pieces rejected as marks), and the weights move from the first's features
towards the second's when they differ in text. Lines whose truth no candidate segmentation reads
are skipped (the cuts, not the weights, are at fault there). Training pictures come from synth
seeds that the evaluation (`benchmarks.read_accuracy`, seeds 0-2) does not use.
Prints the weights, the share of training lines read right before and after, and the candidates' coverage.
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MATCH = 0.6  # a piece reads a truth digit when its box overlaps the digit's by this IoU and the label is right
CONDITIONS = ("number_plain", "number_ruled", "number_squared", "number_touching", "number_broken",
              "number_two_lines", "number_mixed_photo", "number_mixed", "canvas_number", "printed_number")


def _iou(a: Any, b: Any) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / max(union, 1e-9)


def line_problems(predictor: Any, image: np.ndarray, text: str, boxes: list[list[int]]) -> list[dict[str, Any]]:
    """Per line of the picture: spans, their features, which truth digit (or none) each may read, the truth."""
    from digitlab.inference import segment as seg
    from digitlab.inference.ink import find_ink
    from digitlab.inference.preprocess import faint_components, picture, piece_ink, to_profile

    pic = picture(image)
    ink = find_ink(pic.pixels)
    faint = faint_components(ink)
    found = seg.candidates(ink, _classify(predictor),
                           lambda own, box: to_profile(piece_ink(ink, own, box, faint)[0], predictor.preprocessing))
    if found is None:
        return []
    H, lines = found
    sx, sy = pic.scale
    truth = [(b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy) for b in boxes]
    labels = [int(c) for c in text.replace("\n", "")]
    best_line = [int(np.argmax([max((_iou(t, e.box) for e in line.table.values()), default=0.0) for line in lines]))
                 for t in truth]
    out = []
    for n, line in enumerate(lines):
        mine = [k for k in range(len(truth)) if best_line[k] == n]
        spans, phi = seg.feature_matrix(line, H)
        reads, junk, names = [], [], []
        for i, j in spans:
            entry = line.table[(i, j)]
            piece = seg.make_piece(entry, line.atoms[i:j], H, n)
            junk.append(piece.reason is not None)
            names.append(entry.prediction.class_name if piece.reason is None else "")
            reads.append({m for m, k in enumerate(mine) if piece.reason is None and entry.prediction.label == labels[k]
                          and _iou(entry.box, truth[k]) >= MATCH})
        out.append({"n": len(line.atoms), "spans": spans, "phi": phi, "reads": reads, "junk": junk, "names": names,
                    "digits": len(mine), "text": "".join(str(labels[k]) for k in mine)})
    return out


def _classify(predictor: Any) -> Any:
    """The classifier `reading.read_pieces` gives `segment` (predictions and support), for this predictor."""
    from digitlab.inference.reading import classifier

    return classifier(predictor)


def truth_path(problem: dict[str, Any], score: np.ndarray) -> list[int] | None:
    """Indices of the spans of the best-scoring segmentation reading the truth (None when there is none)."""
    n, d = problem["n"], problem["digits"]
    best = np.full((n + 1, d + 1), -np.inf)
    best[0, 0] = 0.0
    back: dict[tuple[int, int], tuple[int, int, int]] = {}
    order = sorted(range(len(problem["spans"])), key=lambda s: problem["spans"][s][1])
    for s in order:
        i, j = problem["spans"][s]
        for k in range(d + 1):
            if not np.isfinite(best[i, k]):
                continue
            moves = [k] if problem["junk"][s] else [k + 1] if k in problem["reads"][s] else []
            for k2 in moves:
                if best[i, k] + score[s] > best[j, k2]:
                    best[j, k2] = best[i, k] + score[s]
                    back[(j, k2)] = (s, i, k)
    if not np.isfinite(best[n, d]):
        return None
    path, state = [], (n, d)
    while state != (0, 0):
        s, i, k = back[state]
        path.append(s)
        state = (i, k)
    return path[::-1]


def predicted_path(problem: dict[str, Any], score: np.ndarray) -> list[int]:
    """Indices of the spans `segment.best_split` picks under these scores."""
    from digitlab.inference.segment import best_split

    index = {span: s for s, span in enumerate(problem["spans"])}
    chosen = best_split(problem["n"], dict(zip(problem["spans"], score.tolist())))
    return [index[span] for span in chosen]


def fit(problems: list[dict[str, Any]], start: np.ndarray, epochs: int, margin: float, seed: int = 0) -> np.ndarray:
    """Averaged structured perceptron over the lines with a truth path; non-negative weights.

    Loss-augmented: while searching for the best segmentation, every piece that reads no truth digit
    (and is not a rejected mark) scores `margin` more, so the weights keep the truth ahead by a margin.
    """
    rng = np.random.default_rng(seed)
    w, total, count = start.astype(np.float64).copy(), np.zeros_like(start, dtype=np.float64), 0
    usable = [p for p in problems if truth_path(p, -(p["phi"] @ w)) is not None]
    for _ in range(epochs):
        for k in rng.permutation(len(usable)):
            p = usable[k]
            score = -(p["phi"] @ w)
            wrong = np.array([not (junk or reads) for junk, reads in zip(p["junk"], p["reads"])], np.float64)
            pred = predicted_path(p, score + margin * wrong)
            if "".join(p["names"][s] for s in pred) != p["text"]:
                truth = truth_path(p, score)
                assert truth is not None
                w = np.maximum(w + p["phi"][pred].sum(0) - p["phi"][truth].sum(0), 0.0)
            total += w
            count += 1
    return total / max(count, 1)


def search(problems: list[dict[str, Any]], start: np.ndarray, rounds: int) -> np.ndarray:
    """Coordinate search: each weight in turn scaled by FACTORS (or set to SEEDS when 0), kept when more
    lines read right; `log_p`'s weight stays 1 (the scale). Up to `rounds` passes, until none helps."""
    w = start.astype(np.float64).copy()
    best = share_right(problems, w)
    for _ in range(rounds):
        improved = False
        for k in range(1, len(w)):
            for value in [w[k] * f for f in FACTORS] if w[k] else list(SEEDS):
                trial = w.copy()
                trial[k] = value
                right = share_right(problems, trial)
                if right > best + 1e-9:
                    w, best, improved = trial, right, True
        if not improved:
            break
    return w


FACTORS = (0.0, 0.25, 0.5, 0.7, 1.4, 2.0, 4.0)
SEEDS = (0.05, 0.2, 0.5, 1.0, 3.0)


def share_right(problems: list[dict[str, Any]], w: np.ndarray) -> float:
    """The share of lines whose best segmentation under `w` reads the truth."""
    right = [("".join(p["names"][s] for s in predicted_path(p, -(p["phi"] @ w))) == p["text"]) for p in problems]
    return float(np.mean(right)) if right else 0.0


def main(argv: list[str] | None = None) -> int:
    """Build the training pictures, fit, print the weights."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.fit_segment", description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="*", default=None,
                   help="run directories or model.json files to fit with, 'bundled' for the bundled model "
                   "(default: the bundled model)")
    p.add_argument("--margin", type=float, default=1.0, help="loss-augmented margin per wrong piece (default: 1.0)")
    p.add_argument("--seeds", default="100,101", help="synth seeds to train on (default: 100,101)")
    p.add_argument("--holdout-seeds", default="102", help="synth seeds to check the fit on (default: 102)")
    p.add_argument("--n", type=int, default=40, help="pictures per condition and seed (default: 40)")
    p.add_argument("--method", choices=("search", "perceptron"), default="search",
                   help="coordinate search on the share of lines read right, or a structured perceptron "
                   "(default: search)")
    p.add_argument("--epochs", type=int, default=10, help="perceptron epochs (default: 10)")
    p.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated (default: every number one)")
    p.add_argument("--cache", type=Path, default=None, help="keep built sets here (default: none)")
    p.add_argument("--problems", type=Path, default=None,
                   help="pickle of the lines' candidates: read when it exists, else written (default: none)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    from benchmarks.read_accuracy import build
    from benchmarks.realistic import load_mnist_test
    from digitlab.inference import Predictor
    from digitlab.inference.segment import FEATURES, WEIGHTS

    predictors = [Predictor.load(None if m == "bundled" else m) for m in args.models or ["bundled"]]
    mnist = load_mnist_test(None)

    def problems_of(seeds: str, path: Path | None) -> list[dict[str, Any]]:
        if path is not None and path.exists():
            return pickle.loads(path.read_bytes())
        out: list[dict[str, Any]] = []
        for name in args.conditions.split(","):
            for seed in (int(s) for s in seeds.split(",")):
                for row in build(name, args.n, seed, mnist, clean=False, cache=args.cache):
                    for predictor in predictors:
                        out += line_problems(predictor, row["image"], row["text"], row["boxes"])
        if path is not None:
            path.write_bytes(pickle.dumps(out))
        return out

    problems = problems_of(args.seeds, args.problems)
    holdout = problems_of(args.holdout_seeds, args.problems.with_suffix(".holdout.pkl") if args.problems else None)
    covered = [q for q in problems if truth_path(q, -(q["phi"] @ WEIGHTS)) is not None]
    print(f"{len(problems)} lines, {len(covered)} with a segmentation reading the truth")
    print(f"right before: {share_right(covered, WEIGHTS):.3f}, held out {share_right(holdout, WEIGHTS):.3f}")
    start = WEIGHTS / WEIGHTS[FEATURES.index("log_p")]
    w = fit(covered, start, args.epochs, args.margin) if args.method == "perceptron" else search(covered, start, 4)
    print(f"right after: {share_right(covered, w):.3f}, held out {share_right(holdout, w):.3f} "
          f"({len(holdout)} held-out lines, all counted)")
    scale = 1.0 / max(w[FEATURES.index("log_p")], 1e-9)  # the classifier's log-probability in its own units
    print("WEIGHTS = np.array([" + ", ".join(f"{v * scale:.3g}" for v in w) + "])")
    for name, v in zip(FEATURES, w * scale):
        print(f"  {name}: {v:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

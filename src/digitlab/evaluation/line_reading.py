"""How well a line reader reads synthetic lines: exact lines, characters, digits, marks, noise, spans.

    metrics = evaluate_reader(model, condition_set("touching", 500, seed=1, digits=x_test, labels=y_test))
    metrics["exact"], metrics["digit_accuracy"], metrics["cer"]

Characters are matched by a minimum edit-distance alignment of the read text to the true one
(Levenshtein 1966): `digit_accuracy` = true digits aligned to the same digit / true digits;
`mark_recall` = true non-digit marks aligned to "?" / true marks; `cer` = edits / true characters;
`exact` = lines read exactly (a line of noise is read exactly when nothing is read).
`span_hit` = aligned correct characters whose span centre lies inside the true ink extent.

`calibrate_reader` fits the temperature of the reader's character probabilities on held-out lines
(Guo et al. 2017's temperature scaling, on each character's peak frame) and the threshold under
which a digit is refused as unsure.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from digitlab.inference.ctc import DecodedChar, best_path_runs, read_lines
from digitlab.layout import ALPHABET
from digitlab.models.runner import softmax
from digitlab.synth.lines import LineBatch, condition_set, labels_to_text

NONDIGIT_CHAR = "?"


def align(truth: str, read: str) -> list[tuple[int, int]]:
    """(i, j) pairs of `truth`[i] aligned to `read`[j] (equal or substituted) by a minimum edit-distance path.

    Ties prefer a match or substitution, then a deletion; the result is in increasing order.
    """
    n, m = len(truth), len(read)
    cost = np.zeros((n + 1, m + 1), np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):  # a (13 x 13) table at most: lines hold 12 characters
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + (truth[i - 1] != read[j - 1]), cost[i - 1, j] + 1,
                             cost[i, j - 1] + 1)
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (truth[i - 1] != read[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def edit_distance(truth: str, read: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions turning `truth` into `read`."""
    pairs = align(truth, read)
    subs = sum(truth[i] != read[j] for i, j in pairs)
    return len(truth) + len(read) - 2 * len(pairs) + subs


def score_lines(truths: Sequence[str], reads: Sequence[Sequence[DecodedChar]],
                spans: Sequence[np.ndarray] | None = None,
                kinds: Sequence[Sequence[str]] | None = None) -> dict[str, Any]:
    """Metrics of read lines against their true texts; with true int (L, 2) `spans`, `span_hit`;
    with each character's kind ("digit", "printed:A", "doodle:heart": LineBatch.kinds), `mark_recall`
    per kind of mark."""
    counts = dict.fromkeys(("exact", "edits", "chars", "digits", "digits_ok", "marks", "marks_ok", "ok",
                            "span_hits", "noise", "noise_ok"), 0)
    by_kind: dict[str, list[int]] = {}  # kind of mark -> [read as "?", seen]
    for k, (truth, chars) in enumerate(zip(truths, reads, strict=True)):
        read = "".join(c.char for c in chars)
        counts["exact"] += truth == read
        counts["edits"] += edit_distance(truth, read)
        counts["chars"] += len(truth)
        counts["digits"] += sum(c != NONDIGIT_CHAR for c in truth)
        counts["marks"] += truth.count(NONDIGIT_CHAR)
        counts["noise"] += truth == ""
        counts["noise_ok"] += truth == "" and read == ""
        pairs = align(truth, read)
        if kinds is not None:
            _count_kinds(by_kind, truth, read, pairs, kinds[k])
        for i, j in pairs:
            if truth[i] != read[j]:
                continue
            counts["ok"] += 1
            counts["digits_ok" if truth[i] != NONDIGIT_CHAR else "marks_ok"] += 1
            if spans is not None:
                centre = 0.5 * (chars[j].span[0] + chars[j].span[1])
                counts["span_hits"] += bool(spans[k][i][0] <= centre <= spans[k][i][1])
    rates = _rates(counts, len(truths))
    if kinds is not None:
        rates["mark_recall_by_kind"] = {g: round(ok / seen, 4) for g, (ok, seen) in sorted(by_kind.items())}
    return rates


def _count_kinds(by_kind: dict[str, list[int]], truth: str, read: str, pairs: list[tuple[int, int]],
                 kinds: Sequence[str]) -> None:
    """Add one line's marks to `by_kind` (kind group -> [read as "?", seen]), in place."""
    read_as = {i: read[j] for i, j in pairs}
    for i, c in enumerate(truth):
        if c == NONDIGIT_CHAR:
            entry = by_kind.setdefault(kinds[i].split(":")[0], [0, 0])
            entry[0] += read_as.get(i) == NONDIGIT_CHAR
            entry[1] += 1


def _rates(c: dict[str, int], lines: int) -> dict[str, Any]:
    """The rates of `score_lines` from its counts (None where nothing was there to count)."""
    def rate(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {"lines": lines, "exact": rate(c["exact"], lines), "cer": rate(c["edits"], c["chars"]),
            "digit_accuracy": rate(c["digits_ok"], c["digits"]), "mark_recall": rate(c["marks_ok"], c["marks"]),
            "noise_silent": rate(c["noise_ok"], c["noise"]), "span_hit": rate(c["span_hits"], c["ok"]),
            "chars": c["chars"]}


def evaluate_reader(model: nn.Module, batch: LineBatch, *, batch_size: int = 64) -> dict[str, Any]:
    """`score_lines` of `model` (a LineReader) reading the lines of `batch` against their truth."""
    reads = read_lines(model, batch.images, batch_size=batch_size)
    return score_lines([labels_to_text(lab) for lab in batch.labels], reads, batch.spans, batch.kinds)


# -- calibration of the reader's character probabilities ----------------------------------------

TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(8.0), 241))  # the grid searched (log-spaced, 1.5% apart)
ECE_BINS = 15
KEEP_CORRECT = 0.99  # reject_below keeps this share of the held-out digits read correctly


@dataclass(frozen=True)
class ReaderCalibration:
    """A temperature for the reader's frame log-probabilities and what it does on held-out lines."""

    temperature: float
    ece_before: float  # of the characters' peak probabilities against being right, at T = 1
    ece_after: float  # ... at `temperature`
    reject_below: float  # calibrated probability under which a digit is refused as unsure
    chars: int  # characters read in the held-out lines


def char_confidences(log_probs: Sequence[np.ndarray], truths: Sequence[str]) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray]:
    """For every character read (best path) from lines' log-probabilities (T_i, C) at T = 1:
    (its peak frame's log-probabilities (N, C), its class (N,), whether it is right (N,) by alignment)."""
    rows, classes, right = [], [], []
    for lp, truth in zip(log_probs, truths, strict=True):
        if len(lp) == 0:
            continue
        runs = best_path_runs(lp.argmax(1))
        text = "".join(ALPHABET[c - 1] for _, _, c in runs)
        ok = np.zeros(len(runs), bool)
        for i, j in align(truth, text):
            ok[j] = truth[i] == text[j]
        for (s, e, c), good in zip(runs, ok.tolist(), strict=True):
            rows.append(lp[s + int(lp[s:e, c].argmax())])
            classes.append(c)
            right.append(good)
    width = log_probs[0].shape[1] if log_probs else 0
    return (np.array(rows, np.float64).reshape(-1, width), np.array(classes, np.int64), np.array(right, bool))


def binary_ece(confidence: np.ndarray, right: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of confidences in [0, 1] against outcomes: equal-width bins, weighted by size."""
    if confidence.size == 0:
        return 0.0
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    total = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, confidence, n_bins) - np.bincount(bins, right.astype(np.float64), n_bins))
    return float(gap.sum() / confidence.size) if total.sum() else 0.0


def _peak_probability(rows: np.ndarray, classes: np.ndarray, t: float) -> np.ndarray:
    """float64 (n,): the probability of `classes` (n,) in softmax(rows (n, C) / t)."""
    return softmax(rows, t)[np.arange(len(rows)), classes]


def calibrate_reader(log_probs: Sequence[np.ndarray], truths: Sequence[str]) -> ReaderCalibration:
    """The temperature minimising the log-loss of "this character is right" over held-out lines (a grid over
    TEMPERATURES: one parameter, so a grid is exact enough and needs no solver), its ECE before and after,
    and the digit threshold keeping KEEP_CORRECT of the right digits. Nothing read: temperature 1, no threshold."""
    rows, classes, right = char_confidences(log_probs, truths)
    if rows.size == 0:  # an untrained reader reads nothing: nothing to calibrate (temperature 1)
        return ReaderCalibration(1.0, 0.0, 0.0, 0.0, 0)
    eps = 1e-12
    losses = []
    for t in TEMPERATURES:
        p = np.clip(_peak_probability(rows, classes, float(t)), eps, 1 - eps)
        losses.append(-np.mean(np.where(right, np.log(p), np.log1p(-p))))
    t_best = float(TEMPERATURES[int(np.argmin(losses))])
    before, after = _peak_probability(rows, classes, 1.0), _peak_probability(rows, classes, t_best)
    digit_right = right & (classes < len(ALPHABET))  # ALPHABET[-1] is the not-a-digit symbol
    threshold = float(np.quantile(after[digit_right], 1 - KEEP_CORRECT)) if digit_right.any() else 0.0
    return ReaderCalibration(t_best, binary_ece(before, right), binary_ece(after, right), threshold, len(rows))


# -- a saved reader measured and calibrated: what `digitlab evaluate READER` and the recipe run -------

EVAL_CONDITIONS = ("spaced", "touching", "overlapping", "broken", "mixed_nondigit", "noise_only", "noisy")
EVAL_SEED, CALIBRATION_SEED, PAGE_SEED = 1000, 2000, 3000  # held-out sets: MNIST test digits, held-out marks
# What `read` refuses (measured on the realistic photo and canvas numbers, 6 conditions x 50, and 200 synthetic
# lines with marks): refusing digits under the calibrated 1% quantile (0.51) and every mark read exactly 72.3% of
# the numbers and refused 71.6% of marks; refusing no digit as unsure 75.3% / 71.6%; also reading a mark the
# reader is under 70% sure of as its likeliest digit 78.7% / 56.6% (at 90%: 80.3% / 43.4%). Numbers are what
# `read` is for: unsure digits are kept (their probability says how unsure), marks refused from 70% sure.
REJECT_BELOW = 0.0
MARK_SURE = 0.7


def evaluate_reader_folder(folder: str | Path, x_test: np.ndarray, y_test: np.ndarray, *, eval_lines: int = 400,
                           calibration_lines: int = 1000, page: bool = True) -> dict[str, Any]:
    """Calibrate the reader saved in `folder` and measure it; writes the calibration and the figures into its
    reader.json (read by `digitlab.inference.reader.Reader`) and report.json. Returns the report.

    On lines made from `x_test` / `y_test` (MNIST's test split) and held-out non-digit kinds and fonts:
    temperature and unsure threshold on `calibration_lines` lines of the "train" mix (seed
    CALIBRATION_SEED); per condition of EVAL_CONDITIONS, `eval_lines` lines (seeds EVAL_SEED + k);
    with `page`, a page of 1,200 digits in 40 lines (`digitlab.synth.pages`) and the noise pages.
    """
    from digitlab._io import atomic_write_json
    from digitlab.inference.reader import Reader
    from digitlab.models.reader import META, load_reader

    folder = Path(folder)
    model = load_reader(folder)
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    for key in ("calibration", "reject_below"):
        meta.pop(key, None)
    raw = Reader(model, meta, folder)  # temperature 1: what calibration starts from
    held = condition_set("train", calibration_lines, seed=CALIBRATION_SEED, digits=x_test, labels=y_test)
    cal = calibrate_reader(raw.log_probs(held.images), held.texts)
    meta["calibration"] = {"temperature": cal.temperature, "ece_before": cal.ece_before, "ece_after": cal.ece_after,
                           "chars": cal.chars, "lines": calibration_lines, "seed": CALIBRATION_SEED}
    meta["reject_below"] = REJECT_BELOW
    meta["unsure_below"] = cal.reject_below  # informational: 1% of right digits read under this
    meta["mark_sure"] = MARK_SURE
    report: dict[str, Any] = {"calibration": meta["calibration"], "reject_below": REJECT_BELOW,
                              "unsure_below": cal.reject_below, "mark_sure": MARK_SURE, "conditions": {}}
    for k, name in enumerate(EVAL_CONDITIONS):
        lines = condition_set(name, eval_lines, seed=EVAL_SEED + k, digits=x_test, labels=y_test)
        report["conditions"][name] = evaluate_reader(model, lines)
    if page:
        report["pages"] = _pages(Reader(model, meta, folder), x_test, y_test)
    meta["metrics"] = report
    atomic_write_json(folder / META, meta)
    atomic_write_json(folder / "report.json", report)
    return report


def _pages(reader: Any, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """A page of 1,200 test digits (40 lines of 30) and the noise pages, read whole: digits right, lines, time."""
    import time

    from digitlab.inference.reading import read
    from digitlab.synth.pages import NOISE_KINDS, digit_page, noise_page

    page, text = digit_page(x_test, y_test, np.random.default_rng(PAGE_SEED))
    start = time.perf_counter()
    got = read(reader, page).text
    seconds = time.perf_counter() - start
    truths, reads = text.split("\n"), got.split("\n")
    right = sum(len(align(t, r)) - sum(t[i] != r[j] for i, j in align(t, r))
                for t, r in zip(truths, reads, strict=False)) if len(reads) == len(truths) else 0
    out: dict[str, Any] = {"digit_page": {"digits": len(text.replace("\n", "")), "digits_right": right,
                                          "lines": len(truths), "lines_read": len(reads),
                                          "lines_exact": sum(a == b for a, b in zip(truths, reads, strict=False)),
                                          "seconds": round(seconds, 2)}}
    for kind in NOISE_KINDS:
        out[f"noise_{kind}"] = {"digits_read": len(read(reader, noise_page(kind, np.random.default_rng(PAGE_SEED)))
                                                   .text.replace("\n", ""))}
    return out

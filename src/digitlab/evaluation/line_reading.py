"""How well a line reader reads synthetic lines: exact lines, characters, digits, marks, noise, spans.

    metrics = evaluate_reader(model, condition_set("touching", 500, seed=1, digits=x_test, labels=y_test))
    metrics["exact"], metrics["digit_accuracy"], metrics["cer"]

Characters are matched by a minimum edit-distance alignment of the read text to the true one
(Levenshtein 1966): `digit_accuracy` = true digits aligned to the same digit / true digits;
`mark_recall` = true non-digit marks aligned to "?" / true marks; `cer` = edits / true characters;
`exact` = lines read exactly (a line of noise is read exactly when nothing is read).
`span_hit` = aligned correct characters whose span centre lies inside the true ink extent.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from digitlab.inference.ctc import DecodedChar, read_lines
from digitlab.synth.lines import LineBatch, labels_to_text

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

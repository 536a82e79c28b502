"""Scoring read lines: the alignment against a brute-force edit distance, and each rate on a known case."""
from __future__ import annotations

import itertools

import numpy as np

from digitlab.evaluation.line_reading import align, edit_distance, score_lines
from digitlab.inference.ctc import DecodedChar


def _brute_distance(a: str, b: str) -> int:
    """Levenshtein distance by the textbook recursion (memoised): the reference."""
    memo: dict[tuple[int, int], int] = {}

    def d(i: int, j: int) -> int:
        if (i, j) not in memo:
            memo[i, j] = i + j if not i or not j else min(d(i - 1, j) + 1, d(i, j - 1) + 1,
                                                          d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
        return memo[i, j]

    return d(len(a), len(b))


def test_edit_distance_matches_the_reference() -> None:
    assert edit_distance("kitten", "sitting") == 3
    words = ["", "1", "12", "21", "112", "1?2", "3456", "?"]
    for a, b in itertools.product(words, repeat=2):
        assert edit_distance(a, b) == _brute_distance(a, b), (a, b)


def test_alignment_pairs_are_increasing() -> None:
    pairs = align("12345", "1245")
    assert pairs == sorted(pairs) and (0, 0) in pairs and (4, 3) in pairs


def _read(text: str, spans: list[tuple[int, int]]) -> list[DecodedChar]:
    return [DecodedChar(label=1, char=c, probability=1.0, frames=(0, 1), span=s)
            for c, s in zip(text, spans, strict=True)]


def test_rates_on_a_known_case() -> None:
    truths = ["12", "3?", ""]
    reads = [_read("12", [(0, 4), (24, 28)]), _read("3", [(0, 4)]), _read("", [])]
    spans = [np.array([[0, 10], [12, 22]]), np.array([[0, 10], [12, 22]]), np.zeros((0, 2))]
    m = score_lines(truths, reads, spans)
    assert m["exact"] == round(2 / 3, 4) and m["cer"] == 0.25  # one deletion in four characters
    assert m["digit_accuracy"] == 1.0 and m["mark_recall"] == 0.0 and m["noise_silent"] == 1.0
    assert m["span_hit"] == round(2 / 3, 4)  # "2" fired at 26, right of [12, 22]


def test_mark_recall_by_kind() -> None:
    truths = ["?1?", "?"]
    reads = [_read("?1", [(0, 4), (8, 12)]), _read("7", [(0, 4)])]
    kinds = [("doodle:heart", "digit", "printed:A"), ("printed:x",)]
    m = score_lines(truths, reads, kinds=kinds)
    assert m["mark_recall_by_kind"] == {"doodle": 1.0, "printed": 0.0} and m["mark_recall"] == round(1 / 3, 4)

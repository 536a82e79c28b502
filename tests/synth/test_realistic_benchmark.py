"""benchmarks/realistic.py: metrics against an independent count, missing API methods reported, the report."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` lives beside `src`, not inside the package
    sys.path.insert(0, str(REPO))

from benchmarks import realistic  # noqa: E402
from digitlab.synth import build_set  # noqa: E402


@dataclass
class _Answer:
    label: int
    probability: float = 0.9
    rejected: bool = False
    reason: str | None = None


@dataclass
class _Piece:
    label: int
    box: tuple[int, int, int, int]
    rejected: bool = False


@dataclass
class _Reading:
    text: str
    digits: list


class _AlwaysThree:
    """Says 3 (rejecting nothing) and reads every number as "12", one piece rejected."""

    def predict_image(self, image):
        return _Answer(3)

    def read(self, image):
        return _Reading("12", [_Piece(1, (0, 0, 1, 1)), _Piece(2, (1, 0, 2, 1), rejected=True)])


class _Rejector:
    def predict_image(self, image):
        return _Answer(0, rejected=True, reason="not a digit")


def test_levenshtein_matches_known_distances():
    assert realistic._levenshtein("kitten", "sitting") == 3
    assert realistic._levenshtein("", "123") == 3 and realistic._levenshtein("2024", "2024") == 0


def test_metrics_are_the_share_of_right_answers(digits):
    res = realistic.run(_AlwaysThree(), ["canvas_default", "number_plain"], n=12, seed=4, mnist_test=digits,
                        split="heldout", max_side=320, sheets=None)
    by = {r["condition"]: r for r in res}
    truth = [s.label for s in build_set("canvas_default", 12, seed=4, mnist_test=digits)]
    assert by["canvas_default"]["accuracy"] == np.mean(np.array(truth) == 3)
    assert by["canvas_default"]["rejected"] == 0.0 and by["canvas_default"]["n"] == 12
    texts = [s.digits for s in build_set("number_plain", 12, seed=4, mnist_test=digits, max_side=320)]
    assert by["number_plain"]["accuracy"] == np.mean([t == "12" for t in texts])
    expected_chars = np.mean([max(1 - realistic._levenshtein(t, "12") / len(t), 0) for t in texts])
    assert np.isclose(by["number_plain"]["char_accuracy"], expected_chars)
    assert by["number_plain"]["rejected"] == 0.5


def test_non_digits_count_rejections_as_right(digits):
    res = realistic.run(_Rejector(), ["nondigit_doodles"], n=5, seed=0, mnist_test=digits, split="heldout",
                        max_side=320, sheets=None)
    assert res[0]["accuracy"] == 1.0 and res[0]["rejected"] == 1.0


def test_a_missing_method_is_an_error_row_not_a_crash(digits, tmp_path):
    res = realistic.run(_Rejector(), ["number_plain", "canvas_default"], n=3, seed=0, mnist_test=digits,
                        split="heldout", max_side=320, sheets=tmp_path)
    assert "read()" in res[0]["error"] and res[1]["n"] == 3
    assert (tmp_path / "canvas_default.png").is_file()
    md = realistic.report_markdown(res, {"model": "m", "backend": "b", "seed": 0, "split": "heldout",
                                         "created": "now", "command": "x"})
    assert "| number_plain | number | 0 | error: AttributeError" in md and "| canvas_default | digit | 3 |" in md

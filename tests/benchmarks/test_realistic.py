"""benchmarks/realistic.py: metrics against an independent count (per seed, on clean versions), missing API
methods reported, contact sheets, the report and the command line."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from benchmarks import realistic
from digitlab.synth import build_set, clean_version


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
    """Says 3 (rejecting nothing) and reads every number as "12", one piece rejected; keeps what it was given."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict_image(self, image):
        self.seen.append(image)
        return _Answer(3)

    def read(self, image):
        return _Reading("12", [_Piece(1, (0, 0, 1, 1)), _Piece(2, (1, 0, 2, 1), rejected=True)])


class _Rejector:
    def predict_image(self, image):
        return _Answer(0, rejected=True, reason="not a digit")


def _levenshtein(a: str, b: str) -> int:
    """Reference edit distance (Wagner-Fischer), independent of digitlab's alignment."""
    d = np.zeros((len(a) + 1, len(b) + 1), int)
    d[:, 0], d[0, :] = range(len(a) + 1), range(len(b) + 1)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (a[i - 1] != b[j - 1]))
    return int(d[-1, -1])


@pytest.fixture(scope="module")
def digits(mnist: Any) -> tuple[np.ndarray, np.ndarray]:
    """MNIST test digits, as the benchmark uses them (a slice: the sets draw from it)."""
    return mnist.x_test[:500], mnist.y_test[:500]


def test_metrics_are_the_share_of_right_answers(digits):
    res = realistic.run(_AlwaysThree(), ["canvas_default", "number_plain"], n=12, seeds=[4], mnist_test=digits,
                        split="heldout", max_side=320, sheets=None)
    by = {r["condition"]: r for r in res}
    truth = [s.label for s in build_set("canvas_default", 12, seed=4, mnist_test=digits)]
    assert by["canvas_default"]["accuracy"] == np.mean(np.array(truth) == 3)
    assert by["canvas_default"]["rejected"] == 0.0 and by["canvas_default"]["n"] == 12
    assert "accuracy_by_seed" not in by["canvas_default"] and "clean_accuracy" not in by["canvas_default"]
    texts = [str(s.text) for s in build_set("number_plain", 12, seed=4, mnist_test=digits, max_side=320)]
    assert by["number_plain"]["accuracy"] == np.mean([t == "12" for t in texts])
    expected_chars = np.mean([max(1 - _levenshtein(t.replace("\n", ""), "12") / len(t.replace("\n", "")), 0)
                              for t in texts])
    assert np.isclose(by["number_plain"]["char_accuracy"], expected_chars)
    assert by["number_plain"]["rejected"] == 0.5


def test_several_seeds_pool_their_sets_and_keep_each_share(digits):
    res = realistic.run(_AlwaysThree(), ["canvas_default"], n=8, seeds=[4, 5], mnist_test=digits,
                        split="heldout", max_side=320, sheets=None)[0]
    right = {s: np.array([x.label == 3 for x in build_set("canvas_default", 8, seed=s, mnist_test=digits)])
             for s in (4, 5)}
    assert res["n"] == 16
    assert res["accuracy_by_seed"] == {"4": right[4].mean(), "5": right[5].mean()}
    assert np.isclose(res["accuracy"], np.concatenate([right[4], right[5]]).mean())


def test_clean_reads_the_clean_version_of_every_picture(digits):
    model = _AlwaysThree()
    res = realistic.run(model, ["photo_plain"], n=6, seeds=[2], mnist_test=digits, split="heldout",
                        max_side=320, sheets=None, clean=True)[0]
    samples = build_set("photo_plain", 6, seed=2, mnist_test=digits, max_side=320)
    assert all(s.ink is not None for s in samples)
    cleans = [clean_version(s).image for s in samples]
    assert all(any(np.array_equal(c, seen) for seen in model.seen) for c in cleans)
    assert res["clean_accuracy"] == np.mean([s.label == 3 for s in samples])


def test_non_digits_count_rejections_as_right(digits):
    res = realistic.run(_Rejector(), ["nondigit_doodles"], n=5, seeds=[0], mnist_test=digits, split="heldout",
                        max_side=320, sheets=None, clean=True)
    assert res[0]["accuracy"] == 1.0 and res[0]["rejected"] == 1.0
    assert "clean_accuracy" not in res[0]  # clean versions are of digits and numbers


def test_a_missing_method_is_an_error_row_not_a_crash(digits, tmp_path):
    res = realistic.run(_Rejector(), ["number_plain", "canvas_default"], n=3, seeds=[0], mnist_test=digits,
                        split="heldout", max_side=320, sheets=tmp_path)
    assert "read()" in res[0]["error"] and res[1]["n"] == 3
    assert (tmp_path / "canvas_default.png").is_file()
    assert (tmp_path / "canvas_default-failures.png").is_file()  # a rejected digit is a failure
    md = realistic.report_markdown(res, {"model": "m", "backend": "b", "seeds": [0], "split": "heldout",
                                         "created": "now", "command": "x"})
    assert "| number_plain | number | 0 | error: AttributeError" in md and "| canvas_default | digit | 3 |" in md


def test_extra_columns_follow_the_options_and_fill_their_cells():
    assert realistic.extra_columns() == []
    extra = realistic.extra_columns([0, 1], True, ["tesseract"])
    assert extra == ["seed 0", "seed 1", "clean", "tesseract"]
    row = {"condition": "number_plain", "kind": "number", "n": 4, "accuracy": 0.5, "rejected": 0.0,
           "char_accuracy": 0.75, "ms_mean": 1.0, "ms_p95": 2.0, "megapixels_median": 0.5,
           "generate_ms_per_sample": 3.0, "accuracy_by_seed": {"0": 0.25, "1": 0.75}, "clean_accuracy": 1.0}
    cells = [c.strip() for c in realistic.format_row(row, extra).split("|")[1:-1]]
    assert cells[3:8] == ["50.0%", "25.0%", "75.0%", "100.0%", ""]  # accuracy, seeds, clean, no peer figure
    assert realistic.header(extra).splitlines()[0].count("|") == len(cells) + 1


def test_seeds_option_takes_a_list_and_the_old_spelling(capsys):
    assert realistic.parse_args([]).seeds == [0]
    assert realistic.parse_args(["--seeds", "0,1,2"]).seeds == [0, 1, 2]
    assert realistic.parse_args(["--seed", "3"]).seeds == [3]
    for bad in ("0,x", "1,1"):
        with pytest.raises(SystemExit):
            realistic.parse_args(["--seeds", bad])
        assert "seeds must be" in capsys.readouterr().err


def test_help_names_every_option_and_default(capsys):
    with pytest.raises(SystemExit) as exc:
        realistic.parse_args(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for option in ("--seeds", "--clean", "--peers", "--sheets", "--conditions", "--n", "--out", "--data-dir"):
        assert option in out
    assert "(default: 0)" in out and "(default: off)" in out

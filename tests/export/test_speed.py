"""digitlab.export.speed: the throughput timers count whole passes, warm up, and interleave fairly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitlab.errors import DigitlabError
from digitlab.export.speed import images_per_second, interleaved_images_per_second


def test_images_per_second_warms_up_then_counts_whole_passes() -> None:
    seen: list[int] = []
    x = np.zeros((10, 28, 28), np.uint8)
    ips = images_per_second(lambda b: seen.append(len(b)), x, batch_size=4, min_seconds=0.0)
    assert seen == [4, 4, 4, 2]  # one warm-up batch, then one whole pass (min_seconds=0)
    assert ips > 0


def test_interleaved_rotates_the_order_and_keeps_one_sample_per_round() -> None:
    calls: list[str] = []
    x = np.zeros((10, 28, 28), np.uint8)
    out = interleaved_images_per_second({"a": lambda b: calls.append("a"), "b": lambda b: calls.append("b")}, x,
                                        batch_sizes=(5,), rounds=3, window_seconds=0.0)
    # a warm-up batch each, then per round one pass (two batches) each, the first one rotating
    assert calls == ["a", "b"] + ["a"] * 2 + ["b"] * 2 + ["b"] * 2 + ["a"] * 2 + ["a"] * 2 + ["b"] * 2
    assert {name: {b: len(s) for b, s in by.items()} for name, by in out.items()} == {"a": {5: 3}, "b": {5: 3}}
    assert all(v > 0 for by in out.values() for s in by.values() for v in s)


def test_a_predictor_is_timed_through_predict_proba(tmp_path: Path) -> None:
    from digitlab.checkpoints import save_checkpoint
    from digitlab.inference import Predictor
    from digitlab.models import build_model

    save_checkpoint(tmp_path, build_model("softmax"), {"dataset": "mnist"})
    predictor = Predictor.load(tmp_path, backend="torch")
    calls: list[int] = []
    real = predictor.predict_proba
    predictor.predict_proba = lambda x: calls.append(len(x)) or real(x)  # type: ignore[method-assign]
    x = np.random.default_rng(0).integers(0, 256, (24, 28, 28), dtype=np.uint8)
    assert images_per_second(predictor, x, batch_size=16, min_seconds=0.0) > 0
    assert calls == [16, 16, 8]


@pytest.mark.parametrize(("n", "batch_size"), [(0, 4), (10, 0)])
def test_no_images_or_no_batch_is_an_error(n: int, batch_size: int) -> None:
    with pytest.raises(DigitlabError, match="batch_size"):
        images_per_second(lambda b: None, np.zeros((n, 28, 28), np.uint8), batch_size=batch_size)

"""benchmarks/serve_load.py: its statistics against known percentiles, the table, --kinds, and a short load of a
real `digitlab serve` process (an untrained softmax: the figures' shape is checked, not their values)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import serve_load

FIELDS = {"requests", "errors", "error_examples", "seconds", "requests_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms",
          "accuracy", "concurrency"}


def test_stats_are_the_known_percentiles_of_1_to_100_ms() -> None:
    latencies = list(np.random.default_rng(0).permutation(np.arange(1, 101)) / 1000)  # 1..100 ms, shuffled
    stats = serve_load.load_stats(latencies, ["HTTP 500: b''"], correct=75, seconds=2.0, concurrency=4)
    assert set(stats) == FIELDS
    # linear interpolation between the closest ranks (numpy's default): p(q) = 1 + 99 q / 100 for 1..100
    assert (stats["p50_ms"], stats["p90_ms"], stats["p99_ms"], stats["max_ms"]) == (50.5, 90.1, 99.01, 100.0)
    assert (stats["requests"], stats["errors"], stats["requests_per_s"], stats["accuracy"]) == (100, 1, 50.0, 0.75)


def test_stats_without_an_answer_have_no_latencies() -> None:
    stats = serve_load.load_stats([], ["ConnectError()"] * 5, correct=0, seconds=0.5, concurrency=2)
    assert stats["requests"] == 0 and stats["errors"] == 5 and len(stats["error_examples"]) == 3
    assert stats["p50_ms"] is None and stats["max_ms"] is None and stats["requests_per_s"] == 0.0
    line = serve_load.format_table({"json": stats})[1]
    assert line.split() == ["json", "0", "5", "0.0", "-", "-", "-", "-", "0.000"]


def test_unknown_kind_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve_load.build_parser().parse_args(["run"]).kinds == ["json", "png"]
    with pytest.raises(SystemExit):
        serve_load.build_parser().parse_args(["run", "--kinds", "json,xml"])
    assert "'xml'" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_a_short_load_of_a_real_server(tiny_run: Path, mnist_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "load.json"
    code = serve_load.main([str(tiny_run), "--data-dir", str(mnist_dir), "--requests", "40", "--warmup", "4",
                            "--concurrency", "3", "--server-args", "--backend torch", "--out", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    assert set(record) == {"command", "when", "machine", "model_id", "backend", "server_args", "results"}
    assert record["server_args"] == ["--backend", "torch"] and record["backend"] == "torch"
    for kind in ("json", "png"):
        stats = record["results"][kind]
        assert set(stats) == FIELDS
        assert (stats["requests"], stats["errors"], stats["concurrency"]) == (40, 0, 3)
        assert 0 < stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:3] == ["kind", "requests", "errors"]
    assert [line.split()[:3] for line in table[2:4]] == [["json", "40", "0"], ["png", "40", "0"]]

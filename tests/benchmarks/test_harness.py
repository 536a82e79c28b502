"""The benchmark harness: time-to-accuracy against an independent computation, evaluation
excluded from training time, verdict logic, and a `--quick` end-to-end run's output."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks` lives beside `src`, not inside the package
    sys.path.insert(0, str(REPO))

from benchmarks import measure, report  # noqa: E402


def _synthetic_run(seed: int) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """A noisy, non-monotonic accuracy curve with training-only records mixed in.

    Returns the records and, independently, each evaluation's accuracy and the training
    seconds before it (cumulative step time, the evaluation durations left out).
    """
    rng = np.random.default_rng(seed)
    n = 60
    step_seconds = rng.uniform(0.5, 2.0, n)  # training time between evaluations
    eval_seconds = rng.uniform(5.0, 10.0, n)  # evaluation time: must never count
    acc = np.clip(0.9 + 0.1 * (1 - np.exp(-np.arange(n) / 12)) + rng.normal(0, 0.004, n), 0, 1)
    train_clock = np.cumsum(step_seconds)
    records, wall = [], 0.0
    for i in range(n):
        wall += step_seconds[i]
        records.append({"step": 10 * i + 5, "elapsed": float(train_clock[i]) - 0.1, "loss": 0.3})
        records.append({"step": 10 * (i + 1), "epoch": i / 10, "elapsed": float(train_clock[i]),
                        "test_accuracy": float(acc[i]), "eval_seconds": float(eval_seconds[i])})
        wall += eval_seconds[i]
    return records, acc, train_clock


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target", [0.95, 0.99, 0.994, 0.9995])
def test_time_to_accuracy_matches_independent_computation(seed: int, target: float) -> None:
    records, acc, train_clock = _synthetic_run(seed)
    hits = np.flatnonzero(acc >= target)
    got = measure.time_to_accuracy(records, target)
    if hits.size == 0:
        assert got is None
    else:
        assert got is not None
        assert got["elapsed"] == pytest.approx(train_clock[hits[0]])
        assert got["accuracy"] == pytest.approx(acc[hits[0]])
        assert got["step"] == 10 * (hits[0] + 1)


def test_time_to_accuracy_is_first_crossing_not_best() -> None:
    records = [{"elapsed": 1.0, "test_accuracy": 0.98}, {"elapsed": 2.0, "test_accuracy": 0.991},
               {"elapsed": 3.0, "test_accuracy": 0.985}, {"elapsed": 4.0, "test_accuracy": 0.995}]
    assert measure.time_to_accuracy(records, 0.99)["elapsed"] == 2.0
    assert measure.time_to_accuracy(records, 0.995)["elapsed"] == 4.0
    assert measure.time_to_accuracy(records, 0.996) is None


def test_reference_training_time_excludes_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a fake clock that only evaluation advances, training time stays 0 and each
    evaluation reports exactly the time it took."""
    from benchmarks import reference_cnn

    clock = {"t": 0.0}

    class FakeTime:
        @staticmethod
        def perf_counter() -> float:
            return clock["t"]

    def slow_accuracy(model, x, y, batch_size=1000):  # noqa: ANN001
        clock["t"] += 100.0
        return 0.5

    monkeypatch.setattr(reference_cnn, "time", FakeTime)
    monkeypatch.setattr(reference_cnn, "accuracy", slow_accuracy)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 96)
    cfg = reference_cnn.ReferenceConfig(batch_size=16, epochs=2, eval_every_steps=4)
    _, records = reference_cnn.train_reference(x, y, x[:8], y[:8], cfg)
    # 6 steps per epoch: evaluations after steps 4, 6 (epoch end), 8, 12 (both)
    assert [r["step"] for r in records] == [4, 6, 8, 12]
    assert all(r["elapsed"] == 0.0 for r in records)
    assert all(r["eval_seconds"] == 100.0 for r in records)
    assert [r["images"] for r in records] == [64, 96, 128, 192]


def test_reference_net_shapes() -> None:
    import torch

    from benchmarks.reference_cnn import FLAT_FEATURES, Net

    out = Net()(torch.zeros(3, 1, 28, 28))
    assert out.shape == (3, 10)
    assert torch.allclose(out.exp().sum(1), torch.ones(3))  # log_softmax output
    assert Net().fc1.in_features == FLAT_FEATURES == 9216


@pytest.mark.parametrize(
    ("digitlab_s", "base_s", "exact", "factor", "verdict"),
    [
        (1.0, 20.0, True, 10.0, report.PASS),
        (3.0, 20.0, True, 10.0, report.FAIL),
        (1.0, 20.0, False, 10.0, report.PASS),  # a lower bound that already clears the bar
        (3.0, 20.0, False, 10.0, report.UNDETERMINED),  # a lower bound that does not: unknown
        (None, 20.0, True, 10.0, report.FAIL),  # digitlab never reached it
        (1.0, None, True, 10.0, report.UNDETERMINED),  # no baseline
    ],
)
def test_faster_verdict(digitlab_s, base_s, exact, factor, verdict) -> None:  # noqa: ANN001
    assert report.faster_verdict(digitlab_s, base_s, exact, factor)[0] == verdict


def test_quick_run_writes_json_and_markdown(mnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out), "--mnist-dir", str(mnist_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["quick"] is True
    for key in ("cpu", "cores", "torch", "torch_threads", "load_average"):
        assert key in results["machine"]
    assert set(results["sides"]) == {"data", "reference_cnn", "digitlab_cnn", "inference", "sklearn_logreg",
                                     "digitlab_softmax"}
    for name, side in results["sides"].items():
        assert "error" not in side, (name, side.get("error"))
        assert side["peak_rss_mib"] > 0 if name != "data" else True
    for name in ("reference_cnn", "digitlab_cnn", "digitlab_softmax"):
        side = results["sides"][name]
        assert side["records"], name
        # the reported time-to values are re-derivable from the reported records
        for key, hit in side["time_to"].items():
            assert hit == measure.time_to_accuracy(side["records"], float(key)), (name, key)
        assert side["train_images_per_second"] > 0
    inference = results["sides"]["inference"]
    assert inference["backends"]["auto"] in ("int8", "onnx", "torch")
    assert {"reference torch", "digitlab auto", "digitlab torch"} <= set(inference["throughput"])
    for name, by_batch in inference["throughput"].items():
        for batch in results["inference_batches"]:
            res = by_batch[str(batch)]
            assert len(res["samples"]) == 2 and res["images_per_second"] == max(res["samples"]) > 0, name
        assert 0 <= inference["test_accuracy"][name] <= 1
    # the reference's accuracy as timed equals what its own training side measured at the end
    assert inference["test_accuracy"]["reference torch"] == pytest.approx(
        results["sides"]["reference_cnn"]["final_test_accuracy"])
    data = results["sides"]["data"]
    assert data["cold"]["verified"] and data["warm"]["verified"]
    assert "cache" in data["warm"]["source"]
    assert data["warm"]["shapes"] == [[60000, 28, 28], [10000, 28, 28]]
    ids = [t["id"] for t in results["targets"]]
    assert ids == ["cnn_99_10x", "cnn_994_before_ref_99", "softmax_92_10x", "inference_20x", "data_cache_0.5s"]
    assert all(t["verdict"] in (report.PASS, report.FAIL, report.UNDETERMINED) for t in results["targets"])

    md = (out / "results.md").read_text()
    assert md.startswith("# digitlab benchmark")
    assert results["date"] in md and results["machine"]["torch"] in md
    assert "| measure | digitlab | baseline | digitlab / baseline |" in md
    for t in results["targets"]:
        assert f"| {t['target']} |" in md and f"**{t['verdict']}**" in md


def test_throughput_counts_whole_passes_and_warms_every_batch_size() -> None:
    seen: list[int] = []
    x = np.zeros((10, 28, 28), np.uint8)
    res = measure.throughput(lambda b: seen.append(len(b)), x, 4, min_seconds=0.0, warmup_batches=1)
    assert seen[:2] == [4, 2]  # warm-up: one full batch and the partial last one
    assert seen[2:] == [4, 4, 2]  # then one whole pass (min_seconds=0)
    assert res["images"] == 10 and res["images_per_second"] > 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_device_inference_path_runs_on_cpu(precision: str) -> None:
    """The GPU inference path (data resident on the device, autocast, synchronised timers)
    exercised with device='cpu': it must return probabilities for the right number of images."""
    from benchmarks.sides import device_inference
    from digitlab.models import build_model

    model = build_model("cnn")
    x = np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)
    out = device_inference(model, x, (16,), "cpu", precision=precision, min_seconds=0.0)
    assert out["precision"] == precision and out["compile_seconds"] is None
    assert out["16"]["images"] == 40 and out["16"]["batch_size"] == 16
    assert measure.peak_cuda_mib("cpu") is None


def test_best_inference_takes_the_best_batch_of_the_named_predictor() -> None:
    side = {"throughput": {
        "digitlab auto": {"1000": {"images_per_second": 10.0}, "256": {"images_per_second": 30.0}},
        "reference torch": {"1000": {"images_per_second": 50.0}},
    }}
    assert report.best_inference(side, "digitlab auto") == (30.0, "batch 256")
    assert report.best_inference(side, "reference torch") == (50.0, "batch 1000")
    assert report.best_inference(None, "digitlab auto") == (None, None)


def test_interleaved_throughput_alternates_and_keeps_the_best_window() -> None:
    calls: list[str] = []
    x = np.zeros((10, 28, 28), np.uint8)
    preds = {"a": lambda b: calls.append("a"), "b": lambda b: calls.append("b")}
    out = measure.interleaved_throughput(preds, x, (5,), rounds=3, window_seconds=0.0)
    # warm-up one batch each, then per round one pass (2 batches) each, the order rotating
    assert calls == ["a", "b"] + ["a"] * 2 + ["b"] * 2 + ["b"] * 2 + ["a"] * 2 + ["a"] * 2 + ["b"] * 2
    for name in "ab":
        res = out[name]["5"]
        assert len(res["samples"]) == 3 and res["images_per_second"] == max(res["samples"])


def test_macs_per_image_matches_hand_count() -> None:
    from benchmarks.profile_step import macs_per_image
    from benchmarks.reference_cnn import Net

    conv1 = 26 * 26 * 32 * (3 * 3 * 1)
    conv2 = 24 * 24 * 64 * (3 * 3 * 32)
    assert macs_per_image(Net()) == conv1 + conv2 + 9216 * 128 + 128 * 10

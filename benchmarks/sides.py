"""One side of the benchmark per process: `python -m benchmarks.sides SIDE --spec JSON --out FILE`.

Each side (the data loader, a baseline, a digitlab recipe) runs in its own process, so its
peak RSS (getrusage) is its own and no side warms a cache or thread pool for the next.
`benchmarks.run` starts them one after the other and collects the JSON each writes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import measure

TARGETS = (0.99, 0.994)  # the CNN test accuracies whose time-to we report
SOFTMAX_TARGET = 0.92  # the softmax regression accuracy whose time-to we report


@dataclass
class SideSpec:
    """What one side is asked to do; the same spec goes to every side of a run."""

    mnist_dir: str  # folder of the four official gzip IDX files
    cache_dir: str  # DIGITLAB_CACHE for this run (filled by the data side)
    work_dir: str  # where digitlab writes its run directories
    device: str = "cpu"
    train_limit: int | None = None  # first N training images only (--quick)
    test_limit: int | None = None  # first N test images only (--quick)
    cnn_eval_every_images: int = 12800  # 200 reference steps of 64: the shared evaluation cadence
    softmax_eval_every_images: int = 5000  # finer: softmax recipes take ~1 s in all
    reference_max_epochs: int = 5  # budget of the reference CNN (99.0% took it 3.2 epochs here)
    reference_max_seconds: float = 600.0  # and its training-time cap, whichever comes first
    reference_max_steps: int | None = None  # smoke runs only
    digitlab_max_epochs: int | None = None  # cap on the recipe's own epochs (--quick)
    logreg_max_iter: int = 100  # sklearn's default, what the usual snippet runs
    cnn_recipe: str = "cnn"
    softmax_recipe: str = "softmax"  # modern softmax regression; tf-softmax copies the tutorial (<= 92%)
    cnn_overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields to change
    softmax_overrides: dict[str, Any] = field(default_factory=dict)
    inference_batch_sizes: tuple[int, ...] = (1000, 256, 128, 64, 32, 16)  # the reference is fastest at small ones
    inference_images: int = 2000  # a slice of the test set, passed over repeatedly
    inference_min_seconds: float = 2.0  # per batch size, for device (GPU) inference
    inference_rounds: int = 8  # interleaved CPU inference: rounds of one window per predictor
    inference_window_seconds: float = 0.25
    data_repeats: int = 3  # loads per kind after the first


def _env(spec: SideSpec) -> None:
    os.environ["DIGITLAB_CACHE"] = spec.cache_dir
    os.environ["DIGITLAB_OFFLINE"] = "1"  # never the network: the reference folder is given
    for var in ("DIGITLAB_DATA_DIR", "DIGITLAB_MIRRORS"):
        os.environ.pop(var, None)


def _arrays(spec: SideSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST through the data layer (untimed), cut to the spec's limits."""
    from digitlab.data import load

    ds = load("mnist", data_dir=spec.mnist_dir)
    n, m = spec.train_limit, spec.test_limit
    return ds.x_train[:n], ds.y_train[:n], ds.x_test[:m], ds.y_test[:m]


# --------------------------------------------------------------------------- data

def side_data(spec: SideSpec) -> dict[str, Any]:
    """Time `load` cold (gzip folder: decompress, parse, verify) and warm (the digitlab cache).

    The first load of each kind in this fresh process is the headline (what a user's
    process pays); `data_repeats` more give the best and median. Imports are excluded.
    The OS page cache is not dropped: "cold" means not yet in digitlab's cache.
    """
    from digitlab.data import fetch, load

    def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    def series(fn: Callable[[], Any]) -> dict[str, Any]:
        times, ds = [], None
        for _ in range(1 + spec.data_repeats):
            seconds, ds = timed(fn)
            times.append(seconds)
        assert ds is not None
        return {"first_seconds": times[0], "best_seconds": min(times),
                "median_seconds": statistics.median(times), "seconds": times, "source": ds.source,
                "verified": bool(ds.verified),
                "shapes": [list(ds.x_train.shape), list(ds.x_test.shape)]}

    cold = series(lambda: load("mnist", data_dir=spec.mnist_dir))
    fill_seconds, _ = timed(lambda: fetch("mnist", data_dir=spec.mnist_dir))
    warm = series(lambda: load("mnist"))
    if "cache" not in warm["source"]:
        raise RuntimeError(f"warm load came from {warm['source']!r}, not the cache {spec.cache_dir}")
    return {"cold": cold, "warm": warm, "cache_fill_seconds": fill_seconds}


# --------------------------------------------------------------------------- baselines

def _reference_weights(spec: SideSpec) -> Path:
    """Where the reference side leaves its trained weights for the inference side."""
    Path(spec.work_dir).mkdir(parents=True, exist_ok=True)
    return Path(spec.work_dir) / "reference_cnn.safetensors"


def side_reference_cnn(spec: SideSpec) -> dict[str, Any]:
    """Train the pytorch/examples CNN within its budget; then its batched inference speed."""
    import torch

    from benchmarks.reference_cnn import ReferenceConfig, to_input, train_reference

    xtr, ytr, xte, yte = _arrays(spec)
    device = torch.device(spec.device)
    config = ReferenceConfig(
        epochs=spec.reference_max_epochs, max_seconds=spec.reference_max_seconds,
        max_steps=spec.reference_max_steps,
        eval_every_steps=max(1, spec.cnn_eval_every_images // ReferenceConfig.batch_size))
    rss_setup = measure.current_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    model, records = train_reference(xtr, ytr, xte, yte, config, device=device)
    wall = time.perf_counter() - t0
    peak_cuda = measure.peak_cuda_mib(device)
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(_reference_weights(spec)))  # for the interleaved inference side
    return _training_summary(records, wall) | {
        "config": asdict(config), "threads": torch.get_num_threads(),
        "rss_after_setup_mib": rss_setup,
        "peak_rss_mib": measure.peak_rss_mib(), "peak_cuda_mib": peak_cuda,
    }


def side_sklearn_logreg(spec: SideSpec) -> dict[str, Any]:
    """Fit scikit-learn's LogisticRegression (lbfgs, max_iter as the spec says)."""
    from benchmarks.reference_logreg import fit_logreg

    xtr, ytr, xte, yte = _arrays(spec)
    rss_setup = measure.current_rss_mib()
    out = fit_logreg(xtr, ytr, xte, yte, max_iter=spec.logreg_max_iter)
    return out | {"rss_after_setup_mib": rss_setup, "peak_rss_mib": measure.peak_rss_mib()}


# --------------------------------------------------------------------------- digitlab

def _digitlab_run(spec: SideSpec, recipe: str, eval_every_images: int, overrides: dict[str, Any],
                  inference: bool) -> dict[str, Any]:
    """Train digitlab `recipe` through the public API, evaluating the test set on a cadence.

    `elapsed` in digitlab's records is its training time with evaluation excluded. With
    `compile` on, a 3-step warm-up run first pays the compilation, reported as
    `compile_seconds` and kept out of the timed run (torch caches the compiled graphs).
    """
    import dataclasses

    import torch

    from digitlab.data import load
    from digitlab.training import get_recipe, train

    ds = load("mnist", data_dir=spec.mnist_dir)
    base = get_recipe(recipe).config
    changes: dict[str, Any] = {"device": spec.device, "track_test": True, "save_every_epoch": False,
                               "threads": torch.get_num_threads()}  # what OMP_NUM_THREADS set, if anything
    if spec.train_limit is not None or spec.test_limit is not None:  # --quick: slices
        ds = dataclasses.replace(ds, x_train=ds.x_train[: spec.train_limit], y_train=ds.y_train[: spec.train_limit],
                                 x_test=ds.x_test[: spec.test_limit], y_test=ds.y_test[: spec.test_limit])
        changes["validation_size"] = min(base.validation_size, len(ds.x_train) // 8)
    changes |= overrides
    batch = int(changes.get("batch_size", base.batch_size))
    changes["eval_every_steps"] = max(1, eval_every_images // batch)
    if spec.digitlab_max_epochs is not None:
        changes["epochs"] = min(int(changes.get("epochs", base.epochs)), spec.digitlab_max_epochs)
    config = base.replace(**changes)
    device = torch.device(spec.device)
    compile_seconds = None
    if config.compile:
        t0 = time.perf_counter()
        train(config.replace(max_steps=3, track_test=False, eval_every_steps=None), ds)
        compile_seconds = time.perf_counter() - t0
    rss_setup = measure.current_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run_dir = Path(spec.work_dir) / recipe
    t0 = time.perf_counter()
    result = train(config, ds, run_dir=run_dir)
    wall = time.perf_counter() - t0
    peak_cuda = measure.peak_cuda_mib(device)
    n_train = len(ds.x_train) - config.validation_size
    if config.train_size is not None:
        n_train = min(n_train, config.train_size)
    records = sorted(
        [dict(r) for r in result.step_history]
        + [dict(r, images=r.get("images", min(r["step"] * config.batch_size, r["epoch"] * n_train)))
           for r in result.history],
        key=lambda r: (r["elapsed"], r["step"]))
    out = _training_summary(records, wall) | {
        "recipe": recipe, "config": config.to_dict(), "threads": torch.get_num_threads(),
        "compile_seconds": compile_seconds, "rss_after_setup_mib": rss_setup,
        "peak_cuda_mib": peak_cuda,
    }
    if inference:
        out["int8_export"] = _int8_export(run_dir, ds)
        if device.type != "cpu":  # Predictor runs on the CPU; also time the model where it trained
            out["inference"] = {}
            out["inference"][f"torch-{device.type}-{_precision(config, device)}"] = device_inference(
                result.model, ds.x_test[: spec.inference_images], spec.inference_batch_sizes, device,
                precision=_precision(config, device), compile_model=config.compile,
                min_seconds=spec.inference_min_seconds)
    out["peak_rss_mib"] = measure.peak_rss_mib()
    return out


def _precision(config: Any, device: Any) -> str:
    """The precision the loop trains in: "auto" is bf16 on CUDA, fp32 elsewhere."""
    import torch

    if config.precision != "auto":
        return config.precision
    return "bf16" if torch.device(device).type == "cuda" else "fp32"


def device_inference(model: Any, x_uint8: np.ndarray, batch_sizes: tuple[int, ...], device: Any, *,
                     precision: str = "fp32", compile_model: bool = False, min_seconds: float = 1.0
                     ) -> dict[str, Any]:
    """Images/s of `model` on `device` with the images already resident there (uint8 (N, 28, 28)).

    bf16/fp16 run under autocast; `compile_model` wraps it in `torch.compile`, and the first
    batches' time (the compilation) is `compile_seconds`, kept out of the rate. The device
    is synchronised around every timer (`measure.throughput`).
    """
    import contextlib

    import torch

    dev = torch.device(device)
    model = model.to(dev).eval()
    net = torch.compile(model) if compile_model else model
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    x = torch.from_numpy(np.ascontiguousarray(x_uint8)).to(dev)  # (N, 28, 28) uint8 on the device

    @torch.inference_mode()
    def predict(xb: torch.Tensor) -> torch.Tensor:
        ctx = torch.autocast(dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with ctx:
            logits = net(xb.unsqueeze(1).float() / 255.0)  # (B, C)
        return logits.float().softmax(1)

    out: dict[str, Any] = {"precision": precision, "compiled": compile_model}
    for b in batch_sizes:
        res = measure.throughput(predict, x, b, device=dev, min_seconds=min_seconds)
        out[str(b)] = res
        out.setdefault("compile_seconds", res["warmup_seconds"] if compile_model else None)
    return out


def _int8_export(run_dir: Path, ds: Any) -> dict[str, Any] | None:
    """What `digitlab train` does after training: the int8 ONNX model, kept if accurate; timed."""
    from digitlab.inference.predictor import _onnxruntime_available

    if not _onnxruntime_available():
        return None
    from digitlab.inference import export_int8

    t0 = time.perf_counter()
    result = export_int8(run_dir, dataset=ds)
    return {"seconds": time.perf_counter() - t0, "kept": result.kept, "summary": result.summary(),
            "float_validation_accuracy": result.float_accuracy, "int8_validation_accuracy": result.int8_accuracy}


def side_inference(spec: SideSpec) -> dict[str, Any]:
    """Batched CPU inference, the reference CNN and digitlab's trained `cnn` timed in turn.

    Both models come from the training sides (the reference's weights, digitlab's run
    directory). digitlab runs through `Predictor` on each backend, "auto" being what `predict`
    and the service use; the reference runs its model eagerly in PyTorch, as its script does.
    Every predictor takes uint8 images and returns probabilities; each one's test accuracy
    checks that it runs the trained model. Windows are interleaved (`measure.interleaved_throughput`).
    """
    import torch
    from safetensors.torch import load_file

    from benchmarks.reference_cnn import Net, to_input
    from digitlab.inference import Predictor
    from digitlab.inference.predictor import _onnxruntime_available

    _, _, xte, yte = _arrays(spec)
    ref = Net()
    ref.load_state_dict(load_file(str(_reference_weights(spec))))
    ref.eval()

    @torch.inference_mode()
    def reference(xb: np.ndarray) -> torch.Tensor:
        return ref(to_input(xb, "cpu")).exp()  # the script's preprocessing; probabilities out

    run_dir = Path(spec.work_dir) / spec.cnn_recipe
    predictors: dict[str, Callable[[np.ndarray], Any]] = {"reference torch": reference}
    ref_pred = np.concatenate([reference(xte[i : i + 1000]).argmax(1).numpy() for i in range(0, len(xte), 1000)])
    accuracy = {"reference torch": float((ref_pred == yte).mean())}
    resolved: dict[str, str] = {}
    for backend in ("auto", "int8", "onnx", "torch"):
        if backend in ("int8", "onnx") and not _onnxruntime_available():
            continue
        try:
            predictor = Predictor.load(run_dir, backend=backend)
        except Exception as exc:  # noqa: BLE001 - e.g. no int8 model (not kept): report, go on
            resolved[backend] = f"unavailable: {exc}"
            continue
        if backend != "auto" and predictor.backend == resolved.get("auto"):
            continue  # "auto" already times this backend
        resolved[backend] = predictor.backend
        predictor.batch_size = max(spec.inference_batch_sizes)
        name = f"digitlab {backend}"
        predictors[name] = predictor.predict_proba
        accuracy[name] = float((predictor.predict(xte) == yte).mean())
    timings = measure.interleaved_throughput(
        predictors, xte[: spec.inference_images], tuple(spec.inference_batch_sizes),
        rounds=spec.inference_rounds, window_seconds=spec.inference_window_seconds)
    return {"throughput": timings, "test_accuracy": accuracy, "backends": resolved,
            "threads": torch.get_num_threads(), "peak_rss_mib": measure.peak_rss_mib()}


def side_digitlab_cnn(spec: SideSpec) -> dict[str, Any]:
    """digitlab's CNN recipe (default `cnn`), same evaluation cadence as the reference."""
    return _digitlab_run(spec, spec.cnn_recipe, spec.cnn_eval_every_images, spec.cnn_overrides, inference=True)


def side_digitlab_softmax(spec: SideSpec) -> dict[str, Any]:
    """digitlab's softmax-regression recipe (default `tf-softmax`)."""
    return _digitlab_run(spec, spec.softmax_recipe, spec.softmax_eval_every_images, spec.softmax_overrides,
                         inference=False)


def _training_summary(records: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """Time-to-accuracy and throughput from a run's evaluation records."""
    evals = [r for r in records if r.get("test_accuracy") is not None]
    train_seconds = measure.final_elapsed(records)
    images = max((r.get("images", 0) for r in records), default=0)
    targets = (*TARGETS, SOFTMAX_TARGET)
    return {
        "records": evals,
        "time_to": {f"{t:.3f}": measure.time_to_accuracy(evals, t) for t in targets},
        "final_test_accuracy": evals[-1]["test_accuracy"] if evals else None,
        "best_test_accuracy": max((r["test_accuracy"] for r in evals), default=None),
        "train_seconds": train_seconds,
        # digitlab's records carry no per-evaluation time; wall - training time covers evaluation,
        # setup and checkpoints on both sides alike
        "eval_seconds_total": (sum(r["eval_seconds"] for r in evals)
                               if evals and all("eval_seconds" in r for r in evals) else None),
        "outside_training_seconds": wall - train_seconds,
        "train_images": images,
        "train_images_per_second": images / train_seconds if train_seconds > 0 else None,
        "wall_seconds": wall,
    }


SIDES: dict[str, Callable[[SideSpec], dict[str, Any]]] = {
    "data": side_data,
    "reference_cnn": side_reference_cnn,
    "sklearn_logreg": side_sklearn_logreg,
    "digitlab_cnn": side_digitlab_cnn,
    "inference": side_inference,
    "digitlab_softmax": side_digitlab_softmax,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=sorted(SIDES), help="which side to run")
    parser.add_argument("--spec", required=True, help="SideSpec as JSON")
    parser.add_argument("--out", required=True, help="file to write the side's JSON result to")
    args = parser.parse_args(argv)
    spec = SideSpec(**json.loads(args.spec))
    _env(spec)
    t0 = time.perf_counter()
    result = SIDES[args.side](spec)
    result["side_seconds"] = time.perf_counter() - t0
    from digitlab._io import atomic_write_json

    atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

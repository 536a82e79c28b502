"""One side of the benchmark in its own process: `python -m benchmarks.sides SIDE --spec JSON --out FILE`.

A fresh process per side, so its peak RSS is its own and no side warms a cache or thread pool
for the next. Each side returns what it measured (raw records, seconds, images/s) and
`benchmarks.report` derives the rest. digitlab runs through its public API only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_WEIGHTS, CNN_RUN = "reference_cnn.safetensors", "cnn"  # what training sides leave in work_dir


@dataclass
class Spec:
    """What every side of one run is asked to do (the same spec goes to each)."""

    mnist_dir: str  # the four MNIST .gz files, written by `benchmarks.run` through the data layer
    work_dir: str  # where the training sides leave their models for the inference side
    device: str = "cpu"  # torch device of the training sides; inference is on the CPU
    train_limit: int | None = None  # first N training images only (--quick)
    test_limit: int | None = None  # first N test images only (--quick)
    cnn_recipe: str = "cnn"
    softmax_recipe: str = "softmax"
    cnn_overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields to change (--cnn-set)
    softmax_overrides: dict[str, Any] = field(default_factory=dict)
    cnn_eval_every_images: int = 12800  # both CNNs: 200 reference steps of 64; and at every epoch end
    softmax_eval_every_images: int = 5000  # finer: the softmax recipe takes about a second
    reference_epochs: int = 5  # the reference's budget: 99.0% takes it ~3.2 epochs
    reference_seconds: float = 600.0  # ... or this many training seconds, whichever comes first
    reference_max_steps: int | None = None  # --quick
    digitlab_max_epochs: int | None = None  # --quick: a cap on the recipes' own epochs
    logreg_max_iter: int = 100  # scikit-learn's default, what the usual snippet runs
    inference_batch_sizes: tuple[int, ...] = (1000, 256, 128, 64, 32, 16)  # the reference is fastest at 32-128
    inference_images: int = 2000  # a slice of the test set, passed over repeatedly
    inference_rounds: int = 8  # interleaved windows per predictor and batch size
    inference_window_seconds: float = 0.25
    data_repeats: int = 3  # loads of each kind after the first
    extra_seeds: tuple[int, ...] = (1, 2)  # the CNN recipe trained again with these seeds: its mean final accuracy


def _dataset(spec: Spec) -> Any:
    """MNIST through the data layer (untimed), cut to the spec's limits."""
    from digitlab.data import load

    ds = load("mnist", data_dir=spec.mnist_dir)
    n, m = spec.train_limit, spec.test_limit
    return dataclasses.replace(ds, x_train=ds.x_train[:n], y_train=ds.y_train[:n], x_test=ds.x_test[:m],
                               y_test=ds.y_test[:m])


def side_data(spec: Spec) -> dict[str, Any]:
    """`load("mnist")` cold (the .gz folder: decompress, parse, SHA-256), then warm (digitlab's cache).

    The first load of each kind in this fresh process is the figure; `data_repeats` more give
    the best. Imports excluded; the OS page cache is not dropped.
    """
    from digitlab.data import fetch, load

    def series(**where: Any) -> dict[str, Any]:
        seconds = []
        for _ in range(1 + spec.data_repeats):
            t0 = time.perf_counter()
            ds = load("mnist", **where)
            seconds.append(time.perf_counter() - t0)
        return {"first_seconds": seconds[0], "best_seconds": min(seconds), "seconds": seconds, "source": ds.source,
                "verified": ds.verified, "shapes": [list(ds.x_train.shape), list(ds.x_test.shape)]}

    cold = series(data_dir=spec.mnist_dir)
    fetch("mnist", data_dir=spec.mnist_dir)  # fills this run's empty cache
    warm = series()
    if not warm["source"].startswith("cache"):
        raise RuntimeError(f"the warm load came from {warm['source']!r}, not digitlab's cache")
    return {"cold": cold, "warm": warm}


def side_reference_cnn(spec: Spec) -> dict[str, Any]:
    """Train the pytorch/examples CNN within its budget; leave its weights for the inference side."""
    from safetensors.torch import save_file

    from benchmarks.reference_cnn import ReferenceConfig, train_reference

    ds = _dataset(spec)
    config = ReferenceConfig(epochs=spec.reference_epochs, max_seconds=spec.reference_seconds,
                             max_steps=spec.reference_max_steps,
                             eval_every_steps=max(1, spec.cnn_eval_every_images // ReferenceConfig.batch_size))
    t0 = time.perf_counter()
    model, records = train_reference(ds.x_train, ds.y_train, ds.x_test, ds.y_test, config, device=spec.device)
    wall = time.perf_counter() - t0
    save_file({k: v.detach().cpu() for k, v in model.state_dict().items()},
              str(Path(spec.work_dir) / REFERENCE_WEIGHTS))
    return {"records": records, "wall_seconds": wall, "config": dataclasses.asdict(config)}


def _digitlab(spec: Spec, recipe: str, overrides: dict[str, Any], eval_every_images: int,
              run: Callable[..., Any]) -> tuple[Any, dict[str, Any]]:
    """Train `recipe` as shipped, plus test-set tracking on the benchmark's cadence, with `run` (`train` or `fit`)."""
    from digitlab.training import recipe_config

    ds = _dataset(spec)
    config = recipe_config(recipe, **overrides)
    changes: dict[str, Any] = {"device": spec.device, "track_test": True,
                               "eval_every_steps": max(1, eval_every_images // config.batch_size)}
    if spec.train_limit is not None:  # --quick: slices too small for the 5,000-image validation split
        changes["validation_size"] = min(config.validation_size, len(ds.x_train) // 8)
    if spec.digitlab_max_epochs is not None:
        changes["epochs"] = min(config.epochs, spec.digitlab_max_epochs)
    config = config.replace(**changes)
    t0 = time.perf_counter()
    result = run(config, ds)
    wall = time.perf_counter() - t0
    n_train = len(ds.x_train) - config.validation_size if config.train_size is None else config.train_size
    epochs = [dict(r, images=min(r["step"] * config.batch_size, r["epoch"] * n_train)) for r in result.history]
    records = sorted([*result.step_history, *epochs], key=lambda r: (r["elapsed"], r["step"]))
    return result, {"records": records, "wall_seconds": wall, "config": config.to_dict()}


def side_digitlab_cnn(spec: Spec) -> dict[str, Any]:
    """`train` the CNN recipe as `digitlab train` does (checkpoint, report, reload check, int8 model), plots off."""
    from digitlab.runs import train

    def run(config: Any, ds: Any) -> Any:
        return train(config, ds, run_dir=Path(spec.work_dir) / CNN_RUN, verbose=0, plots=False)

    result, out = _digitlab(spec, spec.cnn_recipe, spec.cnn_overrides, spec.cnn_eval_every_images, run)
    int8 = result.outputs.int8
    return out | {"int8_error": result.outputs.int8_error, "int8": None if int8 is None else {
        "kept": int8.kept, "int8_validation_accuracy": int8.int8_accuracy,
        "float_validation_accuracy": int8.float_accuracy, "int8_images_per_second": int8.int8_images_per_second,
        "float_images_per_second": int8.float_images_per_second}}


def side_digitlab_cnn_seeds(spec: Spec) -> dict[str, Any]:
    """`fit` the CNN recipe once per extra seed (nothing written, no evaluation while training): final test
    accuracy of each, so the mean over seeds (with `digitlab_cnn`'s seed) is measured, not one lucky run."""
    from digitlab.models.runner import predict_logits
    from digitlab.training import fit, recipe_config

    ds = _dataset(spec)
    runs = []
    for seed in spec.extra_seeds:
        config = recipe_config(spec.cnn_recipe, **spec.cnn_overrides).replace(device=spec.device, seed=seed)
        if spec.digitlab_max_epochs is not None:
            config = config.replace(epochs=min(config.epochs, spec.digitlab_max_epochs),
                                    validation_size=min(config.validation_size, len(ds.x_train) // 8))
        result = fit(config, ds)
        accuracy = float(np.mean(predict_logits(result.model, ds.x_test).argmax(1) == ds.y_test))
        runs.append({"seed": seed, "test_accuracy": accuracy, "seconds": result.history[-1]["elapsed"]})
    return {"runs": runs}


def side_digitlab_softmax(spec: Spec) -> dict[str, Any]:
    """`fit` the softmax-regression recipe (nothing written: only its time to 92% matters)."""
    from digitlab.training import fit

    return _digitlab(spec, spec.softmax_recipe, spec.softmax_overrides, spec.softmax_eval_every_images, fit)[1]


def side_sklearn_logreg(spec: Spec) -> dict[str, Any]:
    """scikit-learn's `LogisticRegression()` (lbfgs, C=1.0, max_iter=100) on pixels / 255 in float64.

    lbfgs stops at max_iter unconverged (a ConvergenceWarning), as the usual snippet does; `fit`
    alone is timed: its time to its final test accuracy (lbfgs has no usable earlier model).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    ds = _dataset(spec)
    xtr, xte = ds.x_train.reshape(len(ds.x_train), -1) / 255.0, ds.x_test.reshape(len(ds.x_test), -1) / 255.0
    clf = LogisticRegression(max_iter=spec.logreg_max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(xtr, ds.y_train)
        fit_seconds = time.perf_counter() - t0
    return {"fit_seconds": fit_seconds, "test_accuracy": float(clf.score(xte, ds.y_test)),
            "n_iter": int(np.max(clf.n_iter_)), "converged": not any(w.category is ConvergenceWarning for w in caught)}


def side_inference(spec: Spec) -> dict[str, Any]:
    """Batched CPU images/s of both trained CNNs in interleaved windows, and their test accuracy as served.

    digitlab: `Predictor.load(run, backend=...)` for "auto" (what `digitlab predict` and the service
    use), then each other backend "auto" did not pick; accuracy by `Predictor.score`. The reference:
    its `Net` in eval mode under `torch.inference_mode`, with its script's normalisation. Either may
    be missing (its training side failed): the other is still timed.
    """
    import torch
    from safetensors.torch import load_file

    from benchmarks.reference_cnn import Net, accuracy, to_input
    from digitlab.errors import DigitlabError
    from digitlab.export.speed import interleaved_images_per_second
    from digitlab.inference import Predictor
    from digitlab.layout import RunFiles

    ds = _dataset(spec)
    predictors: dict[str, Any] = {}
    test_accuracy: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    weights = Path(spec.work_dir) / REFERENCE_WEIGHTS
    if weights.is_file():
        ref = Net()
        ref.load_state_dict(load_file(str(weights)))
        ref.eval()
        predictors["reference torch"] = torch.inference_mode()(lambda xb: ref(to_input(xb)).exp())
        test_accuracy["reference torch"] = accuracy(ref, to_input(ds.x_test), torch.from_numpy(ds.y_test))
    else:
        unavailable["reference torch"] = f"{weights} is missing (the reference_cnn side did not finish)"
    backends: dict[str, str] = {}
    for backend in ("auto", "int8", "onnx", "torch"):
        if backend == "int8" and not RunFiles(Path(spec.work_dir) / CNN_RUN).int8_onnx.is_file():
            _int8_for_timing(Path(spec.work_dir) / CNN_RUN, ds, unavailable)  # `train` served float: time int8 too
        try:
            predictor = Predictor.load(Path(spec.work_dir) / CNN_RUN, backend=backend)
        except DigitlabError as exc:  # no run (its side failed), or no int8 model kept
            unavailable[f"digitlab {backend}"] = str(exc)
            continue
        if predictor.backend not in backends.values():
            backends[backend] = predictor.backend
            predictors[f"digitlab {backend}"] = predictor
            test_accuracy[f"digitlab {backend}"] = predictor.score(ds.x_test, ds.y_test)
    if not predictors:
        raise RuntimeError("no model to time: " + "; ".join(unavailable.values()))
    samples = interleaved_images_per_second(
        predictors, ds.x_test[: spec.inference_images], batch_sizes=tuple(spec.inference_batch_sizes),
        rounds=spec.inference_rounds, window_seconds=spec.inference_window_seconds)
    throughput = {name: {str(b): {"images_per_second": max(s), "median": statistics.median(s), "samples": s}
                         for b, s in by_batch.items()} for name, by_batch in samples.items()}
    return {"throughput": throughput, "test_accuracy": test_accuracy, "backends": backends,
            "unavailable": unavailable}


def _int8_for_timing(run: Path, ds: Any, unavailable: dict[str, str]) -> None:
    """Write the run's int8 model when `train` did not keep it because float was faster here, so the int8
    figure is still measured (after "auto" was loaded: what the user is served stays what it was)."""
    from digitlab.errors import DigitlabError
    from digitlab.export import export_int8

    try:
        export_int8(run, dataset=ds)
    except (DigitlabError, OSError) as exc:
        unavailable["digitlab int8"] = f"int8 export failed: {exc}"


SIDES: dict[str, Callable[[Spec], dict[str, Any]]] = {
    "data": side_data, "reference_cnn": side_reference_cnn, "digitlab_cnn": side_digitlab_cnn,
    "inference": side_inference, "digitlab_cnn_seeds": side_digitlab_cnn_seeds,
    "sklearn_logreg": side_sklearn_logreg, "digitlab_softmax": side_digitlab_softmax,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sides", description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=list(SIDES), help="which side to run")
    parser.add_argument("--spec", required=True, help="the Spec as JSON")
    parser.add_argument("--out", required=True, type=Path, help="file to write the side's JSON result to")
    args = parser.parse_args(argv)
    result = SIDES[args.side](Spec(**json.loads(args.spec)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    result["peak_rss_mib"] = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

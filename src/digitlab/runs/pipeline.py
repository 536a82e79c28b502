"""The whole run: `train(config, dataset, run_dir=...)` = the loop, then `finish_run` on the model in memory.

`finish_run` fits the calibration temperature and the "not a digit" threshold on the validation
split, evaluates the trained model on the test split, saves the checkpoint (once, with its test
metrics, temperature and threshold), writes `report.json` and the plots, reloads the checkpoint
to check it reproduces the model, and writes the int8 ONNX model when it keeps the accuracy. `digitlab
train` is this function plus printing, so the CLI and Python produce the same run directory.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab._io import atomic_write_text
from digitlab.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from digitlab.errors import DigitlabError
from digitlab.evaluation import CalibrationResult, calibrate, evaluate_model, report_from_logits, write_report
from digitlab.layout import RunFiles
from digitlab.models.runner import predict_logits
from digitlab.training.config import TrainConfig
from digitlab.training.loop import Callback, TrainResult, fit
from digitlab.training.progress import Progress, Verbose, combine

if TYPE_CHECKING:
    from digitlab.data import Dataset
    from digitlab.export.quantize import Int8Export

log = logging.getLogger("digitlab.training")


@dataclass
class RunOutputs:
    """What `finish_run` wrote into the run directory, and what it measured."""

    checkpoint: Checkpoint  # the saved model (the in-memory one) and its model.json
    report: dict[str, Any]  # report.json's content: the test-set evaluation
    report_path: Path
    reloaded_accuracy: float  # test accuracy of the checkpoint read back from disk
    plots: list[Path] = field(default_factory=list)
    int8: Int8Export | None = None  # None when skipped
    int8_error: str | None = None  # why the int8 export failed, when it did

    @property
    def test_accuracy(self) -> float:
        return float(self.report["accuracy"])


@dataclass
class RunResult(TrainResult):
    """What `train` returns: the loop's `TrainResult` and, with a run_dir, what `finish_run` wrote."""

    outputs: RunOutputs | None = None


class ReloadMismatchError(DigitlabError):
    """The checkpoint read back from disk does not reproduce the trained model's accuracy."""


@dataclass(frozen=True)
class _Logits:
    """The trained model's logits on the validation and test images, computed once for every step."""

    val: np.ndarray  # (N_val, C)
    y_val: np.ndarray  # (N_val,)
    test: np.ndarray  # (N_test, C)
    y_test: np.ndarray  # (N_test,)


def _logits(result: TrainResult, dataset: Dataset, test_limit: int | None) -> _Logits:
    from digitlab.data import split_validation

    assert result.config is not None
    _, _, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, result.config.validation_size)
    x, y = dataset.x_test[:test_limit], dataset.y_test[:test_limit]
    return _Logits(predict_logits(result.model, x_val), y_val, predict_logits(result.model, x), y)


def _calibrate(logits: _Logits) -> CalibrationResult | None:
    """Temperature scaling fitted on the validation logits, measured on the test ones; None without validation."""
    if len(logits.y_val) == 0 or len(logits.y_test) == 0:
        log.warning("no validation images: the model is saved uncalibrated (temperature 1)")
        return None
    return calibrate(logits.val, logits.y_val, logits.test, logits.y_test)


def _rejection(result: TrainResult, dataset: Dataset, logits: _Logits,
               calibration: CalibrationResult | None) -> dict[str, Any] | None:
    """model.json's `rejection` (the energy threshold fitted on held-out digits); None without validation."""
    from digitlab.runs.open_set import fit_rejection

    assert result.config is not None
    if len(logits.y_val) == 0:
        log.warning("no validation images: no rejection threshold (only blank pictures are rejected)")
        return None
    temperature = calibration.temperature if calibration is not None else 1.0
    return fit_rejection(result.model, dataset, result.config, logits.val, temperature)


def _report(result: TrainResult, dataset: Dataset, logits: _Logits, calibration: CalibrationResult | None,
            rejection: dict[str, Any] | None, test_limit: int | None) -> dict[str, Any]:
    """report.json: the test-set evaluation, its `calibration` and `rejection` sections."""
    from digitlab.runs.open_set import rejection_report

    assert result.config is not None
    report = report_from_logits(logits.test, logits.y_test, dataset.class_names, dataset=dataset.name,
                                calibration=calibration.report if calibration is not None else None)
    if rejection is not None:
        report["rejection"] = rejection_report(result.model, dataset, result.config, rejection, logits.test,
                                               test_limit)
    return report


def _save(result: TrainResult, dataset: Dataset, run_dir: Path, report: dict[str, Any],
          calibration: CalibrationResult | None, rejection: dict[str, Any] | None) -> Checkpoint:
    assert result.config is not None
    metrics = {**result.metrics, "test_accuracy": report["accuracy"]}
    meta: dict[str, Any] = {"class_names": list(dataset.class_names), "dataset": dataset.name,
                            "training": result.config.to_dict(), "metrics": metrics}
    if calibration is not None:
        meta["calibration"] = calibration.meta
    if rejection is not None:
        meta["rejection"] = rejection
    return save_checkpoint(run_dir, result.model, meta)


def _reload_check(ckpt: Checkpoint, dataset: Dataset, report: dict[str, Any], test_limit: int | None) -> float:
    """Test accuracy of the checkpoint read back from disk; ReloadMismatchError when it differs."""
    reloaded = load_checkpoint(ckpt.run_dir)
    again = evaluate_model(reloaded.model, dataset.x_test[:test_limit], dataset.y_test[:test_limit],
                           dataset.class_names, dataset=dataset.name)
    if again["accuracy"] != report["accuracy"]:
        raise ReloadMismatchError(f"{ckpt.run_dir}: the reloaded checkpoint's test accuracy {again['accuracy']:.4f} "
                                  f"differs from the trained model's {report['accuracy']:.4f}; do not use it")
    return float(again["accuracy"])


def _int8(ckpt: Checkpoint, dataset: Dataset) -> tuple[Int8Export | None, str | None]:
    """The int8 export of the in-memory model, kept when as accurate and faster than float on this machine;
    (None, why) when it fails: the checkpoint is saved already."""
    from digitlab.export import export_int8

    try:
        return export_int8(ckpt, dataset=dataset, require_faster=True), None  # serve whichever is faster here
    except (DigitlabError, OSError) as exc:
        log.warning("int8 export of %s failed: %s", ckpt.run_dir, exc)
        return None, str(exc)


def finish_run(
    result: TrainResult,
    dataset: Dataset,
    run_dir: str | os.PathLike[str],
    *,
    plots: bool = True,
    int8: bool = True,
    test_limit: int | None = None,
) -> RunOutputs:
    """Calibrate, fit the rejection threshold, evaluate, save once, report, plot, reload-check and export.

    Works on the model in memory; reads the checkpoint back once, to check it. The temperature
    (Guo et al. 2017) and the "not a digit" threshold are fitted on the validation split (the
    first `validation_size` training images) and stored in model.json (`calibration`,
    `rejection`); report.json gets the test-set evaluation with `calibration` (ECE and NLL
    before and after) and `rejection` (see `open_set.rejection_report`). `test_limit`
    evaluates on the first N test images only (dry runs). Raises ReloadMismatchError when
    the saved checkpoint does not reproduce the model.
    """
    run = Path(run_dir)
    logits = _logits(result, dataset, test_limit)
    calibration = _calibrate(logits)
    rejection = _rejection(result, dataset, logits, calibration)
    report = _report(result, dataset, logits, calibration, rejection, test_limit)
    ckpt = _save(result, dataset, run, report, calibration, rejection)
    report_path = write_report(report, run)
    paths: list[Path] = []
    if plots:
        from digitlab.evaluation.plots import plot_run

        paths = plot_run(run, dataset=dataset, report=report, checkpoint=ckpt)
    reloaded = _reload_check(ckpt, dataset, report, test_limit)
    int8_export, int8_error = _int8(ckpt, dataset) if int8 else (None, None)
    return RunOutputs(ckpt, report, report_path, reloaded, paths, int8_export, int8_error)


def obtain_datasets(config: TrainConfig, dataset: Dataset | None = None) -> Dataset:
    """The dataset `config` trains on (`dataset`, else loaded), after making sure every other dataset it
    needs (`oe_datasets`) can be had too: before any work is done or any file written.

    A registered dataset that no source can give is one `DigitlabError` line naming it, why the
    config needs it and how to obtain it (`data.how_to_obtain`: Debian's package, `digitlab data
    fetch`); a folder that is not a dataset keeps the data layer's own message.
    """
    from digitlab.data import DATASETS, how_to_obtain, load

    needs = ([] if dataset is not None else [(config.dataset, config.data_dir, "to train on")]) + [
        (name, None, "for outlier exposure (oe_datasets)") for name in config.oe_datasets]
    loaded = dataset
    for name, data_dir, why in needs:
        try:
            found = load(name, data_dir=data_dir)
        except DigitlabError:
            if name not in DATASETS:
                raise
            raise DigitlabError(f"this training config needs dataset {name} {why}, and no source here gives its "
                                f"verified files: {how_to_obtain(name)}") from None
        loaded = found if loaded is None else loaded
    assert loaded is not None
    return loaded


def train(
    config: TrainConfig,
    dataset: Dataset | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callback: Callback | None = None,
    verbose: Verbose = "auto",
    plots: bool = True,
    int8: bool = True,
    test_limit: int | None = None,
) -> RunResult:
    """Train `config` on `dataset` (None loads `config.dataset`); with `run_dir`, write the whole run.

    The loop is `fit` (per-epoch `metrics.jsonl` and resume state); then, with `run_dir` and on
    rank 0, `finish_run` (checkpoint, `report.json`, plots, reload check, int8 model), whose
    outputs are `result.outputs`; `config.toml` (the resolved config) is written first. Without
    `run_dir` nothing is written and the model is returned. An existing run in `run_dir` is an
    error unless `resume` (continue it) or `overwrite` (replace it). Progress is shown as Keras'
    `fit` shows it (`verbose`: 0 silent, 1 a bar and a line per epoch, 2 a line per epoch,
    "auto" 1 in a terminal or notebook, else 2); `callback(event)` gets every event too.
    """
    if run_dir is not None and not (resume or overwrite):
        _refuse_existing_run(Path(run_dir))
    dataset = obtain_datasets(config, dataset)
    main = int(os.environ.get("RANK", "0")) == 0
    if run_dir is not None and main:
        atomic_write_text(RunFiles.of(run_dir).config_toml, config.to_toml())
    result = fit(config, dataset, run_dir=run_dir, resume=resume, save_final=run_dir is None,
                 callback=combine([Progress(verbose), callback]))
    outputs = None
    if run_dir is not None and main:
        outputs = finish_run(result, dataset, run_dir, plots=plots, int8=int8, test_limit=test_limit)
    return RunResult(**vars(result), outputs=outputs)


def _refuse_existing_run(run_dir: Path) -> None:
    files = RunFiles(run_dir)
    existing = [p.name for p in (files.model_json, files.metrics, files.state_json) if p.exists()]
    if existing:
        raise DigitlabError(f"{run_dir} already holds a run ({', '.join(existing)}); pass --overwrite "
                            "(overwrite=True) to replace it, --resume (resume=True) to continue it, or choose "
                            "another run directory")

"""The "not a digit" threshold and its figures, fitted and measured at the end of a run (`finish_run`).

`fit_rejection` chooses the energy threshold (`digitlab.inference.rejection`) on held-out
in-distribution data only: the validation images, and for digit models realistic pictures
(synth photos of paper, canvases, print, through the preprocessing) drawn from those same
validation digits. The threshold keeps at least `config.reject_keep` of each group.

`rejection_report` then measures the decision on data neither training nor the threshold saw:
the test split against another dataset's test split (Fashion-MNIST for digits), non-digits of
the synth split "heldout" (letters, symbols, scribbles and doodles of other fonts and kinds than
the training outliers, on paper and on black and transparent canvases), and realistic pictures
of the *test* digits, condition by condition.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from digitlab.evaluation.rejection import auroc, choose_threshold, false_accept_rate
from digitlab.inference.rejection import METHOD, Ink, Rejection, decide
from digitlab.models.runner import predict_logits
from digitlab.training.outliers import ImageSet, realistic_digits, synth_nondigits

if TYPE_CHECKING:
    from torch import nn

    from digitlab.data import Dataset
    from digitlab.training.config import TrainConfig

FIT_SEED = 1  # realistic pictures of validation digits for the threshold...
EVAL_SEED = 2  # ...and other pictures, of test digits and held-out non-digits, for the report
NONDIGITS_PER_DIGIT_SET = 3  # non-digit pictures per condition, per digit picture per condition
OTHER_DATASET = {"mnist": "fashion-mnist", "kmnist": "fashion-mnist", "fashion-mnist": "mnist"}
TRUE_ACCEPT = 0.95  # the false-accept rate is reported where 95% of the test split is accepted


def is_digit_model(dataset: Dataset) -> bool:
    """Whether the classes are the digits 0-9 (then realistic digit pictures make sense)."""
    return [str(c) for c in dataset.class_names] == [str(i) for i in range(10)]


def _validation(dataset: Dataset, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    from digitlab.data import split_validation

    _, _, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, config.validation_size)
    return x_val, y_val


def _set_reasons(model: nn.Module, s: ImageSet, rejection: Rejection | None, dataset: str) -> tuple[np.ndarray, list]:
    """(logits (N, C), reasons (N,)) of a picture set under `rejection`."""
    logits = predict_logits(model, s.images)
    ink = [Ink(bool(b), int(o)) for b, o in zip(s.facts["blank"], s.facts["objects"])]
    return logits, decide(logits, rejection, ink=ink, dataset=dataset)


def fit_rejection(model: nn.Module, dataset: Dataset, config: TrainConfig, val_logits: np.ndarray,
                  temperature: float = 1.0) -> dict[str, Any]:
    """model.json's `rejection`: the energy threshold keeping a share of each group of held-out digits.

    val_logits: (N_val, C) of the validation images. `temperature`: the calibration's; the score
    is the energy of the calibrated logits z / T, times T (so it stays in logit units). Groups:
    "validation" (those images; `config.reject_keep` of them kept), and for digit models "realistic"
    (`config.reject_fit_samples` pictures per synth digit condition of validation digits, those the
    ink checks keep; `config.reject_keep_pictures` of them kept).
    """
    rule = Rejection(threshold=0.0, temperature=temperature)  # its score only
    groups = {"validation": rule.score(val_logits)}
    if config.reject_fit_samples and is_digit_model(dataset):
        x_val, y_val = _validation(dataset, config)
        pictures = realistic_digits(x_val, y_val, config.reject_fit_samples, seed=FIT_SEED)
        logits, reasons = _set_reasons(model, pictures, None, dataset.name)
        kept = np.array([r is None for r in reasons], dtype=bool)
        groups["realistic"] = rule.score(logits[kept])
    keep = {"validation": config.reject_keep, "realistic": config.reject_keep_pictures}
    threshold = choose_threshold(groups, keep=keep)
    return {"method": METHOD, "threshold": threshold, "temperature": rule.temperature,
            "keep": {name: keep[name] for name in groups},
            "fitted_on": {name: int(len(s)) for name, s in groups.items()}}


def _rates(reasons: list, groups: np.ndarray) -> dict[str, float]:
    """Share rejected per group name (and "all")."""
    rejected = np.array([r is not None for r in reasons], dtype=bool)
    out = {"all": float(rejected.mean()) if rejected.size else float("nan")}
    for g in sorted(set(groups.tolist())):
        out[g] = float(rejected[groups == g].mean())
    return out


def _versus(inlier_scores: np.ndarray, outlier_scores: np.ndarray) -> dict[str, float]:
    return {"auroc": auroc(inlier_scores, outlier_scores),
            "false_accept_at_95": false_accept_rate(inlier_scores, outlier_scores, TRUE_ACCEPT)}


def _other_dataset(model: nn.Module, dataset: Dataset, rejection: Rejection, test_scores: np.ndarray,
                   limit: int | None) -> dict[str, Any] | None:
    from digitlab.data import load
    from digitlab.errors import DigitlabError

    name = OTHER_DATASET.get(dataset.name)
    if name is None:
        return None
    try:
        other = load(name, offline=True)  # a report uses what the machine has; it downloads nothing
    except DigitlabError as exc:
        return {"dataset": name, "skipped": str(exc)}
    logits = predict_logits(model, other.x_test[:limit])
    scores = rejection.score(logits)
    return {"dataset": name, "n": int(len(scores)), **_versus(test_scores, scores),
            "rejected": float(np.mean(scores > rejection.threshold))}


def rejection_report(model: nn.Module, dataset: Dataset, config: TrainConfig, meta: dict[str, Any],
                     test_logits: np.ndarray, test_limit: int | None = None) -> dict[str, Any]:
    """report.json's `rejection`: how the stored decision (`meta`) does on data it never saw.

    Keys: `method`, `threshold`, `test_rejected` (share of the test split rejected by score),
    `other_dataset` (AUROC and false-accept rate at 95% true-accept of the test split against
    another dataset's test split, and its share rejected), and with `config.reject_eval_samples`
    `heldout_nondigits` (share rejected per condition and medium, AUROC / false-accept against
    the test split) and for digit models `realistic_digits` (share kept per condition, and the
    accuracy on the kept ones).
    """
    rejection = Rejection(float(meta["threshold"]), meta.get("method", METHOD), float(meta.get("temperature", 1.0)))
    test_scores = rejection.score(test_logits)
    report: dict[str, Any] = {"method": rejection.method, "threshold": rejection.threshold, "keep": meta.get("keep"),
                              "test_rejected": float(np.mean(test_scores > rejection.threshold))}
    other = _other_dataset(model, dataset, rejection, test_scores, test_limit)
    if other is not None:
        report["other_dataset"] = other
    n = config.reject_eval_samples
    if n:
        from digitlab.data.registry import preprocessing_of

        nd = synth_nondigits(NONDIGITS_PER_DIGIT_SET * n, split="heldout", seed=EVAL_SEED,
                             profile=preprocessing_of(dataset.name))  # as the model's own pictures are prepared
        logits, reasons = _set_reasons(model, nd, rejection, dataset.name)
        report["heldout_nondigits"] = {"n": len(nd), "rejected": _rates(reasons, nd.condition),
                                       "rejected_by_medium": _rates(reasons, nd.medium),
                                       **_versus(test_scores, rejection.score(logits))}
    if n and is_digit_model(dataset):
        report["realistic_digits"] = _realistic_report(model, dataset, rejection, n)
    return report


def _realistic_report(model: nn.Module, dataset: Dataset, rejection: Rejection, n: int) -> dict[str, Any]:
    pictures = realistic_digits(dataset.x_test, dataset.y_test, n, seed=EVAL_SEED)
    logits, reasons = _set_reasons(model, pictures, rejection, dataset.name)
    rejected = _rates(reasons, pictures.condition)
    kept = np.array([r is None for r in reasons], dtype=bool)
    right = logits.argmax(axis=1) == pictures.labels
    return {"n": len(pictures), "kept": {k: 1.0 - v for k, v in rejected.items()},
            "accuracy_kept": float(right[kept].mean()) if kept.any() else float("nan"),
            "accuracy_all": float(right.mean()),
            "reasons": dict(Counter(str(r) for r in reasons if r is not None))}

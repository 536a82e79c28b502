"""From the sides' raw results to time-to-accuracy, the five targets' verdicts and the Markdown page.

Everything here is computed from the figures of the run at hand; a side that failed (or was
skipped) leaves its figures out and its targets UNDETERMINED, with the reason in the page.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

PASS, FAIL, UNDETERMINED = "PASS", "FAIL", "UNDETERMINED"
CNN_MARKS = (0.99, 0.994)  # the CNN test accuracies whose time-to is reported
SOFTMAX_MARK = 0.92
INFERENCE_FACTOR, TRAINING_FACTOR, DATA_SECONDS = 20.0, 10.0, 0.5


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def side(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The result of side `name` when it ran to the end, else None."""
    s = results["sides"].get(name)
    return s if isinstance(s, dict) and "error" not in s else None


def missing(results: dict[str, Any], *names: str) -> str | None:
    """`side X did not run` for the first of `names` that failed or was skipped, else None."""
    for name in names:
        if side(results, name) is None:
            return f"side {name} did not run"
    return None


def time_to_accuracy(records: Iterable[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The first evaluation (in training order) at or above `target` test accuracy, or None.

    Returns {elapsed (training seconds, evaluation excluded), step, epoch, images, accuracy}.
    """
    for r in records:
        if r.get("test_accuracy") is not None and r["test_accuracy"] >= target:
            return {"elapsed": r["elapsed"], "step": r.get("step"), "epoch": r.get("epoch"),
                    "images": r.get("images"), "accuracy": r["test_accuracy"]}
    return None


def training(s: dict[str, Any] | None) -> dict[str, Any] | None:
    """A training side's figures from its records: time to each mark, accuracies, seconds, images/s."""
    if s is None:
        return None
    records = s["records"]
    evals = [r for r in records if r.get("test_accuracy") is not None]
    seconds = max((r["elapsed"] for r in records), default=0.0)
    images = max((r.get("images") or 0 for r in records), default=0)
    return {"time_to": {m: time_to_accuracy(evals, m) for m in (*CNN_MARKS, SOFTMAX_MARK)},
            "best_accuracy": max((r["test_accuracy"] for r in evals), default=None),
            "final_accuracy": evals[-1]["test_accuracy"] if evals else None,
            "train_seconds": seconds, "outside_seconds": s["wall_seconds"] - seconds,
            "images_per_second": images / seconds if seconds > 0 else None}


def _time(t: dict[str, Any] | None, mark: float) -> tuple[float | None, bool]:
    """(seconds to `mark`, exact); a side that never got there gives its whole training time, a lower bound."""
    if t is None:
        return None, True
    hit = t["time_to"][mark]
    return (hit["elapsed"], True) if hit else (t["train_seconds"], False)


def faster(digitlab_s: float | None, base_s: float | None, base_exact: bool, factor: float
           ) -> tuple[str, float | None]:
    """(verdict, speedup) for "digitlab at least `factor` times sooner than the baseline".

    A baseline that never reached its mark gives a lower bound: enough to PASS, never to FAIL.
    """
    if base_s is None:
        return UNDETERMINED, None
    if digitlab_s is None:
        return FAIL, None
    speedup = base_s / digitlab_s if digitlab_s > 0 else float("inf")
    return (PASS if speedup >= factor else FAIL if base_exact else UNDETERMINED), speedup


def best_images_per_second(inference: dict[str, Any] | None, name: str) -> tuple[float | None, str | None]:
    """Predictor `name`'s best images/s over the batch sizes, and the batch size it came at."""
    by_batch = _get(inference, "throughput", name) or {}
    if not by_batch:
        return None, None
    batch = max(by_batch, key=lambda b: by_batch[b]["images_per_second"])
    return by_batch[batch]["images_per_second"], batch


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The five targets, each with its figures, `verdict` (PASS / FAIL / UNDETERMINED) and `note`."""
    ref, cnn = training(side(results, "reference_cnn")), training(side(results, "digitlab_cnn"))
    softmax, logreg = training(side(results, "digitlab_softmax")), side(results, "sklearn_logreg")
    out = []
    ref_s, ref_exact = _time(ref, 0.99)
    for mark, factor, text in (
            (0.99, TRAINING_FACTOR, "digitlab cnn reaches 99.0% >= 10x sooner than the reference CNN"),
            (0.994, 1.0, "digitlab cnn reaches 99.4% sooner than the reference CNN reaches 99.0%")):
        dl_s = _time(cnn, mark)[0] if cnn and cnn["time_to"][mark] else None
        verdict, speedup = faster(dl_s, ref_s, ref_exact, factor)
        out.append({"id": f"cnn_{mark * 1000:.0f}", "target": text, "digitlab": dl_s, "baseline": ref_s,
                    "baseline_exact": ref_exact, "speedup": speedup,
                    "verdict": verdict if cnn else UNDETERMINED,
                    "note": missing(results, "digitlab_cnn", "reference_cnn")})
    hit = _get(softmax, "time_to", SOFTMAX_MARK, "elapsed")
    fit, lr_acc = _get(logreg, "fit_seconds"), _get(logreg, "test_accuracy")
    exact = lr_acc is not None and lr_acc >= SOFTMAX_MARK  # below 92%, its fit time is a lower bound
    verdict, speedup = faster(hit, fit, exact, TRAINING_FACTOR)
    out.append({"id": "softmax_92", "target": "digitlab softmax reaches 92% >= 10x sooner than scikit-learn's "
                "LogisticRegression fits (to its final accuracy)", "digitlab": hit, "baseline": fit,
                "baseline_exact": exact, "speedup": speedup, "verdict": verdict if softmax else UNDETERMINED,
                "note": missing(results, "digitlab_softmax", "sklearn_logreg")})
    inf = side(results, "inference")
    dl_ips, dl_batch = best_images_per_second(inf, "digitlab auto")
    ref_ips, ref_batch = best_images_per_second(inf, "reference torch")
    dl_acc, ref_acc = _get(inf, "test_accuracy", "digitlab auto"), _get(inf, "test_accuracy", "reference torch")
    ratio = dl_ips / ref_ips if dl_ips and ref_ips else None
    verdict = (UNDETERMINED if ratio is None or dl_acc is None or ref_acc is None
               else PASS if ratio >= INFERENCE_FACTOR and dl_acc >= ref_acc else FAIL)
    out.append({"id": "inference_20x", "target": "batched CPU inference of `Predictor.load(run, backend=\"auto\")` "
                ">= 20x the reference CNN's images/s, each at its best batch size, at equal or better accuracy",
                "digitlab": dl_ips, "digitlab_batch": dl_batch, "backend": _get(inf, "backends", "auto"),
                "baseline": ref_ips, "baseline_batch": ref_batch, "speedup": ratio, "digitlab_accuracy": dl_acc,
                "baseline_accuracy": ref_acc, "verdict": verdict,
                "note": missing(results, "inference") or "; ".join(
                    f"{k}: {v}" for k, v in (_get(inf, "unavailable") or {}).items()
                    if k in ("digitlab auto", "reference torch")) or None})
    warm = _get(side(results, "data"), "warm", "first_seconds")
    out.append({"id": "data_cache", "target": "full MNIST loaded and SHA-256 verified from the cache in < 0.5 s",
                "digitlab": warm, "verdict": UNDETERMINED if warm is None else PASS if warm < DATA_SECONDS else FAIL,
                "note": missing(results, "data")})
    return out


# --------------------------------------------------------------------------- Markdown

def _n(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _s(x: float | None, exact: bool = True) -> str:
    return "n/a" if x is None else f"{x:.2f} s" if exact else f"> {x:.1f} s (not reached)"


def _pct(x: float | None) -> str:
    return _n(x, "{:.2%}")


def _x(a: float | None, b: float | None, exact: bool = True) -> str:
    return "" if not a or not b else f"{a / b:.1f}x" + ("" if exact else " at least")


def _reached(t: dict[str, Any] | None, mark: float) -> str:
    """A training side's time to `mark`: seconds, "not reached", or n/a when the side did not run."""
    hit = _get(t, "time_to", mark)
    return "n/a" if t is None else _s(hit["elapsed"]) if hit else "not reached"


def _measured(t: dict[str, Any]) -> str:
    if t["id"] == "inference_20x":
        dl = "n/a" if t["digitlab"] is None else f"{t['digitlab']:,.0f} ({t['backend']}, batch {t['digitlab_batch']})"
        ref = "n/a" if t["baseline"] is None else f"{t['baseline']:,.0f} (batch {t['baseline_batch']})"
        ratio = "" if t["speedup"] is None else f" = {t['speedup']:.1f}x"
        return (f"{dl} vs {ref} images/s{ratio}; test accuracy "
                f"{_pct(t['digitlab_accuracy'])} vs {_pct(t['baseline_accuracy'])}")
    if t["id"] == "data_cache":
        return "n/a" if t["digitlab"] is None else f"{_s(t['digitlab'])} (first load in a fresh process)"
    reached = _s(t["digitlab"]) if t["digitlab"] is not None else "not reached"
    ratio = "" if t["speedup"] is None else f" = {t['speedup']:.1f}x" + ("" if t["baseline_exact"] else " at least")
    return f"{reached} vs {_s(t['baseline'], t['baseline_exact'])}{ratio}"


def _header(results: dict[str, Any]) -> list[str]:
    m, spec = results["machine"], results["spec"]
    load = results["load_average"]
    changed = {k: v for k, v in (("cnn", spec["cnn_overrides"]), ("softmax", spec["softmax_overrides"])) if v}
    return [
        "# digitlab benchmark" + (" (QUICK: slices and tiny budgets, not a measurement)" if results["quick"] else ""),
        "",
        f"- date: {results['date']}; command: `{results['command']}` ({results['wall_seconds']:.0f} s in all)",
        f"- machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"onnxruntime {m['onnxruntime']}, scikit-learn {m['sklearn']}, Python {m['python']}; training device "
        f"`{spec['device']}`",
        f"- load average (1/5/15 min) at start {' / '.join(f'{v:.2f}' for v in load['start'])}, at end "
        f"{' / '.join(f'{v:.2f}' for v in load['end'])}: above ~1.5 at the start, the machine was busy",
        f"- MNIST: {results['data_source']}",
        f"- recipes `{spec['cnn_recipe']}` vs the pytorch/examples CNN, `{spec['softmax_recipe']}` vs "
        f"LogisticRegression(max_iter={spec['logreg_max_iter']})"
        + "".join(f"; **{k} changed**: `{json.dumps(v)}`" for k, v in changed.items()),
    ]


def _training_rows(results: dict[str, Any]) -> list[str]:
    ref_side, cnn_side = side(results, "reference_cnn"), side(results, "digitlab_cnn")
    ref, cnn, sm = training(ref_side), training(cnn_side), training(side(results, "digitlab_softmax"))
    lr, int8 = side(results, "sklearn_logreg"), _get(cnn_side, "int8")
    fit = _get(lr, "fit_seconds")
    rows = ["| measure | digitlab | baseline | ratio |", "|---|---|---|---|"]
    for mark in CNN_MARKS:
        base, exact = _time(ref, mark)
        rows.append(f"| CNN time to {mark:.1%} test accuracy | {_reached(cnn, mark)} | {_s(base, exact)} | "
                    f"{_x(base, _get(cnn, 'time_to', mark, 'elapsed'), exact)} |")
    rows += [
        f"| CNN best / final test accuracy | {_pct(_get(cnn, 'best_accuracy'))} / {_pct(_get(cnn, 'final_accuracy'))}"
        f" | {_pct(_get(ref, 'best_accuracy'))} / {_pct(_get(ref, 'final_accuracy'))} | |",
        f"| CNN training images/s | {_n(_get(cnn, 'images_per_second'))} | {_n(_get(ref, 'images_per_second'))} | "
        f"{_x(_get(cnn, 'images_per_second'), _get(ref, 'images_per_second'))} |",
        f"| CNN training seconds (+ outside training: evaluations, set-up, saving, int8 export) | "
        f"{_n(_get(cnn, 'train_seconds'), '{:.1f}')} (+{_n(_get(cnn, 'outside_seconds'), '{:.1f}')}) | "
        f"{_n(_get(ref, 'train_seconds'), '{:.1f}')} (+{_n(_get(ref, 'outside_seconds'), '{:.1f}')}) | |",
        "| CNN int8 model after training (`train`, as `digitlab train`) | "
        + ("n/a" if not int8 else f"{'kept' if int8['kept'] else 'not kept'}: validation "
           f"{_pct(int8['int8_validation_accuracy'])} vs float {_pct(int8['float_validation_accuracy'])}")
        + (f" ({cnn_side['int8_error']})" if _get(cnn_side, "int8_error") else "") + " | | |",
        f"| CNN peak RSS MiB | {_n(_get(cnn_side, 'peak_rss_mib'))} | {_n(_get(ref_side, 'peak_rss_mib'))} | |",
        f"| softmax time to 92% (digitlab) vs `fit` (scikit-learn) | {_reached(sm, SOFTMAX_MARK)} | "
        f"{_s(fit)} | {_x(fit, _get(sm, 'time_to', SOFTMAX_MARK, 'elapsed'))} |",
        f"| softmax final test accuracy | {_pct(_get(sm, 'final_accuracy'))} | {_pct(_get(lr, 'test_accuracy'))} "
        f"({_get(lr, 'n_iter')} lbfgs iterations{', converged' if _get(lr, 'converged') else ', not converged'}) | |",
    ]
    return rows


def _inference_rows(results: dict[str, Any]) -> list[str]:
    inf = side(results, "inference")
    if inf is None:
        return ["n/a"]
    names = list(inf["throughput"])
    label = {n: f"{n} ({inf['backends'][n.removeprefix('digitlab ')]})" if n == "digitlab auto" else n
             for n in names}
    rows = ["| batch | " + " | ".join(label[n] for n in names) + " | auto / reference |",
            "|---|" + "---|" * (len(names) + 1)]
    for b in results["spec"]["inference_batch_sizes"]:
        ips = {n: _get(inf, "throughput", n, str(b), "images_per_second") for n in names}
        rows.append(f"| {b} | " + " | ".join(_n(ips[n]) for n in names)
                    + f" | {_x(ips.get('digitlab auto'), ips.get('reference torch'))} |")
    rows.append("| test accuracy as served | " + " | ".join(_pct(inf["test_accuracy"].get(n)) for n in names) + " | |")
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    """The whole page: header, targets, training, inference, data, and what did not run."""
    spec, data = results["spec"], side(results, "data")
    lines = [*_header(results), "", "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    for t in results["targets"]:
        note = f" ({t['note']})" if t["note"] else ""
        lines.append(f"| {t['target']} | {_measured(t)}{note} | **{t['verdict']}** |")
    lines += ["", "## Training", "", "Times are training seconds, evaluations excluded; ratio = how many times "
              "better digitlab is.", "", *_training_rows(results), "",
              "## CPU inference, images/s", "",
              f"Best of {spec['inference_rounds']} interleaved windows of {spec['inference_window_seconds']} s on "
              f"{spec['inference_images']} test images, uint8 in, probabilities out.", "", *_inference_rows(results),
              "", "## Data: full MNIST loaded and verified", ""]
    if data:
        lines += ["| load | first in a fresh process | best of repeats | source |", "|---|---|---|---|"]
        lines += [f"| {kind} | {data[key]['first_seconds']:.3f} s | {data[key]['best_seconds']:.3f} s | "
                  f"{data[key]['source']} |" for kind, key in (("cold (gzip folder)", "cold"),
                                                              ("warm (digitlab cache)", "warm"))]
    else:
        lines.append("n/a")
    failed = {name: s["error"] for name, s in results["sides"].items() if "error" in s}
    unavailable = _get(side(results, "inference"), "unavailable") or {}
    if failed or unavailable:
        lines += ["", "## Missing", ""]
        lines += [f"- side `{name}`: {error.strip().splitlines()[-1] if error.strip() else error}"
                  for name, error in failed.items()]
        lines += [f"- inference `{name}`: {why}" for name, why in unavailable.items()]
    return "\n".join(lines) + "\n"

"""From the sides' results to comparisons, target verdicts and the Markdown table."""
from __future__ import annotations

import json
from typing import Any

PASS, FAIL, UNDETERMINED = "PASS", "FAIL", "UNDETERMINED"


def _get(d: dict[str, Any] | None, *keys: Any) -> Any:
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def reached(side: dict[str, Any] | None, target: float) -> float | None:
    """Training seconds at which `side` first reached `target` test accuracy, or None."""
    return _get(side, "time_to", f"{target:.3f}", "elapsed")


def time_vs_budget(side: dict[str, Any] | None, target: float) -> tuple[float | None, bool]:
    """(seconds, exact): the time to `target`, or the run's whole training time as a lower bound."""
    t = reached(side, target)
    if t is not None:
        return t, True
    return _get(side, "train_seconds"), False


def faster_verdict(digitlab_s: float | None, base_s: float | None, base_exact: bool,
                   factor: float) -> tuple[str, float | None]:
    """Is `digitlab_s` at least `factor` times shorter than the baseline's time? -> (verdict, speedup).

    When the baseline never reached its mark, `base_s` is its whole training time, a lower
    bound: the speedup is then a lower bound too, enough for PASS but never for FAIL.
    """
    if base_s is None:
        return UNDETERMINED, None  # the baseline did not run
    if digitlab_s is None:
        return FAIL, None
    speedup = base_s / digitlab_s if digitlab_s > 0 else float("inf")
    if speedup >= factor:
        return PASS, speedup
    return (FAIL if base_exact else UNDETERMINED), speedup


def best_inference(side: dict[str, Any] | None, name: str) -> tuple[float | None, str | None]:
    """Predictor `name`'s best images/s over the batch sizes of the inference side, and at which."""
    best, where = None, None
    for batch, res in (_get(side, "throughput", name) or {}).items():
        ips = _get(res, "images_per_second")
        if ips is not None and (best is None or ips > best):
            best, where = ips, f"batch {batch}"
    return best, where


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's five targets, each with what was measured and PASS / FAIL / UNDETERMINED."""
    sides = {k: v for k, v in results["sides"].items() if "error" not in v}  # failed sides: no verdict
    ref, cnn = sides.get("reference_cnn"), sides.get("digitlab_cnn")
    lr, sm = sides.get("sklearn_logreg"), sides.get("digitlab_softmax")
    out = []

    ref99, ref99_exact = time_vs_budget(ref, 0.99)
    verdict, speedup = faster_verdict(reached(cnn, 0.99), ref99, ref99_exact, 10.0)
    verdict = verdict if cnn is not None else UNDETERMINED
    out.append({"id": "cnn_99_10x", "target": "digitlab cnn reaches 99.0% >= 10x sooner than the reference CNN",
                "digitlab_seconds": reached(cnn, 0.99), "baseline_seconds": ref99,
                "baseline_exact": ref99_exact, "speedup": speedup, "verdict": verdict})

    verdict, speedup = faster_verdict(reached(cnn, 0.994), ref99, ref99_exact, 1.0)
    verdict = verdict if cnn is not None else UNDETERMINED
    out.append({"id": "cnn_994_before_ref_99",
                "target": "digitlab cnn reaches 99.4% sooner than the reference reaches 99.0%",
                "digitlab_seconds": reached(cnn, 0.994), "baseline_seconds": ref99,
                "baseline_exact": ref99_exact, "speedup": speedup, "verdict": verdict})

    fit = _get(lr, "fit_seconds")
    verdict, speedup = faster_verdict(reached(sm, 0.92), fit, True, 10.0)
    verdict = verdict if sm is not None else UNDETERMINED
    out.append({"id": "softmax_92_10x",
                "target": "digitlab softmax reaches 92% >= 10x sooner than sklearn LogisticRegression "
                          "reaches its final accuracy",
                "digitlab_seconds": reached(sm, 0.92), "baseline_seconds": fit,
                "baseline_accuracy": _get(lr, "test_accuracy"), "speedup": speedup, "verdict": verdict})

    inf = sides.get("inference")
    auto = _get(inf, "backends", "auto")  # what `digitlab predict` and the service run
    dl_ips, dl_where = best_inference(inf, "digitlab auto")
    ref_ips, ref_where = best_inference(inf, "reference torch")
    backend = f"{auto}, {dl_where}" if dl_where else None
    ref_where = f"torch, {ref_where}" if ref_where else None
    dl_acc, ref_acc = _get(inf, "test_accuracy", "digitlab auto"), _get(inf, "test_accuracy", "reference torch")
    ratio = dl_ips / ref_ips if dl_ips and ref_ips else None
    if ratio is None or dl_acc is None or ref_acc is None:
        verdict = UNDETERMINED
    else:
        verdict = PASS if ratio >= 20.0 and dl_acc >= ref_acc else FAIL
    out.append({"id": "inference_20x",
                "target": "batched CPU inference of the default model >= 20x the reference CNN's "
                          "images/s at equal or better accuracy (digitlab: the backend `predict` and the "
                          "service use; each at its best batch size; timed in interleaved windows)",
                "digitlab_images_per_second": dl_ips, "digitlab_backend": backend,
                "baseline_images_per_second": ref_ips, "baseline_backend": ref_where, "speedup": ratio,
                "digitlab_accuracy": dl_acc, "baseline_accuracy": ref_acc, "verdict": verdict})

    warm = _get(sides.get("data"), "warm", "first_seconds")
    out.append({"id": "data_cache_0.5s", "target": "full MNIST loaded and verified from the cache in < 0.5 s",
                "digitlab_seconds": warm,
                "verdict": UNDETERMINED if warm is None else (PASS if warm < 0.5 else FAIL)})
    return out


# --------------------------------------------------------------------------- Markdown

def _s(x: float | None, exact: bool = True) -> str:
    if x is None:
        return "not reached"
    return f"{x:.2f} s" if exact else f"> {x:.1f} s (not reached)"


def _n(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _ratio(dl: float | None, base: float | None, lower_is_better: bool, base_exact: bool = True) -> str:
    """digitlab / baseline, with how many times better in words."""
    if dl is None or base is None or base == 0 or dl == 0:
        return "n/a"
    r = dl / base
    better = 1 / r if lower_is_better else r
    bound = "" if base_exact else ("< " if lower_is_better else "> ")
    words = f"{better:.1f}x better" if better >= 1 else f"{1 / better:.1f}x worse"
    if not base_exact:
        words = f"at least {better:.1f}x better" if lower_is_better else words
    return f"{bound}{r:.3g} ({words})"


def render_markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown page: header (date, machine), tables, target verdicts."""
    m, sides = results["machine"], results["sides"]
    ref, cnn = sides.get("reference_cnn"), sides.get("digitlab_cnn")
    lr, sm, data = sides.get("sklearn_logreg"), sides.get("digitlab_softmax"), sides.get("data")
    load = results.get("load_average", {})
    lines = [
        f"# digitlab benchmark{' (QUICK smoke run: slices, not a measurement)' if results['quick'] else ''}",
        "",
        f"- date: {results['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
        f"Python {m['python']}, device `{m['device']}`" + (f" ({m['gpu']})" if m.get("gpu") else ""),
        f"- load average (1/5/15 min) at start: {_loads(load.get('start'))}; at end: {_loads(load.get('end'))}",
        f"- command: `{results['command']}` ({results['wall_seconds']:.0f} s in all)",
        f"- recipes: `{results['recipes']['cnn']}`{_changed(results['recipes'].get('cnn_overrides'))} vs the "
        f"pytorch/examples CNN; `{results['recipes']['softmax']}`"
        f"{_changed(results['recipes'].get('softmax_overrides'))} vs sklearn LogisticRegression "
        f"(lbfgs, max_iter={_get(lr, 'max_iter')})",
        "",
        "Times are training seconds with evaluation excluded; ratio = digitlab / baseline.",
        "",
        "| measure | digitlab | baseline | digitlab / baseline |",
        "|---|---|---|---|",
    ]
    for target in (0.99, 0.994):
        ref_t, exact = time_vs_budget(ref, target)
        lines.append(f"| CNN time to {target:.1%} test accuracy | {_s(reached(cnn, target))} | "
                     f"{_s(ref_t, exact)} | {_ratio(reached(cnn, target), ref_t, True, exact)} |")
    lines.append(f"| CNN best / final test accuracy | {_acc(cnn)} | {_acc(ref)} | |")
    lines.append(f"| CNN training images/s | {_n(_get(cnn, 'train_images_per_second'))} | "
                 f"{_n(_get(ref, 'train_images_per_second'))} | "
                 f"{_ratio(_get(cnn, 'train_images_per_second'), _get(ref, 'train_images_per_second'), False)} |")
    lines.append(f"| CNN training seconds in all (+ seconds outside training: evaluation, setup, checkpoints) | "
                 f"{_n(_get(cnn, 'train_seconds'), '{:.1f}')} (+{_n(_get(cnn, 'outside_training_seconds'), '{:.1f}')}) | "
                 f"{_n(_get(ref, 'train_seconds'), '{:.1f}')} (+{_n(_get(ref, 'outside_training_seconds'), '{:.1f}')}) | |")
    if _get(cnn, "compile_seconds") is not None:
        lines.append(f"| CNN compile seconds (not in the times above) | {cnn['compile_seconds']:.1f} | 0 (eager) | |")
    int8 = _get(cnn, "int8_export")
    if int8:
        lines.append(f"| CNN int8 export after training, as `digitlab train` does (not in the times above) | "
                     f"{int8['seconds']:.1f} s, {'kept' if int8['kept'] else 'not kept'} (validation accuracy "
                     f"{int8['int8_validation_accuracy']:.2%} vs float {int8['float_validation_accuracy']:.2%}) | | |")
    inf = sides.get("inference")
    throughput = _get(inf, "throughput") or {}
    for batch in results.get("inference_batches", []):
        ref_ips = _get(throughput, "reference torch", str(batch), "images_per_second")
        for name, by_batch in throughput.items():
            if name == "reference torch":
                continue
            ips = _get(by_batch, str(batch), "images_per_second")
            backend = _get(inf, "backends", name.removeprefix("digitlab "))
            label = f"{name} ({backend})" if name == "digitlab auto" else name
            lines.append(f"| CNN inference images/s, batch {batch}, {label} vs reference torch | "
                         f"{_n(ips)} | {_n(ref_ips)} | {_ratio(ips, ref_ips, False)} |")
    for name, acc in (_get(inf, "test_accuracy") or {}).items():
        if name != "reference torch":
            lines.append(f"| CNN test accuracy as served, {name} vs reference torch | {acc:.2%} | "
                         f"{_get(inf, 'test_accuracy', 'reference torch'):.2%} | |")
    for name, device_result in (_get(cnn, "inference") or {}).items():  # accelerator timings
        for batch in results.get("inference_batches", []):
            ips = _get(device_result, str(batch), "images_per_second")
            if ips is not None:
                lines.append(f"| CNN inference images/s, batch {batch}, digitlab {name} | {_n(ips)} | | |")
    lines.append(f"| CNN peak RSS MiB | {_n(_get(cnn, 'peak_rss_mib'))} | {_n(_get(ref, 'peak_rss_mib'))} | "
                 f"{_ratio(_get(cnn, 'peak_rss_mib'), _get(ref, 'peak_rss_mib'), True)} |")
    if _get(cnn, "peak_cuda_mib") is not None or _get(ref, "peak_cuda_mib") is not None:
        lines.append(f"| CNN peak CUDA MiB | {_n(_get(cnn, 'peak_cuda_mib'))} | {_n(_get(ref, 'peak_cuda_mib'))} | |")
    sm92, fit = reached(sm, 0.92), _get(lr, "fit_seconds")
    lines.append(f"| softmax: time to 92% (digitlab) vs fit to its final accuracy (sklearn) | "
                 f"{_s(sm92)} | {_s(fit)} | {_ratio(sm92, fit, True)} |")
    lines.append(f"| softmax final test accuracy | {_acc(sm)} | {_n(_get(lr, 'test_accuracy'), '{:.2%}')} | |")
    lines.append(f"| softmax peak RSS MiB | {_n(_get(sm, 'peak_rss_mib'))} | {_n(_get(lr, 'peak_rss_mib'))} | "
                 f"{_ratio(_get(sm, 'peak_rss_mib'), _get(lr, 'peak_rss_mib'), True)} |")
    if data:
        lines += [
            "",
            "| data: full MNIST loaded and verified | first load in a fresh process | best of repeats | source |",
            "|---|---|---|---|",
            f"| cold (gzip folder) | {data['cold']['first_seconds']:.3f} s | {data['cold']['best_seconds']:.3f} s "
            f"| {data['cold']['source']} |",
            f"| warm (digitlab cache) | {data['warm']['first_seconds']:.3f} s | {data['warm']['best_seconds']:.3f} s "
            f"| {data['warm']['source']} |",
        ]
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {_measured(t)} | **{t['verdict']}** |")
    lines.append("")
    return "\n".join(lines)


def _changed(overrides: dict[str, Any] | None) -> str:
    if not overrides:
        return ""
    return " **changed:** " + ", ".join(f"`{k}={json.dumps(v)}`" for k, v in overrides.items())


def _loads(values: list[float] | None) -> str:
    return "n/a" if not values else " / ".join(f"{v:.2f}" for v in values)


def _acc(side: dict[str, Any] | None) -> str:
    best, final = _get(side, "best_test_accuracy"), _get(side, "final_test_accuracy")
    return "n/a" if final is None else f"{best:.2%} / {final:.2%}"


def _measured(t: dict[str, Any]) -> str:
    sp = t.get("speedup")
    if t["id"] == "inference_20x":
        return (f"{_n(t['digitlab_images_per_second'])} ({t['digitlab_backend']}) vs "
                f"{_n(t['baseline_images_per_second'])} ({t['baseline_backend']}) images/s = {_n(sp, '{:.1f}x')}; accuracy "
                f"{_n(t['digitlab_accuracy'], '{:.2%}')} vs {_n(t['baseline_accuracy'], '{:.2%}')}")
    if t["id"] == "data_cache_0.5s":
        return _s(t["digitlab_seconds"]).replace(" s", " s (first load in a fresh process)")
    base = _s(t["baseline_seconds"], t.get("baseline_exact", True))
    return f"{_s(t['digitlab_seconds'])} vs {base} = {_n(sp, '{:.1f}x')}" + (
        "" if t.get("baseline_exact", True) else " (lower bound)")

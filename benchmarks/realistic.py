"""How well digitlab reads realistic pictures, per condition: `python -m benchmarks.realistic [RUN_OR_MODEL]`.

    python -m benchmarks.realistic [RUN] [--conditions a,b] [--n 40] [--seeds 0,1,2] [--clean]
                                   [--peers tesseract,rapidocr] [--sheets DIR] [--out DIR]

Builds every `digitlab.synth` condition's set (fixed seeds; MNIST *test* digits, fonts, drawn
shapes) and runs a model on it through the public API only:

    predictor = digitlab.inference.Predictor.load(path)   # path None: the default model
    p = predictor.predict_image(image)   # digits and non-digits: .label, .probability, .rejected, .reason
    r = predictor.read(image)            # numbers: .text, .digits (each .label .box .rejected)

Per condition it reports accuracy (digits: label right and not rejected; numbers: the exact
string, lines in order; non-digits: rejected), the share rejected (digits: false rejections;
non-digits: correct rejections; numbers: read characters refused), character accuracy for
numbers, and the time per image. --seeds pools several sets per condition and adds a column per
seed; --clean also reads each digit and number picture's clean version (the same ink on flat
white paper, `synth.clean_version`): what the picture's effects cost. --peers tesseract,rapidocr
has other OCR engines (`benchmarks.peers`, optional) read the same digit and number pictures: a
column per engine (its digits must be the whole truth). --sheets writes a contact sheet per
condition (its first pictures) and one of its failures. Non-digit conditions use the held-out
split by default (shapes, fonts and symbols the detector never trained on). Writes results.json
and results.md to --out and prints the table.
Exit code 0 when every condition ran, 1 when one failed (its error is in the results).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peers import PEERS, Peer, PeerUnavailable, make_peers
from benchmarks.run import default_mnist_dir

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "realistic"
LARGE_N = 10  # 12 MP photos are for timing: a few are enough
METHODS = {"digit": "predict_image", "nondigit": "predict_image", "number": "read"}
SHEET_PICTURES = 16  # pictures per contact sheet (4 x 4)
KEPT_FAILURES = 8  # failures per condition written to results.json


def load_mnist_test(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST test images uint8 (10000, 28, 28) and labels, through digitlab's data layer.

    The folder tried first is `benchmarks.run.default_mnist_dir`'s: `data_dir`, DIGITLAB_DATA_DIR or the
    test suite's copy; then the data layer's own chain.
    """
    from digitlab.data import load

    ds = load("mnist", data_dir=default_mnist_dir(Path(data_dir) if data_dir else None))
    return ds.x_test, ds.y_test


# ---- scoring one picture -------------------------------------------------------------------------------

def is_correct(kind: str, sample: Any, answer: Any) -> bool:
    """Whether `answer` (a Prediction or a Reading) is right: the digit, not rejected; the exact number; a
    non-digit rejected."""
    if kind == "number":
        return bool(answer.text == sample.text)
    if kind == "nondigit":
        return bool(answer.rejected)
    return int(answer.label) == sample.label and not answer.rejected


def score_sample(kind: str, sample: Any, answer: Any) -> dict[str, Any]:
    """One sample's outcome: correct, rejected (and, for numbers, the character accuracy and the text read)."""
    from digitlab.evaluation.line_reading import edit_distance

    correct = is_correct(kind, sample, answer)
    if kind == "number":
        pieces = list(answer.digits)
        edits = edit_distance(sample.text.replace("\n", ""), answer.text.replace("\n", ""))
        return {"correct": correct, "rejected": float(np.mean([d.rejected for d in pieces])) if pieces else 0.0,
                "char_accuracy": max(1 - edits / max(len(sample.digits), 1), 0.0), "truth": sample.text,
                "read": answer.text}
    if kind == "nondigit":
        return {"correct": correct, "rejected": float(bool(answer.rejected)), "label": int(answer.label),
                "reason": answer.reason}
    return {"correct": correct, "rejected": float(bool(answer.rejected)), "truth": sample.label,
            "label": int(answer.label), "probability": float(answer.probability), "reason": answer.reason}


def peer_correct(kind: str, sample: Any, text: str) -> bool:
    """Whether a peer's text is the sample's truth: the whole number (lines and all), or the single digit."""
    return text == (sample.text if kind == "number" else str(sample.label))


def evaluate_peers(peers: Sequence[Peer], kind: str, samples: list[Any]) -> dict[str, dict[str, float]]:
    """Every peer reads every sample's picture: {peer name: {"accuracy", "ms_mean"}}."""
    out = {}
    for peer in peers:
        right, times = [], []
        for s in samples:
            t = time.perf_counter()
            text = peer.read(s.image)
            times.append(time.perf_counter() - t)
            right.append(peer_correct(kind, s, text))
        out[peer.name] = {"accuracy": float(np.mean(right)) if right else 0.0,
                          "ms_mean": 1000 * float(np.mean(times)) if times else 0.0}
    return out


def clean_reads(method: Callable[[Any], Any], kind: str, samples: list[Any]) -> list[bool]:
    """Whether each sample that carries its ink is read right in its clean version (same ink, flat white paper)."""
    from digitlab.synth import clean_version

    return [is_correct(kind, s, method(clean_version(s).image)) for s in samples if s.ink is not None]


def read_set(method: Callable[[Any], Any], cond: Any, samples: list[Any],
             seed: int) -> tuple[list[dict[str, Any]], list[float]]:
    """`method` on every sample (its file bytes or its array, as the condition feeds): outcomes and seconds."""
    outcomes, times = [], []
    for s in samples:
        t = time.perf_counter()
        answer = method(s.data if cond.feed == "data" else s.image)
        times.append(time.perf_counter() - t)
        outcomes.append({"seed": seed, "index": s.params["index"], **score_sample(cond.kind, s, answer)})
    return outcomes, times


# ---- one condition ----------------------------------------------------------------------------------------

def evaluate_condition(predictor: Any, name: str, n: int, *, seeds: Sequence[int] = (0,),
                       mnist_test: tuple[np.ndarray, np.ndarray], split: str = "heldout",
                       max_side: int | None = None, sheets: Path | None = None, peers: Sequence[Peer] = (),
                       clean: bool = False) -> dict[str, Any]:
    """Build `name`'s set of `n` for every seed and run `predictor` (and `peers`) on every sample.

    Returns the condition's metrics over all seeds as a dict; with several seeds "accuracy_by_seed"
    ({seed: accuracy}), with `clean` "clean_accuracy" (digits and numbers), with `peers` "peers"
    ({name: {accuracy, ms_mean}}, digits and numbers). Peers read `sample.image`, the decoded
    picture (upright for photo_exif). Raises AttributeError naming the method when the predictor
    lacks the one the condition needs.
    """
    from digitlab.synth import build_set, get_condition, save_sheet

    cond = get_condition(name)
    method = getattr(predictor, METHODS[cond.kind], None)
    if method is None:
        raise AttributeError(f"Predictor has no {METHODS[cond.kind]}() yet; {cond.kind} conditions need it")
    answers_too = cond.kind in ("digit", "number")  # what peers and clean versions are measured on
    outcomes: list[dict[str, Any]] = []
    times: list[float] = []
    sizes: list[int] = []
    generate = 0.0
    clean_right: list[bool] = []
    peer_runs: list[dict[str, dict[str, float]]] = []
    failed: list[Any] = []  # failing samples, for the sheet
    for seed in seeds:
        t0 = time.perf_counter()
        samples = build_set(name, n, seed=seed, mnist_test=mnist_test, split=split, max_side=max_side)
        generate += time.perf_counter() - t0
        if sheets is not None and seed == seeds[0]:
            save_sheet(samples[:SHEET_PICTURES], sheets / f"{name}.png")
        seed_outcomes, seed_times = read_set(method, cond, samples, seed)
        failed += [s for s, o in zip(samples, seed_outcomes) if not o["correct"]][:SHEET_PICTURES - len(failed)]
        clean_right += clean_reads(method, cond.kind, samples) if clean and answers_too else []
        if peers and answers_too:
            peer_runs.append(evaluate_peers(peers, cond.kind, samples))
        outcomes, times = outcomes + seed_outcomes, times + seed_times
        sizes += [s.image.shape[0] * s.image.shape[1] for s in samples]
    if sheets is not None and failed:
        save_sheet(failed, sheets / f"{name}-failures.png")
    result = summarise(cond.kind, name, outcomes, times, generate, sizes)
    if len(seeds) > 1:
        result["accuracy_by_seed"] = {str(s): float(np.mean([o["correct"] for o in outcomes if o["seed"] == s]))
                                      for s in seeds}
    if clean and answers_too:
        result["clean_accuracy"] = float(np.mean(clean_right)) if clean_right else None
    if peer_runs:  # every seed's set has n pictures: the mean over seeds is the share over all of them
        result["peers"] = {p.name: {key: float(np.mean([r[p.name][key] for r in peer_runs]))
                                    for key in ("accuracy", "ms_mean")} for p in peers}
    return result


def summarise(kind: str, name: str, outcomes: list[dict[str, Any]], times: list[float], generate: float,
              sizes: list[int]) -> dict[str, Any]:
    """The metrics of one condition from its per-sample outcomes, per-image seconds and image sizes (pixels)."""
    ms = np.array(times) * 1000 if times else np.zeros(1)
    pixels = np.array(sizes) if sizes else np.zeros(1)
    out: dict[str, Any] = {
        "condition": name, "kind": kind, "n": len(outcomes),
        "accuracy": float(np.mean([o["correct"] for o in outcomes])) if outcomes else None,
        "rejected": float(np.mean([o["rejected"] for o in outcomes])) if outcomes else None,
        "ms_mean": float(ms.mean()), "ms_p95": float(np.percentile(ms, 95)),
        "generate_ms_per_sample": 1000 * generate / max(len(sizes), 1),
        "megapixels_median": float(np.median(pixels) / 1e6),
        "failures": [o for o in outcomes if not o["correct"]][:KEPT_FAILURES],
    }
    if kind == "number":
        out["char_accuracy"] = float(np.mean([o["char_accuracy"] for o in outcomes])) if outcomes else None
    return out


def run(predictor: Any, names: list[str], *, n: int | None, seeds: Sequence[int],
        mnist_test: tuple[np.ndarray, np.ndarray], split: str, max_side: int | None, sheets: Path | None,
        log: Callable[[dict[str, Any]], None] | None = None, peers: Sequence[Peer] = (),
        clean: bool = False) -> list[dict[str, Any]]:
    """Every condition of `names` in turn; a condition that fails is recorded with its error, the rest go on."""
    from digitlab.synth import get_condition

    results = []
    for name in names:
        cond = get_condition(name)
        count = cond.default_n if n is None else n
        if name == "photo_large":
            count = min(count, LARGE_N)
        try:
            res = evaluate_condition(predictor, name, count, seeds=seeds, mnist_test=mnist_test, split=split,
                                     max_side=max_side, sheets=sheets, peers=peers, clean=clean)
        except Exception as exc:  # noqa: BLE001 - one condition's failure must not hide the others
            res = {"condition": name, "kind": cond.kind, "n": 0, "error": f"{type(exc).__name__}: {exc}"}
        results.append(res)
        if log is not None:
            log(res)
    return results


# ---- the table --------------------------------------------------------------------------------------------

HEADER = ("| condition | kind | n | accuracy | rejected | chars | ms/img | p95 ms | MP | gen ms |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def extra_columns(seeds: Sequence[int] = (0,), clean: bool = False, peer_names: Sequence[str] = ()) -> list[str]:
    """The accuracy columns after digitlab's: "seed S" each when several seeds, "clean", then each peer's name."""
    return [*(f"seed {s}" for s in seeds if len(seeds) > 1), *(["clean"] if clean else []), *peer_names]


def header(extra: Sequence[str] = ()) -> str:
    """The table's header: HEADER, with the `extra` accuracy columns after digitlab's."""
    if not extra:
        return HEADER
    names = "".join(f" {p} |" for p in extra)
    return (f"| condition | kind | n | accuracy |{names} rejected | chars | ms/img | p95 ms | MP | gen ms |\n"
            f"|---|---|---:|---:|{'---:|' * len(extra)}---:|---:|---:|---:|---:|---:|")


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def _extra_values(r: dict[str, Any]) -> dict[str, float | None]:
    """A result's values of every extra column it has, by column title."""
    values = {f"seed {s}": a for s, a in r.get("accuracy_by_seed", {}).items()}
    if "clean_accuracy" in r:
        values["clean"] = r["clean_accuracy"]
    return values | {name: p["accuracy"] for name, p in r.get("peers", {}).items()}


def format_row(r: dict[str, Any], extra: Sequence[str] = ()) -> str:
    """One markdown table row of a condition's result (with its `extra` columns; blank where it has none)."""
    blanks = " |" * len(extra)
    if "error" in r:
        return f"| {r['condition']} | {r['kind']} | 0 | error: {r['error'][:80]} |{blanks} | | | | | |"
    values = _extra_values(r)
    cells = "".join(" |" if values.get(c) is None else f" {_pct(values[c])} |" for c in extra)
    return (f"| {r['condition']} | {r['kind']} | {r['n']} | {_pct(r['accuracy'])} |{cells} {_pct(r['rejected'])} | "
            f"{_pct(r.get('char_accuracy'))} | {r['ms_mean']:.1f} | {r['ms_p95']:.1f} | "
            f"{r['megapixels_median']:.2f} | {r['generate_ms_per_sample']:.0f} |")


def report_markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """results.md: how it was run, what each column means, and the table."""
    peer_names, seeds = meta.get("peers", []), meta.get("seeds", [0])
    extra = extra_columns(seeds, meta.get("clean", False), peer_names)
    lines = [
        "# Realistic images: per-condition results", "",
        f"Model: `{meta['model']}` ({meta['backend']}); seeds {', '.join(map(str, seeds))}; non-digit split "
        f"`{meta['split']}`; {meta['created']}; `{meta['command']}`.", "",
        "accuracy: digits, label right and not rejected; numbers, the exact string; non-digits, rejected. "
        "rejected: digits, false rejections; non-digits, correct rejections; numbers, share of read characters "
        "refused. chars: numbers, 1 - edit distance / length. ms/img: the predictor's call; MP: median image "
        "size; gen ms: generating one sample.", "",
        *(["seed S: the accuracy on that seed's set alone (accuracy pools them).", ""] if len(seeds) > 1 else []),
        *(["clean: the accuracy on the same ink on flat white paper (`synth.clean_version`).", ""]
          if meta.get("clean") else []),
        *([f"Peers ({', '.join(peer_names)}; `benchmarks/peers.py`): the same digit and number pictures read by "
           "other OCR engines, one accuracy column each (the digits they read must be the whole truth); "
           "their times are in results.json.", ""] if peer_names else []),
        header(extra), *[format_row(r, extra) for r in results], "",
    ]
    return "\n".join(lines)


# ---- command line -----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.realistic", description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", default=None, help="run directory or model.json (default: the default model)")
    p.add_argument("--n", type=int, default=None, help="samples per condition and seed (default: each condition's "
                   f"own, 100 for digits, 50 for numbers; photo_large at most {LARGE_N})")
    p.add_argument("--seeds", "--seed", type=_seeds, default=[0], help="comma-separated seeds; each adds a set "
                   "per condition (default: 0)")
    p.add_argument("--clean", action="store_true", help="also read every digit and number picture's clean "
                   "version (default: off)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default: {DEFAULT_OUT})")
    p.add_argument("--conditions", default=None, help="comma-separated conditions (default: all)")
    p.add_argument("--split", default="heldout", help="non-digit split: heldout, train or ambiguous (default: heldout)")
    p.add_argument("--max-side", type=int, default=None, help="cap photo sizes (default: the conditions' own)")
    p.add_argument("--sheets", type=Path, default=None, help="also save contact sheets per condition here: "
                   "NAME.png (its first pictures) and NAME-failures.png (default: none)")
    p.add_argument("--backend", default="auto", help="Predictor backend (default: auto)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITLAB_DATA_DIR or the shared copy)")
    p.add_argument("--peers", type=_peer_names, default=[], help="comma-separated other OCR engines that read the "
                   f"same digit and number pictures: {', '.join(PEERS)} (default: none; see benchmarks/peers.py)")
    return p.parse_args(argv)


def _seeds(text: str) -> list[int]:
    """--seeds: distinct integers, in the order given (argparse reports the error)."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, e.g. 0,1,2; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct integers, e.g. 0,1,2; got {text!r}")
    return seeds


def _peer_names(text: str) -> list[str]:
    """--peers: the names, each one of PEERS (argparse reports the error)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer {', '.join(map(repr, unknown))}; known peers: "
                                         f"{', '.join(PEERS)}")
    return names


def run_meta(args: argparse.Namespace, predictor: Any, peers: Sequence[Peer], argv: list[str] | None) -> dict[str, Any]:
    """How the results were made: model, settings, command, machine (and the peers' versions)."""
    meta = {"model": getattr(predictor, "model_id", "?"), "backend": getattr(predictor, "backend", "?"),
            "seeds": args.seeds, "clean": args.clean, "split": args.split, "n": args.n, "max_side": args.max_side,
            "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python -m benchmarks.realistic", *(argv if argv is not None else sys.argv[1:])]),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
    if peers:
        meta["peers"] = args.peers
        meta["peer_versions"] = {p.name: p.version() for p in peers}
    return meta


def main(argv: list[str] | None = None) -> int:
    """Parse, load the model and MNIST, run every condition, print and write the results."""
    args = parse_args(argv)
    from digitlab._io import atomic_write_json, atomic_write_text
    from digitlab.inference import Predictor
    from digitlab.synth import condition_names

    names = args.conditions.split(",") if args.conditions else condition_names()
    try:
        peers = make_peers(args.peers)  # before the long part
    except PeerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    predictor = Predictor.load(args.model, backend=args.backend)  # no model: the bundled one
    mnist = load_mnist_test(args.data_dir)
    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)
    extra = extra_columns(args.seeds, args.clean, args.peers)
    print(header(extra), flush=True)
    results = run(predictor, names, n=args.n, seeds=args.seeds, mnist_test=mnist, split=args.split,
                  max_side=args.max_side, sheets=args.sheets, peers=peers, clean=args.clean,
                  log=lambda res: print(format_row(res, extra), flush=True))
    meta = run_meta(args, predictor, peers, argv)
    atomic_write_json(args.out / "results.json", {"meta": meta, "conditions": results})
    atomic_write_text(args.out / "results.md", report_markdown(results, meta))
    print(f"wrote {args.out / 'results.json'} and results.md", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())

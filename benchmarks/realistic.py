"""How well digitlab reads realistic pictures, per condition: `python -m benchmarks.realistic [RUN_OR_MODEL]`.

Builds every `digitlab.synth` condition's set (fixed seeds; MNIST *test* digits, fonts, drawn
shapes) and runs a model on it through the public API only:

    predictor = digitlab.inference.Predictor.load(path)   # path None: the default model
    p = predictor.predict_image(image)   # digits and non-digits: .label, .probability, .rejected, .reason
    r = predictor.read(image)            # numbers: .text, .digits (each .label .box .rejected)

Per condition it reports accuracy (digits: label right and not rejected; numbers: the exact
string; non-digits: rejected), the share rejected (digits: false rejections; non-digits: correct
rejections; numbers: rejected pieces), character accuracy for numbers, and the time per image.
--peers tesseract,rapidocr also has other OCR engines (`benchmarks.peers`, optional) read the same
digit and number pictures: one accuracy column per engine (its digits must be the whole truth).
Non-digit conditions use the held-out split by default (shapes, fonts and symbols the detector
never trained on). Writes results.json and results.md to --out and prints the table.
Exit code 0 when every condition ran, 1 when one failed (its error is in the results).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peers import PEERS, Peer, PeerUnavailable, make_peers

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "realistic"
SHARED_MNIST = Path(os.environ.get("DIGITLAB_SHARED_DATA", REPO.parent / "shared" / "data")) / "mnist"
LARGE_N = 10  # 12 MP photos are for timing: a few are enough
METHODS = {"digit": "predict_image", "nondigit": "predict_image", "number": "read"}


def load_mnist_test(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST test images uint8 (10000, 28, 28) and labels, through digitlab's data layer.

    `data_dir` (or DIGITLAB_DATA_DIR, or the shared reference copy beside the checkout) when given.
    """
    from digitlab.data import load

    folder = data_dir or os.environ.get("DIGITLAB_DATA_DIR")
    if folder is None and (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        folder = str(SHARED_MNIST)
    ds = load("mnist", data_dir=folder) if folder else load("mnist")
    return ds.x_test, ds.y_test


def _levenshtein(a: str, b: str) -> int:
    """Edit distance between two short strings (insertions, deletions, substitutions)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def score_sample(kind: str, sample: Any, answer: Any) -> dict[str, Any]:
    """One sample's outcome: correct, rejected (and, for numbers, the character accuracy and the text read)."""
    if kind == "number":
        truth, read = sample.text, answer.text
        pieces = list(answer.digits)
        chars = 1 - _levenshtein(truth.replace("\n", ""), read.replace("\n", "")) / max(len(sample.digits), 1)
        return {"correct": read == truth, "rejected": float(np.mean([d.rejected for d in pieces])) if pieces else 0.0,
                "char_accuracy": max(chars, 0.0), "truth": truth, "read": read}
    if kind == "nondigit":
        return {"correct": bool(answer.rejected), "rejected": float(bool(answer.rejected)), "label": int(answer.label),
                "reason": answer.reason}
    right = int(answer.label) == sample.label and not answer.rejected
    return {"correct": right, "rejected": float(bool(answer.rejected)), "truth": sample.label,
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


def evaluate_condition(predictor: Any, name: str, n: int, *, seed: int, mnist_test: tuple[np.ndarray, np.ndarray],
                       split: str = "heldout", max_side: int | None = None,
                       sheets: Path | None = None, peers: Sequence[Peer] = ()) -> dict[str, Any]:
    """Build `name`'s set of `n` and run `predictor` (and `peers`, on digits and numbers) on every sample.

    Returns the condition's metrics as a dict, with "peers" ({name: {accuracy, ms_mean}}) when peers
    are given and the condition is of digits or numbers. Peers read `sample.image`, the decoded
    picture (upright for photo_exif). Raises AttributeError naming the method when the predictor
    lacks the one the condition needs.
    """
    from digitlab.synth import build_set, get_condition, save_sheet

    cond = get_condition(name)
    method = getattr(predictor, METHODS[cond.kind], None)
    if method is None:
        raise AttributeError(f"Predictor has no {METHODS[cond.kind]}() yet; {cond.kind} conditions need it")
    t0 = time.perf_counter()
    samples = build_set(name, n, seed=seed, mnist_test=mnist_test, split=split, max_side=max_side)
    generate = time.perf_counter() - t0
    if sheets is not None:
        save_sheet(samples[:16], sheets / f"{name}.png")
    outcomes, times = [], []
    for s in samples:
        feed = s.data if cond.feed == "data" else s.image
        t = time.perf_counter()
        answer = method(feed)
        times.append(time.perf_counter() - t)
        outcomes.append({"index": s.params["index"], **score_sample(cond.kind, s, answer)})
    result = summarise(cond.kind, name, outcomes, times, generate, samples)
    if peers and cond.kind in ("digit", "number"):
        result["peers"] = evaluate_peers(peers, cond.kind, samples)
    return result


def summarise(kind: str, name: str, outcomes: list[dict[str, Any]], times: list[float], generate: float,
              samples: list[Any]) -> dict[str, Any]:
    """The metrics of one condition from its per-sample outcomes and per-image seconds."""
    ms = np.array(times) * 1000 if times else np.zeros(1)
    sizes = np.array([s.image.shape[0] * s.image.shape[1] for s in samples]) if samples else np.zeros(1)
    out: dict[str, Any] = {
        "condition": name, "kind": kind, "n": len(outcomes),
        "accuracy": float(np.mean([o["correct"] for o in outcomes])) if outcomes else None,
        "rejected": float(np.mean([o["rejected"] for o in outcomes])) if outcomes else None,
        "ms_mean": float(ms.mean()), "ms_p95": float(np.percentile(ms, 95)),
        "generate_ms_per_sample": 1000 * generate / max(len(samples), 1),
        "megapixels_median": float(np.median(sizes) / 1e6),
        "failures": [o for o in outcomes if not o["correct"]][:8],
    }
    if kind == "number":
        out["char_accuracy"] = float(np.mean([o["char_accuracy"] for o in outcomes])) if outcomes else None
    return out


def run(predictor: Any, names: list[str], *, n: int | None, seed: int, mnist_test: tuple[np.ndarray, np.ndarray],
        split: str, max_side: int | None, sheets: Path | None, log: Any = None,
        peers: Sequence[Peer] = ()) -> list[dict[str, Any]]:
    """Every condition of `names` in turn; a condition that fails is recorded with its error, the rest go on."""
    from digitlab.synth import get_condition

    results = []
    for name in names:
        cond = get_condition(name)
        count = cond.default_n if n is None else n
        if name == "photo_large":
            count = min(count, LARGE_N)
        try:
            res = evaluate_condition(predictor, name, count, seed=seed, mnist_test=mnist_test, split=split,
                                     max_side=max_side, sheets=sheets, peers=peers)
        except Exception as exc:  # noqa: BLE001 - one condition's failure must not hide the others
            res = {"condition": name, "kind": cond.kind, "n": 0, "error": f"{type(exc).__name__}: {exc}"}
        results.append(res)
        if log is not None:
            log(format_row(res, [p.name for p in peers]))
    return results


HEADER = ("| condition | kind | n | accuracy | rejected | chars | ms/img | p95 ms | MP | gen ms |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def header(peer_names: Sequence[str] = ()) -> str:
    """The table's header: HEADER, with one accuracy column per peer after digitlab's when peers are given."""
    if not peer_names:
        return HEADER
    names = "".join(f" {p} |" for p in peer_names)
    return (f"| condition | kind | n | accuracy |{names} rejected | chars | ms/img | p95 ms | MP | gen ms |\n"
            f"|---|---|---:|---:|{'---:|' * len(peer_names)}---:|---:|---:|---:|---:|---:|")


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def format_row(r: dict[str, Any], peer_names: Sequence[str] = ()) -> str:
    """One markdown table row of a condition's result (with its peers' accuracies when `peer_names`)."""
    blanks = " |" * len(peer_names)
    if "error" in r:
        return f"| {r['condition']} | {r['kind']} | 0 | error: {r['error'][:80]} |{blanks} | | | | | |"
    peers = "".join(f" {_pct(r['peers'][p]['accuracy'])} |" if p in r.get("peers", {}) else " |"
                    for p in peer_names)
    return (f"| {r['condition']} | {r['kind']} | {r['n']} | {_pct(r['accuracy'])} |{peers} {_pct(r['rejected'])} | "
            f"{_pct(r.get('char_accuracy'))} | {r['ms_mean']:.1f} | {r['ms_p95']:.1f} | "
            f"{r['megapixels_median']:.2f} | {r['generate_ms_per_sample']:.0f} |")


def report_markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """results.md: how it was run, what each column means, and the table."""
    peer_names = meta.get("peers", [])
    lines = [
        "# Realistic images: per-condition results", "",
        f"Model: `{meta['model']}` ({meta['backend']}); seed {meta['seed']}; non-digit split `{meta['split']}`; "
        f"{meta['created']}; `{meta['command']}`.", "",
        "accuracy: digits, label right and not rejected; numbers, the exact string; non-digits, rejected. "
        "rejected: digits, false rejections; non-digits, correct rejections; numbers, share of pieces rejected. "
        "chars: numbers, 1 - edit distance / length. ms/img: the predictor's call; MP: median image size; "
        "gen ms: generating one sample.", "",
        *([f"Peers ({', '.join(peer_names)}; `benchmarks/peers.py`): the same digit and number pictures read by "
           "other OCR engines, one accuracy column each (the digits they read must be the whole truth); "
           "their times are in results.json.", ""] if peer_names else []),
        header(peer_names), *[format_row(r, peer_names) for r in results], "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.realistic", description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", default=None, help="run directory or model.json (default: the default model)")
    p.add_argument("--n", type=int, default=None, help="samples per condition (default: each condition's own, "
                   f"100 for digits, 50 for numbers; photo_large at most {LARGE_N})")
    p.add_argument("--seed", type=int, default=0, help="seed of every set (default: 0)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default: {DEFAULT_OUT})")
    p.add_argument("--conditions", default=None, help="comma-separated conditions (default: all)")
    p.add_argument("--split", default="heldout", help="non-digit split: heldout, train or ambiguous (default: heldout)")
    p.add_argument("--max-side", type=int, default=None, help="cap photo sizes (default: the conditions' own)")
    p.add_argument("--sheets", type=Path, default=None, help="also save a contact sheet per condition here")
    p.add_argument("--backend", default="auto", help="Predictor backend (default: auto)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITLAB_DATA_DIR or the shared copy)")
    p.add_argument("--peers", type=_peer_names, default=[], help="comma-separated other OCR engines that read the "
                   f"same digit and number pictures: {', '.join(PEERS)} (default: none; see benchmarks/peers.py)")
    return p.parse_args(argv)


def _peer_names(text: str) -> list[str]:
    """--peers: the names, each one of PEERS (argparse reports the error)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer {', '.join(map(repr, unknown))}; known peers: "
                                         f"{', '.join(PEERS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    """Parse, load the model and MNIST, run every condition, print and write the results."""
    args = parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
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
    missing = sorted({METHODS[k] for k in METHODS if not hasattr(predictor, METHODS[k])})
    if missing:
        print(f"note: Predictor has no {', '.join(missing)}(); the conditions needing it are reported as errors",
              file=sys.stderr)
    mnist = load_mnist_test(args.data_dir)
    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)
    print(header(args.peers), flush=True)
    results = run(predictor, names, n=args.n, seed=args.seed, mnist_test=mnist, split=args.split,
                  max_side=args.max_side, sheets=args.sheets, log=lambda row: print(row, flush=True), peers=peers)
    meta = {"model": getattr(predictor, "model_id", "?"), "backend": getattr(predictor, "backend", "?"),
            "seed": args.seed, "split": args.split, "n": args.n, "max_side": args.max_side,
            "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["python -m benchmarks.realistic", *(argv if argv is not None else sys.argv[1:])]),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}}
    if peers:
        meta["peers"] = args.peers
        meta["peer_versions"] = {p.name: p.version() for p in peers}
    atomic_write_json(args.out / "results.json", {"meta": meta, "conditions": results})
    atomic_write_text(args.out / "results.md", report_markdown(results, meta))
    print(f"wrote {args.out / 'results.json'} and results.md", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())

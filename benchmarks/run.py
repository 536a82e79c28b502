"""Benchmark digitlab against the usual baselines on this machine: `python -m benchmarks.run`.

Runs each side in turn, each in its own process (see `benchmarks.sides`): loading MNIST,
the pytorch/examples CNN, digitlab's `cnn` recipe, batched CPU inference of both trained CNNs
(timed in interleaved windows), scikit-learn's LogisticRegression and digitlab's softmax recipe. Writes `results.json` and `results.md` to `--out` and prints the
table with the PASS / FAIL of each target. `--quick` is a smoke run on slices (~30 s).
Exit code: 0 when every side ran (whatever the verdicts), 1 when a side failed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks import measure, report
from benchmarks.sides import SideSpec

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = Path(os.environ.get("DIGITLAB_SHARED_DATA", REPO.parent / "shared" / "data")) / "mnist"
SIDE_ORDER = ("data", "reference_cnn", "digitlab_cnn", "inference", "sklearn_logreg", "digitlab_softmax")

QUICK = dict(  # slices and tiny budgets: checks the harness end to end, measures nothing
    train_limit=1024, test_limit=256, cnn_eval_every_images=256, softmax_eval_every_images=256,
    reference_max_epochs=1, reference_max_steps=8, digitlab_max_epochs=1, logreg_max_iter=20,
    inference_batch_sizes=(128,), inference_images=256, inference_min_seconds=0.05, inference_rounds=2,
    inference_window_seconds=0.02, data_repeats=1,
)


def build_spec(args: argparse.Namespace, work: Path) -> SideSpec:
    """The SideSpec for this run from the command line."""
    spec = SideSpec(mnist_dir=str(args.mnist_dir), cache_dir=str(work / "cache"), work_dir=str(work / "runs"),
                    device=args.device, reference_max_epochs=args.reference_epochs,
                    reference_max_seconds=args.reference_seconds, cnn_recipe=args.cnn_recipe,
                    softmax_recipe=args.softmax_recipe, cnn_overrides=_overrides(args.cnn_set),
                    softmax_overrides=_overrides(args.softmax_set))
    if args.quick:
        spec = replace(spec, **QUICK)
    return spec


def _overrides(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings -> dict; VALUE parsed as JSON when it can be (numbers, true, lists)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected KEY=VALUE, e.g. --cnn-set batch_size=256")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_side(side: str, spec: SideSpec, out_dir: Path, timeout: float, threads: int | None = None
             ) -> dict[str, Any]:
    """Run one side in a fresh Python process; returns its JSON result or `{"error": ...}`."""
    result_file = out_dir / f"{side}.json"
    cmd = [sys.executable, "-m", "benchmarks.sides", side, "--spec", json.dumps(asdict(spec)),
           "--out", str(result_file)]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if threads:  # torch (OpenMP), MKL and OpenBLAS (sklearn's numpy) all read these at start-up
        env |= {var: str(threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, timeout=timeout, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    except subprocess.TimeoutExpired:
        return {"error": f"side {side} ran past its {timeout:.0f} s limit"}
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        return {"error": f"side {side} exited with {proc.returncode}:\n{tail}"}
    result = json.loads(result_file.read_text())
    result["process_seconds"] = time.perf_counter() - t0
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every requested side in turn; returns the full results (sides, targets, machine)."""
    start = time.perf_counter()
    load_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="digitlab-bench-") as tmp:
        work = Path(tmp)
        spec = build_spec(args, work)
        sides: dict[str, Any] = {}
        for side in [s for s in SIDE_ORDER if s in args.sides]:
            print(f"[bench] {side} ...", file=sys.stderr, flush=True)
            sides[side] = run_side(side, spec, work, timeout=args.side_timeout, threads=args.threads)
            if "error" in sides[side]:
                print(f"[bench] {side} FAILED: {sides[side]['error']}", file=sys.stderr, flush=True)
            else:
                print(f"[bench] {side} done in {sides[side]['process_seconds']:.1f} s", file=sys.stderr, flush=True)
    results: dict[str, Any] = {
        "schema": 1,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run", *(shlex.quote(a) for a in args.argv)]),
        "quick": args.quick,
        "machine": measure.machine_info(args.device) | (
            {"torch_threads": args.threads} if args.threads else {}),  # what the sides ran with
        "threads": args.threads,
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
        "recipes": {"cnn": spec.cnn_recipe, "softmax": spec.softmax_recipe,
                    "cnn_overrides": spec.cnn_overrides, "softmax_overrides": spec.softmax_overrides},
        "spec": asdict(spec),
        "inference_batches": list(spec.inference_batch_sizes),
        "sides": sides,
        "wall_seconds": time.perf_counter() - start,
    }
    results["targets"] = report.evaluate_targets(results)
    return results


def write_results(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write `results.json` and `results.md` under `out` (atomically); returns both paths."""
    from digitlab._io import atomic_write_json, atomic_write_text

    return (atomic_write_json(out / "results.json", results),
            atomic_write_text(out / "results.md", report.render_markdown(results)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run on slices with tiny budgets (~30 s); its numbers measure nothing")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for results.json and results.md (default: benchmarks/results, "
                        "or benchmarks/results/quick with --quick)")
    p.add_argument("--device", default="cpu", help="torch device for every side, e.g. cuda (default: cpu)")
    p.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST,
                   help=f"folder of the four official MNIST .gz files (default: {DEFAULT_MNIST})")
    p.add_argument("--sides", nargs="+", default=list(SIDE_ORDER), choices=SIDE_ORDER,
                   help="which sides to run (default: all)")
    p.add_argument("--reference-epochs", type=int, default=SideSpec.reference_max_epochs,
                   help=f"budget of the reference CNN in epochs (default: {SideSpec.reference_max_epochs})")
    p.add_argument("--reference-seconds", type=float, default=SideSpec.reference_max_seconds,
                   help="budget of the reference CNN in training seconds "
                        f"(default: {SideSpec.reference_max_seconds:.0f})")
    p.add_argument("--cnn-recipe", default=SideSpec.cnn_recipe,
                   help=f"digitlab recipe for the CNN side (default: {SideSpec.cnn_recipe})")
    p.add_argument("--cnn-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig field of the CNN recipe, repeatable (default: none)")
    p.add_argument("--softmax-recipe", default=SideSpec.softmax_recipe,
                   help=f"digitlab recipe for the softmax side (default: {SideSpec.softmax_recipe})")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every side (OMP/MKL/OpenBLAS); default: the libraries' own "
                        "(one per core). 1 gives steadier figures on a busy machine")
    p.add_argument("--softmax-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig field of the softmax recipe, repeatable (default: none)")
    p.add_argument("--side-timeout", type=float, default=1200.0,
                   help="seconds after which a side is stopped and reported failed (default: 1200)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    out = args.out or REPO / "benchmarks" / "results" / ("quick" if args.quick else "")
    results = run(args)
    json_path, md_path = write_results(results, out)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 1 if any("error" in s for s in results["sides"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

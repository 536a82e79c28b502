"""Benchmark digitlab against the usual baselines on this machine: `python -m benchmarks.run` (`make bench`).

First the four MNIST files, verified, through the data layer (`export_files`). Then each side in
turn, each in its own process (`benchmarks.sides`): loading MNIST, the pytorch/examples CNN,
digitlab's `cnn` recipe, batched CPU inference of both trained CNNs, scikit-learn's
LogisticRegression and digitlab's `softmax` recipe. Writes results.json and results.md to
--out and prints the page with the PASS / FAIL of each target (`benchmarks.report`).
`--quick` runs on slices with tiny budgets (~30-60 s): it checks the harness, measures nothing.
Exit code 0 when every side ran (whatever the verdicts), 1 when one failed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.sides import SIDES, Spec
from digitlab._io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
# Where the test suite keeps MNIST (tests/conftest.py): the shared copy beside the checkout, then its own fetch.
TEST_DATA = (Path(os.environ.get("DIGITLAB_SHARED_DATA", REPO.parent / "shared" / "data")) / "mnist",
             REPO / ".cache" / "test-data" / "mnist")
QUICK: dict[str, Any] = {  # slices and tiny budgets: checks the harness end to end, measures nothing
    "train_limit": 1024, "test_limit": 256, "cnn_eval_every_images": 256, "softmax_eval_every_images": 256,
    "reference_epochs": 1, "reference_max_steps": 8, "digitlab_max_epochs": 1, "logreg_max_iter": 20,
    "inference_batch_sizes": (128,), "inference_images": 256, "inference_rounds": 2,
    "inference_window_seconds": 0.02, "data_repeats": 1,
}


def default_mnist_dir(mnist_dir: Path | None = None) -> Path | None:
    """The MNIST folder the data layer tries first: `mnist_dir`, else DIGITLAB_DATA_DIR, else the test
    suite's copy when there is one; None leaves it to the data layer's own chain (cache, mirrors, PyPI)."""
    env = os.environ.get("DIGITLAB_DATA_DIR")
    return mnist_dir or (Path(env) if env else next((d for d in TEST_DATA if d.is_dir()), None))


def mnist_files(mnist_dir: Path | None, out: Path) -> str:
    """Write the four verified MNIST .gz files into `out` through the data layer; says where they came from."""
    from digitlab.data import export_files

    folder = default_mnist_dir(mnist_dir)
    export_files("mnist", out, data_dir=folder)
    return f"folder {folder} first, then the data layer's chain" if folder else "the data layer's chain"


def run_side(name: str, spec: Spec, work: Path, timeout: float, threads: int | None) -> dict[str, Any]:
    """Run one side in a fresh Python process; its JSON result, or `{"error": ...}` saying why there is none."""
    out = work / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITLAB_DATA_DIR", "DIGITLAB_MIRRORS")}
    env |= {"DIGITLAB_CACHE": str(work / "cache"), "DIGITLAB_OFFLINE": "1"}  # the files are in spec.mnist_dir
    if threads:  # torch (OpenMP), MKL and OpenBLAS (scikit-learn's NumPy) read these at start-up
        env |= {var: str(threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    # run in REPO: `python -m` puts the working folder first on the path, so `benchmarks` imports as a package
    cmd = [sys.executable, "-m", "benchmarks.sides", name, "--spec", json.dumps(asdict(spec)), "--out", str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, timeout=timeout, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    except subprocess.TimeoutExpired:
        return {"error": f"side {name} ran past its {timeout:.0f} s limit (--side-timeout)"}
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        return {"error": f"side {name} exited with {proc.returncode}:\n{tail}"}
    return json.loads(out.read_text()) | {"process_seconds": time.perf_counter() - t0}


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, library versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
                            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                            "platform": platform.platform()}
    for module in ("numpy", "sklearn", "onnxruntime"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Obtain MNIST, run every requested side in turn; the full results with the targets' verdicts."""
    start, load_start = time.perf_counter(), list(os.getloadavg())
    sides: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="digitlab-bench-") as tmp:
        work = Path(tmp)
        spec = Spec(mnist_dir=str(work / "mnist"), work_dir=str(work), device=args.device,
                    cnn_recipe=args.cnn_recipe, softmax_recipe=args.softmax_recipe,
                    cnn_overrides=parse_settings(args.cnn_set), softmax_overrides=parse_settings(args.softmax_set),
                    reference_epochs=args.reference_epochs, reference_seconds=args.reference_seconds)
        spec = replace(spec, **QUICK) if args.quick else spec
        try:
            data_source = mnist_files(args.mnist_dir, work / "mnist")
        except Exception as exc:  # noqa: BLE001 - e.g. no source reachable: every side is reported skipped
            data_source = f"not obtained: {exc}"
        for name in [s for s in SIDES if s in args.sides]:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            if data_source.startswith("not obtained"):
                sides[name] = {"error": f"skipped: MNIST {data_source}"}
            else:
                sides[name] = run_side(name, spec, work, args.side_timeout, args.threads)
            state = sides[name].get("error") or f"done in {sides[name]['process_seconds']:.1f} s"
            print(f"[bench] {name}: {state}", file=sys.stderr, flush=True)
    results: dict[str, Any] = {
        "schema": 2, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run", shlex.join(args.argv)]).strip(), "quick": args.quick,
        "machine": machine_info(), "threads": args.threads, "data_source": data_source,
        "load_average": {"start": load_start, "end": list(os.getloadavg())}, "spec": asdict(spec),
        "sides": sides, "wall_seconds": time.perf_counter() - start,
    }
    results["targets"] = report.evaluate_targets(results)
    return results


def parse_settings(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings -> dict; VALUE read as JSON when it can be (numbers, true, lists)."""
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="slices and tiny budgets (~30-60 s); measures nothing")
    p.add_argument("--out", type=Path, default=None, help="folder for results.json and results.md "
                   "(default: benchmarks/results; with --quick .cache/bench-quick, never the committed results)")
    p.add_argument("--mnist-dir", type=Path, default=None,
                   help="folder of the four MNIST files, tried first (default: DIGITLAB_DATA_DIR, else the test "
                        "suite's copy, else the data layer's sources: cache, mirrors, PyPI)")
    p.add_argument("--device", default="cpu", help="torch device of the training sides (default: cpu)")
    p.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES), help="sides to run (default: all)")
    p.add_argument("--reference-epochs", type=int, default=Spec.reference_epochs,
                   help=f"budget of the reference CNN in epochs (default: {Spec.reference_epochs})")
    p.add_argument("--reference-seconds", type=float, default=Spec.reference_seconds,
                   help=f"... or in training seconds, whichever first (default: {Spec.reference_seconds:.0f})")
    p.add_argument("--cnn-recipe", default=Spec.cnn_recipe, help=f"digitlab's CNN recipe (default: {Spec.cnn_recipe})")
    p.add_argument("--softmax-recipe", default=Spec.softmax_recipe,
                   help=f"digitlab's softmax recipe (default: {Spec.softmax_recipe})")
    p.add_argument("--cnn-set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a TrainConfig field of the CNN recipe, repeatable (default: none)")
    p.add_argument("--softmax-set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a TrainConfig field of the softmax recipe, repeatable (default: none)")
    p.add_argument("--threads", type=int, default=None, help="OMP/MKL/OpenBLAS threads of every side (default: "
                   "the libraries' own, one per core; recipes that set `threads` keep theirs)")
    p.add_argument("--side-timeout", type=float, default=1200.0,
                   help="seconds after which a side is stopped and reported failed (default: 1200)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    out = args.out or (REPO / ".cache" / "bench-quick" if args.quick else REPO / "benchmarks" / "results")
    results = run(args)
    page = report.render_markdown(results)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
    atomic_write_text(out / "results.md", page)
    print(page)
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 1 if any("error" in s for s in results["sides"].values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Load test of `digitlab serve`: requests/s and latency percentiles for single-image predictions.

    python -m benchmarks.serve_load RUN_DIR [--concurrency 8] [--requests 3000] [--max-seconds 30]

Starts the server as a subprocess on a free 127.0.0.1 port, then from this process sends
bounded concurrent requests over keep-alive connections: urllib3's connection pool, one
connection per worker thread. (httpx.AsyncClient spent 2-3 ms of CPU a request here, urllib3
0.7 ms: on 2 cores the client's CPU is taken from the server's, so the lighter client.)
Two kinds of request, each a real MNIST test image:
  json : POST /api/predict {"pixels": [784 ints]} (no preprocessing)
  png  : POST /api/predict multipart upload of the image as PNG (decoded + preprocessed)
Every response must be a 200 with a prediction; anything else counts as an error. Prints a
table and writes JSON to benchmarks/results/serve_load.json. Not a test: timings vary. The
client shares the machine with the server: on 2 cores its own CPU lowers the figures.
"""
from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import urllib3
from PIL import Image

from benchmarks.run import REPO, default_mnist_dir
from digitlab._io import atomic_write_text

DEFAULT_OUT = REPO / "benchmarks" / "results" / "serve_load.json"
HOST = "127.0.0.1"
KINDS = ("json", "png")
IMAGES = 500  # MNIST test images the requests cycle over
STARTUP_S = 120  # the server's model load and first session can take a while on a busy machine
REQUEST_TIMEOUT_S = 10  # one request; longer is an error, not a latency
WARMUP_MAX_S = 30  # cap on the untimed warm-up per kind


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


Request = tuple[bytes, dict[str, str]]  # a POST's body and headers


@contextmanager
def serving(run_dir: str, port: int, extra: Sequence[str],
            concurrency: int = 1) -> Iterator[urllib3.HTTPConnectionPool]:
    """`digitlab serve RUN_DIR` in a subprocess on `port`, once /healthz answers; a pool of `concurrency`
    keep-alive connections to it. The server is stopped on exit."""
    cmd = [sys.executable, "-m", "digitlab", "serve", run_dir, "--host", HOST, "--port", str(port), *extra]
    log = tempfile.TemporaryFile()  # a file, not a pipe: a server that logs every request never blocks on it
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    pool = urllib3.HTTPConnectionPool(HOST, port, maxsize=concurrency, block=True, timeout=REQUEST_TIMEOUT_S,
                                      retries=False)
    try:
        _wait_healthy(proc, pool, log)
        yield pool
    finally:
        pool.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_healthy(proc: subprocess.Popen[bytes], pool: urllib3.HTTPConnectionPool, log: IO[bytes]) -> None:
    """Return once GET /healthz is a 200; RuntimeError when the server exits first or takes over STARTUP_S."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            err = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"server exited with {proc.returncode}: {err}")
        try:
            if pool.request("GET", "/healthz", timeout=1).status == 200:
                return
        except urllib3.exceptions.HTTPError:  # not listening yet
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not answer /healthz within {STARTUP_S} s")


def request_for(kind: str, image: np.ndarray) -> Request:
    """The body and headers of POST /api/predict for one 28x28 uint8 image, encoded once, here."""
    if kind == "json":
        return json.dumps({"pixels": image.reshape(-1).tolist()}).encode(), {"Content-Type": "application/json"}
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    body, content_type = urllib3.encode_multipart_formdata({"file": ("digit.png", buf.getvalue(), "image/png")})
    return body, {"Content-Type": content_type}


def load_stats(latencies: Sequence[float], errors: Sequence[str], correct: int, seconds: float,
               concurrency: int) -> dict[str, Any]:
    """A kind's figures from its answered requests' latencies (s), its errors and its right answers."""
    lat_ms = np.asarray(latencies, float) * 1000.0

    def ms(q: float) -> float | None:
        return round(float(np.percentile(lat_ms, q)), 2) if lat_ms.size else None

    return {
        "requests": int(lat_ms.size), "errors": len(errors), "error_examples": list(errors[:3]),
        "seconds": round(seconds, 3), "requests_per_s": round(lat_ms.size / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": ms(50), "p90_ms": ms(90), "p99_ms": ms(99), "max_ms": ms(100),
        "accuracy": round(correct / max(1, lat_ms.size), 4), "concurrency": concurrency,
    }


def run_load(pool: urllib3.HTTPConnectionPool, requests: Sequence[Request], labels: np.ndarray, *,
             total: int, concurrency: int, max_seconds: float) -> dict[str, Any]:
    """Send `total` requests (cycling over `requests`) from `concurrency` threads; at most `max_seconds`."""
    latencies: list[float] = []
    errors: list[str] = []
    right: list[bool] = []
    numbers = itertools.count()  # shared by the threads: next() is atomic
    deadline = time.perf_counter() + max_seconds

    def worker() -> None:
        while time.perf_counter() < deadline and (i := next(numbers)) < total:
            body, headers = requests[i % len(requests)]
            t0 = time.perf_counter()
            try:
                response = pool.urlopen("POST", "/api/predict", body=body, headers=headers)
            except urllib3.exceptions.HTTPError as exc:  # refused, reset, timed out: this worker stops
                errors.append(repr(exc))
                return
            latencies.append(time.perf_counter() - t0)
            if response.status != 200:
                errors.append(f"HTTP {response.status}: {response.data[:200]!r}")
                continue
            right.append(json.loads(response.data)["label"] == labels[i % len(labels)])

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as threads:
        for done in [threads.submit(worker) for _ in range(concurrency)]:
            done.result()
    return load_stats(latencies, errors, sum(right), time.perf_counter() - start, concurrency)


def format_table(results: dict[str, dict[str, Any]]) -> list[str]:
    """The printed table: one line per kind."""
    def num(v: float | None, width: int, digits: int) -> str:
        return f"{v:{width}.{digits}f}" if v is not None else f"{'-':>{width}}"

    lines = [f"{'kind':6} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
             f"{'max ms':>7} {'acc':>6}"]
    for kind, r in results.items():
        lines.append(f"{kind:6} {r['requests']:8d} {r['errors']:6d} {num(r['requests_per_s'], 8, 1)} "
                     f"{num(r['p50_ms'], 7, 2)} {num(r['p90_ms'], 7, 2)} {num(r['p99_ms'], 7, 2)} "
                     f"{num(r['max_ms'], 7, 2)} {num(r['accuracy'], 6, 3)}")
    return lines


def _kinds(text: str) -> list[str]:
    """--kinds: names from KINDS (argparse reports the error)."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown kind {', '.join(map(repr, unknown))}; use {', '.join(KINDS)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN_DIR", help="trained run directory (or model file) to serve")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="MNIST folder tried first (default: as benchmarks.run, then the data layer's sources)")
    parser.add_argument("--kinds", type=_kinds, default=list(KINDS), help="request kinds, comma-separated "
                        "(default: json,png)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections in flight (default: 8)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per kind (default: 3000)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time cap per kind (default: 30)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests per kind first (default: 100)")
    parser.add_argument("--server-args", default="", help="extra `digitlab serve` arguments, e.g. '--threads 2'")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON result file (default: {DEFAULT_OUT})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve the run, load it with every kind of request, print the table and write the record."""
    args = build_parser().parse_args(argv)
    from digitlab.data import load

    ds = load("mnist", data_dir=default_mnist_dir(args.data_dir))
    images, labels = ds.x_test[:IMAGES], ds.y_test[:IMAGES]
    port, server_args = free_port(), shlex.split(args.server_args)
    load_before = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, Any] = {}
    with serving(args.run, port, server_args, args.concurrency) as pool:
        served = json.loads(pool.request("GET", "/api/model").data)["models"][0]
        model_id, backend = served["model_id"], served.get("backend")
        for kind in args.kinds:
            requests = [request_for(kind, x) for x in images]
            run_load(pool, requests, labels, total=args.warmup, concurrency=args.concurrency, max_seconds=WARMUP_MAX_S)
            results[kind] = run_load(pool, requests, labels, total=args.requests, concurrency=args.concurrency,
                                     max_seconds=args.max_seconds)
    record = {
        "command": "python -m benchmarks.serve_load " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_before": load_before,
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "model_id": model_id, "backend": backend, "server_args": server_args, "results": results,
    }
    print(f"model {model_id} ({backend}); load average before {load_before}, after "
          f"{record['machine']['load_average_after']}")
    print("\n".join(format_table(results)))
    out = atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")
    print(f"written {out}")
    return 0 if all(r["errors"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Load test of `digitlab serve`: requests/s and latency percentiles for single-image predictions.

    python -m benchmarks.serve_load RUN_DIR [--concurrency 8] [--requests 3000] [--max-seconds 30]

Starts the server as a subprocess on a free 127.0.0.1 port, then from this process sends
bounded concurrent requests over keep-alive connections (a minimal asyncio HTTP/1.1 client:
cheaper than httpx, so the client steals less of the CPU the server needs on a 2-core box).
Two kinds of request, each a real MNIST test image:
  json : POST /api/predict {"pixels": [784 ints]} (no preprocessing)
  png  : POST /api/predict multipart upload of the image as PNG (decoded + preprocessed)
Every response must be a 200 with a prediction; anything else counts as an error. Prints a
table and writes JSON to benchmarks/results/serve_load.json. Not a test: timings vary.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.run import REPO, default_mnist_dir, write_atomic

DEFAULT_OUT = REPO / "benchmarks" / "results" / "serve_load.json"
HOST = "127.0.0.1"
BOUNDARY = "digitlabloadboundary"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(run_dir: str, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    """`digitlab serve` in a subprocess; returns once /healthz answers (at most 120 s)."""
    cmd = [sys.executable, "-m", "digitlab", "serve", run_dir, "--host", HOST, "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not answer /healthz within 120 s")


def request_bytes(kind: str, image: np.ndarray) -> bytes:
    """The full HTTP/1.1 request for one 28x28 uint8 image."""
    if kind == "json":
        body = json.dumps({"pixels": image.reshape(-1).tolist()}).encode()
        ctype = "application/json"
    else:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"digit.png\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + buf.getvalue() + f"\r\n--{BOUNDARY}--\r\n".encode()
        ctype = f"multipart/form-data; boundary={BOUNDARY}"
    head = (f"POST /api/predict HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def run_load(port: int, requests: list[bytes], labels: np.ndarray, *, total: int, concurrency: int,
                   max_seconds: float) -> dict[str, Any]:
    """Send `total` requests (cycling over `requests`) from `concurrency` connections; at most `max_seconds`."""
    latencies: list[float] = []
    errors: list[str] = []
    correct = 0
    next_index = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal next_index, correct
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while next_index < total and time.perf_counter() < deadline:
                i = next_index
                next_index += 1
                t0 = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(_one(reader, writer, requests[i % len(requests)]), 10)
                except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    errors.append(repr(exc))
                    return
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    errors.append(f"HTTP {status}: {body[:200]!r}")
                    continue
                correct += int(json.loads(body)["label"] == labels[i % len(labels)])
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    lat_ms = np.array(latencies) * 1000.0
    return {
        "requests": len(latencies), "errors": len(errors), "error_examples": errors[:3],
        "seconds": round(elapsed, 3), "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat_ms, 50)), 2), "p90_ms": round(float(np.percentile(lat_ms, 90)), 2),
        "p99_ms": round(float(np.percentile(lat_ms, 99)), 2), "max_ms": round(float(lat_ms.max()), 2),
        "accuracy": round(correct / max(1, len(latencies)), 4), "concurrency": concurrency,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN_DIR", help="trained run directory (or model file) to serve")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="MNIST folder tried first (default: as benchmarks.run, then the data layer's sources)")
    parser.add_argument("--kinds", default="json,png", help="request kinds, comma-separated (default: json,png)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections in flight (default: 8)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per kind (default: 3000)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time cap per kind (default: 30)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests per kind first (default: 100)")
    parser.add_argument("--server-args", default="", help="extra `digitlab serve` arguments, e.g. '--threads 2'")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON result file (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    from digitlab.data import load

    ds = load("mnist", data_dir=default_mnist_dir(args.data_dir))
    images, labels = ds.x_test[:500], ds.y_test[:500]
    port = free_port()
    server_args = shlex.split(args.server_args)
    load_before = [round(x, 2) for x in os.getloadavg()]
    proc = start_server(args.run, port, server_args)
    results: dict[str, Any] = {}
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/model", timeout=10) as r:
            served = json.load(r)["models"][0]
            model_id, backend = served["model_id"], served.get("backend")
        for kind in args.kinds.split(","):
            reqs = [request_bytes(kind, x) for x in images]
            asyncio.run(run_load(port, reqs, labels, total=args.warmup, concurrency=args.concurrency, max_seconds=30))
            results[kind] = asyncio.run(run_load(port, reqs, labels, total=args.requests,
                                                 concurrency=args.concurrency, max_seconds=args.max_seconds))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

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
    print(f"{'kind':6} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'acc':>6}")
    for kind, r in results.items():
        print(f"{kind:6} {r['requests']:8d} {r['errors']:6d} {r['requests_per_s']:8.1f} {r['p50_ms']:7.2f} "
              f"{r['p90_ms']:7.2f} {r['p99_ms']:7.2f} {r['max_ms']:7.2f} {r['accuracy']:6.3f}")
    out = write_atomic(Path(args.out), json.dumps(record, indent=2) + "\n")
    print(f"written {out}")
    return 0 if all(r["errors"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

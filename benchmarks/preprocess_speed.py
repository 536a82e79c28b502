"""Preprocessing speed and memory: decode + `preprocess` of a 12 MP phone JPEG, a canvas PNG and a huge PNG.

    .venv/bin/python benchmarks/preprocess_speed.py            # table: median / p95 ms, peak memory
    .venv/bin/python benchmarks/preprocess_speed.py --repeat 50 --read RUN   # also Predictor.read

Single-threaded (cv2.setNumThreads(1), one BLAS/OpenMP thread). Each case runs in its own child
process, whose peak resident memory (VmHWM, reset just before the call) minus its resident memory
then is what one request costs on top of the loaded library and the file's bytes; tracemalloc's peak (NumPy and
Python allocations; OpenCV's and Pillow's own buffers are not traced) is shown beside it. The
pictures are made here (seeded): a 4032x3024 photo of a digit on ruled paper under a lighting
gradient and a hard shadow (JPEG quality 90), the web page's 280x280 canvas (white pen on black
RGBA PNG), and a 6000x6000 RGBA PNG (a transparent canvas, the worst accepted PNG for memory).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

CASES = ("photo_12mp_jpeg", "canvas_280_png", "rgba_6000_png")


def _digit_strokes(w: int, h: int, cx: float, cy: float, size: float) -> list[np.ndarray]:
    """A '2' as polylines (pixel coordinates) of height `size` centred at (cx, cy)."""
    t = np.linspace(np.pi, 2.1 * np.pi, 40)
    arc = np.stack([np.cos(t) * 0.32, np.sin(t) * 0.25 - 0.2], 1)
    tail = np.array([[0.3, -0.15], [-0.35, 0.5], [0.38, 0.5]])
    pts = np.vstack([arc, tail]) * size + [cx, cy]
    return [pts.astype(np.int32)]


def make_photo(seed: int = 0) -> bytes:
    """A 4032x3024 JPEG: ruled paper, a lighting gradient, a hard shadow, a blue '2', noise (quality 90)."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = 4032, 3024
    yy, xx = np.mgrid[0:h:8, 0:w:8].astype(np.float32)
    light = 1.0 - 0.35 * (xx / w) - 0.1 * (yy / h)
    light = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    light[np.arange(h)[:, None] > 0.55 * h + 0.3 * np.arange(w)[None]] *= 0.55  # a hard shadow's edge
    ink = np.zeros((h, w), np.uint8)
    for y in range(200, h, 260):
        cv2.line(ink, (0, y), (w, y + 40), 90, 9, cv2.LINE_AA)
    cv2.polylines(ink, _digit_strokes(w, h, 0.5 * w, 0.45 * h, 1300), False, 255, 70, cv2.LINE_AA)
    paper = np.array([245, 244, 238], np.float32)
    pen = np.array([40, 60, 160], np.float32)
    a = (ink.astype(np.float32) / 255)[..., None]
    rgb = (paper * (1 - a) + pen * a) * light[..., None] + rng.normal(0, 3, (h, w, 1)).astype(np.float32)
    ok, buf = cv2.imencode(".jpg", np.clip(rgb[..., ::-1], 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def make_canvas(side: int = 280, transparent: bool = False) -> bytes:
    """A PNG of a '2' drawn with a round pen: the web page's (white on opaque black) or a transparent one."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (side, side), (0, 0, 0, 0 if transparent else 255))
    pts = [tuple(p) for p in _digit_strokes(side, side, side * 0.5, side * 0.45, side * 0.6)[0].tolist()]
    colour = (20, 20, 30, 255) if transparent else (255, 255, 255, 255)
    ImageDraw.Draw(img).line(pts, fill=colour, width=max(2, round(0.08 * side)), joint="curve")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def make(case: str) -> bytes:
    """The file bytes of `case`."""
    if case == "photo_12mp_jpeg":
        return make_photo()
    if case == "canvas_280_png":
        return make_canvas()
    return make_canvas(6000, transparent=True)


def _status_mb(key: str) -> float:
    """A /proc/self/status memory figure (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def _reset_peak() -> None:
    """Reset the peak resident size (VmHWM) to the current one (Linux >= 4.0); ru_maxrss cannot be reset."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(case: str, path: str, repeat: int, run: str | None) -> dict:
    """Time decode + preprocess (and read, with `run`) of the file at `path`; peak memory of one call."""
    import cv2

    cv2.setNumThreads(1)
    from digitlab.vision.decode import load_image
    from digitlab.vision.normalise import preprocess

    with open(path, "rb") as f:
        data = f.read()
    work = lambda: preprocess(load_image(data, name=case))  # noqa: E731
    predictor = None
    if run:
        from digitlab.inference import Predictor

        predictor = Predictor.load(run, num_threads=1)
        predictor.read(data)  # warm: sessions, caches
    preprocess(load_image(make_canvas(64)))  # warm imports and OpenCV's first calls on a tiny picture
    _reset_peak()
    base = _status_mb("VmRSS")
    tracemalloc.start()
    result = work()
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    peak = _status_mb("VmHWM") - base
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        work()
        times.append((time.perf_counter() - t) * 1000)
    out = {"case": case, "file_mb": len(data) / 2**20, "median_ms": float(np.median(times)),
           "p95_ms": float(np.percentile(times, 95)), "peak_rss_mb": peak, "traced_mb": traced,
           "box": list(result.box or ()), "repeat": repeat}
    if predictor is not None:
        read_times = []
        for _ in range(max(3, repeat // 2)):
            t = time.perf_counter()
            predictor.read(data)
            read_times.append((time.perf_counter() - t) * 1000)
        out["read_median_ms"] = float(np.median(read_times))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every case in its own child process and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20, help="timed repetitions per case (default: 20)")
    ap.add_argument("--read", metavar="RUN", default=None,
                    help="also time Predictor.read with this run directory (default: preprocessing only)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated cases (default: {','.join(CASES)})")
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.repeat, args.read)))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            path = os.path.join(tmp, case)
            with open(path, "wb") as f:
                f.write(make(case))  # made here: the child's peak memory is only its own work
            cmd = [sys.executable, __file__, "--child", case, path, "--repeat", str(args.repeat)]
            if args.read:
                cmd += ["--read", args.read]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    head = f"{'case':18s} {'file MB':>8s} {'median ms':>10s} {'p95 ms':>8s} {'peak RSS MB':>12s} {'traced MB':>10s}"
    if args.read:
        head += f" {'read ms':>8s}"
    print(head)
    for r in rows:
        line = (f"{r['case']:18s} {r['file_mb']:8.2f} {r['median_ms']:10.1f} {r['p95_ms']:8.1f} "
                f"{r['peak_rss_mb']:12.1f} {r['traced_mb']:10.1f}")
        if args.read:
            line += f" {r['read_median_ms']:8.1f}"
        print(line)
    print(f"single-threaded (cv2.setNumThreads(1)); {args.repeat} repetitions; decode + preprocess from file bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

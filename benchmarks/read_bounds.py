"""What the hardest pictures cost `read`: seconds and memory per picture, each in a fresh process.

    python -m benchmarks.read_bounds [--threads 2]

Cases: a 12 MP phone photo (photo_large), a page of 1,200 MNIST test digits in 40 lines, a
30,000 px wide line of 300 digits, 10,000 pen strokes at random angles and places, a page of 20,000
specks, salt-and-pepper noise, a checkerboard. Each runs in its own Python process that loads the
bundled reader, reads a small picture (warm-up: the ONNX session, caches), then the case once: the
figures are the wall time of that read and the growth of the process's peak resident memory
during it (ru_maxrss). A picture refused as too much writing is bounded too: "refused" says why.
The issue's bound: at most 2 s and 500 MB on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

CASES = ("photo_12mp", "page_1200", "line_30000px", "strokes_10000", "specks_20000", "salt_pepper", "checkerboard")


def _picture(case: str) -> tuple[Any, str | None]:
    """(the picture, its text or None) for `case`, made from MNIST test digits where it needs digits."""
    import cv2
    import numpy as np

    from benchmarks.realistic import load_mnist_test
    from digitlab.synth.pages import digit_page, noise_page

    rng = np.random.default_rng(0)
    if case == "photo_12mp":
        from digitlab.synth import build_set

        s = build_set("photo_large", 1, seed=0, mnist_test=load_mnist_test(None), split="heldout")[0]
        return s.data, str(s.label)
    if case == "page_1200":
        x, y = load_mnist_test(None)
        return digit_page(x, y, rng)
    if case == "line_30000px":
        x, y = load_mnist_test(None)
        page = np.full((120, 30_000), 245, np.uint8)
        for k in range(300):
            glyph = cv2.resize(x[k], (56, 56)).astype(np.float32) / 255
            page[30:86, 20 + 99 * k:76 + 99 * k] = (245 - glyph * 225).astype(np.uint8)
        return page, "".join(str(int(v)) for v in y[:300])
    if case == "strokes_10000":  # short pen strokes at random angles and places: 10,000 components to group
        page = np.full((3000, 3000), 245, np.uint8)
        centres = rng.uniform(20, 2980, (10_000, 2))
        angles, lengths = rng.uniform(0, np.pi, 10_000), rng.uniform(10, 18, 10_000)
        ends = np.stack([np.cos(angles), np.sin(angles)], 1) * lengths[:, None] / 2
        for (cx, cy), (dx, dy) in zip(centres.tolist(), ends.tolist(), strict=True):
            cv2.line(page, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 20, 2)
        return page, None
    if case in ("specks_20000", "salt_pepper", "checkerboard"):
        kind = {"specks_20000": "specks"}.get(case, case)
        return noise_page(kind, rng), ""
    raise SystemExit(f"unknown case {case!r}; use one of {', '.join(CASES)}")


def one(case: str, threads: int) -> dict[str, object]:
    """Run one case in this process; its figures."""
    import resource
    import time

    import numpy as np
    import torch

    from digitlab.errors import DigitlabError
    from digitlab.inference.reader import Reader
    from digitlab.inference.reading import read

    torch.set_num_threads(threads)
    picture, text = _picture(case)
    reader = Reader.load(num_threads=threads)
    read(reader, np.full((64, 64), 250, np.uint8))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    try:
        got = read(reader, picture).text
    except DigitlabError as exc:  # refused (more writing than one read takes): bounded too, and said why
        got, refused = "", str(exc)
    else:
        refused = ""
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out: dict[str, object] = {"case": case, "seconds": round(seconds, 3), "peak_mb": round(peak),
                              "grew_mb": round(peak - before), "digits_read": len(got.replace("\n", ""))}
    if refused:
        out["refused"] = refused
    elif text is not None:
        out["exact"] = got == text
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.read_bounds", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="threads for torch and the ONNX reader (default 2)")
    p.add_argument("--case", default=None, help="run only this case, in this process (default: all, one "
                   "process each)")
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(one(args.case, args.threads)))
        return 0
    rows: list[dict[str, Any]] = []
    for case in CASES:
        done = subprocess.run([sys.executable, "-m", "benchmarks.read_bounds", "--case", case,
                               "--threads", str(args.threads)], capture_output=True, text=True, check=False)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0
                    else {"case": case, "error": done.stderr.strip().splitlines()[-1:]})
        print(json.dumps(rows[-1]), flush=True)
    worst = max((r.get("seconds", 0) for r in rows), default=0)
    print(f"slowest {worst:.2f} s; largest growth {max((r.get('grew_mb', 0) for r in rows), default=0)} MB "
          "(bound: 2 s, 500 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

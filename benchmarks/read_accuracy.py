"""How exactly `Predictor.read` reads whole numbers, per condition and seed: `python -m benchmarks.read_accuracy`.

    .venv/bin/python -m benchmarks.read_accuracy [RUN] --n 40 --seeds 0,1,2 [--clean] [--sheets DIR]

For every number condition of `digitlab.synth` (or --conditions) and every seed it builds the
set (MNIST *test* digits), reads every picture and counts exact reads (every digit right, nothing
extra, lines in order). --clean also reads each picture's clean version (same ink on flat white
paper, `synth.clean_version`): the ceiling the segmentation reaches without the photo's effects.
--sheets writes PNGs per condition (name-1.png, ...) of the failures: the picture with the pieces found (green:
read, red: rejected) and the truth's boxes (blue), then each piece's 28x28 with its label.
Conditions named scene_* (SCENES) are numbers of random MNIST test digits drawn by
tests/inference/paper_scenes.py, independently of digitlab.synth (its clean version: flat paper).
--cache keeps the built sets (the files an app would send) so that reruns skip generation.
Prints a markdown table (exact-read share per seed, their mean, the clean ceiling, ms per read).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NUMBER_CONDITIONS = ("number_plain", "number_ruled", "number_squared", "number_touching", "number_broken",
                     "number_two_lines", "number_mixed_photo", "number_mixed", "canvas_number", "printed_number")
# scenes drawn by tests/inference/paper_scenes.py (independently of digitlab.synth): number options, photo options
SCENES: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "scene_spaced": ({"gap": 0.3}, None),
    "scene_close_ruled_blue": ({"gap": 0.1}, {"light": "linear", "light_strength": 0.4, "lines": "ruled",
                                              "line_pitch": 150, "ink_rgb": (30, 50, 155)}),
    "scene_touching": ({"gap": -0.04}, None),
    "scene_overlapping": ({"gap": -0.1}, None),
    "scene_broken": ({"gap": 0.3, "break_at": 0.4}, None),
    "scene_broken_close": ({"gap": 0.12, "break_at": 0.6}, {"light": "radial", "light_strength": 0.3}),
}
SHEET_ROWS = 24  # failures drawn per condition
SHEET_PAGE = 6  # failures per sheet file
ROW_PX = 200  # height of a failure's row in the sheet


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def scenes(condition: str, n: int, seed: int, mnist: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
    """`n` numbers of 2-5 random MNIST test digits drawn by paper_scenes under SCENES[condition]."""
    sys.path.insert(0, str(REPO / "tests" / "inference"))
    import paper_scenes  # type: ignore[import-not-found]

    options, photo = SCENES[condition]
    x, y = mnist
    by_class = [np.flatnonzero(y == c) for c in range(10)]
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        labels = rng.integers(0, 10, int(rng.integers(2, 6)))
        digits = [x[by_class[c][rng.integers(len(by_class[c]))]] for c in labels]
        ink, boxes = paper_scenes.number(digits, rng=rng, **options)
        image = paper_scenes.photo(ink, seed=i, **photo) if photo else paper_scenes.flat(ink)
        rows.append({"image": image, "clean": paper_scenes.flat(ink), "text": "".join(map(str, labels)),
                     "boxes": [list(b) for b in boxes]})
    return rows


def build(condition: str, n: int, seed: int, mnist: tuple[np.ndarray, np.ndarray], *, clean: bool,
          cache: Path | None) -> list[dict[str, Any]]:
    """The set as dicts {image, clean (or None), text, boxes}; kept in `cache` as file bytes when given."""
    from digitlab.synth import build_set, clean_version

    if condition in SCENES:
        return scenes(condition, n, seed, mnist)

    key = hashlib.sha256(f"{condition}/{n}/{seed}/{clean}".encode()).hexdigest()[:16]
    path = cache / f"{condition}-{seed}-{n}-{key}.pkl" if cache else None
    if path is not None and path.exists():
        rows = pickle.loads(path.read_bytes())
    else:
        rows = []
        for s in build_set(condition, n, seed=seed, mnist_test=mnist):
            rows.append({"data": _png(s.image), "clean": _png(clean_version(s).image) if clean and s.ink else None,
                         "text": s.text, "boxes": s.boxes})
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(rows))
    return [{"image": _decode(r["data"]), "clean": _decode(r["clean"]) if r["clean"] else None,
             "text": r["text"], "boxes": r["boxes"]} for r in rows]


def evaluate(predictor: Any, rows: list[dict[str, Any]], *, clean: bool) -> dict[str, Any]:
    """Exact reads (and on clean versions), ms per read, and the failures with their pieces."""
    from digitlab.inference.reading import read_pieces, text_of

    ok, ok_clean, times, failures = 0, 0, [], []
    for i, r in enumerate(rows):
        t = time.perf_counter()
        pic, lines = read_pieces(predictor, r["image"])
        times.append(time.perf_counter() - t)
        text = text_of(lines)
        if text == r["text"]:
            ok += 1
        else:
            failures.append({"index": i, "truth": r["text"], "read": text, "pic": pic, "lines": lines, **r})
        if clean and r["clean"] is not None:
            _, clean_lines = read_pieces(predictor, r["clean"])
            ok_clean += text_of(clean_lines) == r["text"]
    n = max(len(rows), 1)
    return {"exact": ok / n, "clean": ok_clean / n if clean else None, "ms": 1000 * float(np.median(times)),
            "failures": failures}


def failure_sheet(failures: list[dict[str, Any]]) -> np.ndarray:
    """uint8 RGB: one row per failure: the picture with boxes, its truth and reading, the pieces' 28x28s."""
    rows = [_failure_row(f) for f in failures[:SHEET_ROWS]]
    return np.concatenate(rows) if rows else np.full((10, 10, 3), 255, np.uint8)


def _failure_row(f: dict[str, Any]) -> np.ndarray:
    import cv2

    img = f["image"][..., :3] if f["image"].ndim == 3 else np.dstack([f["image"]] * 3)
    sx, sy = f["pic"].scale
    pieces = [p for line in f["lines"] for p in line]
    found = [(p.box[0] * sx, p.box[1] * sy, p.box[2] * sx, p.box[3] * sy) for p in pieces]
    every = np.array(list(f["boxes"]) + found, np.float64).reshape(-1, 4)
    pad = 0.1 * (every[:, 3] - every[:, 1]).max()
    cx0, cy0 = (max(0, int(v)) for v in every[:, :2].min(0) - pad)
    cx1, cy1 = (int(v) for v in every[:, 2:].max(0) + pad)
    img = img[cy0:cy1, cx0:cx1]
    scale = min((ROW_PX - 20) / img.shape[0], 900 / img.shape[1])
    size = (max(1, int(img.shape[1] * scale)), max(1, int(img.shape[0] * scale)))
    thumb = cv2.resize(np.ascontiguousarray(img), size, interpolation=cv2.INTER_AREA).copy()
    boxes = [(b, (40, 80, 255)) for b in f["boxes"]]
    boxes += [(b, (0, 170, 0) if p.reason is None else (230, 0, 0)) for b, p in zip(found, pieces)]
    for b, colour in boxes:
        cv2.rectangle(thumb, (int((b[0] - cx0) * scale), int((b[1] - cy0) * scale)),
                      (int((b[2] - cx0) * scale), int((b[3] - cy0) * scale)), colour, 1)
    row = np.full((ROW_PX, 1800, 3), 255, np.uint8)
    row[20:20 + thumb.shape[0], :thumb.shape[1]] = thumb
    cv2.putText(row, f"#{f['index']} truth {f['truth']!r} read {f['read']!r}", (2, 14),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    x = 910
    for p in pieces:
        crop = np.dstack([cv2.resize(p.image, (84, 84), interpolation=cv2.INTER_NEAREST)] * 3)
        crop = np.pad(crop, ((0, 36), (2, 2), (0, 0)), constant_values=255)
        colour = (0, 170, 0) if p.reason is None else (230, 0, 0)
        cv2.putText(crop, f"{p.prediction.class_name} {p.prediction.probability:.2f}", (2, 100),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
        if x + crop.shape[1] > row.shape[1]:
            break
        row[20:20 + crop.shape[0], x:x + crop.shape[1]] = crop
        x += crop.shape[1]
    return row


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.read_accuracy", description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", default=None, help="run directory or model.json (default: the bundled model)")
    p.add_argument("--conditions", default=",".join(NUMBER_CONDITIONS),
                   help=f"comma-separated conditions, synth's or {', '.join(SCENES)} (default: every synth "
                   "number condition)")
    p.add_argument("--n", type=int, default=40, help="pictures per condition and seed (default: 40)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    p.add_argument("--clean", action="store_true", help="also read the clean versions (default: off)")
    p.add_argument("--sheets", type=Path, default=None, help="write failure sheets here (default: none)")
    p.add_argument("--cache", type=Path, default=None, help="keep built sets here (default: none)")
    p.add_argument("--backend", default="auto", help="Predictor backend (default: auto)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: DIGITLAB_DATA_DIR or the shared copy)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse, load the model and MNIST, evaluate every condition and seed, print the table."""
    args = parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    import cv2

    from benchmarks.realistic import load_mnist_test
    from digitlab.inference import Predictor

    predictor = Predictor.load(args.model, backend=args.backend)
    mnist = load_mnist_test(args.data_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"model {predictor.model_id} ({predictor.backend}), n {args.n} per seed")
    print("| condition | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | clean | ms |")
    print("|---|" + "---:|" * (len(seeds) + 3))
    for name in args.conditions.split(","):
        results = [evaluate(predictor, build(name, args.n, s, mnist, clean=args.clean, cache=args.cache),
                            clean=args.clean) for s in seeds]
        exact = [r["exact"] for r in results]
        clean = [r["clean"] for r in results if r["clean"] is not None]
        print(f"| {name} | " + " | ".join(f"{100 * e:.1f}" for e in exact) + f" | {100 * np.mean(exact):.1f} | "
              + (f"{100 * np.mean(clean):.1f}" if clean else "") + f" | {np.mean([r['ms'] for r in results]):.0f} |",
              flush=True)
        if args.sheets:
            args.sheets.mkdir(parents=True, exist_ok=True)
            failures = [f for r in results for f in r["failures"]][:SHEET_ROWS]
            for page in range(0, len(failures), SHEET_PAGE):
                sheet = failure_sheet(failures[page:page + SHEET_PAGE])
                out = args.sheets / f"{name}-{page // SHEET_PAGE + 1}.png"
                cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

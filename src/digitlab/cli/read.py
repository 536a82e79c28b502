"""`digitlab read`: read every digit in image files (whole numbers, several lines) with a trained model.

A thin shell over `digitlab.inference.reading.read` (what `Predictor.read` and the API's /api/read run).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from digitlab.cli._model import MODEL_HELP, split_model

if TYPE_CHECKING:
    from digitlab.prediction import Reading

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "read",
        help="read the number (every digit) written in image files",
        description="Find every digit in PNG/JPEG/... images (phone photos of paper, scans, drawings, whole "
                    "pages) and read them left to right, lines top to bottom. The picture is cleaned as for "
                    "`digitlab predict` (lighting, ink colour, ruled or squared paper), its writing grouped into "
                    "lines, and every line read by the line reader (a CNN trained with CTC: touching and "
                    "overlapping digits are told apart by the model; marks that are not digits are refused). "
                    "Small writing is read from the full-resolution picture. Folders are searched recursively. "
                    "A file that cannot be read gets an error on stderr; the others are still read (exit code "
                    "1 if any failed).",
    )
    p.add_argument("paths", nargs="+", metavar="[READER] FILE_OR_FOLDER",
                   help="READER: a folder holding a line reader (reader.json, reader.safetensors; default: the "
                        "bundled reader), or a classifier run (" + MODEL_HELP + "), whose reader is the bundled "
                        "one; then image files or folders of them")
    p.add_argument("--annotate", metavar="DIR", default=None,
                   help="also write each picture with its boxes and digits drawn to DIR/<name>.png (green: read, "
                        "red: refused) (default: off)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line per file: file, text, digits (label, class_name, probability, "
                        "box [x0, y0, x1, y1] in the image's pixels, rejected, reason), model_id "
                        "(default: a text line per file, `file: text`)")
    p.add_argument("--digits", action="store_true",
                   help="text mode: also one indented line per digit found (class, probability, box, why rejected) "
                        "(default: off)")
    p.set_defaults(func=run)


def _expand(inputs: list[str]) -> Iterator[Path]:
    """Files as given; folders -> their image files, recursively, sorted."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path  # missing files are reported per file by load_image


def format_reading(name: str, reading: Reading, *, digits: bool = False) -> str:
    """`name: text` (lines of a multi-line number joined by " / "), and with `digits` a line per digit found."""
    text = " / ".join(reading.text.split("\n")) if reading.text else "(no digits found)"
    lines = [f"{name}: {text}"]
    if digits:
        for d in reading.digits:
            box = ",".join(str(v) for v in d.box)
            note = f"  rejected: {d.reason}" if d.rejected else ""
            lines.append(f"  {d.class_name}  {d.probability:.1%}  box {box}{note}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Read every input file, print one line (or JSON object) per file; with --annotate, draw each."""
    from digitlab.errors import DigitlabError
    from digitlab.inference.reader import Reader, is_reader_folder
    from digitlab.inference.reading import read  # what Predictor.read runs

    paths = list(args.paths)
    reader_path = paths.pop(0) if paths and is_reader_folder(paths[0]) else None
    model, inputs = split_model(paths) if reader_path is None else (None, paths)
    if not inputs:
        raise DigitlabError(f"{reader_path or model}: no images to read; give image files or folders after it")
    files = list(_expand(inputs))
    if not files:
        raise DigitlabError(f"{' '.join(inputs)}: no image files found; give files or folders holding them")
    reader = Reader.load(reader_path)
    out = Path(args.annotate) if args.annotate else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    failed, written = 0, set[str]()
    for path in files:
        try:
            reading = read(reader, path, name=str(path))
            if out is not None:
                written.add(_annotate(path, reading, out, written))
        except DigitlabError as exc:
            failed += 1
            print(f"digitlab: error: {exc}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": str(path), **reading.model_dump()}))
        else:
            print(format_reading(str(path), reading, digits=args.digits))
    if failed:
        print(f"digitlab: {failed} of {len(files)} input files failed", file=sys.stderr)
    return 1 if failed else 0


def _annotate(path: Path, reading: Reading, out: Path, taken: set[str]) -> str:
    """Write `path` with `reading` drawn to out/<stem>.png (<stem>-2.png, ... when taken); the name written."""
    import io

    from digitlab._io import atomic_write_bytes
    from digitlab.vision.annotate import annotate
    from digitlab.vision.decode import load_image

    name, k = f"{path.stem}.png", 1
    while name in taken:
        k += 1
        name = f"{path.stem}-{k}.png"
    buf = io.BytesIO()
    annotate(load_image(path, name=str(path)), reading).save(buf, format="PNG")
    atomic_write_bytes(out / name, buf.getvalue())
    return name

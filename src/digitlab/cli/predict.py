"""`digitlab predict`: classify image files (PNG, JPEG, ...) and IDX image files with a trained model."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from digitlab.cli._model import MODEL_HELP, split_model
from digitlab.layout import BACKENDS, IMAGE_SHAPE

if TYPE_CHECKING:
    import numpy as np

    from digitlab.inference import Predictor
    from digitlab.inference.rejection import Ink
    from digitlab.prediction import Prediction

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "predict",
        help="classify image files or IDX files with a trained model",
        description="Classify PNG/JPEG/... images (each preprocessed the way the model's dataset was made: "
                    "greyscale, inverted if dark-on-light, cropped, then for MNIST/KMNIST fitted to 20x20 and "
                    "centred by centre of mass, for Fashion-MNIST longer side 28 and centred by bounding box, "
                    "in 28x28) and IDX image files (every "
                    "28x28 image in them, used as is). Folders are searched recursively. A file that cannot "
                    "be read gets an error on stderr; the others are still classified (exit code 1 if any failed).",
    )
    p.add_argument("paths", nargs="+", metavar="[RUN] FILE_OR_FOLDER",
                   help=f"RUN: {MODEL_HELP}; then image files, IDX image files or folders of them")
    p.add_argument("--top-k", type=int, default=3, help="how many best classes to show per image (default: 3)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line per image: file, label, class_name, probability, "
                        "probabilities, top_k, rejected, reason, model_id (default: a text line per image)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="inference backend (default: auto: the run's int8 ONNX model when it has an up-to-date "
                        "one, else ONNX Runtime when installed, else PyTorch)")
    p.add_argument("--batch-size", type=int, default=1024, help="images per forward pass (default: 1024)")
    p.set_defaults(func=run)


def _is_idx(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return "idx3" in name or name.endswith((".idx", "-ubyte"))


def _is_idx_labels(path: Path) -> bool:
    name = path.name.lower()
    return "idx1" in name or "labels" in name


def _expand(inputs: list[str]) -> Iterator[Path]:
    """Files as given; folders -> their image files and IDX image files (not labels), recursively, sorted."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*")
                if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or (_is_idx(p) and not _is_idx_labels(p)))
            )
        else:
            yield path  # missing files are reported per file by load_image


def _read(path: Path, predictor: Predictor) -> list[tuple[str, np.ndarray, Ink]]:
    """(name, uint8 (28, 28), its ink facts) of one input file: a picture preprocessed as `Predictor.predict_image`
    does (so a blank page or several objects are rejected as there), or every IDX image (already 28x28)."""
    import numpy as np

    from digitlab.errors import DigitlabError
    from digitlab.inference.rejection import Ink

    if _is_idx(path) and path.is_file():
        from digitlab.data import read_idx

        arr = read_idx(path)
        if arr.ndim != 3 or arr.shape[1:] != IMAGE_SHAPE or arr.dtype != np.uint8:
            raise DigitlabError(f"{path}: IDX file holds {arr.dtype} {arr.shape}, not uint8 (N, 28, 28) images; "
                                "give an images file (...-images-idx3-ubyte), not a labels file")
        return [(f"{path}[{i}]", im, ink) for i, (im, ink) in enumerate(zip(arr, Ink.of_images(arr)))]
    done = predictor.preprocessed(path)
    return [(str(path), done.image, Ink.of(done))]


def format_prediction(name: str, p: Prediction) -> str:
    """One text line for a prediction: the class and the best few, or why it was rejected."""
    if p.rejected:
        return f"{name}: {p.reason} (closest: {p.class_name}, {p.probability:.0%})"
    others = ", ".join(f"{c.class_name} {c.probability:.1%}" for c in p.top_k)
    return f"{name}: {p.class_name}  ({others})"


def run(args: argparse.Namespace) -> int:
    """Read every input, classify them in batches, print one line per image."""
    import numpy as np

    from digitlab.errors import DigitlabError
    from digitlab.inference import Predictor

    if args.top_k < 1:
        raise DigitlabError(f"--top-k {args.top_k}: must be 1 or more")
    model, inputs = split_model(args.paths)
    if not inputs:
        raise DigitlabError(f"{model}: no images to classify; give image files or folders after the model")
    files = list(_expand(inputs))
    if not files:
        raise DigitlabError(f"{' '.join(inputs)}: no image or IDX files found; give files or folders holding them")
    predictor = Predictor.load(model, backend=args.backend, batch_size=args.batch_size)
    names: list[str] = []
    images = []
    inks: list[Ink] = []
    failed = 0
    for path in files:
        try:
            for name, image, ink in _read(path, predictor):
                names.append(name)
                images.append(image)
                inks.append(ink)
        except DigitlabError as exc:
            failed += 1
            print(f"digitlab: error: {exc}", file=sys.stderr)
    predictions = predictor.predict_prepared(np.stack(images), top_k=args.top_k, ink=inks) if images else []
    for name, p in zip(names, predictions):
        print(json.dumps({"file": name, **p.model_dump()}) if args.json else format_prediction(name, p))
    if failed:
        print(f"digitlab: {failed} of {len(files)} input files failed; {len(names)} images classified", file=sys.stderr)
    return 1 if failed else 0

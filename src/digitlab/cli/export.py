"""`digitlab export`: write a checkpoint as ONNX and check its outputs against PyTorch's."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from digitlab.checkpoints import ModelMeta

PARITY_TOLERANCE = 1e-4  # max |logit difference| accepted between ONNX Runtime and PyTorch


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX and check it against PyTorch",
        description="Export a checkpoint to ONNX (input float32 (N, 1, 28, 28) = pixels/255, output logits "
                    "(N, C), dynamic batch axis), then run a batch of test images through ONNX Runtime and "
                    "PyTorch and print the largest difference of their outputs.",
    )
    p.add_argument("run", metavar="RUN", help="run directory, model.json or model.safetensors")
    p.add_argument("--onnx", action="store_true", required=True, help="export to ONNX (the only format; required)")
    p.add_argument("--out", default=None, help="where to write the .onnx file (default: RUN/model.onnx)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version, 17 or higher (default: 17)")
    p.add_argument("--check-images", type=int, default=256,
                   help="test images compared between ONNX Runtime and PyTorch (default: 256)")
    p.add_argument("--data-dir", default=None,
                   help="folder of the dataset's IDX files for the check (default: the data layer's usual search)")
    p.add_argument("--int8", action="store_true",
                   help="also write RUN/model.int8.onnx: int8 quantized, calibrated on 1000 training images, kept "
                        "only if its accuracy on the validation images is within 0.1 points of the float "
                        "model's (default: off; `digitlab train` already does this)")
    p.add_argument("--benchmark", action="store_true",
                   help="also measure images/s of PyTorch vs ONNX Runtime (float, and int8 when the run has it) "
                        "at batch 1 and 1000 (default: off)")
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads for the benchmark (default: each library's own choice)")
    p.add_argument("--dry-run", action="store_true",
                   help="export to a temporary file and check it, leaving the run directory untouched (default: off)")
    p.set_defaults(func=run)


def _check_images(meta: ModelMeta, n: int, data_dir: str | None) -> tuple[np.ndarray, str]:
    """Up to n test images of the model's dataset, or seeded random images if it cannot be loaded."""
    import numpy as np

    from digitlab.checkpoints import dataset_of
    from digitlab.errors import DigitlabError

    try:
        return dataset_of(meta, data_dir=data_dir).x_test[:n], "test images"
    except DigitlabError as exc:
        print(f"digitlab: note: dataset unavailable ({exc}); checking on random images", file=sys.stderr)
        return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8), "random images"


def run(args: argparse.Namespace) -> int:
    """Export, compare with PyTorch, optionally benchmark."""
    from digitlab.checkpoints import read_meta
    from digitlab.errors import DigitlabError
    from digitlab.export import export_onnx
    from digitlab.export.onnx import compare_onnx

    if args.opset < 17:
        raise DigitlabError(f"--opset {args.opset}: use 17 or higher")
    meta = read_meta(args.run)
    with tempfile.TemporaryDirectory(prefix="digitlab-export-") as tmp:
        out = Path(tmp) / "model.onnx" if args.dry_run else args.out
        path = export_onnx(args.run, out, opset=args.opset)
        x, what = _check_images(meta, args.check_images, args.data_dir)
        diff = compare_onnx(args.run, path, x)
        size_kb = path.stat().st_size / 1024
        where = "dry run, not kept" if args.dry_run else str(path)
        print(f"exported {meta.model.name} to ONNX opset {args.opset}: {where} ({size_kb:.0f} KiB)")
        print(f"max |ONNX Runtime - PyTorch| logit difference on {len(x)} {what}: {diff:.3g} "
              f"(tolerance {PARITY_TOLERANCE:g})")
        if diff > PARITY_TOLERANCE:
            print(f"digitlab: error: {path}: ONNX outputs differ from PyTorch's by {diff:.3g} > "
                  f"{PARITY_TOLERANCE:g}; do not use this export", file=sys.stderr)
            return 1
    if args.int8 and not args.dry_run:
        from digitlab.export import export_int8

        print(export_int8(args.run, data_dir=args.data_dir).summary())
    if args.benchmark and not args.dry_run:
        from digitlab.inference.benchmark import compare_backends

        x, what = _check_images(meta, 10000, args.data_dir)
        result = compare_backends(args.run, x, num_threads=args.threads)
        for backend, by_batch in result.items():
            line = ", ".join(f"batch {b}: {v:,.0f} images/s" for b, v in by_batch.items())
            print(f"{backend:>5}: {line}")
    return 0

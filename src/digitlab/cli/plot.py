"""`digitlab plot`: redraw a run's plots (prediction grid, training curves, confusion matrix, mistakes)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "plot",
        help="redraw the plots of a run directory as PNG files",
        description="Redraw a run's plots into its directory: predictions.png (5x5 test images, "
                    "label vs prediction, mistakes in red), training_curves.png (from metrics.jsonl), "
                    "confusion_matrix.png and worst_mistakes.png (most confident wrong predictions).",
    )
    p.add_argument("run", metavar="RUN", help="run directory (or its model.json / model.safetensors)")
    p.add_argument("--dataset", default=None,
                   help="dataset name or IDX folder whose test split is plotted (default: the one in model.json)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the dataset's IDX files (default: the data layer's usual search)")
    p.add_argument("--batch-size", type=int, default=1000, help="images per forward pass (default: 1000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Draw every plot and list the files written."""
    from digitlab.evaluation.plots import plot_run

    for path in plot_run(args.run, args.dataset, data_dir=args.data_dir, batch_size=args.batch_size):
        print(f"wrote {path}")
    return 0

"""`digitlab plot`: redraw a run's plots (prediction grid, curves, confusion matrix, mistakes, reliability)."""
from __future__ import annotations

import argparse
import warnings


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "plot",
        help="redraw the plots of a run directory as PNG files",
        description="Redraw a run's plots into its directory, each titled with the run's name and test "
                    "accuracy: predictions.png (5x5 test images, label vs prediction, mistakes in red), "
                    "training_curves.png (loss, accuracy and learning rate from metrics.jsonl), "
                    "confusion_matrix.png (counts on a log colour scale, non-zero cells written in), "
                    "worst_mistakes.png (most confident wrong predictions) and, for a calibrated model, "
                    "reliability.png (accuracy vs confidence before and after temperature scaling). "
                    "Plotting another dataset than the model's own prints a warning.",
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
    from digitlab.cli.evaluate import print_dataset_warnings
    from digitlab.evaluation.plots import plot_run
    from digitlab.evaluation.report import DatasetMismatchWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetMismatchWarning)
        paths = plot_run(args.run, args.dataset, data_dir=args.data_dir, batch_size=args.batch_size)
    print_dataset_warnings(caught)
    for path in paths:
        print(f"wrote {path}")
    return 0

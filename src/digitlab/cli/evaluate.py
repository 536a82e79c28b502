"""`digitlab evaluate`: test-set report (per-class P/R/F1, confusion matrix, top-k, calibration) of a trained model."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained model on a test set; writes report.json into the run directory",
        description="Evaluate a checkpoint on the test split of its dataset: scikit-learn's classification "
                    "report (per-class precision, recall, f1-score and support, accuracy, macro and weighted "
                    "averages), top-k accuracy, the confusion matrix and, for a calibrated model (a temperature "
                    "in model.json), the expected calibration error and NLL before and after temperature "
                    "scaling. Prints a table and writes report.json into the run directory. Evaluating on "
                    "another dataset than the model's own prints a warning.",
    )
    p.add_argument("run", metavar="RUN_OR_MODEL", help="run directory, model.json or model.safetensors")
    p.add_argument("--dataset", default=None,
                   help="dataset name or IDX folder to evaluate on (default: the one named in model.json)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the dataset's IDX files (default: the data layer's usual search)")
    p.add_argument("--batch-size", type=int, default=1000, help="images per forward pass (default: 1000)")
    p.add_argument("--top-k", type=int, nargs="+", default=[1, 3, 5], metavar="K",
                   help="k values for top-k accuracy (default: 1 3 5)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the table (default: off)")
    p.add_argument("--no-write", action="store_true", help="do not write report.json (default: write it)")
    p.add_argument("--dry-run", action="store_true",
                   help="evaluate one batch only and write nothing: a quick end-to-end check (default: off)")
    p.set_defaults(func=run)


def print_dataset_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    """One `digitlab: warning:` line on stderr per DatasetMismatchWarning; other warnings re-issued as they were."""
    from digitlab.evaluation.report import DatasetMismatchWarning

    for w in caught:
        if issubclass(w.category, DatasetMismatchWarning):
            print(f"digitlab: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def run(args: argparse.Namespace) -> int:
    """Evaluate (`evaluation.evaluate_run`), print the table or JSON, write report.json."""
    from digitlab.checkpoints import load_checkpoint
    from digitlab.evaluation import evaluate_run, format_report, write_report
    from digitlab.evaluation.report import DatasetMismatchWarning

    ckpt = load_checkpoint(args.run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetMismatchWarning)
        report = evaluate_run(ckpt, args.dataset, data_dir=args.data_dir, top_k=tuple(args.top_k),
                              batch_size=args.batch_size, limit=args.batch_size if args.dry_run else None)
    print_dataset_warnings(caught)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if not (args.no_write or args.dry_run):
        path = write_report(report, ckpt.run_dir)
        if not args.json:
            print(f"wrote {path}")
    elif args.dry_run and not args.json:
        print(f"dry run: evaluated {report['n']} images, wrote nothing")
    return 0

"""`digitlab evaluate`: test-set report (per-class P/R/F1, confusion matrix, top-k, calibration) of a trained model."""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path


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
                    "another dataset than the model's own prints a warning. Given a line reader's folder "
                    "(reader.json), it calibrates the reader on held-out synthetic lines of MNIST test digits, "
                    "measures it per condition (spaced, touching, overlapping, broken, with non-digit marks, "
                    "noise) and on a page of 1,200 digits and pages of noise, and writes the calibration and "
                    "figures into reader.json and report.json.",
    )
    p.add_argument("run", metavar="RUN_OR_MODEL",
                   help="run directory, model.json or model.safetensors; or a line reader's folder")
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
    from digitlab.inference.reader import is_reader_folder

    if is_reader_folder(args.run):
        return _evaluate_reader(args)
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


def _evaluate_reader(args: argparse.Namespace) -> int:
    """`digitlab evaluate READER_FOLDER`: calibrate and measure a line reader; a table per condition."""
    from digitlab.data import load
    from digitlab.evaluation.line_reading import evaluate_reader_folder

    ds = load(args.dataset or "mnist", data_dir=args.data_dir, offline=True)
    small = args.dry_run
    report = evaluate_reader_folder(args.run, ds.x_test, ds.y_test, eval_lines=20 if small else 400,
                                    calibration_lines=50 if small else 1000, page=not small)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    cal = report["calibration"]
    print(f"calibration: temperature {cal['temperature']:.3f}, ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f} "
          f"({cal['chars']} characters); digits under {report['reject_below']:.3f} refused as unsure")
    print(f"{'condition':<16}{'lines':>6}{'exact':>8}{'digits':>8}{'marks':>8}{'noise':>8}")
    for name, m in report["conditions"].items():
        def pct(v: float | None) -> str:
            return "" if v is None else f"{100 * v:.1f}%"
        print(f"{name:<16}{m['lines']:>6}{pct(m['exact']):>8}{pct(m['digit_accuracy']):>8}"
              f"{pct(m['mark_recall']):>8}{pct(m['noise_silent']):>8}")
    for name, page in (report.get("pages") or {}).items():
        print(f"{name}: {page}")
    print(f"wrote {Path(args.run) / 'report.json'} and the calibration into {Path(args.run) / 'reader.json'}")
    return 0

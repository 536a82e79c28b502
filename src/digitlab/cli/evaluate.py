"""`digitlab evaluate`: test-set report (per-class P/R/F1, confusion matrix, top-k) of a trained model."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained model on a test set; writes report.json into the run directory",
        description="Evaluate a checkpoint on the test split of its dataset: accuracy, per-class "
                    "precision/recall/F1, macro averages, top-k accuracy and the confusion matrix. "
                    "Prints a table and writes report.json into the run directory.",
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


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint and dataset, evaluate, print, write report.json."""
    from digitlab.checkpoints import load_checkpoint
    from digitlab.errors import DigitlabError
    from digitlab.evaluation import evaluate_model, format_report, write_report
    from digitlab.evaluation.report import run_dataset

    ckpt = load_checkpoint(args.run)
    ds = run_dataset(ckpt.meta, args.dataset, data_dir=args.data_dir, run_dir=ckpt.run_dir)
    class_names = list(ckpt.meta.get("class_names") or ds.class_names)
    if len(class_names) != len(ds.class_names):
        raise DigitlabError(
            f"{args.run}: the model has {len(class_names)} classes but dataset {ds.name!r} has "
            f"{len(ds.class_names)}; evaluate on a dataset with the model's classes"
        )
    x, y = ds.x_test, ds.y_test
    if args.dry_run:
        x, y = x[: args.batch_size], y[: args.batch_size]
    report = evaluate_model(ckpt.model, x, y, class_names, top_k=tuple(args.top_k),
                            batch_size=args.batch_size, dataset=ds.name)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if not (args.no_write or args.dry_run):
        path = write_report(report, ckpt.run_dir)
        if not args.json:
            print(f"wrote {path}")
    elif args.dry_run and not args.json:
        print(f"dry run: evaluated {len(y)} images, wrote nothing")
    return 0

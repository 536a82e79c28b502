"""`digitlab train`: parse the options into a TrainConfig, call `digitlab.runs.train`, print what it wrote."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from digitlab.training.config import OPTIMIZERS, SCHEDULES
from digitlab.training.recipes import DEFAULT_RECIPE, RECIPES, recipe_config

if TYPE_CHECKING:
    from digitlab.runs import RunOutputs
    from digitlab.training import TrainConfig

_CNN = RECIPES[DEFAULT_RECIPE].config  # the help's examples quote the default recipe's values


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "train",
        help="train a model from a named recipe; saves, evaluates and plots the run",
        description="Train a recipe (see --list-recipes), print one line per epoch, then save the "
                    "checkpoint, evaluate it on the test set (report.json + plots), reload it to check "
                    "the saved model gives the same accuracy, and write model.int8.onnx (which predict "
                    "and serve use) when int8 keeps the validation accuracy within 0.1 points. The run "
                    "directory keeps config.toml, the resolved config. Settings apply in this order: the "
                    "recipe, then --config, then the options below, then --set. Under torchrun it trains "
                    "with DistributedDataParallel.",
    )
    _add_config_options(p)
    _add_training_options(p)
    _add_run_options(p)
    p.set_defaults(func=run)


def _add_config_options(p: argparse.ArgumentParser) -> None:
    """Where the config comes from: the recipe, a TOML file, --set; and the options that only list or print."""
    recipes = ", ".join([*RECIPES, "reader"])
    p.add_argument("--recipe", default=DEFAULT_RECIPE, metavar="NAME",
                   help=f"named preset: {recipes} (default: {DEFAULT_RECIPE}). `reader` trains the line reader "
                        "behind `digitlab read` on synthetic lines of MNIST training digits (about an hour on "
                        "2 cores), then calibrates and measures it; it takes --run-dir, --data-dir, --threads, "
                        "--overwrite and --dry-run")
    p.add_argument("--list-recipes", action="store_true", help="list the recipes and exit (default: off)")
    p.add_argument("--config", default=None, metavar="FILE.toml",
                   help="a TOML file of TrainConfig fields (any subset; `--print-config` writes a full one) "
                        "applied on top of the recipe (default: none)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="set any TrainConfig field, e.g. --set weight_decay=0.01 --set augment=false "
                        "--set 'model_config={channels=[32, 64]}' (repeatable; values read as TOML; default: none)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config as TOML and exit (default: off)")


def _add_training_options(p: argparse.ArgumentParser) -> None:
    """The TrainConfig fields with an option of their own: the data, the model, the optimisation, the device."""
    p.add_argument("--dataset", default=None, help="dataset name or IDX folder (default: the recipe's, mnist for most)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the dataset's IDX files (default: $DIGITLAB_DATA_DIR, then the data "
                        "layer's search)")
    p.add_argument("--model", default=None,
                   help="model from the registry (default: the recipe's; another model starts from its own "
                        "default config)")
    p.add_argument("--epochs", type=int, default=None, help=f"epochs (default: the recipe's, e.g. cnn: {_CNN.epochs})")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many steps (default: the recipe's, tf-softmax: "
                        f"{RECIPES['tf-softmax'].config.max_steps}, others none)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"global batch size (default: the recipe's, e.g. cnn: {_CNN.batch_size})")
    p.add_argument("--lr", type=float, default=None,
                   help=f"(peak) learning rate (default: the recipe's, e.g. cnn: {_CNN.lr})")
    p.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                   help=f"optimiser (default: the recipe's, e.g. cnn: {_CNN.optimizer})")
    p.add_argument("--schedule", default=None, choices=SCHEDULES,
                   help=f"learning-rate schedule (default: the recipe's, e.g. cnn: {_CNN.schedule})")
    p.add_argument("--seed", type=int, default=None, help=f"random seed (default: the recipe's, {_CNN.seed})")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--compile", action="store_true", help="use torch.compile (default: off)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for training (default: the recipe's: 1 for the tutorial recipes, "
                        "else torch's, all cores; 1 is much faster on a busy machine)")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """The run directory and what the run writes and prints."""
    p.add_argument("--run-dir", default=None, help="output folder (default: runs/<recipe>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run in --run-dir (default: off: an existing run is an error)")
    p.add_argument("--resume", action="store_true",
                   help="continue --run-dir from its last complete epoch with its saved config (default: off)")
    p.add_argument("--track-test", action="store_true",
                   help="also measure test accuracy every epoch, for time-to-accuracy (default: off)")
    p.add_argument("--tensorboard", nargs="?", const="", default=None, metavar="DIR",
                   help="also write TensorBoard scalars and the prediction grid (needs digitlab[tensorboard]) to "
                        "DIR (default: off; with no DIR: RUN_DIR/tensorboard)")
    p.add_argument("--dry-run", action="store_true",
                   help="one batch end to end, including save, evaluation and reload (default: off)")
    p.add_argument("--no-plots", action="store_true", help="skip the plots (default: draw them)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                   help="0 silent, 1 a progress bar and a line per epoch, 2 a line per epoch (default: 1 in a "
                        "terminal, else 2)")


def _list_recipes() -> int:
    width = max(len(n) for n in RECIPES)
    for r in RECIPES.values():
        print(f"{r.name:<{width}}  {r.summary}\n{'':<{width}}  reproduces: {r.reproduces}; "
              f"expected test accuracy >= {r.expected_accuracy:.1%}")
    print(f"{'reader':<{width}}  the line reader behind `digitlab read`: a CNN read with CTC, trained on synthetic "
          f"lines of MNIST training digits and non-digit marks\n{'':<{width}}  reproduces: CRNN-style digit-string "
          "readers (Shi et al. 2015; Zhan et al. 2017); measured per condition on held-out lines")
    return 0


def _train_reader(args: argparse.Namespace) -> int:
    """`--recipe reader`: train the line reader's stages, calibrate and measure it, print the figures."""
    from dataclasses import replace

    import torch

    from digitlab.data import load
    from digitlab.errors import DigitlabError
    from digitlab.training.line_reader import READER_RECIPE, ReaderStage, train_reader_run

    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"reader-{time.strftime('%Y%m%d-%H%M%S')}"
    if run_dir.exists() and any(run_dir.iterdir()) and not (args.overwrite or args.dry_run):
        raise DigitlabError(f"{run_dir} is not empty; pass --overwrite to replace the reader in it, "
                            "or another --run-dir")
    ds = load("mnist", data_dir=args.data_dir)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    recipe = READER_RECIPE
    if args.dry_run:
        recipe = replace(recipe, stages=tuple(ReaderStage(steps=3, lr=s.lr, seed=s.seed, lstm=s.lstm)
                                              for s in recipe.stages))
    print(f"recipe reader: {len(recipe.stages)} stages, "
          f"{sum(s.steps for s in recipe.stages):,} steps of {recipe.batch_size} lines; run directory {run_dir}")

    def log(stage: int, step: int, loss: float) -> None:
        if args.verbose != 0 and step % 500 == 0:
            print(f"stage {stage + 1} step {step} CTC loss {loss:.4f}", flush=True)

    small = args.dry_run
    report = train_reader_run(run_dir, ds.x_train, ds.y_train, ds.x_test, ds.y_test, recipe, on_log=log,
                              eval_lines=20 if small else None, calibration_lines=50 if small else None,
                              page=not small)
    for name, m in report["conditions"].items():
        print(f"{name:<16} exact {m['exact']:.1%}" + (f"  digits {m['digit_accuracy']:.1%}"
                                                      if m["digit_accuracy"] is not None else ""))
    print(f"wrote the reader to {run_dir} (read with `digitlab read {run_dir} FILES`)")
    return 0


def _resumed_config(args: argparse.Namespace) -> TrainConfig:
    """The saved config of the run to resume, with the options that may change on resumption."""
    import json

    from digitlab.errors import DigitlabError
    from digitlab.layout import RunFiles
    from digitlab.training import TrainConfig

    if not args.run_dir:
        raise DigitlabError("--resume needs --run-dir: the run directory to continue")
    state = RunFiles.of(args.run_dir).state_json
    if not state.is_file():
        raise DigitlabError(f"--resume: {state} not found; no epoch of that run finished. "
                            "Start it again without --resume.")
    config = TrainConfig.from_dict(json.loads(state.read_text())["config"])
    overrides = {k: v for k, v in (("device", args.device), ("data_dir", args.data_dir),
                                   ("threads", args.threads)) if v is not None}
    return config.replace(**overrides, compile=args.compile or config.compile)


def _config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig: recipe, then --config, then the options, then --set (or the saved one with --resume)."""
    from digitlab.errors import DigitlabError
    from digitlab.training import TrainConfig

    if args.resume:
        return _resumed_config(args)
    config = recipe_config(args.recipe)
    if args.config:
        path = Path(args.config)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DigitlabError(f"--config {path}: cannot be read ({exc.strerror or exc})") from None
        config = TrainConfig.from_toml(text, name=str(path), base=config)
    options = {
        "dataset": args.dataset, "data_dir": args.data_dir, "epochs": args.epochs,
        "max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr,
        "optimizer": args.optimizer, "schedule": args.schedule, "seed": args.seed, "device": args.device,
        "threads": args.threads,
    }
    changes = {k: v for k, v in options.items() if v is not None}
    if args.model is not None:
        changes.update(model=args.model, model_config={})
    if args.track_test:
        changes["track_test"] = True
    if args.compile:
        changes["compile"] = True
    return config.replace(**changes).with_settings(args.settings)


def _run_dir(args: argparse.Namespace, stack: contextlib.ExitStack) -> Path:
    if args.run_dir:
        return Path(args.run_dir)
    if args.dry_run:
        return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="digitlab-dry-run-")))
    return Path("runs") / f"{args.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"


def run(args: argparse.Namespace) -> int:
    """Train, then print what the run wrote (the library's `train` does the work)."""
    if args.list_recipes:
        return _list_recipes()
    if args.recipe == "reader":
        return _train_reader(args)
    config = _config(args)
    if args.print_config:
        print(config.to_toml(), end="")
        return 0
    from digitlab.models import build_model
    from digitlab.runs import obtain_datasets, train

    rank = int(os.environ.get("RANK", "0"))
    with contextlib.ExitStack() as stack:
        if args.dry_run:
            config = config.replace(epochs=1, max_steps=1, train_size=config.batch_size,
                                    validation_size=min(config.validation_size, 500), save_every_epoch=False)
        ds = obtain_datasets(config)  # every dataset the config needs, before any file is written
        run_dir = _run_dir(args, stack)
        board = None
        if args.tensorboard is not None and rank == 0:
            from digitlab.runs.tensorboard import TensorBoardCallback

            board = stack.enter_context(TensorBoardCallback(Path(args.tensorboard or run_dir / "tensorboard")))
        if rank == 0:
            n_params = sum(p.numel() for p in build_model(config.model, num_classes=len(ds.class_names),
                                                          **config.model_config).parameters())
            print(f"recipe {args.recipe}{' (resumed)' if args.resume else ''}: {config.model} "
                  f"({n_params:,} parameters) on {ds.name} from {ds.source}")
            print(f"run directory {run_dir}")
        started = time.perf_counter()
        result = train(config, ds, run_dir=run_dir, resume=args.resume, overwrite=args.overwrite or args.dry_run,
                       callback=board, verbose="auto" if args.verbose is None else args.verbose,
                       plots=not (args.no_plots or args.dry_run), test_limit=1000 if args.dry_run else None)
        if rank != 0 or result.outputs is None:
            return 0
        print(f"trained {result.steps} steps in {result.metrics.get('elapsed', 0.0):.1f}s "
              f"(wall {time.perf_counter() - started:.1f}s)" + (", stopped early" if result.stopped_early else ""))
        _print_outputs(result.outputs)
        if board is not None:
            board.add_run(result.outputs)
            print(f"tensorboard scalars and images in {board.log_dir} (tensorboard --logdir {board.log_dir})")
        return 0


def _print_outputs(out: RunOutputs) -> None:
    """What `finish_run` wrote, one line each."""
    files = out.checkpoint.files
    print(f"saved {files.model_json}, {files.weights.name} and {files.config_toml.name}")
    print(f"test accuracy {out.test_accuracy:.4f} on {out.report['n']} images  -> {out.report_path}")
    for png in out.plots:
        print(f"plot {png}")
    print(f"reloaded checkpoint: test accuracy {out.reloaded_accuracy:.4f} (after training {out.test_accuracy:.4f})")
    if out.int8 is not None:
        print(out.int8.summary())
    elif out.int8_error is not None:
        print(f"digitlab: warning: int8 export failed ({out.int8_error}); predict and serve use the float model",
              file=sys.stderr)

"""`digitlab train`: train a recipe, save the checkpoint, evaluate on the test set, plot, verify reload."""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from digitlab.training import RunOutputs


def register(sub: argparse._SubParsersAction) -> None:
    """Add this command to the parser."""
    p = sub.add_parser(
        "train",
        help="train a model from a named recipe; saves, evaluates and plots the run",
        description="Train a recipe (see --list-recipes), print one line per epoch, then save the "
                    "checkpoint, evaluate it on the test set (report.json + plots) and reload it to "
                    "check the saved model gives the same accuracy. With onnxruntime installed it then "
                    "writes model.int8.onnx, which predict and serve use, when int8 keeps the "
                    "validation accuracy within 0.1 points. Under torchrun it trains with "
                    "DistributedDataParallel.",
    )
    p.add_argument("--recipe", default="cnn", help="named preset (default: cnn)")
    p.add_argument("--list-recipes", action="store_true", help="list the recipes and exit (default: off)")
    p.add_argument("--dataset", default=None, help="dataset name or IDX folder (default: the recipe's, mnist for most)")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the dataset's IDX files (default: $DIGITLAB_DATA_DIR, then the data layer's search)")
    p.add_argument("--model", default=None,
                   help="model from the registry: softmax, mlp, lenet, cnn (default: the recipe's; "
                        "another model starts from its own default config)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's, e.g. cnn: 6)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: the recipe's, "
                                                               "tf-softmax: 1000, others none)")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size (default: the recipe's, e.g. cnn: 128)")
    p.add_argument("--lr", type=float, default=None, help="(peak) learning rate (default: the recipe's, e.g. cnn: 0.003)")
    p.add_argument("--optimizer", default=None, choices=["sgd", "adam", "adamw", "rmsprop", "adadelta"],
                   help="optimiser (default: the recipe's, e.g. cnn: adamw)")
    p.add_argument("--schedule", default=None, choices=["constant", "step", "cosine", "onecycle"],
                   help="learning-rate schedule (default: the recipe's, e.g. cnn: onecycle)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the recipe's, 0)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument("--compile", action="store_true", help="use torch.compile (default: off)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for training (default: the recipe's: 1 for the tutorial recipes, "
                        "else torch's, all cores; 1 is much faster on a busy machine)")
    p.add_argument("--run-dir", default=None, help="output folder (default: runs/<recipe>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--resume", action="store_true",
                   help="continue --run-dir from its last complete epoch with its saved config (default: off)")
    p.add_argument("--track-test", action="store_true",
                   help="also measure test accuracy every epoch, for time-to-accuracy (default: off)")
    p.add_argument("--dry-run", action="store_true",
                   help="one batch end to end, including save, evaluation and reload (default: off)")
    p.add_argument("--no-plots", action="store_true", help="skip the plots (default: draw them)")
    p.set_defaults(func=run)


def _list_recipes() -> int:
    from digitlab.training import RECIPES

    width = max(len(n) for n in RECIPES)
    for r in RECIPES.values():
        print(f"{r.name:<{width}}  {r.summary}\n{'':<{width}}  reproduces: {r.reproduces}; "
              f"expected test accuracy >= {r.expected_accuracy:.1%}")
    return 0


def _config(args: argparse.Namespace) -> Any:
    """The TrainConfig from the recipe and the command-line overrides (or the saved one with --resume)."""
    from digitlab.errors import DigitlabError
    from digitlab.training import TrainConfig, recipe_config
    from digitlab.layout import RunFiles

    if args.resume:
        if not args.run_dir:
            raise DigitlabError("--resume needs --run-dir: the run directory to continue")
        import json

        state = RunFiles.of(args.run_dir).state_json
        if not state.is_file():
            raise DigitlabError(f"--resume: {state} not found; no epoch of that run finished. "
                                "Start it again without --resume.")
        config = TrainConfig.from_dict(json.loads(state.read_text())["config"])
        overrides = {k: v for k, v in (("device", args.device), ("data_dir", args.data_dir),
                                       ("threads", args.threads)) if v is not None}
        return config.replace(**overrides, compile=args.compile or config.compile)
    overrides = {
        "dataset": args.dataset, "data_dir": args.data_dir, "epochs": args.epochs,
        "max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr,
        "optimizer": args.optimizer, "schedule": args.schedule, "seed": args.seed, "device": args.device,
        "threads": args.threads,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.model is not None:
        overrides.update(model=args.model, model_config={})
    if args.track_test:
        overrides["track_test"] = True
    if args.compile:
        overrides["compile"] = True
    return recipe_config(args.recipe, **overrides)


class _Progress:
    """Draws one tqdm bar per epoch with live loss/accuracy, and the tutorial-style epoch line."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "epoch_start":
            self.bar = self._tqdm(total=event["steps"], desc=f"epoch {event['epoch']}/{event['epochs']}",
                                  unit="step", leave=False, dynamic_ncols=True,
                                  disable=None)  # no bar when stderr is not a terminal (logs, CI)
        elif kind == "step" and self.bar is not None:
            self.bar.update(event["batch"] - self.bar.n)
            self.bar.set_postfix(loss=f"{event['loss']:.4f}", acc=f"{event['accuracy']:.4f}", refresh=False)
        elif kind == "eval":
            m = event["metrics"]
            self._tqdm.write(f"  step {m['step']}: val acc {m.get('val_accuracy', float('nan')):.4f}"
                             + (f", test acc {m['test_accuracy']:.4f}" if "test_accuracy" in m else ""))
        elif kind == "epoch_end":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            self._tqdm.write(format_epoch(event["metrics"], event["epochs"]))


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    """One log line per epoch, like the tutorials print."""
    line = (f"Epoch {m['epoch']:>3}/{epochs}  train loss {m['train_loss']:.4f} acc {m['train_accuracy']:.4f}")
    if "val_loss" in m:
        line += f"  val loss {m['val_loss']:.4f} acc {m['val_accuracy']:.4f}"
    if "test_accuracy" in m:
        line += f"  test acc {m['test_accuracy']:.4f}"
    return line + f"  lr {m['lr']:.4g}  {m['elapsed']:.1f}s"


def run(args: argparse.Namespace) -> int:
    """Train, then print what the run wrote (the library's `train` does the work)."""
    import os

    if args.list_recipes:
        return _list_recipes()
    from digitlab.data import load
    from digitlab.models import build_model
    from digitlab.training import train

    config = _config(args)
    rank = int(os.environ.get("RANK", "0"))
    with contextlib.ExitStack() as stack:
        if args.dry_run:
            config = config.replace(epochs=1, max_steps=1, train_size=config.batch_size,
                                    validation_size=min(config.validation_size, 500), save_every_epoch=False)
            run_dir = Path(args.run_dir) if args.run_dir else Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="digitlab-dry-run-")))
        else:
            run_dir = Path(args.run_dir) if args.run_dir else Path(
                "runs") / f"{args.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
        ds = load(config.dataset, data_dir=config.data_dir)
        if rank == 0:
            n_params = sum(p.numel() for p in build_model(config.model, num_classes=len(ds.class_names),
                                                          **config.model_config).parameters())
            print(f"recipe {args.recipe}{' (resumed)' if args.resume else ''}: {config.model} "
                  f"({n_params:,} parameters) on {ds.name} from {ds.source}")
            print(f"run directory {run_dir}")
        started = time.perf_counter()
        result = train(config, ds, run_dir=run_dir, resume=args.resume, callback=_Progress() if rank == 0 else None,
                       plots=not (args.no_plots or args.dry_run), test_limit=1000 if args.dry_run else None)
        if rank != 0 or result.outputs is None:
            return 0
        print(f"trained {result.steps} steps in {result.metrics.get('elapsed', 0.0):.1f}s "
              f"(wall {time.perf_counter() - started:.1f}s)" + (", stopped early" if result.stopped_early else ""))
        _print_outputs(result.outputs)
        return 0


def _print_outputs(out: RunOutputs) -> None:
    """What `finish_run` wrote, one line each."""
    files = out.checkpoint.files
    print(f"saved {files.model_json} and {files.weights.name}")
    print(f"test accuracy {out.test_accuracy:.4f} on {out.report['n']} images  -> {out.report_path}")
    for png in out.plots:
        print(f"plot {png}")
    print(f"reloaded checkpoint: test accuracy {out.reloaded_accuracy:.4f} (after training {out.test_accuracy:.4f})")
    if out.int8 is not None:
        print(out.int8.summary())
    elif out.int8_error is not None:
        print(f"digitlab: warning: int8 export failed ({out.int8_error}); predict and serve use the float model",
              file=sys.stderr)

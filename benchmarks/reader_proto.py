"""Train the CTC line reader prototype and score it per condition: `python -m benchmarks.reader_proto`.

    .venv/bin/python -m benchmarks.reader_proto --steps 3000 --out runs/reader-proto [--lstm 64] [--stride 8]

Trains `digitlab.models.reader.LineReader` with `digitlab.training.line_reader.fit_reader` on lines made
on the fly from MNIST's *training* digits and the "train" non-digit split, then reads held-out
lines made from MNIST's *test* digits and the "heldout" non-digit kinds and fonts
(`digitlab.synth.lines.condition_set`, seed 1000 + k), one set per condition. Writes the model
(`reader.safetensors`, `reader.json` with the config, training curve and metrics) to --out and
prints one JSON line of results.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from digitlab.data import load
from digitlab.evaluation.line_reading import evaluate_reader
from digitlab.inference.ctc import pad_lines
from digitlab.models.fuse import fuse_for_inference
from digitlab.models.reader import LineReader, weight_bytes
from digitlab.synth.lines import LineSynth, condition_set
from digitlab.training.line_reader import ReaderTrainConfig, fit_reader, load_reader, save_reader

EVAL_CONDITIONS = ("spaced", "touching", "overlapping", "broken", "mixed_nondigit", "noise_only", "noisy")
SNAPSHOT_EVERY = 500  # steps between snapshots of the model in --out
EVAL_SEED = 1000  # held-out sets use seeds 1000+; training lines come from the trainer's own stream


def _latency_ms(model: torch.nn.Module, digits: np.ndarray, labels: np.ndarray) -> float:
    """Median ms for `model` to score one 12-digit spaced line (batch of 1, this process's threads)."""
    line = condition_set("spaced", 1, seed=7, digits=digits, labels=labels, length=(12, 12)).images[0]
    x, _ = pad_lines([line], stride=4)
    with torch.no_grad():
        for _ in range(5):
            model(x)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return round(1000 * float(np.median(times)), 2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train, evaluate every condition, save; returns the results."""
    torch.set_num_threads(args.threads)
    ds = load("mnist", data_dir=args.data)
    synth = LineSynth(ds.x_train, ds.y_train, nondigit_split="train")
    model = LineReader(lstm=args.lstm, stride=args.stride)
    if args.init:  # warm start: every weight of the same name and shape (the encoder of a conv-only reader)
        own = model.state_dict()
        start = {k: v for k, v in load_reader(args.init).state_dict().items()
                 if k in own and own[k].shape == v.shape}
        model.load_state_dict(start, strict=False)
        print(f"warm start from {args.init}: {len(start)} of {len(own)} tensors", flush=True)
    config = ReaderTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               max_seconds=args.max_seconds)
    def log(step: int, loss: float) -> None:
        print(f"step {step} loss {loss:.4f}", flush=True)
        if step % SNAPSHOT_EVERY == 0:  # a stopped run still leaves a model to evaluate
            save_reader(args.out, model, extra={"snapshot_step": step})

    fit = fit_reader(model, synth, config, on_log=log)
    metrics = {}
    for k, name in enumerate(EVAL_CONDITIONS):
        held = condition_set(name, args.eval_n, seed=EVAL_SEED + k, digits=ds.x_test, labels=ds.y_test)
        metrics[name] = evaluate_reader(model, held)
        print(name, metrics[name], flush=True)
    results = {"training": {"lstm": args.lstm, "stride": args.stride, "init": args.init, **vars(config)},
               "metrics": metrics,
               "train_seconds": round(fit.seconds, 1), "lines_seen": fit.lines, "stopped_at": fit.stopped_at,
               "threads": args.threads,
               "weight_bytes": weight_bytes(model), "latency_ms_12_digits": _latency_ms(model, ds.x_test, ds.y_test),
               "latency_ms_12_digits_bn_folded": _latency_ms(fuse_for_inference(model), ds.x_test, ds.y_test),
               "losses": fit.losses}
    save_reader(args.out, model, extra=results)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps (default 3000)")
    p.add_argument("--batch-size", type=int, default=32, help="lines per step (default 32)")
    p.add_argument("--lr", type=float, default=3e-3, help="one-cycle peak learning rate (default 3e-3)")
    p.add_argument("--lstm", type=int, default=0, help="BiLSTM units per direction, 0 for conv-only (default 0)")
    p.add_argument("--stride", type=int, default=4, choices=(4, 8), help="input px per frame (default 4)")
    p.add_argument("--init", default=None, help="start from the weights of this saved reader (default: none)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--max-seconds", type=float, default=None, help="stop training after this long (default: none)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--eval-n", type=int, default=500, help="held-out lines per condition (default 500)")
    p.add_argument("--data", default="/work/shared/data/mnist", help="MNIST folder (default /work/shared/data/mnist)")
    p.add_argument("--out", default="runs/reader-proto", help="run directory (default runs/reader-proto)")
    results = run(p.parse_args())
    print(json.dumps({k: v for k, v in results.items() if k != "losses"}))


if __name__ == "__main__":
    main()

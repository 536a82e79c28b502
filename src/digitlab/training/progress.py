"""Progress reporting for `train`, as Keras' `fit` shows it: a bar per epoch and one line per epoch.

`verbose=0` is silent, `1` draws a live bar (tqdm.auto: a terminal or a notebook widget) and the
epoch line, `2` prints only the epoch line, `"auto"` is 1 in a terminal or notebook and 2
otherwise (logs, CI). Epoch lines go to stdout (as Keras prints them), the bar to stderr; the
callbacks are plain `Callback`s, so several can be combined with `combine`.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal, TextIO

Verbose = Literal[0, 1, 2, "auto"]
Callback = Callable[[dict[str, Any]], None]


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    """One log line per epoch, like the tutorials print."""
    line = f"Epoch {m['epoch']:>3}/{epochs}  train loss {m['train_loss']:.4f} acc {m['train_accuracy']:.4f}"
    if "val_loss" in m:
        line += f"  val loss {m['val_loss']:.4f} acc {m['val_accuracy']:.4f}"
    if "test_accuracy" in m:
        line += f"  test acc {m['test_accuracy']:.4f}"
    return line + f"  lr {m['lr']:.4g}  {m['elapsed']:.1f}s"


def _in_notebook() -> bool:
    """Whether this process is a running Jupyter kernel (importing ipykernel, as a test may, is not enough)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def _interactive(stream: TextIO) -> bool:
    if _in_notebook():  # a Jupyter notebook: tqdm.auto draws a widget
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """A `train` callback: a tqdm bar per epoch with live loss/accuracy (verbose 1) and the epoch line."""

    def __init__(self, verbose: Verbose = "auto", *, lines: TextIO | None = None, bar: TextIO | None = None) -> None:
        self.lines = lines if lines is not None else sys.stdout
        self.bar_stream = bar if bar is not None else sys.stderr
        self.verbose = (1 if _interactive(self.bar_stream) else 2) if verbose == "auto" else int(verbose)
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"verbose={verbose!r}: use 0 (silent), 1 (bar), 2 (a line per epoch) or 'auto'")
        self.bar: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if self.verbose == 0:
            return
        if kind == "epoch_start" and self.verbose == 1:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=event["steps"], desc=f"epoch {event['epoch']}/{event['epochs']}", unit="step",
                            leave=False, dynamic_ncols=True, file=self.bar_stream)
        elif kind == "step" and self.bar is not None:
            self.bar.update(event["batch"] - self.bar.n)
            self.bar.set_postfix(loss=f"{event['loss']:.4f}", acc=f"{event['accuracy']:.4f}", refresh=False)
        elif kind == "eval":
            m = event["metrics"]
            self._write(f"  step {m['step']}: val acc {m.get('val_accuracy', float('nan')):.4f}"
                        + (f", test acc {m['test_accuracy']:.4f}" if "test_accuracy" in m else ""))
        elif kind == "epoch_end":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            self._write(format_epoch(event["metrics"], event["epochs"]))

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.lines)
        else:
            print(line, file=self.lines, flush=True)


def combine(callbacks: Sequence[Callback | None]) -> Callback | None:
    """One callback calling each of `callbacks` (Nones dropped) in order; None when there are none."""
    live = [c for c in callbacks if c is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]

    def call_all(event: dict[str, Any]) -> None:
        for callback in live:
            callback(event)

    return call_all

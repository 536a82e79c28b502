"""The line reader: a small CNN (+ optional BiLSTM) that reads a line of digits with CTC (Shi et al. 2015's CRNN).

    model = LineReader(lstm=0)                 # conv-only; lstm=64: a BiLSTM of 64 units per direction
    log_probs = model(x)                       # x (N, 1, 32, W) in [0, 1] -> (T, N, C), T = W // stride
    loss = nn.CTCLoss(blank=0, zero_infinity=True)(log_probs, targets, model.output_lengths(widths), lengths)

The input is a line's ink map (`digitlab.synth.lines`: 32 px high, ink bright on black, pixels /
255), right-padded with black to a common width. The encoder halves the height four times and the
width log2(stride) times, so each output frame sees a `stride`-px column band (and, through its
receptive field, ~40-80 px around it); a height-collapsing conv, `context` 1-D convs along the line
and the optional BiLSTM give each frame its neighbours; a linear head scores the classes
(blank 0, digits 1..10, not-a-digit 11: `digitlab.synth.lines.ALPHABET`).

Not in the `digitlab.models` registry: the registry's contract is a classifier of (N, 1, 28, 28)
to logits (N, C) (tests/models/test_models.py runs every registered model through it), and
`checkpoints.ModelMeta` stores one class name per output and a 28x28 input; a sequence model needs
its own entry in that contract first. Until then `reader_config` + `training.line_reader.save_reader`
/ `load_reader` keep the weights and the keyword arguments that rebuild them.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.layout import LINE_HEIGHT, NUM_CLASSES
from digitlab.models.layers import Normalize

WEIGHTS, META = "reader.safetensors", "reader.json"  # a reader's files in its folder
INK_MEAN, INK_STD = 0.08, 0.24  # over synthetic training lines (mostly black between characters)
HEIGHT_POOLS = 4  # the height halves four times: 32 -> 2, then a (2, 1) conv collapses it


def _block(c_in: int, c_out: int, pool: tuple[int, int] | None) -> list[nn.Module]:
    """conv3x3 -> (max-pool) -> BatchNorm -> ReLU; pooling first so BN and ReLU run on fewer pixels."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool is not None:
        layers.append(nn.MaxPool2d(pool))
    return layers + [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class LineReader(nn.Module):
    """CTC line reader: (N, 1, 32, W) ink in [0, 1] -> log-probabilities (T, N, C), T = W // stride.

    channels: the four conv stages' widths; stride 4 or 8: input columns per output frame;
    hidden: channels of the per-frame features; context: 1-D convs (kernel 3) over frames;
    lstm: units per direction of a BiLSTM over frames (0: none, conv-only).
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        *,
        channels: Sequence[int] = (16, 32, 64, 96),  # widening as the height shrinks; twice these: 2x the time
        stride: int = 4,  # 4: a thin "1" still gets a frame of its own; 8 halves the sequence (measured)
        hidden: int = 128,
        context: int = 2,  # each adds 2 frames (2 x stride px) of receptive field on either side
        lstm: int = 0,  # 0: conv-only (fast, exportable); 64: CRNN style
        dropout: float = 0.1,  # before the head
        mean: float = INK_MEAN,
        std: float = INK_STD,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) != HEIGHT_POOLS or min(channels) < 1 or stride not in (4, 8):
            raise DigitlabError(f"reader config channels={channels} stride={stride}: need four positive channel "
                                "counts and stride 4 or 8, e.g. channels=(16, 32, 64, 96), stride=4")
        if hidden < 1 or context < 0 or lstm < 0 or not 0 <= dropout < 1:
            raise DigitlabError(f"reader config hidden={hidden} context={context} lstm={lstm} dropout={dropout}: "
                                "need hidden >= 1, context >= 0, lstm >= 0 and dropout in [0, 1)")
        self.num_classes, self.channels, self.stride, self.hidden = num_classes, channels, int(stride), int(hidden)
        self.context, self.lstm, self.dropout, self.mean, self.std = int(context), int(lstm), dropout, mean, std
        c1, c2, c3, c4 = channels
        self.encoder = nn.Sequential(
            Normalize(mean, std),
            *_block(1, c1, (2, 2)),  # (N, c1, 16, W/2)
            *_block(c1, c2, (2, 2)),  # (N, c2, 8, W/4)
            *_block(c2, c3, None),
            *_block(c3, c3, (2, 2) if stride == 8 else (2, 1)),  # (N, c3, 4, W/stride)
            *_block(c3, c4, (2, 1)),  # (N, c4, 2, W/stride)
            nn.Conv2d(c4, hidden, (LINE_HEIGHT >> HEIGHT_POOLS, 1), bias=False),  # (N, hidden, 1, T)
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
        )
        frames: list[nn.Module] = []
        for _ in range(context):
            frames += [nn.Conv1d(hidden, hidden, 3, padding=1, bias=False), nn.BatchNorm1d(hidden),
                       nn.ReLU(inplace=True)]
        self.frames = nn.Sequential(*frames)
        self.rnn = nn.LSTM(hidden, lstm, bidirectional=True) if lstm else None
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * lstm if lstm else hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x float32 (N, 1, 32, W) -> log-probabilities float32 (T, N, C), T = W // stride (CTCLoss's layout)."""
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != LINE_HEIGHT or x.shape[3] < self.stride:
            raise DigitlabError(f"LineReader input has shape {tuple(x.shape)}; it needs (N, 1, {LINE_HEIGHT}, W) "
                                f"with W >= {self.stride}: lines from digitlab.inference.ctc.pad_lines")
        f = self.encoder(x).squeeze(2)  # (N, hidden, T)
        f = self.frames(f).permute(2, 0, 1)  # (T, N, hidden)
        if self.rnn is not None:
            f = self.rnn(f)[0]  # (T, N, 2 * lstm)
        return self.head(f).log_softmax(-1)  # (T, N, C)

    def output_lengths(self, widths: torch.Tensor) -> torch.Tensor:
        """int64 (N,): frames of each line of `widths` px (before padding): ceil(width / stride)."""
        return torch.div(widths + self.stride - 1, self.stride, rounding_mode="floor").long()


def reader_config(model: LineReader) -> dict[str, Any]:
    """The JSON-able keyword arguments that rebuild `model`: LineReader(**reader_config(model))."""
    return {"num_classes": model.num_classes, "channels": list(model.channels), "stride": model.stride,
            "hidden": model.hidden, "context": model.context, "lstm": model.lstm, "dropout": model.dropout,
            "mean": model.mean, "std": model.std}


def weight_bytes(model: nn.Module) -> int:
    """Bytes of `model`'s parameters and buffers as float32 (the size of its weights file, roughly)."""
    return 4 * sum(t.numel() for t in [*model.parameters(), *model.buffers()] if t.is_floating_point())


def save_reader(run_dir: str | Path, model: LineReader, *, extra: dict[str, Any] | None = None) -> Path:
    """Write `model` to `run_dir`: reader.safetensors (weights) and reader.json (its config, plus `extra`'s keys).

    Returns `run_dir`. `load_reader(run_dir)` rebuilds the model from the config and loads the weights.
    """
    clash = sorted({"format", "model"} & set(extra or {}))
    if clash:
        raise DigitlabError(f"save_reader: extra keys {clash} are reserved for the file's own fields; rename them")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, run_dir / WEIGHTS)
    meta = {"format": 1, "model": {"name": "line_reader", "config": reader_config(model)}, **(extra or {})}
    (run_dir / META).write_text(json.dumps(meta, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    return run_dir


def load_reader(run_dir: str | Path) -> LineReader:
    """The LineReader saved by `save_reader` in `run_dir`, in eval mode."""
    run_dir = Path(run_dir)
    if not (run_dir / META).is_file() or not (run_dir / WEIGHTS).is_file():
        raise DigitlabError(f"{run_dir} holds no line reader ({META} and {WEIGHTS}); train one with "
                            "digitlab.training.line_reader.fit_reader and save it with save_reader")
    model = LineReader(**json.loads((run_dir / META).read_text(encoding="utf-8"))["model"]["config"])
    model.load_state_dict(load_file(run_dir / WEIGHTS))
    return model.eval()


def _jsonable(value: Any) -> Any:
    """json.dumps' fallback: dataclasses as dicts, NumPy scalars as numbers."""
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")

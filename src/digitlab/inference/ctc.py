"""Reading lines with the CTC line reader: batching line images, running the model, greedy CTC decoding.

    line = fit_line(ink)                                  # any uint8 ink crop of one line -> (32, W')
    x, widths = pad_lines(images, stride=model.stride)    # uint8 (32, W_i) lines -> (N, 1, 32, W) float
    chars = greedy_decode(model(x), model.output_lengths(widths), stride=model.stride)
    chars[0][0].char, .probability, .span                # "7", 0.998, (12, 16): input columns [x0, x1)
    read_lines(model, images)                            # pad, run and decode, batched by width

Greedy (best-path) decoding takes the likeliest class per frame, merges runs of the same class
and drops blanks (Graves et al. 2006). A character's probability is the *largest* posterior of
its class over the frames of its run: a CTC model fires each character as a sharp spike one or
two frames wide, so the peak is the model's confidence in it, whereas a product over frames would
punish a character for being wide and a mean would be diluted by the frames where the spike
rises. Its span is the columns of those frames (frame t covers [t * stride, (t + 1) * stride)):
where the model fired, typically inside the character's ink but narrower than it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.layout import ALPHABET, BASELINE, BLANK, DIGIT_PX, INK_LEVEL, LINE_HEIGHT

MIN_WIDTH = 16  # px: narrower lines are padded to this, so every line has a few frames


@dataclass(frozen=True)
class DecodedChar:
    """One character read from a line."""

    label: int  # its class: 1..10 = digits 0-9, 11 = not a digit (never the blank)
    char: str  # ALPHABET[label - 1]: "0".."9", or "?" for a non-digit mark
    probability: float  # the peak posterior of `label` over its frames
    frames: tuple[int, int]  # [t0, t1): the output frames of its run
    span: tuple[int, int]  # [x0, x1): the input columns of those frames


def fit_line(ink: np.ndarray) -> np.ndarray:
    """A line's ink map uint8 (h, w), bright on black, any size -> the reader's uint8 (32, w') input.

    Scales the ink's bounding box to DIGIT_PX tall (the synthetic lines' digit height), keeping the
    aspect ratio, and puts its bottom on BASELINE; columns keep their order (x' = x * scale). A
    line without ink comes back as an empty MIN_WIDTH-wide line.
    """
    if ink.ndim != 2 or ink.dtype != np.uint8:
        raise DigitlabError(f"fit_line: ink is {ink.dtype} {ink.shape}; pass a uint8 (h, w) ink map, bright on black")
    rows = np.flatnonzero((ink > INK_LEVEL).any(1))
    if rows.size == 0:
        return np.zeros((LINE_HEIGHT, MIN_WIDTH), np.uint8)
    band = ink[rows[0]:rows[-1] + 1]
    scale = DIGIT_PX / band.shape[0]
    width = max(1, int(round(ink.shape[1] * scale)))
    small = cv2.resize(band, (width, max(1, int(round(band.shape[0] * scale)))), interpolation=cv2.INTER_AREA)
    out = np.zeros((LINE_HEIGHT, width), np.uint8)
    top = int(round(BASELINE)) - small.shape[0]
    out[max(0, top):top + small.shape[0]] = small[max(0, -top):]
    return out


def pad_lines(images: Sequence[np.ndarray], *, stride: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Lines uint8 (32, W_i) -> (float32 (N, 1, 32, W) in [0, 1], int64 (N,) widths W_i), right-padded black.

    W is the widest line rounded up to a multiple of `stride` (at least MIN_WIDTH).
    """
    if not images:
        raise DigitlabError("pad_lines: no lines given; pass a list of uint8 (32, W) line images")
    bad = [i for i, im in enumerate(images) if im.ndim != 2 or im.shape[0] != LINE_HEIGHT or im.dtype != np.uint8]
    if bad:
        im = images[bad[0]]
        raise DigitlabError(f"pad_lines: line {bad[0]} is {im.dtype} {im.shape}; lines must be uint8 "
                            f"({LINE_HEIGHT}, W), ink bright on black (crop the line and scale it to {LINE_HEIGHT} px)")
    widths = np.array([im.shape[1] for im in images], np.int64)
    width = max(MIN_WIDTH, -(-int(widths.max()) // stride) * stride)
    out = np.zeros((len(images), 1, LINE_HEIGHT, width), np.uint8)
    for i, im in enumerate(images):
        out[i, 0, :, :im.shape[1]] = im
    return torch.from_numpy(out).float().div_(255.0), torch.from_numpy(widths)


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None, *,
                  stride: int = 4, blank: int = BLANK, alphabet: str = ALPHABET) -> list[list[DecodedChar]]:
    """Best-path decoding of log-probabilities (T, N, C) -> for each line, its characters left to right.

    lengths: valid frames per line (N,) (model.output_lengths(widths)); None: all T.
    stride: input columns per frame, for the spans.
    """
    if log_probs.ndim != 3:
        raise DigitlabError(f"greedy_decode: log_probs has shape {tuple(log_probs.shape)}; it needs (T, N, C), "
                            "as LineReader returns")
    probs, best = log_probs.detach().float().exp().max(-1)  # (T, N) each: the best class and its posterior
    t_max, n = best.shape
    lens = np.full(n, t_max) if lengths is None else np.minimum(np.asarray(lengths, np.int64), t_max)
    best_np, probs_np = best.T.numpy(), probs.T.numpy()  # (N, T)
    return [_runs(best_np[i, :lens[i]], probs_np[i, :lens[i]], stride, blank, alphabet) for i in range(n)]


def best_path_runs(best: np.ndarray, blank: int = BLANK) -> list[tuple[int, int, int]]:
    """The non-blank runs of a best path int (T,): (first frame, end frame, class), left to right."""
    if best.size == 0:
        return []
    starts = np.flatnonzero(np.diff(best, prepend=-1))  # where a new run begins
    ends = np.append(starts[1:], best.size)
    return [(s, e, int(best[s])) for s, e in zip(starts.tolist(), ends.tolist(), strict=True) if best[s] != blank]


def _runs(best: np.ndarray, probs: np.ndarray, stride: int, blank: int, alphabet: str) -> list[DecodedChar]:
    """The non-blank runs of one line's best path int (T,) with their peak posteriors from `probs` (T,)."""
    return [DecodedChar(label=c, char=alphabet[c - 1], probability=float(probs[s:e].max()),
                        frames=(s, e), span=(s * stride, e * stride)) for s, e, c in best_path_runs(best, blank)]


def text_of(chars: Sequence[DecodedChar]) -> str:
    """The text of decoded characters ("?" for each non-digit mark)."""
    return "".join(c.char for c in chars)


@torch.no_grad()
def read_lines(model: nn.Module, images: Sequence[np.ndarray], *, batch_size: int = 64) -> list[list[DecodedChar]]:
    """Each line uint8 (32, W_i) read by `model` (a LineReader, put in eval mode): its characters left to right.

    Lines are sorted by width and batched, so little padding is computed.
    """
    model.eval()
    stride = int(model.stride)  # type: ignore[arg-type]
    order = np.argsort([im.shape[1] for im in images], kind="stable")
    out: list[list[DecodedChar]] = [[] for _ in images]
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        x, widths = pad_lines([images[i] for i in idx], stride=stride)
        decoded = greedy_decode(model(x), model.output_lengths(widths), stride=stride)  # type: ignore[operator]
        for i, chars in zip(idx.tolist(), decoded, strict=True):
            out[i] = chars
    return out

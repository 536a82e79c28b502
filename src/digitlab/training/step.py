"""One optimisation step (`train_step`): pen changes, photos and outliers joined, warp, forward, loss, update.

Also the weights' moving average (`update_ema`) the step keeps, and outlier exposure's loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from digitlab.layout import to_model_input
from digitlab.training.augment import random_affine, random_pen
from digitlab.training.trainer import Trainer

EMA_WARMUP = 10  # the average's decay ramps up as (1 + step) / (EMA_WARMUP + step): early weights fade fast


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """Move `ema`'s floating-point parameters and buffers towards `model`'s: e = d * e + (1 - d) * m.

    The decay ramps up from 0.1 (`EMA_WARMUP`), so the first steps' random weights are forgotten;
    integer buffers (BatchNorm's batch count) are copied.
    """
    d = min(decay, (1 + step) / (EMA_WARMUP + step))
    pairs = [(e, m) for e, m in zip(ema.state_dict().values(), model.state_dict().values(), strict=True)]
    floats = [(e, m) for e, m in pairs if e.dtype.is_floating_point]
    torch._foreach_lerp_([e for e, _ in floats], [m for _, m in floats], 1.0 - d)
    for e, m in pairs:
        if not e.dtype.is_floating_point:
            e.copy_(m)


def _outlier_batch(t: Trainer) -> torch.Tensor | None:
    """(K, 1, 28, 28) outliers drawn at random for this step, as many from each source; or None (no outlier
    exposure, or not yet)."""
    outliers, config = t.data.outliers, t.config
    if outliers is None or t.step < int(config.oe_start * t.total_steps):
        return None
    k = max(1, round(config.oe_fraction * config.batch_size / t.dd.world))
    parts = torch.tensor(t.data.outlier_parts, device=outliers.device)
    slot = torch.arange(k, device=outliers.device) * len(parts) // k  # the source of each of the k slots
    starts = torch.cumsum(parts, 0) - parts
    u = torch.rand(k, generator=t.aug_gen, device=outliers.device)
    idx = starts[slot] + (u * parts[slot]).long().clamp(max=parts[slot] - 1)
    return to_model_input(outliers[idx])


def _photo_batch(t: Trainer) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(K, 1, 28, 28) pictures of training digits and their labels (K,) for this step, or None (none, not yet)."""
    photos, labels, config = t.data.photos, t.data.photo_labels, t.config
    if photos is None or labels is None or t.step < int(config.oe_start * t.total_steps):
        return None
    k = max(1, round(config.photo_fraction * config.batch_size / t.dd.world))
    idx = torch.randint(len(photos), (k,), generator=t.aug_gen, device=photos.device)
    return to_model_input(photos[idx]), labels[idx]


def _robust(t: Trainer) -> bool:
    """Whether this step's batch gets the pen / scan changes and the elastic bend (from `aug_start` on)."""
    return t.step >= int(t.config.aug_start * t.total_steps)


def _pen(t: Trainer, xb: torch.Tensor) -> torch.Tensor:
    """xb (B, 1, 28, 28) with other pens and scans on random shares (`augment.random_pen`), when configured."""
    config = t.config
    if not (config.aug_stroke or config.aug_blur or config.aug_lowres) or not _robust(t):
        return xb
    return random_pen(xb, t.aug_gen, stroke=config.aug_stroke, blur_share=config.aug_blur, lowres=config.aug_lowres)


def outlier_loss(logits: torch.Tensor) -> torch.Tensor:
    """Outlier exposure's loss for outlier logits (K, C): mean cross-entropy to the uniform distribution."""
    return (torch.logsumexp(logits, 1) - logits.mean(1)).mean()


def train_step(t: Trainer, xb: torch.Tensor, yb: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on the batch xb (B, 1, 28, 28), yb (B,): pen changes, outliers joined,
    warp, forward, loss, backward, update.

    From `oe_start` on, digit pictures (`photo_digits`, labelled) and outliers (`oe_weight`, pushed
    towards uniform) join the forward pass. Returns (loss, logits (B, C)): the labelled images'
    cross-entropy (the outliers' share left out) and the batch's own logits, both still on the
    device (reading them syncs it).
    """
    config = t.config
    for group in t.optimizer.param_groups:
        group["lr"] = lr
    n = xb.shape[0]
    if config.augment:
        xb = _pen(t, xb)
    photos = _photo_batch(t)
    if photos is not None:
        xb, yb = torch.cat([xb, photos[0]]), torch.cat([yb, photos[1]])
    outliers = _outlier_batch(t)
    n_in = xb.shape[0]
    if outliers is not None:
        xb = torch.cat([xb, outliers])  # (B [+ P] + K, 1, 28, 28): one forward pass, BatchNorm sees all
    if config.augment:
        xb = random_affine(xb, t.aug_gen, max_shift=config.aug_shift, max_rotation=config.aug_rotate,
                           max_scale=config.aug_scale, flip=config.aug_flip,
                           elastic=config.aug_elastic if _robust(t) else 0.0)
    if config.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    with t.autocast():
        logits = t.net(xb)  # (B [+ P + K], C)
    loss = F.cross_entropy(logits[:n_in].float(), yb, label_smoothing=config.label_smoothing)
    total = loss if outliers is None else loss + config.oe_weight * outlier_loss(logits[n_in:].float())
    logits = logits[:n]
    t.optimizer.zero_grad(set_to_none=True)
    if t.scaler is not None:
        t.scaler.scale(total).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
    else:
        total.backward()
        t.optimizer.step()
    if t.ema is not None:
        update_ema(t.ema, t.model, config.ema, t.step)
    return loss.detach(), logits.detach()

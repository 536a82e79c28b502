"""Fast in-memory mini-batches over tensors already on their device."""
from __future__ import annotations

from collections.abc import Iterator

import torch

from digitlab.errors import DigitlabError


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
    shard: tuple[int, int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield one epoch of `(x[idx], y[idx])` batches; x: (N, ...), y: (N, ...) on the same device.

    One `torch.randperm` per call (per epoch) on the tensors' device, one `index_select`
    per batch, no per-sample Python. `shard=(rank, world_size)` gives this rank the strided
    slice `perm[rank : world_size * (N // world_size) : world_size]` of the epoch's
    permutation: every rank gets N // world_size examples, disjoint from the others'. All
    ranks must pass generators seeded alike (and call once per epoch) so they draw the same
    permutation; up to world_size - 1 examples (different ones each shuffled epoch) are
    left out, as equal shard sizes keep DistributedDataParallel ranks in step.
    """
    n = x.shape[0]
    if y.shape[0] != n:
        raise DigitlabError(f"iterate_batches: x has {n} examples but y has {y.shape[0]}; pass matching tensors.")
    if batch_size < 1:
        raise DigitlabError(f"iterate_batches: batch_size={batch_size}; it must be 1 or more.")
    device = x.device
    if shuffle:
        gen_device = generator.device if generator is not None else device
        perm = torch.randperm(n, generator=generator, device=gen_device).to(device)  # (N,)
    else:
        perm = None
    if shard is not None:
        rank, world = shard
        if not (world >= 1 and 0 <= rank < world):
            raise DigitlabError(f"iterate_batches: shard={shard}; need (rank, world_size) with 0 <= rank < world_size.")
        if perm is None:
            perm = torch.arange(n, device=device)
        perm = perm[rank: world * (n // world): world]  # (N // world,)
    total = n if perm is None else perm.shape[0]
    stop = total - total % batch_size if drop_last else total
    for start in range(0, stop, batch_size):
        if perm is None:  # in order: slices are views, no copy
            yield x[start:start + batch_size], y[start:start + batch_size]
        else:
            idx = perm[start:start + batch_size]
            yield x.index_select(0, idx), y.index_select(0, idx)

"""`iterate_batches`: one permutation per epoch, full coverage, drop_last, DDP shards."""
from __future__ import annotations

import pytest
import torch

from digitlab.data import iterate_batches
from digitlab.errors import DigitlabError


def _data(n: int):
    x = torch.arange(n).repeat_interleave(2).reshape(n, 2)  # row i is [i, i]
    return x, torch.arange(n) * 10


def _ids(batches) -> list[torch.Tensor]:
    out = []
    for xb, yb in batches:
        assert torch.equal(xb[:, 0], xb[:, 1]) and torch.equal(yb, xb[:, 0] * 10)  # x and y stay paired
        out.append(xb[:, 0])
    return out


def test_epoch_is_the_generators_permutation_in_batches():
    x, y = _data(10)
    ids = _ids(iterate_batches(x, y, batch_size=4, generator=torch.Generator().manual_seed(3)))
    assert [len(b) for b in ids] == [4, 4, 2]
    reference = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.cat(ids), reference)


def test_each_epoch_draws_a_new_permutation_from_the_same_generator():
    x, y = _data(50)
    g = torch.Generator().manual_seed(0)
    e1 = torch.cat(_ids(iterate_batches(x, y, batch_size=8, generator=g)))
    e2 = torch.cat(_ids(iterate_batches(x, y, batch_size=8, generator=g)))
    assert sorted(e1.tolist()) == sorted(e2.tolist()) == list(range(50))
    assert not torch.equal(e1, e2)


def test_drop_last_and_no_shuffle():
    x, y = _data(10)
    ids = _ids(iterate_batches(x, y, batch_size=4, shuffle=False, drop_last=True))
    assert [b.tolist() for b in ids] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(list(iterate_batches(x, y, batch_size=11, drop_last=True))) == 0


@pytest.mark.parametrize("shuffle", [True, False])
def test_shards_are_equal_disjoint_strided_slices(shuffle):
    n, world = 11, 3
    x, y = _data(n)
    per_rank = []
    for rank in range(world):
        g = torch.Generator().manual_seed(5)  # every rank seeds alike
        per_rank.append(torch.cat(_ids(iterate_batches(x, y, batch_size=2, shuffle=shuffle, generator=g,
                                                       shard=(rank, world)))))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(5)) if shuffle else torch.arange(n)
    usable = n // world * world
    for rank, got in enumerate(per_rank):
        assert len(got) == n // world
        assert torch.equal(got, perm[:usable][rank::world])
    flat = torch.cat(per_rank).tolist()
    assert len(set(flat)) == len(flat)  # disjoint


def test_bad_arguments_are_clear_errors():
    x, y = _data(4)
    with pytest.raises(DigitlabError, match="x has 4 examples but y has 3"):
        list(iterate_batches(x, y[:3], batch_size=2))
    with pytest.raises(DigitlabError, match="batch_size=0"):
        list(iterate_batches(x, y, batch_size=0))
    with pytest.raises(DigitlabError, match="shard"):
        list(iterate_batches(x, y, batch_size=2, shard=(2, 2)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_the_tensors_device_with_a_cpu_or_device_generator():
    x, y = (t.cuda() for t in _data(1000))
    for g in (torch.Generator().manual_seed(1), torch.Generator(device="cuda").manual_seed(1), None):
        ids = _ids(iterate_batches(x, y, batch_size=128, generator=g))
        assert all(b.device.type == "cuda" for b in ids)
        assert sorted(torch.cat(ids).tolist()) == list(range(1000))

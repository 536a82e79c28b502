"""Where training runs: the device, mixed precision and the torchrun process group."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from digitlab.errors import DigitlabError


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """"auto": CUDA (this rank's GPU under torchrun), then Apple MPS, then CPU; else `name`."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise DigitlabError(f"device {name!r} is not a torch device; use auto, cpu, cuda, cuda:N or mps") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DigitlabError(f"device {name!r}: CUDA is not available here; use --device cpu or auto")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise DigitlabError(f"device {name!r}: Apple MPS is not available here; use --device cpu or auto")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_for(device: torch.device, precision: str) -> tuple[Any, torch.dtype | None]:
    """(context factory, dtype) for mixed precision; fp32 needs none."""
    if precision == "auto":
        if device.type != "cuda":
            return contextlib.nullcontext, None
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), dtype


@dataclass
class Dist:
    """This process's place in the run: its rank among `world` processes (one, without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this call initialised the process group, so it tears it down

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files and reports progress."""
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend=backend)
        owns = True
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank, owns_group=owns)


def sync_device(device: torch.device) -> None:
    """Wait for `device`'s queued work, so a timer reads the work done (CPU work is already done)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()

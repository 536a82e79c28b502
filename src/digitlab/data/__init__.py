"""digitlab.data: the dataset registry, verified loading from many sources, IDX files, batches.

    from digitlab.data import load
    ds = load("mnist")            # or load("fashion-mnist"), load("kmnist"), load("/path/to/idx-folder")
    ds.x_train.shape              # (60000, 28, 28) uint8
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from digitlab.data.dataset import (
    Dataset,
    export_files,
    fetch,
    load,
    load_data,
    split_validation,
)
from digitlab.data.idx import encode_idx, parse_idx, read_idx, write_idx
from digitlab.data.registry import DATASETS, DatasetSpec, FileSpec, get_spec, how_to_obtain

if TYPE_CHECKING:
    from digitlab.data.batches import iterate_batches

__all__ = [
    "how_to_obtain",
    "DATASETS", "Dataset", "DatasetSpec", "FileSpec", "encode_idx", "export_files", "fetch", "get_spec",
    "iterate_batches", "load", "load_data", "parse_idx", "read_idx", "split_validation", "write_idx",
]


def __getattr__(name: str) -> Any:
    # iterate_batches needs torch; importing it lazily keeps `digitlab data info` quick.
    if name == "iterate_batches":
        from digitlab.data.batches import iterate_batches

        return iterate_batches
    raise AttributeError(f"module 'digitlab.data' has no attribute {name!r}")

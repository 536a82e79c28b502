"""Checking one dataset file: IDX structure, kind, label range and the SHA-256 of its decompressed content.

Every file any source supplies passes `verify` before it is used or enters the cache. A file
whose digest is another registered dataset's (a folder shared by several datasets) is
`OtherDatasetFile`, a kind of `NotPresent`: not this dataset's, rather than damaged.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitlab.data.idx import parse_idx
from digitlab.data.registry import DATASETS, IMAGE_SHAPE, DatasetSpec, FileSpec
from digitlab.errors import DigitlabError


@dataclass
class Found:
    """One verified file: its decompressed content, parsed array, digest and origin."""

    role: str
    array: np.ndarray
    sha256: str
    origin: str  # e.g. "cache /home/u/.cache/digitlab/mnist"
    matched_reference: bool  # True when the digest equals the registry's reference
    content: bytearray = field(repr=False)


def candidate_names(f: FileSpec) -> list[str]:
    """File names accepted in a folder for one file: raw or .gz, dash or dot before `idx`."""
    names = [f.stem, f.stem + ".gz"]
    dotted = f.stem.replace("-idx", ".idx")
    if dotted != f.stem:
        names += [dotted, dotted + ".gz"]
    return names


def verify(spec: DatasetSpec, role: str, content: bytearray, *, name: str, origin: str,
           fix: str = "Delete or replace the file; `digitlab data fetch NAME` gets a verified copy.") -> Found:
    """Check decompressed `content` for `role` of `spec`: IDX structure, kind, label range, SHA-256.

    `name` names the file in error messages. Raises `DigitlabError` if anything is off.
    """
    arr = parse_idx(content, name=name)
    if role.endswith("images"):
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != IMAGE_SHAPE:
            raise DigitlabError(
                f"{name}: expected images as uint8 of shape (N, 28, 28), found {arr.dtype.name} "
                f"of shape {arr.shape}. Is this the right file for {role.replace('_', ' ')}? {fix}"
            )
    else:
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise DigitlabError(
                f"{name}: expected labels as uint8 of shape (N,), found {arr.dtype.name} of shape "
                f"{arr.shape}. Is this the right file for {role.replace('_', ' ')}? {fix}"
            )
        if spec.num_classes and arr.size and int(arr.max()) >= spec.num_classes:
            raise DigitlabError(
                f"{name}: label {int(arr.max())} is outside the {spec.num_classes} classes of "
                f"{spec.name} (0..{spec.num_classes - 1}). {fix}"
            )
    digest = hashlib.sha256(content).hexdigest()
    expected = spec.files[role].sha256
    if expected and digest != expected:
        known = _known_as(digest)
        if known:  # a shared folder (DIGITLAB_DATA_DIR) holding another dataset's files: not this one's, not damaged
            raise OtherDatasetFile(f"{name} is {known[0]}'s {known[1]}, not {spec.name}'s {spec.files[role].stem}",
                                   dataset=known[0])
        raise DigitlabError(
            f"{name}: SHA-256 of the decompressed content is {digest}, not the reference "
            f"{expected} of {spec.name}'s {spec.files[role].stem}: a different or damaged file. {fix}".rstrip()
        )
    return Found(role, arr, digest, origin, bool(expected), content)


def find_in_folder(folder: Path, f: FileSpec) -> Path | None:
    """The first existing candidate file for `f` in `folder`, or None."""
    for n in candidate_names(f):
        p = folder / n
        if p.is_file():
            return p
    return None


class NotPresent(DigitlabError):
    """A source simply does not have the file (not an error worth a warning)."""


class OtherDatasetFile(NotPresent):
    """The file is a registered dataset's, but another one's (a folder shared by several datasets)."""

    def __init__(self, message: str, *, dataset: str) -> None:
        super().__init__(message)
        self.dataset = dataset


def _known_as(digest: str) -> tuple[str, str] | None:
    """(dataset, file stem) when `digest` is the reference of a registered dataset's file."""
    for other in DATASETS.values():
        for f in other.files.values():
            if f.sha256 == digest:
                return other.name, f.stem
    return None

"""The run's JSON-lines records (metrics.jsonl, steps.jsonl): read back, rewritten, appended."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digitlab._io import atomic_write_text


def read_jsonl(path: Path, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The records in `path` that `keep` accepts, in order; none when there is no file."""
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if keep(r)]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace `path` with `records`, one JSON object a line, atomically."""
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Add `record` as a line to `path`, on disk before returning (a kill keeps every finished record)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())

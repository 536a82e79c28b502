"""Atomic writes: all-or-nothing, usual permissions, no temp files left behind."""
import os
import stat

import pytest

from digitlab._io import atomic_open, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_failed_write_keeps_old_content(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write(b"half")
            raise RuntimeError("crash mid-write")
    assert target.read_text().strip().startswith("{")
    assert os.listdir(tmp_path) == ["a.json"]


def test_permissions_follow_umask(tmp_path):
    target = atomic_write_text(tmp_path / "p.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask

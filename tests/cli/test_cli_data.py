"""`digitlab data fetch|info|show|export-png` on the real MNIST files."""
from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import build_parser, main
from digitlab.data import get_spec


def _labels(mnist_dir: Path, name: str) -> np.ndarray:
    return np.frombuffer(gzip.decompress((mnist_dir / name).read_bytes()), np.uint8, offset=8)


def _images(mnist_dir: Path, name: str) -> np.ndarray:
    return np.frombuffer(gzip.decompress((mnist_dir / name).read_bytes()), np.uint8, offset=16).reshape(-1, 28, 28)


def test_info_json_reports_counts_balance_checksums_and_source(mnist_dir, capsys):
    assert main(["data", "info", "mnist", "--data-dir", str(mnist_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    ytr = _labels(mnist_dir, "train-labels-idx1-ubyte.gz")
    assert info["train"]["count"] == len(ytr)
    assert list(info["train"]["class_balance"].values()) == np.bincount(ytr, minlength=10).tolist()
    assert info["verified"] and info["source"] == f"folder {mnist_dir}"
    assert info["sha256"] == {r: f.sha256 for r, f in get_spec("mnist").files.items()}


def test_info_text_and_fetch(mnist_dir, capsys):
    assert main(["data", "fetch", "mnist", "--data-dir", str(mnist_dir)]) == 0
    cache = Path(capsys.readouterr().out.strip())
    assert cache == Path(os.environ["DIGITLAB_CACHE"]) / "mnist"
    assert main(["data", "info"]) == 0  # default dataset, now from the cache
    out = capsys.readouterr().out
    assert f"source    cache {cache}" in out and "verified against the reference SHA-256" in out


def test_export_png_writes_labelled_exact_images(mnist_dir, tmp_path, capsys):
    out = tmp_path / "samples"
    assert main(["data", "export-png", "mnist", "--data-dir", str(mnist_dir),
                 "--split", "test", "--count", "5", "--out", str(out)]) == 0
    labels = _labels(mnist_dir, "t10k-labels-idx1-ubyte.gz")[:5]
    images = _images(mnist_dir, "t10k-images-idx3-ubyte.gz")[:5]
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"test-{i:05d}-label-{labels[i]}.png" for i in range(5)]
    for i, name in enumerate(names):
        with Image.open(out / name) as im:
            assert im.mode == "L"
            np.testing.assert_array_equal(np.asarray(im), images[i])


def test_show_one_image_and_a_grid(mnist_dir, tmp_path, capsys):
    one, grid = tmp_path / "one.png", tmp_path / "grid.png"
    assert main(["data", "show", "--data-dir", str(mnist_dir), "--index", "7", "--split", "test",
                 "--out", str(one)]) == 0
    assert main(["data", "show", "mnist", "--data-dir", str(mnist_dir), "--grid", "9", "--out", str(grid)]) == 0
    for p in (one, grid):
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 100


@pytest.mark.parametrize("argv, message", [
    (["data", "show", "--index", "60000"], "--index 60000: must be between 0 and 59999"),
    (["data", "export-png", "--count", "10001"], "the test split has 10000 images"),
    (["data", "info", "cifar"], "not a registered dataset"),
])
def test_bad_arguments_exit_1_with_a_clear_message(mnist_dir, capsys, argv, message):
    if argv[2] != "cifar":
        argv = [*argv, "--data-dir", str(mnist_dir)]
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_every_option_help_names_its_default():
    data = next(a for a in build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "data")[1]
    commands = data._subparsers._group_actions[0].choices
    assert set(commands) == {"fetch", "info", "show", "export-png"}
    for name, parser in commands.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert "default" in (action.help or ""), f"data {name} {action.option_strings or action.dest}"

"""`digitlab train --recipe reader` and `digitlab evaluate READER` end to end (a few steps: the wiring)."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from digitlab.cli import main
from digitlab.models.reader import LineReader
from digitlab.training.line_reader import READER_RECIPE, warm_start


def test_the_reader_recipe_trains_calibrates_and_reads(tmp_path, mnist_dir, capsys):
    run = tmp_path / "reader"
    assert main(["train", "--recipe", "reader", "--dry-run", "--run-dir", str(run), "--data-dir", str(mnist_dir),
                 "--threads", "1"]) == 0
    meta = json.loads((run / "reader.json").read_text())
    assert meta["recipe"] == "reader" and len(meta["stages"]) == len(READER_RECIPE.stages)
    assert meta["calibration"]["temperature"] > 0 and "conditions" in meta["metrics"]
    assert (run / "report.json").is_file() and (run / "reader.safetensors").is_file()
    picture = tmp_path / "blank.png"
    Image.fromarray(np.full((60, 200), 250, np.uint8)).save(picture)
    capsys.readouterr()
    assert main(["read", str(run), str(picture)]) == 0
    assert capsys.readouterr().out.strip() == f"{picture}: (no digits found)"
    assert main(["evaluate", str(run), "--data-dir", str(mnist_dir), "--dry-run"]) == 0
    assert "calibration: temperature" in capsys.readouterr().out


def test_a_non_empty_run_dir_needs_overwrite(tmp_path, mnist_dir, capsys):
    (tmp_path / "something").write_text("x")
    assert main(["train", "--recipe", "reader", "--run-dir", str(tmp_path), "--data-dir", str(mnist_dir)]) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_warm_start_copies_the_shared_encoder_into_a_bilstm_reader():
    conv, lstm = LineReader(lstm=0), LineReader(lstm=32)
    copied = warm_start(lstm, conv)
    shared = [k for k in conv.state_dict() if k.startswith(("encoder.", "frames."))] + ["head.1.bias"]  # same shape
    assert copied == len(shared)
    for k in shared:
        assert np.array_equal(lstm.state_dict()[k].numpy(), conv.state_dict()[k].numpy())


def test_a_measured_reader_is_bundled_with_its_card(tmp_path, mnist_dir):
    from digitlab.inference.reader import Reader
    from digitlab.pretrained.build import install_reader

    run = tmp_path / "reader"
    assert main(["train", "--recipe", "reader", "--dry-run", "--run-dir", str(run), "--data-dir", str(mnist_dir),
                 "--threads", "1"]) == 0
    out = install_reader(run, out=tmp_path / "bundled")
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Calibration" in card and "| spaced |" in card
    assert Reader.load(out, backend="torch").temperature == json.loads((run / "reader.json").read_text())[
        "calibration"]["temperature"]


def test_an_uncalibrated_reader_is_not_bundled(tmp_path):
    import pytest

    from digitlab.errors import DigitlabError
    from digitlab.models.reader import save_reader
    from digitlab.pretrained.build import install_reader

    save_reader(tmp_path / "raw", LineReader())
    with pytest.raises(DigitlabError, match="calibration"):
        install_reader(tmp_path / "raw", out=tmp_path / "bundled")

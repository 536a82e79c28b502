"""`digitlab read`: the library's reading as JSON and text, files and folders, --annotate, --help."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.inference import Predictor
from digitlab.synth.pages import digit_page


def test_cli_read_json_and_text_are_the_librarys_reading(mnist, tmp_path, capsys):
    page, _ = digit_page(mnist.x_test, mnist.y_test, np.random.default_rng(3), lines=1, per_line=6, size=(600, 120))
    path = tmp_path / "number.png"
    Image.fromarray(page).save(path)
    want = Predictor.load().read(path)  # the bundled models, as the command without a run uses them
    assert main(["read", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert set(out) == {"file", "text", "digits", "model_id"} and out["file"] == str(path)
    assert out["text"] == want.text and len(out["digits"]) == len(want.digits) >= 5
    for d, w in zip(out["digits"], want.digits, strict=True):
        assert set(d) == {"label", "class_name", "probability", "box", "rejected", "reason"}
        assert d["box"] == list(w.box) and d["label"] == w.label
    assert main(["read", str(tmp_path)]) == 0  # a folder
    assert capsys.readouterr().out.strip() == f"{path}: {want.text}"


def test_cli_read_help_names_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["read", "--help"])
    out = capsys.readouterr().out
    assert "--json" in out and "default" in out and "--annotate" in out


def test_cli_read_annotate_draws_boxes(mnist, tmp_path, capsys):
    page, text = digit_page(mnist.x_test, mnist.y_test, np.random.default_rng(6), lines=2, per_line=10,
                            size=(900, 300))
    path = tmp_path / "two lines.png"
    Image.fromarray(page).save(path)
    out = tmp_path / "seen"
    assert main(["read", str(path), "--annotate", str(out)]) == 0
    assert capsys.readouterr().out.startswith(str(path))
    drawn = np.asarray(Image.open(out / "two lines.png").convert("RGB")).astype(int)
    assert drawn.shape[:2] == page.shape
    green = (drawn[..., 1] > 120) & (drawn[..., 0] < 80) & (drawn[..., 2] < 80)
    assert green.sum() > 100  # boxes drawn around the digits read

"""`digitlab predict` and `digitlab export` end to end, in process."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.data import write_idx
from digitlab.inference import Predictor
from digitlab.vision import load_image, preprocess_image


@pytest.fixture
def inputs(tmp_path, mnist):
    """A folder of 3 dark-on-white PNGs of MNIST test digits, plus a corrupt and a blank file."""
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(255 - mnist.x_test[i]).resize((56, 56)).save(folder / f"d{i}.png")
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (64, 64), "white").save(blank)
    return folder, corrupt, blank


def test_predict_good_corrupt_and_folder(cnn_run, inputs, capsys):
    folder, corrupt, blank = inputs
    rc = main(["predict", str(cnn_run), str(folder / "d0.png"), str(corrupt), str(folder), str(blank),
               "--json", "--top-k", "2", "--backend", "torch"])
    out, err = capsys.readouterr()
    assert rc == 1  # the corrupt file failed...
    rows = [json.loads(line) for line in out.splitlines()]  # ...the rest predicted; blank is an answer, not an error
    assert [r["file"] for r in rows] == [str(folder / f"d{i}.png") for i in (0, 0, 1, 2)] + [str(blank)]
    assert str(corrupt) in err and str(blank) not in err and "notes.txt" not in err
    assert rows[-1]["rejected"] and rows[-1]["reason"] == "blank"
    alone = Predictor.load(cnn_run, backend="torch").predict_image(blank, top_k=2)  # what Python (and the API) say
    assert (rows[-1]["label"], rows[-1]["model_id"]) == (alone.label, alone.model_id)
    np.testing.assert_allclose(rows[-1]["probabilities"], alone.probabilities, atol=1e-6)  # batched vs alone

    # The numbers are the Predictor's on the preprocessed image.
    want = Predictor.load(cnn_run, backend="torch").predict_proba(preprocess_image(load_image(folder / "d1.png")))[0]
    row = rows[2]
    np.testing.assert_allclose(row["probabilities"], want, atol=1e-6)
    assert row["label"] == int(want.argmax()) and row["class_name"] == str(int(want.argmax()))
    assert [t["label"] for t in row["top_k"]] == list(np.argsort(-want)[:2])
    assert row["probability"] == pytest.approx(float(want.max()), abs=1e-6)


def test_predict_says_several_objects_as_predict_image_does(cnn_run, mnist, tmp_path, capsys):
    page = np.full((60, 200), 255, np.uint8)
    for i in range(3):
        page[16:44, 20 + 60 * i:48 + 60 * i] = 255 - mnist.x_test[i]
    path = tmp_path / "three.png"
    Image.fromarray(page).save(path)
    assert main(["predict", str(cnn_run), str(path), "--backend", "torch"]) == 0
    line = capsys.readouterr().out.strip()
    assert Predictor.load(cnn_run, backend="torch").predict_image(path).reason == "several objects"
    assert line.startswith(f"{path}: several objects (closest: ")


def test_predict_text_output_and_idx_file(cnn_run, mnist, tmp_path, capsys):
    idx = write_idx(tmp_path / "few-images-idx3-ubyte", mnist.x_test[:4])
    assert main(["predict", str(cnn_run), str(idx), "--backend", "torch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [f"{idx}[{i}]" for i in range(4)]
    labels = Predictor.load(cnn_run, backend="torch").predict(mnist.x_test[:4])  # IDX images are used as is
    assert [line.split(": ")[1].split()[0] for line in lines] == [str(v) for v in labels]


def test_predict_folder_of_idx_files_skips_labels(cnn_run, mnist, tmp_path, capsys):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", mnist.x_test[:3])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", mnist.y_test[:3].astype(np.uint8))
    assert main(["predict", str(cnn_run), str(tmp_path), "--backend", "torch"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_predict_nothing_found_is_an_error(cnn_run, tmp_path, capsys):
    assert main(["predict", str(cnn_run), str(tmp_path), "--backend", "torch"]) == 1
    assert "no image or IDX files" in capsys.readouterr().err


def test_predict_preprocesses_pictures_with_the_models_dataset_profile(tmp_path, capsys):
    import torch

    from digitlab.checkpoints import save_checkpoint
    from digitlab.data import get_spec
    from digitlab.inference import Predictor
    from digitlab.models import build_model
    from digitlab.vision import load_image

    run = tmp_path / "fashion-run"
    torch.manual_seed(0)
    model = build_model("softmax", init="normal", init_std=0.05)  # random weights: outputs depend on the pixels
    names = list(get_spec("fashion-mnist").class_names)
    save_checkpoint(run, model, {"dataset": "fashion-mnist", "class_names": names})
    picture = tmp_path / "shirt.png"
    image = Image.new("L", (120, 160), 255)
    image.paste(40, (30, 20, 90, 140))  # a dark 60x120 object on white
    image.save(picture)
    assert main(["predict", str(run), str(picture), "--backend", "torch", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    predictor = Predictor.load(run, backend="torch")
    want = {profile: predictor.predict_proba(preprocess_image(load_image(picture), profile=profile))[0]
            for profile in ("fashion", "mnist")}
    np.testing.assert_allclose(got["probabilities"], want["fashion"], rtol=1e-6)
    assert not np.allclose(want["fashion"], want["mnist"], rtol=1e-3)  # the profile made a difference

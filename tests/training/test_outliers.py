"""Outlier exposure: the picture sets (cached, keyed, never the held-out split), the loss, and resume with it on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from digitlab.errors import DigitlabError
from digitlab.runs import train
from digitlab.training import TrainConfig
from digitlab.training import outliers as O
from digitlab.training.step import outlier_loss

SMALL = dict(train_size=1000, validation_size=500, batch_size=100, device="cpu", threads=1)
TINY_CNN = dict(model="cnn", model_config={"channels": [4, 8, 16]})


def test_synth_set_is_cached_by_its_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(O, "CHUNK", 1)  # one picture per cached chunk
    a = O.synth_nondigits(1, split="train", seed=0, max_side=64)
    files = lambda: sorted((tmp_path / "sets").glob("*.npz"))  # noqa: E731
    first = files()
    assert len(a) == len(O.NONDIGIT_CONDITIONS) == len(first)
    assert a.images.dtype == np.uint8 and a.images.shape == (len(a), 28, 28) and (a.labels == -1).all()
    assert list(a.condition) == list(O.NONDIGIT_CONDITIONS) and set(a.medium) <= {"photo", "black", "transparent"}
    assert set(a.facts) == set(O.FACT_KEYS) and a.facts["blank"].dtype == bool
    # the same parameters read the files back; a larger set makes only its new pictures
    assert np.array_equal(O.synth_nondigits(1, split="train", seed=0, max_side=64).images, a.images)
    b = O.synth_nondigits(2, split="train", seed=0, max_side=64)
    assert len(files()) == 2 * len(first) and np.array_equal(b.images[::2], a.images)
    O.synth_nondigits(1, split="train", seed=1, max_side=64)  # another seed: other pictures, other files
    assert len(files()) == 3 * len(first)
    first[0].write_bytes(b"damaged")  # a damaged file is made again, not an error
    assert np.array_equal(O.synth_nondigits(1, split="train", seed=0, max_side=64).images, a.images)


def test_training_outliers_never_come_from_the_heldout_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             mnist) -> None:
    import digitlab.synth

    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(O, "PREPROCESSED_OTHER", 20)
    monkeypatch.setattr(O, "MIN_PARALLEL", 10**6)  # made here, where the spy sees them
    splits = []
    real = digitlab.synth.build_set

    def spy(condition, n, *args, split="train", **kwargs):  # noqa: ANN001, ANN202
        splits.append(split)
        return real(condition, n, *args, split=split, **kwargs)

    monkeypatch.setattr(digitlab.synth, "build_set", spy)
    config = TrainConfig(oe_weight=0.5, oe_synth=5, oe_datasets=["fashion-mnist"])
    x = O.outlier_images(config, mnist)
    assert splits and set(splits) == {"train"}
    from digitlab.data import load

    fashion = load("fashion-mnist").x_train
    assert [len(part) for part in x] == [5, len(fashion), 20] and all(part.dtype == np.uint8 for part in x)
    assert np.array_equal(x[1], fashion)  # the other dataset's training images, as they are


def test_outliers_need_a_source_other_than_the_model_dataset(mnist) -> None:
    with pytest.raises(DigitlabError, match="'mnist' is the dataset the model learns"):
        O.outlier_images(TrainConfig(oe_weight=0.5, oe_synth=0, oe_datasets=["mnist"]), mnist)
    with pytest.raises(DigitlabError, match="needs outliers"):
        O.outlier_images(TrainConfig(oe_weight=0.5, oe_synth=0), mnist)


def test_outlier_loss_is_cross_entropy_to_uniform() -> None:
    logits = torch.randn(7, 10, generator=torch.Generator().manual_seed(0)) * 3
    uniform = torch.full((7, 10), 0.1)
    torch.testing.assert_close(outlier_loss(logits), F.cross_entropy(logits, uniform))
    assert outlier_loss(torch.zeros(3, 10)).item() == pytest.approx(np.log(10))  # flat logits: the minimum, log C


def test_resume_with_outliers_and_pen_changes_equals_uninterrupted(mnist, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Outliers (drawn from the augmentation stream) and every augmentation on: resume is still bit for bit."""
    monkeypatch.setattr(O, "PREPROCESSED_OTHER", 20)
    config = TrainConfig(**SMALL, **TINY_CNN, epochs=3, optimizer="adam", lr=3e-3, schedule="onecycle", augment=True,
                         aug_elastic=1.5, aug_stroke=0.3, aug_blur=0.2, aug_lowres=0.2, aug_start=0.2, oe_weight=0.5,
                         oe_synth=0, oe_datasets=["fashion-mnist"], oe_start=0.3, progress_every=1, seed=5)

    class Stop(Exception):
        pass

    def interrupt(event: dict) -> None:
        if event["event"] == "step" and event["epoch"] == 2 and event["batch"] == 3:
            raise Stop

    full = train(config, mnist, run_dir=tmp_path / "full")
    with pytest.raises(Stop):
        train(config, mnist, run_dir=tmp_path / "cut", callback=interrupt)
    resumed = train(config, mnist, run_dir=tmp_path / "cut", resume=True)
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    # outliers change training: the same run without them ends elsewhere
    plain = train(config.replace(oe_weight=0.0), mnist)
    assert not torch.equal(plain.model.state_dict()["layers.1.weight"], full.model.state_dict()["layers.1.weight"])


def test_each_outlier_source_gives_the_same_share_of_a_batch() -> None:
    from types import SimpleNamespace

    from digitlab.training.step import _outlier_batch

    parts = (3, 1000, 10)  # a small source counts as much as a large one
    images = torch.cat([torch.full((n, 28, 28), i + 1, dtype=torch.uint8) for i, n in enumerate(parts)])
    t = SimpleNamespace(data=SimpleNamespace(outliers=images, outlier_parts=parts), step=5, total_steps=10,
                        config=TrainConfig(batch_size=120, oe_fraction=0.25, oe_start=0.5, oe_weight=0.5),
                        dd=SimpleNamespace(world=1), aug_gen=torch.Generator().manual_seed(0))
    assert _outlier_batch(SimpleNamespace(**{**vars(t), "step": 4})) is None  # before oe_start
    batch = _outlier_batch(t)
    assert batch.shape == (30, 1, 28, 28)
    source = (batch[:, 0, 0, 0] * 255).round().long()
    assert torch.equal(torch.bincount(source, minlength=4)[1:], torch.tensor([10, 10, 10]))


def test_chunks_made_in_parallel_processes_equal_those_made_here(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(O, "CHUNK", 1)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "a"))
    monkeypatch.setattr(O, "MIN_PARALLEL", 10**6)  # here, one by one
    here = O.synth_nondigits(1, split="train", seed=4, max_side=64)
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "b"))
    monkeypatch.setattr(O, "MIN_PARALLEL", 2)  # 5 chunks missing: two forked processes make them
    there = O.synth_nondigits(1, split="train", seed=4, max_side=64)
    assert np.array_equal(here.images, there.images) and np.array_equal(here.condition, there.condition)
    assert all(np.array_equal(here.facts[k], there.facts[k]) for k in O.FACT_KEYS)


def test_digit_pairs_are_two_digits_composed_at_a_touching_shift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   mnist) -> None:
    x = mnist.x_train[5000:5100]
    pairs = O.digit_pairs(x, 50, seed=3)
    assert pairs.shape == (50, 28, 28 + O.PAIR_SHIFTS[1]) and pairs.dtype == np.uint8
    # Independently: every pair is the maximum of one digit at column 0 and one at a shift in PAIR_SHIFTS.
    for pair in pairs[:10]:
        found = False
        for shift in range(O.PAIR_SHIFTS[0], O.PAIR_SHIFTS[1] + 1):
            left = [i for i in range(len(x)) if np.array_equal(np.maximum(pair[:, :28], 0)[:, :shift],
                                                                 x[i][:, :shift])]
            for i in left:
                canvas = np.zeros_like(pair)
                canvas[:, :28] = x[i]
                rest = [j for j in range(len(x)) if np.array_equal(
                    np.maximum(canvas[:, shift:shift + 28], x[j]), pair[:, shift:shift + 28])
                    and not pair[:, shift + 28:].any()]
                found = found or bool(rest)
        assert found
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path))
    seen = O.pair_outliers(x, 40, "mnist")  # through the preprocessing: 28x28, one object each, none blank
    assert seen.shape[1:] == (28, 28) and 30 <= len(seen) <= 40 and (seen.reshape(len(seen), -1).max(axis=1) > 0).all()
    assert np.array_equal(O.pair_outliers(x, 40, "mnist"), seen)  # cached and reproducible
    with pytest.raises(DigitlabError, match="oe_pairs"):
        TrainConfig(oe_pairs=-1)

"""The "not a digit" decision: the energy score against an independent computation, and `decide`."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from digitlab.checkpoints import ModelMeta
from digitlab.inference.rejection import BLANK, SEVERAL, Ink, Rejection, decide, energy, not_a


def test_energy_is_minus_t_logsumexp() -> None:
    z = np.random.default_rng(0).normal(0, 5, (50, 10))
    for t in (1.0, 0.5, 3.0):
        np.testing.assert_allclose(energy(z, t), -t * logsumexp(z / t, axis=1), rtol=1e-12)
    assert np.isfinite(energy(np.array([[1e4, -1e4, 0.0]]))).all()  # no overflow


def test_decide_ink_first_then_score() -> None:
    logits = np.array([[9.0, 0, 0], [0.1, 0, 0], [0.1, 0, 0], [9.0, 0, 0]])  # confident, flat, flat, confident
    rule = Rejection(threshold=-2.0)  # flat logits have energy -log(3 e^0) ~ -1.2 > -2
    ink = [Ink(), Ink(), Ink(blank=True), Ink(objects=3)]
    assert decide(logits, rule, ink=ink) == [None, "not a digit", BLANK, SEVERAL]
    assert decide(logits, rule, ink=ink, dataset="fashion-mnist")[1] == "not a piece of clothing"
    assert decide(logits, rule, threshold=math.inf) == [None] * 4  # the score never rejects
    assert decide(logits, rule, threshold=-20.0) == ["not a digit"] * 4
    # no stored rejection (an older checkpoint): only the ink decides, unless a threshold is given
    assert decide(logits, None, ink=ink) == [None, None, BLANK, SEVERAL]
    assert decide(logits, None, threshold=-2.0) == [None, "not a digit", "not a digit", None]
    with pytest.raises(ValueError, match="one per input"):
        decide(logits, rule, ink=ink[:2])


def test_words_and_meta() -> None:
    assert not_a("mnist") == not_a(None) == "not a digit" and not_a("kmnist") == "not a character"
    assert not_a("/data/my-folder") == "not one of the model's classes"
    base = {"format": 1, "model": {"name": "softmax"}, "num_classes": 10}
    assert Rejection.from_meta(ModelMeta.model_validate(base)) is None
    assert Rejection.from_meta(ModelMeta.model_validate({**base, "rejection": None})) is None
    r = Rejection.from_meta(ModelMeta.model_validate(
        {**base, "rejection": {"method": "energy", "threshold": -3.5, "temperature": 2.0, "keep": 0.99}}))
    assert r == Rejection(-3.5, "energy", 2.0)
    assert Ink.of_images(np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 3, np.uint8)])) == \
        [Ink(blank=True), Ink()]

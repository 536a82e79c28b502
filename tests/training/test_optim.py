"""Optimisers and learning-rate schedules, the schedules checked against torch's own schedulers."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from digitlab.errors import DigitlabError
from digitlab.models import build_model
from digitlab.training import OPTIMIZERS, TrainConfig, build_optimizer, lr_at


def _torch_lrs(make_scheduler, steps: int, lr: float) -> list[float]:
    """The lr torch's scheduler gives before each of `steps` optimiser steps."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
    sched = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("pct_start", [0.25, 0.3])
def test_onecycle_matches_torch(pct_start: float) -> None:
    total = 97
    cfg = TrainConfig(schedule="onecycle", lr=0.4, pct_start=pct_start)
    ours = [lr_at(cfg, s, total, 10) for s in range(total)]
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.4, total_steps=total, pct_start=pct_start, cycle_momentum=False,
        div_factor=25.0, final_div_factor=1e4), total, 0.4)
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert max(ours) == pytest.approx(0.4, rel=1e-3)  # the peak falls between two steps


def test_cosine_matches_torch() -> None:
    total = 50
    cfg = TrainConfig(schedule="cosine", lr=0.1, min_lr=0.001)
    ours = [lr_at(cfg, s, total, 10) for s in range(total)]
    ref = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=0.001),
                     total, 0.1)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_step_matches_torch() -> None:
    spe = 7  # steps per epoch; torch's StepLR steps once per epoch
    cfg = TrainConfig(schedule="step", lr=1.0, gamma=0.7, step_size=2)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7)
    for epoch in range(6):
        for s in range(spe):
            assert lr_at(cfg, epoch * spe + s, 6 * spe, spe) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()


def test_constant_and_warmup() -> None:
    cfg = TrainConfig(schedule="constant", lr=0.3, warmup_steps=3)
    assert [lr_at(cfg, s, 10, 5) for s in range(5)] == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_learns(name: str) -> None:
    """A few steps on a fixed batch lower the loss, for every optimiser."""
    torch.manual_seed(0)
    model = build_model("mlp", hidden=[16])
    lr = {"sgd": 0.1, "adam": 1e-2, "adamw": 1e-2, "rmsprop": 1e-3, "adadelta": 1.0}[name]
    opt = build_optimizer(model, TrainConfig(optimizer=name, lr=lr, nesterov=name == "sgd", weight_decay=1e-4))
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    first = F.cross_entropy(model(x), y).item()
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_weight_decay_skips_biases_and_norms() -> None:
    model = build_model("cnn", channels=[4, 8, 16])
    opt = build_optimizer(model, TrainConfig(weight_decay=0.1))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.ndim > 1), name


def test_rmsprop_is_keras_rmsprop() -> None:
    """Keras: ms = rho ms + (1 - rho) g^2; w -= lr g / (sqrt(ms) + eps); checked by hand."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = build_optimizer(torch.nn.ParameterList([p]), TrainConfig(optimizer="rmsprop", lr=1e-3, rho=0.9, eps=1e-7))
    ms, w = torch.zeros(2), p.detach().clone()
    for _ in range(3):
        loss = (p ** 2).sum()
        opt.zero_grad()
        loss.backward()
        g = 2 * w
        ms = 0.9 * ms + 0.1 * g ** 2
        w = w - 1e-3 * g / (ms.sqrt() + 1e-7)
        opt.step()
    torch.testing.assert_close(p.detach(), w)


def test_config_validation() -> None:
    with pytest.raises(DigitlabError, match="optimizer='lbfgs'"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(DigitlabError, match="schedule"):
        TrainConfig(schedule="warm")
    with pytest.raises(DigitlabError, match="unknown keys"):
        TrainConfig.from_dict({"epochz": 3})
    cfg = TrainConfig(betas=(0.8, 0.9), model_config={"hidden": [3]})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg

"""fuse_for_inference: BatchNorm folded into convs; same logits as the model it came from."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from digitlab.models import build_model, get_config, model_name
from digitlab.models.fuse import fuse_for_inference


def _randomise_batchnorm(model: nn.Module, *, low: float = 0.2) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters, scale >= `low`."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) * 2 + low)
            m.bias.data.copy_(torch.rand(n, generator=gen) * 2 - 1)
    return model.eval()


def _types(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.layers]


@pytest.mark.parametrize("config", [{"channels": [24, 48, 96]}, {"stem": 16, "channels": [32, 64]},
                                    {"channels": [8, 16], "blocks": 2, "dropout": 0.2},
                                    {"stem": 16, "channels": [32, 64], "downsample": "stride", "hidden": 24}])
def test_fused_cnn_gives_the_same_logits_without_batchnorm(config) -> None:
    torch.manual_seed(0)
    model = _randomise_batchnorm(build_model("cnn", **config))
    fused = fuse_for_inference(model)
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        want, got = model(x), fused(x)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()
    assert "BatchNorm2d" not in _types(fused) and "BatchNorm1d" not in _types(fused)
    # every max-pool now follows a ReLU (the int8-friendly order), none follows a bare conv
    types = _types(fused)
    assert all(types[i - 1] == "ReLU" for i, t in enumerate(types) if t == "MaxPool2d")
    assert "BatchNorm2d" in _types(model) and not fused.training  # the original is untouched
    assert get_config(fused) == get_config(model) and model_name(fused) == model_name(model)


def test_a_negative_batchnorm_scale_keeps_that_stage_as_it_was() -> None:
    """relu(a*x+b) with a < 0 does not commute with max: that stage must not be reordered."""
    torch.manual_seed(0)
    model = _randomise_batchnorm(build_model("cnn", channels=[8, 16]))
    model.layers[3].weight.data[0] = -1.0  # first stage: Conv, MaxPool, BN (index 3), ReLU
    fused = fuse_for_inference(model)
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5, rtol=1e-5)
    assert _types(fused)[1:5] == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]  # kept
    assert _types(fused)[5:8] == ["Conv2d", "ReLU", "MaxPool2d"]  # the second stage still folds


@pytest.mark.parametrize("name", ["softmax", "mlp", "lenet"])
def test_models_without_batchnorm_are_unchanged(name: str) -> None:
    model = build_model(name, **({"init": "normal"} if name == "softmax" else {})).eval()
    fused = fuse_for_inference(model)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(fused(x), model(x))


@pytest.mark.parametrize("config", [{"stem": 16, "channels": [32, 64]}, {"channels": [8, 16], "dropout": 0.2}])
def test_channels_last_head_gives_the_same_logits(config) -> None:
    from digitlab.models.fuse import flatten_channels_last

    torch.manual_seed(0)
    model = _randomise_batchnorm(build_model("cnn", **config))
    head = flatten_channels_last(fuse_for_inference(model), torch.zeros(2, 1, 28, 28))
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(head(x), model(x), atol=1e-5, rtol=1e-5)
    assert "ChannelsLastFlatten" in _types(head) and "Flatten" not in _types(head)
    assert isinstance(model.layers[-2 if not config.get("dropout") else -3], torch.nn.Flatten)  # untouched


def test_channels_last_head_on_the_mlp_image_flatten() -> None:
    from digitlab.models.fuse import flatten_channels_last

    model = build_model("mlp").eval()  # Flatten of (N, 1, 28, 28) then Linear: 4D with C = 1, a no-op reorder
    head = flatten_channels_last(model, torch.zeros(2, 1, 28, 28))
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(head(x), model(x), atol=1e-6)

"""Every registered model: contract shapes, gradients, in-model normalisation, channels_last."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from digitlab.errors import DigitlabError
from digitlab.models import MODELS, build_model, get_config

NAMES = sorted(MODELS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_classes", [10, 3])
def test_output_shape_and_gradients(name: str, num_classes: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=num_classes, **({"init": "normal"} if name == "softmax" else {}))
    x = torch.rand(4, 1, 28, 28)
    logits = model(x)
    assert logits.shape == (4, num_classes) and logits.dtype == torch.float32
    F.cross_entropy(logits, torch.arange(4) % num_classes).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}.{pname} receives no gradient"


@pytest.mark.parametrize("name", NAMES)
def test_normalisation_inside_the_model(name: str) -> None:
    """A model with mean m, std s on x equals the same weights with mean 0, std 1 on (x - m) / s."""
    torch.manual_seed(0)
    a = build_model(name, mean=0.2, std=0.5).eval()
    b = build_model(name, mean=0.0, std=1.0).eval()
    b.load_state_dict({k: v for k, v in a.state_dict().items() if not k.endswith(("mean", "std"))
                       or "running" in k}, strict=False)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(a(x), b((x - 0.2) / 0.5))


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_same_result(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(6, 1, 28, 28)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), expected,
                               rtol=1e-4, atol=1e-5)


def test_softmax_inits() -> None:
    zero = build_model("softmax", init="zeros")
    assert zero.linear.weight.abs().sum() == 0 and zero.linear.bias.abs().sum() == 0
    torch.manual_seed(0)
    normal = build_model("softmax", init="normal", init_std=0.01)
    assert abs(normal.linear.weight.std().item() - 0.01) < 0.001
    # zero init: every class equally likely, the tutorial's starting point
    torch.testing.assert_close(F.softmax(zero(torch.rand(2, 1, 28, 28)), 1), torch.full((2, 10), 0.1))


def test_mlp_config() -> None:
    model = build_model("mlp", hidden=[32, 16], activation="tanh", dropout=0.5)
    widths = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 16, 10]
    assert sum(isinstance(m, torch.nn.Tanh) for m in model.modules()) == 2
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 2
    model.train()
    x = torch.rand(2, 1, 28, 28)
    assert not torch.equal(model(x), model(x))  # dropout active in training
    model.eval()
    assert torch.equal(model(x), model(x))


def test_errors_name_the_problem() -> None:
    with pytest.raises(DigitlabError, match="unknown.*softmax"):
        build_model("resnet")
    with pytest.raises(DigitlabError, match="does not accept"):
        build_model("cnn", width=3)
    with pytest.raises(DigitlabError, match="activation 'swish'"):
        build_model("mlp", activation="swish")
    with pytest.raises(DigitlabError, match="too many stages"):
        build_model("cnn", channels=[4, 4, 4, 4, 4])
    with pytest.raises(DigitlabError, match="stem_kernel=4"):
        build_model("cnn", stem=8, stem_kernel=4)
    with pytest.raises(DigitlabError, match="downsample='avg'.*pool, stride"):
        build_model("cnn", downsample="avg")
    with pytest.raises(DigitlabError, match="hidden=-1"):
        build_model("cnn", hidden=-1)


def test_cnn_strided_stages_and_hidden_layer() -> None:
    """downsample="stride": each stage's conv has stride 2 (ceil: 14 -> 7 -> 4) and no max-pool; `hidden`
    puts linear-BN-act before the head. The config round-trips."""
    model = build_model("cnn", stem=16, channels=[32, 64], downsample="stride", hidden=128)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 3
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64 * 4 * 4, 128), (128, 10)]
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    again = build_model("cnn", **get_config(model))
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]


def test_cnn_stem() -> None:
    """A strided stem takes 28 -> 14, so two stages end at 3x3; its config round-trips."""
    model = build_model("cnn", stem=8, channels=[16, 32])
    assert get_config(model)["stem"] == 8 and get_config(model)["stem_kernel"] == 5
    assert model.layers[1].stride == (2, 2) and model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert model.layers[-1].in_features == 32 * 3 * 3
    again = build_model("cnn", **get_config(model))
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]
    old = {k: v for k, v in get_config(build_model("cnn")).items() if k not in ("stem", "stem_kernel")}
    assert get_config(build_model("cnn", **old))["stem"] == 0  # configs written before the stem existed still load


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter: plain ops
@pytest.mark.parametrize("name", NAMES)
def test_onnx_export(name: str, tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    model = build_model(name).eval()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (torch.rand(1, 1, 28, 28),), str(path), dynamo=False,
                      input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}})
    onnx.checker.check_model(onnx.load(str(path)))

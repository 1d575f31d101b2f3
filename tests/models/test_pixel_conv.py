"""Single-pixel convolutions against ``nn.Conv2d`` (the reference): same outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spacessl.models.encoders import ResNet18Encoder
from spacessl.models.pixel_conv import SinglePixelConv2d, use_single_pixel_convs
from tests.models.equivalence import assert_same_encoder


def _pair(**conv_kw) -> tuple[nn.Conv2d, SinglePixelConv2d]:
    torch.manual_seed(0)
    reference = nn.Conv2d(**conv_kw)
    fast = SinglePixelConv2d(**conv_kw)
    fast.load_state_dict(reference.state_dict())
    return reference, fast


# (conv arguments, input side, single-pixel output?): ResNet-18's last stage at 1 x 1 (3 x 3, padding 1), its
# first convolution and shortcut at 2 x 2 with stride 2, a kernel as large as the input, and larger outputs
CASES = [
    (dict(in_channels=8, out_channels=6, kernel_size=3, padding=1), 1, True),
    (dict(in_channels=8, out_channels=6, kernel_size=3, padding=1, stride=2), 2, True),
    (dict(in_channels=8, out_channels=6, kernel_size=1, stride=2), 2, True),
    (dict(in_channels=3, out_channels=5, kernel_size=(5, 3), bias=True), 5, False),
    (dict(in_channels=3, out_channels=5, kernel_size=(5, 3), bias=True, padding=(0, 1)), 5, False),
    (dict(in_channels=3, out_channels=5, kernel_size=(5, 5), bias=True), 5, True),
    (dict(in_channels=8, out_channels=6, kernel_size=3, padding=1), 2, False),
    (dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=2), 1, False),
]


@pytest.mark.parametrize("conv_kw,side,single", CASES)
def test_matches_the_convolution_in_value_and_gradient(conv_kw, side, single):
    reference, fast = _pair(**conv_kw)
    assert (fast.single_pixel_window(side, side) is not None) == single
    x = torch.randn(4, conv_kw["in_channels"], side, side)
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yf = reference(xr), fast(xf)
    assert yf.shape == yr.shape
    torch.testing.assert_close(yf, yr, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(yr)
    yr.backward(g)
    yf.backward(g)
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)
    if reference.bias is not None:
        torch.testing.assert_close(fast.bias.grad, reference.bias.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("input_grad,weight_grad", [(False, True), (True, False)])
def test_gradients_only_where_asked(input_grad, weight_grad):
    """A frozen layer, or an input that needs no gradient (the network's first layer), as the convolution."""
    reference, fast = _pair(in_channels=8, out_channels=6, kernel_size=3, padding=1, stride=2, bias=True)
    for layer in (reference, fast):
        layer.weight.requires_grad_(weight_grad)
    x = torch.randn(3, 8, 2, 2)
    xr, xf = x.clone().requires_grad_(input_grad), x.clone().requires_grad_(input_grad)
    reference(xr).sum().backward()
    fast(xf).sum().backward()
    assert (fast.weight.grad is None) == (not weight_grad)
    if weight_grad:
        torch.testing.assert_close(fast.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)
    if input_grad:
        torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.bias.grad, reference.bias.grad, rtol=1e-5, atol=1e-5)


def test_gradients_accumulate_over_calls():
    """Two passes before one optimiser step (SimCLR's two views) sum their gradients, as the convolution's do."""
    reference, fast = _pair(in_channels=8, out_channels=6, kernel_size=3, padding=1)
    for _ in range(2):
        x = torch.randn(4, 8, 1, 1)
        reference(x).square().sum().backward()
        fast(x).square().sum().backward()
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)


def test_under_autocast_as_the_convolution():
    reference, fast = _pair(in_channels=16, out_channels=8, kernel_size=3, padding=1)
    x = torch.randn(4, 16, 1, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yr, yf = reference(x), fast(x)
    assert yf.dtype == yr.dtype == torch.bfloat16
    torch.testing.assert_close(yf.float(), yr.float(), rtol=2e-2, atol=2e-2)
    yr.float().sum().backward()
    yf.float().sum().backward()
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, rtol=2e-2, atol=2e-2)


def test_unbatched_input_runs_the_convolution():
    reference, fast = _pair(in_channels=4, out_channels=3, kernel_size=3, padding=1)
    x = torch.randn(4, 1, 1)
    torch.testing.assert_close(fast(x), reference(x))


def test_taps_that_meet_only_padding_get_no_gradient():
    _, fast = _pair(in_channels=4, out_channels=4, kernel_size=3, padding=1)
    fast(torch.randn(2, 4, 1, 1)).sum().backward()
    grad = fast.weight.grad
    assert grad[:, :, 1, 1].abs().sum() > 0
    grad[:, :, 1, 1] = 0
    assert torch.count_nonzero(grad) == 0


def test_resnet18_with_and_without_single_pixel_convs():
    """The s2d encoder at 64 px (last stage 1 x 1) gives the same embedding and gradients either way, and the
    checkpoints and pickles of both are interchangeable."""
    torch.manual_seed(0)
    plain = ResNet18Encoder(1, space_to_depth=2, single_pixel_convs=False)
    fast = ResNet18Encoder(1, space_to_depth=2)
    assert not any(isinstance(m, SinglePixelConv2d) for m in plain.modules())
    assert sum(isinstance(m, SinglePixelConv2d) for m in fast.modules()) == 20  # conv1 + 16 in blocks + 3 shortcuts
    assert_same_encoder(plain, fast, torch.rand(6, 1, 64, 64))


def test_use_single_pixel_convs_counts_and_keeps_parameters():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(3, 3, 1)), nn.Conv1d(3, 3, 1))
    before = [id(p) for p in net.parameters()]
    assert use_single_pixel_convs(net) == 2
    assert [id(p) for p in net.parameters()] == before
    assert type(net[3]) is nn.Conv1d
    assert use_single_pixel_convs(net) == 0  # already changed


def test_encoder_exports_with_its_faster_layers():
    """``torch.export`` (MLflow's pt2 format) traces the single-pixel products and the channels-last pooling and
    gives the module's embedding; a failed export would silently fall back to the pickle format."""
    torch.manual_seed(0)
    encoder = ResNet18Encoder(1, space_to_depth=2).eval()
    x = torch.rand(2, 1, 64, 64)
    program = torch.export.export(encoder, (x,))  # as mlflow.pytorch.log_model does, gradients on
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), encoder(x), rtol=1e-5, atol=1e-5)

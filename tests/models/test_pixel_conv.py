"""Small-map convolutions against ``nn.Conv2d`` (the reference): same outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spacessl.models.encoders import ResNet18Encoder
from spacessl.models.pixel_conv import SmallMapConv2d, product_plan, use_small_map_convs
from tests.models.equivalence import assert_same_encoder


def _pair(**conv_kw) -> tuple[nn.Conv2d, SmallMapConv2d]:
    torch.manual_seed(0)
    reference = nn.Conv2d(**conv_kw)
    fast = SmallMapConv2d(**conv_kw)
    fast.load_state_dict(reference.state_dict())
    return reference, fast


# (conv arguments, input side, matrix product?): ResNet-18's last stage at 1 x 1 (3 x 3, padding 1), its first
# convolution and shortcut at 2 x 2 with stride 2, a kernel as large as the input, a 3 x 3 kernel over 2 x 2 maps
# (stride 1: every pixel meets every pixel), and outputs that run as the convolution: a 1 x 3 output whose edge
# pixels do not meet, stride 2 into 2 x 2 (pairs that meet no tap), 3 x 3 maps, 1 x 1 kernels over 2 x 2 maps
CASES = [
    (dict(in_channels=8, out_channels=6, kernel_size=3, padding=1), 1, True),
    (dict(in_channels=8, out_channels=6, kernel_size=3, padding=1, stride=2), 2, True),
    (dict(in_channels=8, out_channels=6, kernel_size=1, stride=2), 2, True),
    (dict(in_channels=3, out_channels=5, kernel_size=(5, 3), bias=True), 5, False),
    (dict(in_channels=3, out_channels=5, kernel_size=(5, 3), bias=True, padding=(0, 1)), 5, False),
    (dict(in_channels=3, out_channels=5, kernel_size=(5, 5), bias=True), 5, True),
    (dict(in_channels=8, out_channels=6, kernel_size=3, padding=1), 2, True),
    (dict(in_channels=8, out_channels=6, kernel_size=3, padding=1, bias=True), 2, True),
    (dict(in_channels=8, out_channels=6, kernel_size=(3, 2), padding=(1, 0)), 2, True),
    (dict(in_channels=8, out_channels=6, kernel_size=3, padding=1, stride=2), 4, False),
    (dict(in_channels=8, out_channels=6, kernel_size=3, padding=1), 3, False),
    (dict(in_channels=8, out_channels=6, kernel_size=1), 2, False),
    (dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=2), 1, False),
]


@pytest.mark.parametrize("conv_kw,side,product", CASES)
def test_matches_the_convolution_in_value_and_gradient(conv_kw, side, product):
    reference, fast = _pair(**conv_kw)
    assert (fast.plan(side, side) is not None) == product
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


def test_plan_pairs_every_pixel_with_its_tap():
    """A 3 x 3 kernel at stride 1 over a 2 x 2 map, by hand: input pixel (iy, ix) meets output pixel (oy, ox)
    through tap (iy - oy + 1, ix - ox + 1), so the 16 pairs use the centre tap 4 times, each edge tap twice and
    each corner tap once."""
    plan = product_plan(2, 2, (3, 3), (1, 1), (1, 1))
    assert (plan.rows, plan.cols, plan.out_h, plan.out_w) == (2, 2, 2, 2)
    assert len(plan.pairs) == 16
    pairs = {(i, o): (ky, kx) for i, o, ky, kx in plan.pairs}
    assert pairs[(0, 0)] == (1, 1)  # input (0, 0) -> output (0, 0): centre
    assert pairs[(0, 3)] == (0, 0)  # input (0, 0) -> output (1, 1): top-left tap
    assert pairs[(3, 0)] == (2, 2)  # input (1, 1) -> output (0, 0): bottom-right tap
    assert pairs[(1, 2)] == (0, 2)  # input (0, 1) -> output (1, 0)
    counts = torch.zeros(3, 3, dtype=torch.int64)
    for ky, kx in pairs.values():
        counts[ky, kx] += 1
    assert counts.tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    # 1 x 1 output of a 3 x 3 kernel over a 1 x 1 map: the centre tap only
    assert product_plan(1, 1, (3, 3), (1, 1), (1, 1)).pairs == ((0, 0, 1, 1),)
    # stride 2 from 4 x 4 into 2 x 2: input (0, 0) never meets output (1, 1), so no plan
    assert product_plan(4, 4, (3, 3), (2, 2), (1, 1)) is None


@pytest.mark.parametrize("factor,side,changed", [(2, 64, 20), (1, 64, 20), (1, 32, 20)])
def test_resnet18_with_and_without_small_map_convs(factor, side, changed):
    """ResNet-18 behind the s2d stem at 64 px (third stage 2 x 2, last stage 1 x 1), plain at 64 px (last stage
    2 x 2) and plain at 32 px gives the same embedding and gradients either way, and the checkpoints and pickles of
    both are interchangeable."""
    torch.manual_seed(0)
    plain = ResNet18Encoder(1, space_to_depth=factor, small_map_convs=False)
    fast = ResNet18Encoder(1, space_to_depth=factor)
    assert not any(isinstance(m, SmallMapConv2d) for m in plain.modules())
    assert sum(isinstance(m, SmallMapConv2d) for m in fast.modules()) == changed  # conv1, 16 in blocks, 3 shortcuts
    # two stages of products sum in another order than oneDNN. Against the same network in float64, both float32
    # networks' gradients are off by up to 1.5e-4 of each parameter's largest (s2d at 64 px, this seed), so the two
    # are compared within twice that
    assert_same_encoder(plain, fast, torch.rand(6, 1, side, side), atol=5e-5, grad_atol=3e-4)


def test_use_small_map_convs_counts_and_keeps_parameters():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(3, 3, 1)), nn.Conv1d(3, 3, 1))
    before = [id(p) for p in net.parameters()]
    assert use_small_map_convs(net) == 2
    assert [id(p) for p in net.parameters()] == before
    assert type(net[3]) is nn.Conv1d
    assert use_small_map_convs(net) == 0  # already changed


def test_encoder_exports_with_its_faster_layers():
    """``torch.export`` (MLflow's pt2 format) traces the matrix products and the channels-last pooling and
    gives the module's embedding; a failed export would silently fall back to the pickle format."""
    torch.manual_seed(0)
    encoder = ResNet18Encoder(1, space_to_depth=2).eval()
    x = torch.rand(2, 1, 64, 64)
    program = torch.export.export(encoder, (x,))  # as mlflow.pytorch.log_model does, gradients on
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), encoder(x), rtol=1e-5, atol=1e-5)


def test_channels_last_input_and_strided_gradient():
    """A channels-last input and a gradient that arrives permuted (not contiguous) give the convolution's result."""
    reference, fast = _pair(in_channels=8, out_channels=6, kernel_size=3, padding=1, bias=True)
    x = torch.randn(3, 8, 2, 2).to(memory_format=torch.channels_last)
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.randn(3, 2, 2, 6)
    for layer, xi in ((reference, xr), (fast, xf)):
        (layer(xi).permute(0, 2, 3, 1) * g).sum().backward()
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.bias.grad, reference.bias.grad, rtol=1e-5, atol=1e-5)

"""Single-pixel convolutions against ``nn.Conv2d`` (the reference): same outputs and gradients."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from spacessl.models.encoders import ResNet18Encoder
from spacessl.models.pixel_conv import SinglePixelConv2d, use_single_pixel_convs


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
    fast.load_state_dict(plain.state_dict())
    assert list(fast.state_dict()) == list(plain.state_dict())
    x = torch.rand(6, 1, 64, 64)
    yp, yf = plain(x), fast(x)
    torch.testing.assert_close(yf, yp, rtol=1e-4, atol=1e-5)
    yp.square().sum().backward()
    yf.square().sum().backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        # float rounding through 18 layers: within 1e-5 of each gradient's largest element
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-5 * float(p.grad.abs().max()), msg=name)
    buf = io.BytesIO()
    torch.save(fast, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), fast.eval()(x))


def test_use_single_pixel_convs_counts_and_keeps_parameters():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(3, 3, 1)), nn.Conv1d(3, 3, 1))
    before = [id(p) for p in net.parameters()]
    assert use_single_pixel_convs(net) == 2
    assert [id(p) for p in net.parameters()] == before
    assert type(net[3]) is nn.Conv1d
    assert use_single_pixel_convs(net) == 0  # already changed

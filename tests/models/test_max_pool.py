"""Channels-last max pooling against ``nn.MaxPool2d`` (the reference): same outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spacessl.models.encoders import ResNet18Encoder
from spacessl.models.max_pool import ChannelsLastMaxPool2d, use_channels_last_max_pool
from tests.models.equivalence import assert_same_encoder

# pooling arguments and input shape: ResNet-18's stem pooling behind the space-to-depth stem and at 64 px, odd
# sizes with and without ceil mode, a rectangular kernel with dilation
CASES = [
    (dict(kernel_size=3, stride=2, padding=1), (4, 8, 16, 16)),
    (dict(kernel_size=3, stride=2, padding=1), (2, 64, 32, 32)),
    (dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (3, 5, 9, 7)),
    (dict(kernel_size=2), (3, 5, 9, 7)),
    (dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1)), (2, 6, 11, 10)),
]


@pytest.mark.parametrize("pool_kw,shape", CASES)
def test_matches_max_pool_in_value_and_gradient(pool_kw, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape)  # continuous values: every window has one maximum
    xr, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr, yf = nn.MaxPool2d(**pool_kw)(xr), ChannelsLastMaxPool2d(**pool_kw)(xf)
    assert yf.is_contiguous()
    assert torch.equal(yf, yr)
    g = torch.randn_like(yr)
    yr.backward(g)
    yf.backward(g)
    assert torch.equal(xf.grad, xr.grad)


def test_ties_send_each_window_gradient_to_one_maximum():
    """Where inputs tie (zeros after a ReLU), each window's gradient reaches one of its maxima: the total is kept."""
    x = torch.relu(torch.randn(2, 4, 8, 8)).requires_grad_()
    y = ChannelsLastMaxPool2d(3, 2, 1)(x)
    assert torch.equal(y, nn.functional.max_pool2d(x, 3, 2, 1))
    y.sum().backward()
    assert float(x.grad.sum()) == y.numel()
    reference = x.detach().clone().requires_grad_()
    nn.functional.max_pool2d(reference, 3, 2, 1).sum().backward()
    positive = x.detach() > 0  # distinct maxima: the gradient is the reference's
    assert torch.equal(x.grad[positive], reference.grad[positive])


def test_other_inputs_take_the_ordinary_path():
    pool = ChannelsLastMaxPool2d(3, 2, 1)
    x = torch.randn(2, 8, 10, 10)
    for variant in (x.contiguous(memory_format=torch.channels_last), x[0], x.transpose(2, 3)):
        torch.testing.assert_close(pool(variant), nn.functional.max_pool2d(variant, 3, 2, 1), rtol=0, atol=0)
    with_indices = ChannelsLastMaxPool2d(3, 2, 1, return_indices=True)
    out, idx = with_indices(x)
    ref_out, ref_idx = nn.functional.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert torch.equal(out, ref_out) and torch.equal(idx, ref_idx)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_takes_the_ordinary_path():
    x = torch.randn(2, 8, 16, 16, device="cuda", requires_grad=True)
    y = ChannelsLastMaxPool2d(3, 2, 1)(x)
    assert y.grad_fn.name().startswith("MaxPool2DWithIndicesBackward")


def test_resnet18_uses_it_and_keeps_its_checkpoints():
    torch.manual_seed(0)
    plain = ResNet18Encoder(1, space_to_depth=2, channels_last_max_pool=False)
    fast = ResNet18Encoder(1, space_to_depth=2)
    assert type(plain.backbone.maxpool) is nn.MaxPool2d
    assert type(fast.backbone.maxpool) is ChannelsLastMaxPool2d
    assert_same_encoder(plain, fast, torch.rand(4, 1, 64, 64), rtol=0, atol=0, grad_atol=1e-6)


def test_use_channels_last_max_pool_counts():
    net = nn.Sequential(nn.MaxPool2d(2), nn.Sequential(nn.MaxPool2d(3, 1, 1)), nn.MaxPool1d(2))
    assert use_channels_last_max_pool(net) == 2
    assert type(net[2]) is nn.MaxPool1d
    assert use_channels_last_max_pool(net) == 0

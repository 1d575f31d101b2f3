"""A check shared by the tests of drop-in layer classes: two encoders with the same weights compute the same."""

from __future__ import annotations

import io

import torch
from torch import nn


def assert_same_encoder(reference: nn.Module, fast: nn.Module, x: torch.Tensor, *, rtol: float = 1e-4,
                        atol: float = 1e-5, grad_atol: float = 1e-5) -> None:
    """``fast`` (loaded with ``reference``'s state dict here) gives ``reference``'s output on ``x`` and the same
    gradient of every parameter, each within ``grad_atol`` of its largest element (float rounding through the
    layers), and survives a pickle round trip."""
    fast.load_state_dict(reference.state_dict())
    assert list(fast.state_dict()) == list(reference.state_dict())
    yr, yf = reference(x), fast(x)
    torch.testing.assert_close(yf, yr, rtol=rtol, atol=atol)
    yr.square().sum().backward()
    yf.square().sum().backward()
    for (name, p), q in zip(reference.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=grad_atol * float(p.grad.abs().max()), msg=name)
    buf = io.BytesIO()
    torch.save(fast, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), fast.eval()(x))

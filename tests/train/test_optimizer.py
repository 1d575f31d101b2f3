"""build_optimizer: the linearly scaled rate and torch's fused kernels, checked against the unfused optimisers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spacessl.config import Config
from spacessl.train.loop import build_optimizer


def _cfg(optimizer: str) -> Config:
    return Config.model_validate({"train": {"optimizer": optimizer, "lr": 0.4, "momentum": 0.9,
                                            "weight_decay": 1e-3}})


def _net() -> nn.Module:
    """No bias before the BatchNorm: its true gradient is 0, and Adam would scale the rounding noise up to lr."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(3, 8, 5, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 28, 4))


@pytest.mark.parametrize("optimizer, reference", [
    ("sgd", lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=1e-3, foreach=False)),
    ("adamw", lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=1e-3, foreach=False)),
])
def test_fused_on_cpu_and_same_update_as_the_unfused_optimizer(optimizer, reference):
    net, ref_net = _net(), _net()
    opt = build_optimizer(_cfg(optimizer), net.parameters(), global_batch=64)
    ref = reference(ref_net.parameters(), 0.4 * 64 / 256)
    assert opt.defaults["fused"] is True
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    x = torch.randn(16, 3, 32, generator=torch.Generator().manual_seed(1))
    for _ in range(4):
        for o, m in ((opt, net), (ref, ref_net)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
    for p, q in zip(net.parameters(), ref_net.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_not_fused_where_the_kernels_do_not_apply():
    meta = nn.Linear(4, 2, device="meta")
    opt = build_optimizer(_cfg("adamw"), meta.parameters(), global_batch=64)
    assert not opt.defaults["fused"]

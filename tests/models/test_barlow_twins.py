"""Barlow Twins: the loss against the authors' code written out, the global batch's loss on 2 gloo workers, the
config's weight."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spacessl.config import load_config
from spacessl.errors import SpacesslError
from spacessl.models.barlow_twins import BarlowTwins, GlobalBarlowTwinsLoss
from spacessl.models.registry import build_method
from tests.models.distributed import criterion_on_two_workers


def barlow_reference(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051) -> torch.Tensor:
    """The loss as the authors' main.py computes it: BatchNorm without affine terms, the cross-correlation over
    the batch, (1 - C_ii)^2 summed plus lambda times the off-diagonal C_ij^2 (selected by a mask)."""
    n, d = z1.shape
    bn = nn.BatchNorm1d(d, affine=False).train()
    c = bn(z1).T @ bn(z2) / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c[~torch.eye(d, dtype=torch.bool)].pow(2).sum()
    return on_diag + lambd * off_diag


def _pair(n: int = 16, d: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g)  # correlated dimensions
    return z0, z0 + 0.5 * torch.randn(n, d, generator=g)


@pytest.mark.parametrize("lambd", [0.0051, 0.05, 0.0])
def test_loss_equals_reference(lambd):
    z0, z1 = _pair()
    ours, theirs = z0.clone().requires_grad_(True), z0.clone().requires_grad_(True)
    loss = GlobalBarlowTwinsLoss(lambd)(ours, z1)
    ref = barlow_reference(theirs, z1, lambd)
    torch.testing.assert_close(loss, ref, rtol=1e-4, atol=1e-4)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-3, atol=1e-5)


def test_agreeing_views_pay_only_for_redundancy():
    """Identical views: the diagonal is 1 (to BatchNorm's eps), what remains is lambda times the squared
    correlations between dimensions."""
    z0, _ = _pair(n=64, d=6, seed=2)
    corr = torch.corrcoef(z0.T.double())
    off = corr[~torch.eye(6, dtype=torch.bool)].pow(2).sum().item()
    assert GlobalBarlowTwinsLoss(0.5)(z0, z0).item() == pytest.approx(0.5 * off, rel=1e-3, abs=1e-4)


def test_forward_wiring_and_config():
    from spacessl.train.loop import method_kwargs

    cfg = load_config(None, ["model.method=barlow_twins", "model.proj_hidden_dim=32", "model.proj_out_dim=8",
                             "model.redundancy_lambda=0.02"])
    torch.manual_seed(0)
    m = build_method("barlow_twins", encoder=nn.Sequential(nn.Flatten(), nn.Linear(12, 16)), embed_dim=16,
                     **method_kwargs(cfg))
    assert isinstance(m, BarlowTwins) and m.criterion.lambda_param == 0.02
    x0, x1 = torch.randn(6, 3, 4), torch.randn(6, 3, 4)
    out = m(x0, x1)
    assert set(out) == {"loss", "z"} and out["z"].shape == (6, 8) and not out["z"].requires_grad
    torch.testing.assert_close(out["loss"], barlow_reference(m.project(x0), m.project(x1), 0.02),
                               rtol=1e-4, atol=1e-4)
    out["loss"].backward()
    assert m.encoder[1].weight.grad is not None
    with pytest.raises(SpacesslError, match="redundancy_lambda"):
        load_config(None, ["model.redundancy_lambda=-1"])
    with pytest.raises(SpacesslError, match="model.redundancy_lambda"):
        BarlowTwins(nn.Linear(4, 8), 8, redundancy_lambda=-0.1)


def test_global_batch_on_two_workers(tmp_path):
    """Two gloo workers with half the batch each give the loss and gradients of the whole batch standardised
    together, as the authors' synchronised BatchNorm does."""
    z0, z1 = _pair(n=8, d=6, seed=1)
    dist_loss, grad = criterion_on_two_workers(tmp_path, "barlow_twins", {"redundancy_lambda": 0.05}, z0, z1)
    full = barlow_reference(z0, z1, 0.05).item()
    local_only = (barlow_reference(z0[:4], z1[:4], 0.05).item() + barlow_reference(z0[4:], z1[4:], 0.05).item()) / 2
    assert dist_loss == pytest.approx(full, rel=1e-4)
    assert abs(local_only - full) > 1e-2
    a = z0.clone().requires_grad_(True)
    barlow_reference(a, z1, 0.05).backward()
    torch.testing.assert_close(grad, a.grad, rtol=1e-3, atol=1e-5)

"""VICReg: the loss against lightly's and the authors' code written out, its distributed form on 2 gloo workers,
the config's coefficients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import VICRegLoss as LightlyVICRegLoss
from torch import nn

from spacessl.config import load_config
from spacessl.errors import SpacesslError
from spacessl.models.registry import build_method
from spacessl.models.vicreg import VICReg, VICRegLoss, covariance_loss, off_diagonal
from tests.models.distributed import criterion_on_two_workers


def vicreg_reference(x: torch.Tensor, y: torch.Tensor, sim: float = 25.0, std: float = 25.0,
                     cov: float = 1.0) -> torch.Tensor:
    """The loss as the authors' main_vicreg.py computes it (one process), the off-diagonal entries by a mask."""
    n, d = x.shape
    repr_loss = F.mse_loss(x, y)
    x, y = x - x.mean(dim=0), y - y.mean(dim=0)
    std_x, std_y = torch.sqrt(x.var(dim=0) + 1e-4), torch.sqrt(y.var(dim=0) + 1e-4)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    off = ~torch.eye(d, dtype=torch.bool)
    cov_x, cov_y = (x.T @ x) / (n - 1), (y.T @ y) / (n - 1)
    cov_loss = cov_x[off].pow(2).sum() / d + cov_y[off].pow(2).sum() / d
    return sim * repr_loss + std * std_loss + cov * cov_loss


def _pair(n: int = 16, d: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z0 = 0.7 * torch.randn(n, d, generator=g) + torch.randn(1, d, generator=g)  # std below 1: the hinge is active
    return z0, z0 + 0.3 * torch.randn(n, d, generator=g)


def test_off_diagonal_and_covariance_term():
    m = torch.arange(16.0).view(4, 4)
    assert off_diagonal(m).tolist() == [v for i, v in enumerate(range(16)) if i % 5]
    x = torch.randn(10, 6, dtype=torch.float64)
    c = torch.cov(x.T)
    assert covariance_loss(x).item() == pytest.approx(((c.pow(2).sum() - c.diagonal().pow(2).sum()) / 6).item())
    # uncorrelated columns: no covariance term
    assert covariance_loss(torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])).item() == 0.0


@pytest.mark.parametrize("coeffs", [(25.0, 25.0, 1.0), (10.0, 5.0, 0.5), (1.0, 0.0, 0.0)])
def test_loss_equals_lightly_and_reference(coeffs):
    z0, z1 = _pair()
    ours, theirs = z0.clone().requires_grad_(True), z0.clone().requires_grad_(True)
    loss = VICRegLoss(*coeffs)(ours, z1)
    ref = vicreg_reference(theirs, z1, *coeffs)
    lightly = LightlyVICRegLoss(*coeffs)(z0, z1)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, lightly, rtol=1e-5, atol=1e-5)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-6)


def test_collapsed_projections_pay_the_variance_term():
    """Identical, constant projections: no invariance or covariance cost, the whole hinge (1 - sqrt(eps))."""
    z = torch.ones(8, 4)
    assert VICRegLoss()(z, z).item() == pytest.approx(25.0 * (1 - 1e-2), rel=1e-5)
    with pytest.raises(SpacesslError, match="VICReg needs two"):
        VICRegLoss()(torch.ones(1, 4), torch.ones(1, 4))


def test_forward_wiring_and_config():
    from spacessl.train.loop import method_kwargs

    cfg = load_config(None, ["model.method=vicreg", "model.proj_hidden_dim=32", "model.proj_out_dim=8",
                             "model.sim_coeff=10", "model.std_coeff=5", "model.cov_coeff=0.5"])
    torch.manual_seed(0)
    m = build_method("vicreg", encoder=nn.Sequential(nn.Flatten(), nn.Linear(12, 16)), embed_dim=16,
                     **method_kwargs(cfg))
    assert isinstance(m, VICReg) and (m.criterion.sim_coeff, m.criterion.std_coeff, m.criterion.cov_coeff) \
        == (10.0, 5.0, 0.5)
    x0, x1 = torch.randn(6, 3, 4), torch.randn(6, 3, 4)
    out = m(x0, x1)
    assert set(out) == {"loss", "z"} and out["z"].shape == (6, 8) and not out["z"].requires_grad
    torch.testing.assert_close(out["loss"], vicreg_reference(m.project(x0), m.project(x1), 10, 5, 0.5),
                               rtol=1e-5, atol=1e-5)
    out["loss"].backward()
    assert m.encoder[1].weight.grad is not None
    with pytest.raises(SpacesslError, match="cov_coeff"):
        load_config(None, ["model.cov_coeff=-1"])
    with pytest.raises(SpacesslError, match="model.std_coeff"):
        VICReg(nn.Linear(4, 8), 8, std_coeff=-1.0)


def test_variance_and_covariance_over_every_worker(tmp_path):
    """Two gloo workers with half the batch each give the loss and gradients of the whole batch in one process
    (invariance averaged, variance and covariance over the gathered projections)."""
    z0, z1 = _pair(n=8, d=16, seed=1)
    dist_loss, grad = criterion_on_two_workers(tmp_path, "vicreg", {}, z0, z1)
    full = vicreg_reference(z0, z1).item()
    local_only = (vicreg_reference(z0[:4], z1[:4]).item() + vicreg_reference(z0[4:], z1[4:]).item()) / 2
    assert dist_loss == pytest.approx(full, abs=1e-4)
    assert abs(local_only - full) > 1e-2  # the check would catch per-worker variance and covariance
    a = z0.clone().requires_grad_(True)
    vicreg_reference(a, z1).backward()
    torch.testing.assert_close(grad, a.grad, rtol=1e-4, atol=1e-5)


def test_loss_in_float32_under_autocast():
    """Under bf16 autocast the encoder and head run in bf16, the loss's products in float32."""
    torch.manual_seed(0)
    m = build_method("vicreg", encoder=nn.Sequential(nn.Flatten(), nn.Linear(12, 16)), embed_dim=16,
                     proj_hidden_dim=32, proj_out_dim=64)
    x0, x1 = torch.randn(8, 3, 4), torch.randn(8, 3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x0, x1)
        z0, z1 = m.project(x0), m.project(x1)
    assert z0.dtype == torch.bfloat16 and out["loss"].dtype == torch.float32
    torch.testing.assert_close(out["loss"], vicreg_reference(z0.float(), z1.float()), rtol=1e-5, atol=1e-5)

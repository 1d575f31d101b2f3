"""SimSiam: symmetric negative-cosine loss with stop-gradient, against lightly's parts and by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NegativeCosineSimilarity
from torch import nn

from spacessl.models.registry import build_method
from spacessl.models.simsiam import SimSiam


def tiny_encoder() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16))


def test_negative_cosine_by_hand():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # cos = 1 and 1/sqrt(2)
    expected = -(1.0 + 2**-0.5) / 2
    m = SimSiam(tiny_encoder(), 16)
    assert m.criterion(p, z).item() == pytest.approx(expected, abs=1e-6)
    assert NegativeCosineSimilarity()(p, z).item() == pytest.approx(expected, abs=1e-6)


def test_heads_follow_spacessl():
    m = build_method("simsiam", encoder=tiny_encoder(), embed_dim=16, proj_hidden_dim=512, proj_out_dim=512,
                     pred_hidden_dim=128, temperature=0.5)  # temperature belongs to SimCLR: ignored
    linears = [mod for mod in m.projection_head.modules() if isinstance(mod, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(16, 512), (512, 512), (512, 512)]
    linears = [mod for mod in m.prediction_head.modules() if isinstance(mod, nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(512, 128), (128, 512)]


def _manual(m: SimSiam, x0, x1, stop_gradient: bool = True):
    z0 = m.projection_head(m.encoder(x0))
    z1 = m.projection_head(m.encoder(x1))
    p0, p1 = m.prediction_head(z0), m.prediction_head(z1)
    t0, t1 = (z0.detach(), z1.detach()) if stop_gradient else (z0, z1)
    return 0.5 * (-F.cosine_similarity(p0, t1).mean() - F.cosine_similarity(p1, t0).mean())


def test_loss_and_stop_gradient():
    torch.manual_seed(0)
    m = SimSiam(tiny_encoder(), 16, proj_hidden_dim=32, proj_out_dim=32, pred_hidden_dim=8)
    x0, x1 = torch.randn(8, 3, 4), torch.randn(8, 3, 4)
    out = m(x0, x1)
    assert set(out) == {"loss", "z"} and out["z"].shape == (8, 32) and not out["z"].requires_grad
    torch.testing.assert_close(out["loss"], _manual(m, x0, x1))
    assert -1.0 <= out["loss"].item() <= 1.0

    def grads(loss):
        m.zero_grad()
        loss.backward()
        return m.encoder[1].weight.grad.clone()

    g_ours = grads(m(x0, x1)["loss"])
    torch.testing.assert_close(g_ours, grads(_manual(m, x0, x1, stop_gradient=True)))
    assert not torch.allclose(g_ours, grads(_manual(m, x0, x1, stop_gradient=False)))

"""SimCLR: NT-Xent, decoupled and debiased losses against lightly and hand-written references; negatives gathered
across gloo workers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import DCLLoss, DCLWLoss, NTXentLoss
from torch import nn

from spacessl.config import load_config
from spacessl.errors import SpacesslError
from spacessl.models.debiased import DebiasedContrastiveLoss
from spacessl.models.registry import build_method
from spacessl.models.simclr import SimCLR
from tests.models.distributed import criterion_on_two_workers


def ntxent_reference(z0: torch.Tensor, z1: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent written out: 2N rows, each with its other view as positive and the 2N - 2 others as negatives."""
    n = z0.shape[0]
    z = F.normalize(torch.cat([z0, z1]), dim=1)  # (2N, D)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n) + n, torch.arange(n)])
    return F.cross_entropy(sim, target)


def dcl_reference(z0: torch.Tensor, z1: torch.Tensor, temperature: float) -> torch.Tensor:
    """Decoupled contrastive loss written out: each of the 2N rows scores its positive against the 2N - 2 others
    only, -s_pos / tau + log sum_neg exp(s_neg / tau), averaged over the rows."""
    n = z0.shape[0]
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    sim = z @ z.T / temperature
    pos = torch.cat([torch.arange(n) + n, torch.arange(n)])
    leave_out = torch.eye(2 * n, dtype=torch.bool)
    leave_out[torch.arange(2 * n), pos] = True
    return (-sim[torch.arange(2 * n), pos] + torch.logsumexp(sim.masked_fill(leave_out, float("-inf")), 1)).mean()


def debiased_reference(z0: torch.Tensor, z1: torch.Tensor, temperature: float, tau_plus: float,
                       beta: float) -> torch.Tensor:
    """The debiased / hard-negative loss as the authors' reference code computes it (Chuang et al. 2020, Robinson et
    al. 2021): plain exponentials of the similarities, the 2N - 2 negatives of each row selected by a mask."""
    n = z0.shape[0]
    out = F.normalize(torch.cat([z0, z1]), dim=1)
    neg = torch.exp(out @ out.T / temperature)
    mask = torch.ones(n, 2 * n, dtype=torch.bool)
    mask[torch.arange(n), torch.arange(n)] = False
    mask[torch.arange(n), torch.arange(n) + n] = False
    neg = neg.masked_select(torch.cat([mask, mask])).view(2 * n, -1)
    pos = torch.exp((F.normalize(z0, dim=1) * F.normalize(z1, dim=1)).sum(-1) / temperature)
    pos = torch.cat([pos, pos])
    m = 2 * n - 2
    imp = (beta * neg.log()).exp()
    reweight_neg = (imp * neg).sum(dim=-1) / imp.mean(dim=-1)
    ng = torch.clamp((-tau_plus * m * pos + reweight_neg) / (1 - tau_plus), min=m * math.exp(-1 / temperature))
    return (-torch.log(pos / (pos + ng))).mean()


def tiny_encoder(in_dim: int = 12, embed_dim: int = 16) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_dim, embed_dim))


def test_ntxent_by_hand():
    # orthogonal unit vectors, both views identical, tau = 1: every row has logits [1, 0, 0] -> log(1 + 2/e)
    z = torch.eye(2)
    expected = math.log(1 + 2 / math.e)
    m = SimCLR(tiny_encoder(), 16, temperature=1.0)
    assert m.criterion(z, z).item() == pytest.approx(expected, abs=1e-6)
    assert ntxent_reference(z, z, 1.0).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_loss_equals_lightly_and_reference(temperature):
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g)
    ours = SimCLR(tiny_encoder(), 16, temperature=temperature).criterion(z0, z1)
    lightly = NTXentLoss(temperature=temperature)(z0, z1)
    ref = ntxent_reference(z0, z1, temperature)
    torch.testing.assert_close(ours, lightly)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("temperature", [0.1, 0.2])
def test_decoupled_losses_equal_lightly_and_reference(temperature):
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g)
    dcl = SimCLR(tiny_encoder(), 16, temperature=temperature, loss="dcl").criterion(z0, z1)
    torch.testing.assert_close(dcl, DCLLoss(temperature=temperature)(z0, z1))
    torch.testing.assert_close(dcl, dcl_reference(z0, z1, temperature), rtol=1e-5, atol=1e-5)
    # the positive is out of the denominator: DCL is NT-Xent minus log(1 + exp(s_pos) / sum_neg exp(s_neg)) < NT-Xent
    assert dcl < ntxent_reference(z0, z1, temperature)
    dclw = SimCLR(tiny_encoder(), 16, temperature=temperature, loss="dclw").criterion(z0, z1)
    torch.testing.assert_close(dclw, DCLWLoss(temperature=temperature, sigma=0.5)(z0, z1))
    assert not torch.isclose(dclw, dcl)


@pytest.mark.parametrize("tau_plus,beta", [(0.1, 0.0), (0.17, 0.0), (0.1, 1.0), (0.5, 0.5), (0.9, 0.0)])
def test_debiased_loss_equals_reference(tau_plus, beta):
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g)
    m = SimCLR(tiny_encoder(), 16, temperature=0.2, loss="debiased", tau_plus=tau_plus, hard_negative_beta=beta)
    torch.testing.assert_close(m.criterion(z0, z1), debiased_reference(z0, z1, 0.2, tau_plus, beta))
    assert not torch.isclose(m.criterion(z0, z1), ntxent_reference(z0, z1, 0.2))


@pytest.mark.parametrize("temperature", [0.05, 0.2, 1.0])
def test_debiased_loss_without_prior_is_ntxent(temperature):
    g = torch.Generator().manual_seed(2)
    z0, z1 = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    loss = SimCLR(tiny_encoder(), 16, temperature=temperature, loss="debiased", tau_plus=0.0).criterion(z0, z1)
    torch.testing.assert_close(loss, NTXentLoss(temperature=temperature)(z0, z1))


def test_debiased_loss_stays_finite_where_exponentials_overflow():
    """At temperature 0.01 exp(s / t) reaches e^100, beyond float32; the shifted form keeps loss and gradient
    finite and equal to the float64 reference."""
    g = torch.Generator().manual_seed(3)
    z0 = torch.randn(8, 4, generator=g)
    z1 = (z0 + 0.05 * torch.randn(8, 4, generator=g)).requires_grad_(True)
    m = SimCLR(tiny_encoder(), 16, temperature=0.01, loss="debiased", tau_plus=0.1, hard_negative_beta=0.5)
    loss = m.criterion(z0, z1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad).all()
    ref = debiased_reference(z0.double(), z1.detach().double(), 0.01, 0.1, 0.5)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-4)


def test_loss_from_config_and_unknown_loss():
    from spacessl.train.loop import method_kwargs

    cfg = load_config(None, ["model.method=simclr", "model.loss=dcl", "model.temperature=0.2"])
    m = build_method("simclr", encoder=tiny_encoder(), embed_dim=16, **method_kwargs(cfg))
    assert isinstance(m.criterion, DCLLoss) and m.loss == "dcl"
    simsiam = load_config(None, ["model.method=simsiam", "model.loss=dcl"])  # SimCLR's option: SimSiam ignores it
    build_method("simsiam", encoder=tiny_encoder(), embed_dim=16, **method_kwargs(simsiam))
    with pytest.raises(SpacesslError, match="model.loss"):
        SimCLR(tiny_encoder(), 16, loss="infonce")
    with pytest.raises(SpacesslError, match="loss"):
        load_config(None, ["model.loss=infonce"])
    cfg = load_config(None, ["model.method=simclr", "model.loss=debiased", "model.tau_plus=0.2",
                             "model.hard_negative_beta=0.5"])
    m = build_method("simclr", encoder=tiny_encoder(), embed_dim=16, **method_kwargs(cfg))
    assert isinstance(m.criterion, DebiasedContrastiveLoss)
    assert (m.criterion.tau_plus, m.criterion.beta) == (0.2, 0.5)
    for bad in ("model.tau_plus=1.0", "model.tau_plus=-0.1", "model.hard_negative_beta=-1"):
        with pytest.raises(SpacesslError, match=bad.split("=")[0].split(".")[1]):
            load_config(None, [bad])
    with pytest.raises(SpacesslError, match="model.tau_plus"):
        SimCLR(tiny_encoder(), 16, loss="debiased", tau_plus=1.0)


def test_forward_wiring():
    torch.manual_seed(0)
    m = build_method("simclr", encoder=tiny_encoder(), embed_dim=16, temperature=0.2, proj_hidden_dim=32,
                     proj_out_dim=8, pred_hidden_dim=4)  # pred_hidden_dim belongs to SimSiam: ignored
    x0, x1 = torch.randn(6, 3, 4), torch.randn(6, 3, 4)
    out = m(x0, x1)
    assert set(out) == {"loss", "z"} and out["loss"].ndim == 0 and out["z"].shape == (6, 8)
    assert not out["z"].requires_grad
    z0, z1 = m.project(x0), m.project(x1)
    torch.testing.assert_close(out["loss"], ntxent_reference(z0, z1, 0.2), rtol=1e-5, atol=1e-5)
    out["loss"].backward()
    assert m.encoder[1].weight.grad is not None


def test_joint_views_normalise_both_views_together():
    torch.manual_seed(0)
    sep = build_method("simclr", encoder=tiny_encoder(), embed_dim=16, temperature=0.2, proj_hidden_dim=32,
                       proj_out_dim=8)
    joint = build_method("simclr", encoder=tiny_encoder(), embed_dim=16, temperature=0.2, proj_hidden_dim=32,
                         proj_out_dim=8, joint_views=True)
    joint.load_state_dict(sep.state_dict())
    x0, x1 = torch.randn(6, 3, 4), torch.randn(6, 3, 4) + 1.0
    # training mode: the head's BatchNorm takes its statistics over the 12 rows of both views
    z0, z1 = joint.project(torch.cat([x0, x1])).chunk(2)
    out = joint(x0, x1)
    torch.testing.assert_close(out["loss"], ntxent_reference(z0, z1, 0.2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["z"], z0.detach())
    assert abs(float(out["loss"]) - float(sep(x0, x1)["loss"])) > 1e-3
    # evaluation mode: no batch statistics, so one pass or two give the same loss (same running statistics)
    joint.load_state_dict(sep.state_dict())
    joint.eval(), sep.eval()
    torch.testing.assert_close(joint(x0, x1)["loss"], sep(x0, x1)["loss"], rtol=1e-5, atol=1e-6)
    assert load_config(None, ["model.joint_views=true"]).model.joint_views


# ------------------------------------------------------------------------------- distributed (2 gloo workers)


LOSS_REFERENCES = {
    "ntxent": ({}, lambda z0, z1: ntxent_reference(z0, z1, 0.5)),
    "debiased": ({"loss": "debiased", "tau_plus": 0.1, "hard_negative_beta": 1.0},
                 lambda z0, z1: debiased_reference(z0, z1, 0.5, 0.1, 1.0)),
}


@pytest.mark.parametrize("loss", list(LOSS_REFERENCES))
def test_negatives_gathered_across_workers(tmp_path, loss):
    """Two gloo workers with half the batch each give the single-process loss and gradients of the whole batch."""
    kwargs, reference = LOSS_REFERENCES[loss]
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    dist_loss, grad = criterion_on_two_workers(tmp_path, "simclr", {"temperature": 0.5, **kwargs}, z0, z1)
    full = reference(z0, z1).item()
    local_only = (reference(z0[:4], z1[:4]).item() + reference(z0[4:], z1[4:]).item()) / 2
    assert dist_loss == pytest.approx(full, abs=1e-5)
    assert abs(local_only - full) > 1e-3  # the check would catch in-batch-only negatives
    # gradients: the mean of the per-worker losses, differentiated per worker, matches the full-batch gradient
    a = z0.clone().requires_grad_(True)
    reference(a, z1).backward()
    torch.testing.assert_close(grad, a.grad, rtol=1e-4, atol=1e-5)


def test_projection_head_layers_from_config():
    from spacessl.train.loop import method_kwargs

    def linears(m: nn.Module) -> list[tuple[int, int]]:
        return [(x.in_features, x.out_features) for x in m.projection_head.modules() if isinstance(x, nn.Linear)]

    two = build_method("simclr", encoder=tiny_encoder(), embed_dim=16,
                       **method_kwargs(load_config(None, ["model.proj_hidden_dim=32", "model.proj_out_dim=8"])))
    three = build_method("simclr", encoder=tiny_encoder(), embed_dim=16,
                         **method_kwargs(load_config(None, ["model.proj_hidden_dim=32", "model.proj_out_dim=8",
                                                            "model.proj_layers=3"])))
    assert linears(two) == [(16, 32), (32, 8)]
    assert linears(three) == [(16, 32), (32, 32), (32, 8)]
    x0, x1 = torch.randn(6, 3, 4), torch.randn(6, 3, 4)
    assert three(x0, x1)["z"].shape == (6, 8)
    with pytest.raises(SpacesslError, match="proj_layers"):
        load_config(None, ["model.proj_layers=1"])
    with pytest.raises(SpacesslError, match="model.proj_layers"):
        SimCLR(tiny_encoder(), 16, proj_layers=1)

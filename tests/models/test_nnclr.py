"""NNCLR: the support set's nearest neighbours, delay and ring; the loss against a reference written out."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from torch import nn

from spacessl.config import load_config
from spacessl.errors import SpacesslError
from spacessl.models.nnclr import NNCLR, SupportSet
from spacessl.models.registry import build_method


def unit(rows: list[list[float]]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_nearest_is_the_most_similar_entry_and_self_while_empty():
    s = SupportSet(8, 2)
    z = torch.tensor([[3.0, 0.1], [0.0, -2.0]])
    torch.testing.assert_close(s.nearest(z), F.normalize(z, dim=1))  # empty: the projection itself
    s.add(unit([[1, 0], [0, 1], [-1, 0], [0, -1]]))
    assert s.filled == 4
    torch.testing.assert_close(s.nearest(z), unit([[1, 0], [0, -1]]))
    assert not s.nearest(z.requires_grad_(True)).requires_grad


def test_delay_holds_batches_back():
    s = SupportSet(8, 2, delay=2)
    a, b, c = unit([[1, 0]]), unit([[0, 1]]), unit([[-1, 0]])
    s.add(a)
    s.add(b)
    assert s.filled == 0  # both still held back
    s.add(c)
    assert s.filled == 1 and torch.equal(s.bank[0], a[0])  # a, two updates later
    torch.testing.assert_close(s.nearest(unit([[-1, 0.1]])), a)  # c is not searchable yet, a is the only entry


def test_ring_keeps_the_last_entries():
    s = SupportSet(5, 1)
    for i in range(4):
        s.add(torch.full((2, 1), float(i + 1)))  # 8 entries into a ring of 5
    assert s.filled == 5 and s.ptr == 3
    t = SupportSet(4, 2)  # the order: a second batch wraps around and overwrites the oldest rows
    rows = unit([[1, 0], [0, 1], [-1, 0], [0, -1], [1, 1], [-1, 1]])
    t.add(rows[:3])
    t.add(rows[3:])
    torch.testing.assert_close(t.bank, torch.stack([rows[4], rows[5], rows[2], rows[3]]))
    big = SupportSet(3, 2)
    big.add(rows)  # a batch larger than the set: its last 3 rows
    torch.testing.assert_close(big.bank, rows[3:])


def test_loss_equals_reference_and_updates_support_in_training_only():
    torch.manual_seed(0)
    m = NNCLR(nn.Sequential(nn.Flatten(), nn.Linear(12, 16)), 16, proj_hidden_dim=32, proj_out_dim=8,
              pred_hidden_dim=32, temperature=0.2, memory_bank_size=32, gather_distributed=False)
    x0, x1 = torch.randn(6, 3, 4), torch.randn(6, 3, 4)
    m(x0, x1)["loss"].backward()  # first step: empty set, the neighbours are the projections themselves
    assert m.support.filled == 6
    bank = F.normalize(m.support.bank[:6].clone(), dim=1)
    x0, x1 = torch.randn(6, 3, 4), torch.randn(6, 3, 4)
    out = m(x0, x1)
    # reference, from the same module's heads in the same mode: NN by hand over the 6 stored rows
    z0, z1 = m.project(x0), m.project(x1)
    p0, p1 = m.prediction_head(z0), m.prediction_head(z1)
    nn0 = bank[(F.normalize(z0, dim=1) @ bank.T).argmax(1)]
    nn1 = bank[(F.normalize(z1, dim=1) @ bank.T).argmax(1)]
    ntx = NTXentLoss(temperature=0.2)
    expected = 0.5 * (ntx(nn0, p1) + ntx(nn1, p0))
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert m.support.filled == 12 and out["z"].shape == (6, 8) and not out["z"].requires_grad
    out["loss"].backward()
    assert m.encoder[1].weight.grad is not None
    m.eval()
    with torch.no_grad():
        m(x0, x1)
    assert m.support.filled == 12  # evaluation does not enter projections


def test_from_config_and_errors():
    from spacessl.train.loop import method_kwargs

    cfg = load_config(None, ["model.method=nnclr", "model.memory_bank_size=128", "model.nn_delay_steps=3",
                             "model.pred_hidden_dim=64", "model.proj_out_dim=16"])
    m = build_method("nnclr", encoder=nn.Sequential(nn.Flatten(), nn.Linear(12, 16)), embed_dim=16,
                     **method_kwargs(cfg))
    assert (m.support.size, m.support.delay) == (128, 3) and m.support.bank.shape == (128, 16)
    assert "support" not in "".join(m.state_dict())  # not checkpointed
    with pytest.raises(SpacesslError, match="nn_delay_steps"):
        load_config(None, ["model.nn_delay_steps=-1"])
    with pytest.raises(SpacesslError, match="model.memory_bank_size"):
        SupportSet(0, 4)
    with pytest.raises(SpacesslError, match="model.nn_delay_steps"):
        SupportSet(4, 4, delay=-2)

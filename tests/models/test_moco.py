"""MoCo: InfoNCE against lightly's memory-bank NT-Xent, split BatchNorm against per-group batch norm, the momentum
update, the queue, and the config that selects it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lightly.loss import NTXentLoss
from torch import nn

from spacessl.config import Config, load_config
from spacessl.errors import ConfigError, SpacesslError
from spacessl.models.moco import MoCo, SplitBatchNorm, split_batchnorm
from spacessl.models.registry import build_method
from spacessl.train.loop import build_optimizer, method_kwargs


def bn_encoder(in_dim: int = 12, embed_dim: int = 16) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_dim, embed_dim), nn.BatchNorm1d(embed_dim), nn.ReLU())


def test_info_nce_by_hand():
    # q = k = e0, queue = [e1, -e0], tau = 1: logits [1, 0, -1] -> -log(e / (e + 1 + 1/e))
    m = MoCo(bn_encoder(), 16, proj_out_dim=2, temperature=1.0, memory_bank_size=2)
    e0 = torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    expected = -math.log(math.e / (math.e + 1 + 1 / math.e))
    assert m._info_nce(e0, e0, queue).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 0.2])
def test_info_nce_equals_lightly_memory_bank_ntxent(temperature):
    g = torch.Generator().manual_seed(0)
    queue = F.normalize(torch.randn(64, 32, generator=g), dim=1)  # (K, P)
    q, k = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g)
    m = MoCo(bn_encoder(), 16, proj_out_dim=32, temperature=temperature, memory_bank_size=64)
    lightly = NTXentLoss(temperature=temperature, memory_bank_size=(64, 32))
    lightly.memory_bank.bank.copy_(queue)
    torch.testing.assert_close(m._info_nce(q, F.normalize(k, dim=1), queue), lightly(q, k), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(16, 3, 4, 4), (16, 5, 7)])
def test_split_batchnorm_normalises_each_group(shape):
    g = torch.Generator().manual_seed(1)
    bn = nn.BatchNorm2d(shape[1]) if len(shape) == 4 else nn.BatchNorm1d(shape[1])
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0, generator=g)
        bn.bias.uniform_(-1.0, 1.0, generator=g)
    x = torch.randn(*shape, generator=g) * 3 + 1
    split = SplitBatchNorm(bn, 4)
    y = split(x)
    for j in range(4):  # group j holds samples j, j + 4, j + 8, ...
        ref = F.batch_norm(x[j::4], None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
        torch.testing.assert_close(y[j::4], ref, rtol=1e-5, atol=1e-5)
    # not a multiple of the splits, or too few per group: normalised as one batch
    for n in (6, 4):
        torch.testing.assert_close(split(x[:n]), F.batch_norm(x[:n], None, None, bn.weight, bn.bias, training=True,
                                                              eps=bn.eps), rtol=1e-5, atol=1e-5)


def test_split_batchnorm_keeps_parameter_names_and_order():
    from spacessl.models.encoders import build_encoder

    enc = build_encoder("resnet18_s2d", modality="image", in_channels=1)
    names = [n for n, _ in enc.named_parameters()]
    split = split_batchnorm(build_encoder("resnet18_s2d", modality="image", in_channels=1), 8)
    assert [n for n, _ in split.named_parameters()] == names
    assert not any(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in split.modules())
    assert sum(isinstance(mod, SplitBatchNorm) for mod in split.modules()) == sum(
        isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in enc.modules())


def test_momentum_update_queue_and_gradients():
    torch.manual_seed(0)
    m = MoCo(bn_encoder(), 16, proj_hidden_dim=16, proj_out_dim=8, memory_bank_size=32, key_momentum=0.9,
             bn_splits=1, gather_distributed=False)
    with torch.no_grad():  # key weights apart from the query weights, so that the update shows
        for p in (*m.key_encoder.parameters(), *m.key_projection_head.parameters()):
            p.add_(1.0)
    query = [p.detach().clone() for p in (*m.encoder.parameters(), *m.projection_head.parameters())]
    keys = [p.detach().clone() for p in (*m.key_encoder.parameters(), *m.key_projection_head.parameters())]
    bank = m.queue.bank.clone()
    x0, x1 = torch.randn(8, 12), torch.randn(8, 12)

    m.eval()
    with torch.no_grad():
        m(x0, x1)  # scoring: neither the key weights nor the queue move
    torch.testing.assert_close(m.queue.bank, bank)

    m.train()
    out = m(x0, x1)
    out["loss"].backward()
    now = [p.detach() for p in (*m.key_encoder.parameters(), *m.key_projection_head.parameters())]
    for k_new, k_old, q in zip(now, keys, query):
        torch.testing.assert_close(k_new, 0.9 * k_old + 0.1 * q)
    assert all(p.grad is None for p in (*m.key_encoder.parameters(), *m.key_projection_head.parameters()))
    assert all(p.grad is not None for p in m.encoder.parameters())
    # the batch's keys, from the updated key weights, head the queue; the rest is as it was
    torch.testing.assert_close(m.queue.bank[:8], m.keys(x1))
    torch.testing.assert_close(m.queue.bank[8:], bank[8:])
    assert out["z"].shape == (8, 8) and not out["z"].requires_grad

    cfg = Config.model_validate({"train": {"batch_size": 8}})
    opt = build_optimizer(cfg, m.parameters(), global_batch=8)
    trained = {id(p) for group in opt.param_groups for p in group["params"]}
    assert trained == {id(p) for p in (*m.encoder.parameters(), *m.projection_head.parameters())}


def test_symmetric_loss_scores_both_views_and_queues_both_keys():
    torch.manual_seed(0)
    m = MoCo(bn_encoder(), 16, proj_hidden_dim=16, proj_out_dim=8, memory_bank_size=32, bn_splits=1,
             symmetric=True, gather_distributed=False)
    x0, x1 = torch.randn(8, 12), torch.randn(8, 12)
    bank = m.queue.bank.clone()
    out = m(x0, x1)
    k1, k0 = m.keys(x1), m.keys(x0)
    expected = 0.5 * (m._info_nce(m.project(x0), k1, bank) + m._info_nce(m.project(x1), k0, bank))
    torch.testing.assert_close(out["loss"], expected)
    torch.testing.assert_close(m.queue.bank[:16], torch.cat([k1, k0]))


def test_config_selects_moco_and_checks_its_options():
    cfg = load_config(None, ["model.method=moco", "model.memory_bank_size=256", "model.key_momentum=0.995",
                             "model.bn_splits=4", "model.temperature=0.1"])
    m = build_method("moco", encoder=bn_encoder(), embed_dim=16, **method_kwargs(cfg))
    assert isinstance(m, MoCo)
    assert m.queue.bank.shape == (256, cfg.model.proj_out_dim)
    assert (m.key_momentum, m.temperature) == (0.995, 0.1)
    assert sum(isinstance(mod, SplitBatchNorm) for mod in m.key_encoder.modules()) == 1
    assert m.key_encoder[2].splits == 4
    with pytest.raises(ConfigError, match="model.key_momentum"):
        load_config(None, ["model.key_momentum=1.0"])
    with pytest.raises(SpacesslError, match="model.key_momentum"):
        MoCo(bn_encoder(), 16, key_momentum=1.5)
    with pytest.raises(SpacesslError, match="memory_bank_size"):
        MoCo(bn_encoder(), 16, memory_bank_size=0)

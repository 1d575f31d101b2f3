"""2 gloo workers under Ray Train match 1 worker on the same global batch (SimCLR negatives really gathered; MoCo's
queue and NNCLR's support set filled with the projections of both workers).

One optimiser step of SimCLR (ResNet-18, 32 px, global batch 16, no augmentation randomness) through the training
loop's own ``train_step``/``build_optimizer``, on fixed data: with 2 workers each takes 8 rows, DDP averages the
gradients and NT-Xent gathers the other worker's projections. Stated tolerance: the loss averaged over workers
matches the single-worker loss to 1e-5 (absolute), and the weights after the step to 1e-6 (absolute) / 1e-4
(relative). BatchNorm is held in eval mode: with per-worker batch statistics (plain DDP, no SyncBatchNorm) the
forward itself differs by design, which is not what this test is about. Without gathering (``gather_distributed=
False``) each worker sees only its own 14 negatives and the loss differs by far more than the tolerance.

MoCo's step is checked the same way on an encoder without BatchNorm (its key encoder normalises over the local,
shuffled batch by design): the loss, the weights after the step, and the queue, which must hold the keys of the
whole global batch in the same order on both workers as with one worker. NNCLR (BatchNorm in eval mode, as SimCLR)
takes two steps, so that the second finds its neighbours among the first's projections of both workers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

GLOBAL_BATCH = 16
LOSS_ATOL = 1e-5
WEIGHT_ATOL, WEIGHT_RTOL = 1e-6, 1e-4


class _FixedViews:
    """Augmentation without randomness: the first view is the input, the second its horizontal mirror."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, generator=None):
        self.calls += 1
        return x if self.calls % 2 else x.flip(-1)


def _step(method, world: int, rank: int, steps: int = 1) -> dict:
    """``steps`` optimiser steps of ``method`` on this worker's slice of the fixed global batch, through the loop's
    own ``build_optimizer``/``train_step``, DDP-wrapped when ``world > 1``; the last loss, averaged over the
    workers."""
    import ray.train.torch
    import torch.distributed as dist

    from spacessl.config import Config
    from spacessl.train.loop import build_optimizer, train_step

    cfg = Config.model_validate({"train": {"batch_size": GLOBAL_BATCH, "lr": 0.3, "momentum": 0.9,
                                           "weight_decay": 0.0}})
    optimizer = build_optimizer(cfg, method.parameters(), global_batch=GLOBAL_BATCH)
    model = ray.train.torch.prepare_model(method) if world > 1 else method
    x = torch.from_numpy(np.random.default_rng(0).random((GLOBAL_BATCH, 1, 32, 32), dtype=np.float32))
    local = GLOBAL_BATCH // world
    for _ in range(steps):
        out = train_step(model, x[rank * local:(rank + 1) * local], augment=_FixedViews(), generator=None,
                         optimizer=optimizer, scheduler=None)
    loss = out["loss"].clone()
    if world > 1:
        dist.all_reduce(loss)
        loss /= world
    weights = torch.cat([p.detach().flatten() for p in method.parameters()])
    return {"loss": float(loss), "weights": weights.numpy(), "lr": optimizer.param_groups[0]["lr"]}


def _one_step(world: int, rank: int, gather: bool) -> dict:
    """One SimCLR step (ResNet-18, BatchNorm in eval mode)."""
    from torch import nn

    from spacessl.models import build_encoder, build_method

    torch.manual_seed(0)
    encoder = build_encoder("resnet18", modality="image", in_channels=1)
    method = build_method("simclr", encoder=encoder, proj_hidden_dim=64, proj_out_dim=32, temperature=0.5,
                          gather_distributed=gather)
    method.train()
    for m in method.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return _step(method, world, rank)


def _one_moco_step(world: int, rank: int) -> dict:
    """One MoCo step (queue of 64, an encoder without BatchNorm); also returns the queue after the step."""
    from torch import nn

    from spacessl.models import build_method

    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 64), nn.ReLU())
    method = build_method("moco", encoder=encoder, embed_dim=64, proj_hidden_dim=64, proj_out_dim=32,
                          temperature=0.2, memory_bank_size=64, bn_splits=1, gather_distributed=True).train()
    return {**_step(method, world, rank), "queue": method.queue.bank.numpy().copy()}


def _nnclr_steps(world: int, rank: int) -> dict:
    """Two NNCLR steps (ResNet-18, BatchNorm in eval mode); also returns the support set after them."""
    from torch import nn

    from spacessl.models import build_encoder, build_method

    torch.manual_seed(0)
    encoder = build_encoder("resnet18", modality="image", in_channels=1)
    method = build_method("nnclr", encoder=encoder, proj_hidden_dim=64, proj_out_dim=32, pred_hidden_dim=64,
                          temperature=0.5, memory_bank_size=64, gather_distributed=True).train()
    for m in method.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    out = _step(method, world, rank, steps=2)
    return {**out, "support": method.support.bank.numpy().copy(), "filled": method.support.filled}


def _two_workers(config: dict) -> dict:
    import ray.train

    torch.set_num_threads(1)
    ctx = ray.train.get_context()
    out = {f"gather={g}": _one_step(ctx.get_world_size(), ctx.get_world_rank(), g) for g in (True, False)}
    out["moco"] = _one_moco_step(ctx.get_world_size(), ctx.get_world_rank())
    out["nnclr"] = _nnclr_steps(ctx.get_world_size(), ctx.get_world_rank())
    ray.train.report({"loss": out["gather=True"]["loss"]})
    return out


@pytest.fixture(scope="module")
def two_workers(ray_cluster, tmp_path_factory) -> dict:
    """What each step gave on rank 0 of 2 gloo workers (one Ray Train run for all the tests here)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(_two_workers, scaling_config=ScalingConfig(num_workers=2, use_gpu=False,
                                                                       resources_per_worker={"CPU": 1}),
                           run_config=RunConfig(name="gloo", storage_path=str(tmp_path_factory.mktemp("gloo"))))
    return trainer.fit().return_value


def test_two_gloo_workers_match_one_worker(two_workers):
    one = _one_step(1, 0, True)  # the reference: one worker, the whole global batch
    two, two_local = two_workers["gather=True"], two_workers["gather=False"]
    assert one["lr"] == two["lr"] == pytest.approx(0.3 * GLOBAL_BATCH / 256)  # linear rule on the global batch
    assert abs(one["loss"] - two["loss"]) < LOSS_ATOL, (one["loss"], two["loss"])
    np.testing.assert_allclose(two["weights"], one["weights"], atol=WEIGHT_ATOL, rtol=WEIGHT_RTOL)
    # without gathering, each worker contrasts against its own half only: a different loss
    assert abs(two_local["loss"] - one["loss"]) > 100 * LOSS_ATOL, (two_local["loss"], one["loss"])


def test_two_gloo_workers_fill_moco_queue_as_one_worker(two_workers):
    one, two = _one_moco_step(1, 0), two_workers["moco"]
    assert abs(one["loss"] - two["loss"]) < LOSS_ATOL, (one["loss"], two["loss"])
    np.testing.assert_allclose(two["weights"], one["weights"], atol=WEIGHT_ATOL, rtol=WEIGHT_RTOL)
    # the whole global batch's keys head the queue, in batch order; the rest is the same random start
    np.testing.assert_allclose(two["queue"], one["queue"], atol=1e-6)
    assert not np.allclose(one["queue"][:GLOBAL_BATCH], one["queue"][GLOBAL_BATCH:2 * GLOBAL_BATCH])


def test_two_gloo_workers_fill_nnclr_support_set_as_one_worker(two_workers):
    one, two = _nnclr_steps(1, 0), two_workers["nnclr"]
    assert one["filled"] == two["filled"] == 2 * GLOBAL_BATCH  # both steps' projections of the whole global batch
    np.testing.assert_allclose(two["support"], one["support"], atol=1e-5)
    assert abs(one["loss"] - two["loss"]) < LOSS_ATOL, (one["loss"], two["loss"])
    np.testing.assert_allclose(two["weights"], one["weights"], atol=WEIGHT_ATOL, rtol=WEIGHT_RTOL)

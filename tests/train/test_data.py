"""Worker shares of an epoch: held-out chunks never trained on, disjoint shares, equal step counts."""

from __future__ import annotations

import pytest
import torch

from spacessl.archive import open_archive
from spacessl.errors import ConfigError
from spacessl.train import data as tdata
from tests.train.tiny import write_tiny_images


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    # 200 rows in chunks of 32: 7 chunks, the last one 8 rows
    return open_archive(write_tiny_images(tmp_path_factory.mktemp("d") / "a.zarr", n=200, size=16))


def test_holdout_is_deterministic_and_excluded(archive):
    held = tdata.holdout_chunks(archive, 0.3, seed=1)
    assert held == tdata.holdout_chunks(archive, 0.3, seed=1) and len(held) == 2
    pool = tdata.train_chunks(archive, held)
    assert sorted(pool + held) == list(range(archive.num_chunks))
    assert tdata.holdout_chunks(archive, 0.0) == []


def test_shares_are_disjoint_with_equal_steps(archive):
    held = tdata.holdout_chunks(archive, 0.2, seed=0)
    pool = tdata.train_chunks(archive, held)
    for epoch in range(3):
        plans = [tdata.plan_epoch(archive, pool, world_size=2, rank=r, epoch=epoch, seed=0, local_batch=8)
                 for r in range(2)]
        assert plans[0].steps == plans[1].steps == min(plans[0].rows_per_worker) // 8
        assert not set(plans[0].chunks) & set(plans[1].chunks)
        assert sorted(plans[0].chunks + plans[1].chunks) == pool
        batches = list(tdata.epoch_batches(archive, plans[1], local_batch=8, seed=epoch))
        assert len(batches) == plans[1].steps and all(len(b) == 8 for b in batches)
        allowed = {i for c in plans[1].chunks for i in range(*archive.chunk_range(c))}
        assert all(set(b.ids.tolist()) <= allowed for b in batches)
    capped = tdata.plan_epoch(archive, pool, world_size=1, rank=0, epoch=0, seed=0, local_batch=8, max_steps=2)
    assert capped.steps == 2


def test_batch_must_split_and_fit(archive):
    assert tdata.local_batch_size(64, 4) == 16
    with pytest.raises(ConfigError, match="multiple of 3"):
        tdata.local_batch_size(64, 3)
    with pytest.raises(ConfigError, match="too small"):
        tdata.plan_epoch(archive, [0], world_size=1, rank=0, epoch=0, seed=0, local_batch=64)


def test_read_rows_caps_and_keeps_labels(archive):
    rows = tdata.read_rows(archive, [2, 0], 40)
    assert len(rows.ids) == 40 and rows.ids[0] == 64 and len(rows.meta["label"]) == 40


def test_device_batches_keep_order_and_values(archive):
    import torch

    from spacessl.augment import Preprocess

    pre = Preprocess.for_archive(archive)
    plan = tdata.plan_epoch(archive, list(range(archive.num_chunks)), world_size=1, rank=0, epoch=0, seed=0,
                            local_batch=16)
    direct = [pre(b.samples) for b in tdata.epoch_batches(archive, plan, local_batch=16, seed=3)]
    ahead = list(tdata.device_batches(tdata.epoch_batches(archive, plan, local_batch=16, seed=3), pre,
                                      torch.device("cpu"), depth=2))
    assert len(ahead) == len(direct) == plan.steps
    for a, d in zip(ahead, direct, strict=True):
        torch.testing.assert_close(a, d, rtol=0, atol=0)


def test_device_batches_carry_temporal_pairs(archive):
    import torch

    from spacessl.augment import Preprocess

    pre = Preprocess.for_archive(archive)
    plan = tdata.plan_epoch(archive, list(range(archive.num_chunks)), world_size=1, rank=0, epoch=0, seed=0,
                            local_batch=16)
    raw = list(tdata.epoch_batches(archive, plan, local_batch=16, seed=3, pair_within_s=6.0))
    items = list(tdata.device_batches(tdata.epoch_batches(archive, plan, local_batch=16, seed=3, pair_within_s=6.0),
                                      pre, torch.device("cpu"), pairs=True))
    assert len(items) == len(raw) == plan.steps
    for (x, xp), b in zip(items, raw, strict=True):
        torch.testing.assert_close(x, pre(b.samples), rtol=0, atol=0)
        torch.testing.assert_close(xp, pre(b.pairs), rtol=0, atol=0)
        assert not torch.equal(x, xp)  # frames 3 s apart: every partner is another frame
    with pytest.raises(ValueError, match="pair_within_s"):
        list(tdata.device_batches(tdata.epoch_batches(archive, plan, local_batch=16, seed=3), pre,
                                  torch.device("cpu"), pairs=True))


def test_device_batches_raise_reader_errors_and_stop_early(archive):
    import threading

    import torch

    def failing():
        yield from tdata.epoch_batches(archive, plan, local_batch=16, seed=0)
        raise RuntimeError("chunk 3 unreadable")

    plan = tdata.plan_epoch(archive, list(range(archive.num_chunks)), world_size=1, rank=0, epoch=0, seed=0,
                            local_batch=16)
    with pytest.raises(RuntimeError, match="chunk 3 unreadable"):
        list(tdata.device_batches(failing(), lambda x: torch.from_numpy(x.astype("float32")), torch.device("cpu")))
    it = tdata.device_batches(tdata.epoch_batches(archive, plan, local_batch=16, seed=0),
                              lambda x: torch.from_numpy(x.astype("float32")), torch.device("cpu"), depth=1)
    next(it)
    it.close()  # a consumer that stops early leaves no prefetch thread behind
    assert not any(t.name == "spacessl-device-prefetch" for t in threading.enumerate())


def test_stretch_travels_from_the_config_to_the_embedding_path(archive, tmp_path):
    """The per-frame stretch a model was trained with is recorded in its info and rebuilt when embedding."""
    from spacessl.embed.embedder import build_preprocess
    from spacessl.train.loop import build_components
    from tests.train.tiny import tiny_config

    cfg = tiny_config(archive.url, tmp_path, "data.stretch=percentile", "data.stretch_percentiles=[5, 95]")
    comps = build_components(cfg, archive)
    assert comps.info["stretch"] == "percentile" and comps.info["stretch_percentiles"] == [5.0, 95.0]
    rebuilt = build_preprocess(archive, comps.info)
    assert str(rebuilt) == str(comps.preprocess) and "stretch='percentile'" in str(rebuilt)
    raw = archive.read(0, 8, fields=[]).samples
    x = rebuilt(raw)
    assert torch.equal(x, comps.preprocess(raw))
    assert torch.allclose(x.amax(dim=(1, 2, 3)), torch.ones(8))  # each frame spans [0, 1]
    plain = build_preprocess(archive, {k: v for k, v in comps.info.items() if not k.startswith("stretch")})
    assert plain.stretch == "none"  # models trained before the option keep their preprocessing


def test_device_batches_preprocess_on_one_thread_beside_a_cpu_step(archive):
    # a second OpenMP team beside the step's would slow each of the step's operators (spacessl.train.threads)
    from spacessl.augment import Preprocess

    pre = Preprocess.for_archive(archive)
    seen: list[int] = []

    def counting(x):
        seen.append(torch.get_num_threads())
        return pre(x)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        plan = tdata.plan_epoch(archive, list(range(archive.num_chunks)), world_size=1, rank=0, epoch=0, seed=0,
                                local_batch=16)
        got = list(tdata.device_batches(tdata.epoch_batches(archive, plan, local_batch=16, seed=3), counting,
                                        torch.device("cpu")))
        assert len(got) == plan.steps and seen == [1] * plan.steps
        assert torch.get_num_threads() == 2  # the consumer's (the step's) threads as they were
    finally:
        torch.set_num_threads(before)

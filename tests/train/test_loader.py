"""Loader processes: the threaded path's batches reproduced, shares split without loss, errors and shutdown."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from spacessl.archive import open_archive
from spacessl.augment import Preprocess
from spacessl.train import data as tdata
from spacessl.train.loader import EpochWork, ProcessBatches, process_quotas
from tests.train.tiny import write_tiny_images

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    # 200 rows in chunks of 32: 7 chunks, the last one 8 rows
    return open_archive(write_tiny_images(tmp_path_factory.mktemp("l") / "a.zarr", n=200, size=16))


def _work(archive, epochs, batch=16, max_steps=None):
    pool = list(range(archive.num_chunks))
    return [EpochWork(e, tdata.plan_epoch(archive, pool, world_size=1, rank=0, epoch=e, seed=0, local_batch=batch,
                                          max_steps=max_steps), seed=100 + e) for e in epochs]


@pytest.mark.parametrize("rows, steps, batch, expected", [
    ([96, 64], 10, 16, [6, 4]),  # whole batches of each share
    ([96, 64], 5, 16, [2, 3]),  # capped: trimmed from the largest down
    ([40, 40], 5, 16, [3, 2]),  # remainders that fill a batch only together: one process re-reads a few rows
    ([32, 0], 2, 16, [2, 0]),  # a process without rows makes nothing
    ([32, 0], 7, 16, [7, 0]),  # ... even when the others must re-read their rows
    ([40, 8], 3, 16, [3, 0]),  # nor does one with less than a batch
])
def test_quotas_sum_to_the_epoch(rows, steps, batch, expected):
    quotas = process_quotas(rows, steps, batch)
    assert quotas == expected and sum(quotas) == steps


def test_a_split_without_a_whole_batch_is_refused(archive):
    from spacessl.errors import ConfigError

    [w] = _work(archive, [0], batch=64)  # 200 rows: 3 batches of 64; 7 chunks over 7 processes: 32 rows each
    with pytest.raises(ConfigError, match="runtime.reader_processes=7 .* lower runtime.reader_processes"):
        ProcessBatches(archive.url, [w], local_batch=64, preprocess=Preprocess.for_archive(archive), device=CPU,
                       processes=7)


def test_one_process_reproduces_the_threaded_batches(archive):
    pre = Preprocess.for_archive(archive)
    work = _work(archive, [0, 1])
    with ProcessBatches(archive.url, work, local_batch=16, preprocess=pre, device=CPU, processes=1) as loader:
        for w in work:
            threaded = list(tdata.device_batches(tdata.epoch_batches(archive, w.plan, local_batch=16, seed=w.seed),
                                                 pre, CPU))
            got = list(loader.epoch(w.epoch))
            assert len(got) == len(threaded) == w.plan.steps
            for a, b in zip(got, threaded, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_one_process_carries_temporal_pairs(archive):
    pre = Preprocess.for_archive(archive)
    [w] = _work(archive, [0])
    raw = list(tdata.epoch_batches(archive, w.plan, local_batch=16, seed=w.seed, pair_within_s=6.0))
    with ProcessBatches(archive.url, [w], local_batch=16, preprocess=pre, device=CPU, pair_within_s=6.0) as loader:
        got = list(loader.epoch(0))
    assert len(got) == len(raw) == w.plan.steps
    for (x, xp), b in zip(got, raw, strict=True):
        torch.testing.assert_close(x, pre(b.samples), rtol=0, atol=0)
        torch.testing.assert_close(xp, pre(b.pairs), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
def test_three_processes_split_each_epoch_without_loss(archive):
    """Every epoch gets its steps, each batch full and made of rows of that epoch's chunks, no row twice."""
    pre = Preprocess.for_archive(archive)
    every_row = pre(archive.read(0, archive.n, fields=[]).samples).flatten(1)  # (N, D) reference rows
    work = _work(archive, [0, 1, 2])
    with ProcessBatches(archive.url, work, local_batch=16, preprocess=pre, device=CPU, processes=3) as loader:
        for w in work:
            got = list(loader.epoch(w.epoch))
            assert len(got) == w.plan.steps == 192 // 16  # 7 chunks, 200 rows: 12 batches
            assert all(x.shape == (16, 1, 16, 16) for x in got)
            rows = torch.cat(got).flatten(1)
            match = (rows[:, None, :] == every_row[None, :, :]).all(dim=2)  # (steps·B, N)
            assert bool(match.any(dim=1).all()), "a batch row that is no archive row"
            ids = match.float().argmax(dim=1)
            # shares of 3/2/2 chunks (96/64/40 or 72/64/64 rows) fill 12 batches without re-reading a row
            assert len(set(ids.tolist())) == 192


def test_early_stop_moves_on_and_close_stops_the_processes(archive):
    pre = Preprocess.for_archive(archive)
    work = _work(archive, [0, 1], max_steps=6)
    loader = ProcessBatches(archive.url, work, local_batch=16, preprocess=pre, device=CPU, processes=2)
    first = loader.epoch(0)
    next(first)
    first.close()  # a consumer that leaves epoch 0 early ...
    assert len(list(loader.epoch(1))) == 6  # ... does not shift epoch 1
    processes = list(loader._it._workers)
    assert processes and all(p.is_alive() for p in processes)
    loader.close()
    assert not any(p.is_alive() for p in processes)
    loader.close()  # idempotent


def test_a_process_error_names_the_archive(archive, tmp_path):
    pre = Preprocess.for_archive(archive)
    [w] = _work(archive, [0])
    missing = str(tmp_path / "gone.zarr")
    with ProcessBatches(missing, [w], local_batch=16, preprocess=pre, device=CPU) as loader:
        with pytest.raises(Exception, match="no archive at .*gone.zarr"):
            next(loader.epoch(0))
    with pytest.raises(ValueError, match="epoch 5 is not one"):
        next(ProcessBatches(archive.url, [w], local_batch=16, preprocess=pre, device=CPU).epoch(5))
    with pytest.raises(ValueError, match="processes must be >= 1"):
        ProcessBatches(archive.url, [w], local_batch=16, preprocess=pre, device=CPU, processes=0)


def test_epochs_out_of_order_are_refused(archive):
    pre = Preprocess.for_archive(archive)
    work = [dataclasses.replace(w, plan=dataclasses.replace(w.plan, steps=2)) for w in _work(archive, [0, 1])]
    with ProcessBatches(archive.url, work, local_batch=16, preprocess=pre, device=CPU) as loader:
        assert len(list(loader.epoch(1))) == 2  # epoch 0 skipped whole, as an early stop would
        with pytest.raises(RuntimeError, match="ended before epoch 0"):
            list(loader.epoch(0))

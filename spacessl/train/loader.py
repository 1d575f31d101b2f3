"""Training batches read and preprocessed in separate processes, handed over in shared memory.

The threaded data path (:func:`spacessl.train.data.device_batches`, ``runtime.reader_processes: 0``) reads,
gathers and preprocesses in threads of the training process, and the reader's Python work (zarr's chunk assembly,
the shuffle gather, the per-frame stretch, the stream's bookkeeping) then holds the interpreter lock that the step's
thread needs between its native calls: ``benchmarks/data_contention.py`` measures the data path falling to a fifth
of its rate beside a busy Python thread, and ``benchmarks/train_throughput.py`` a quarter of a CPU step lost to it.

With ``runtime.reader_processes = N`` (N >= 1, default 1) the worker instead starts N loader processes (PyTorch's
``DataLoader`` over an ``IterableDataset``, started by ``forkserver`` so that neither CUDA nor the threads of
Ray and zarr are forked). Each opens the archive itself and, every epoch, reads its part of this worker's chunks::

    process p of N reads  plan.chunks[p::N]  and makes  quota[p]  batches      (sum of quotas = plan.steps)

preprocesses them (:class:`~spacessl.augment.preprocess.Preprocess`, on the CPU) and passes each finished tensor
through shared memory; the training process only pins it (on CUDA) and copies it to the device. Quotas follow the
rows each process holds (:func:`process_quotas`), and processes with fewer batches in an epoch pad it with empty
markers so that PyTorch's round-robin keeps every epoch's batches together. With one process the batches are
exactly those of the threaded path (same chunks, same shuffle seed). The processes run inside the worker's Ray
resources: on a GPU node give each worker ``runtime.cpus_per_worker`` of at least ``1 + N``.

:func:`train_batches` picks the path from ``runtime.reader_processes``; both give ``epoch(e)`` and ``close()``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from spacessl.archive import Archive, open_archive
from spacessl.errors import ConfigError
from spacessl.train import data as tdata

#: how the loader processes start: a fork server, so that the training process's CUDA context and its threads
#: (Ray's, zarr's event loop) are never forked
START_METHOD = "forkserver"


def process_quotas(rows: Sequence[int], steps: int, local_batch: int) -> list[int]:
    """Batches each loader process makes in an epoch of ``steps`` batches.

    Args:
        rows: (N,) rows each process holds this epoch.
        steps: batches the epoch needs (every process together).
        local_batch: samples per batch.
    Returns:
        (N,) quotas summing to ``steps``: each process first gets the whole batches its rows fill
        (``rows // local_batch``), trimmed from the largest quota down when that exceeds ``steps`` (a
        ``max_steps_per_epoch`` cap); a shortfall (remainders that only fill batches together) goes to the
        processes with the most rows left over among those holding a whole batch, which re-read a few of their rows
        as the threaded path does.
    Raises:
        ConfigError: a shortfall and no process holding a whole batch.
    """
    quotas = [r // local_batch for r in rows]
    while sum(quotas) > steps:
        quotas[max(range(len(quotas)), key=lambda i: quotas[i])] -= 1
    deficit = steps - sum(quotas)
    if deficit > 0:
        holders = sorted((i for i, r in enumerate(rows) if r >= local_batch),
                         key=lambda i: rows[i] - quotas[i] * local_batch, reverse=True)
        if not holders:
            raise ConfigError(
                f"runtime.reader_processes={len(rows)} splits this worker's chunks so finely that no loader process "
                f"holds a whole batch of {local_batch} (rows per process: {list(rows)}); lower "
                "runtime.reader_processes or train.batch_size, or write the archive with a larger chunk_size")
        rounds, extra = divmod(deficit, len(holders))
        for j, i in enumerate(holders):
            quotas[i] += rounds + (j < extra)
    return quotas


def split_epoch(archive: Archive | None, plan: tdata.EpochPlan, processes: int,
                local_batch: int) -> list[tdata.EpochPlan]:
    """One worker's epoch split over its loader processes: process p reads ``plan.chunks[p::processes]`` and makes
    its :func:`process_quotas` share of ``plan.steps`` (ConfigError when none can). One process takes the plan
    whole (``archive`` is then not needed)."""
    if processes == 1:
        return [plan]
    shares = [plan.chunks[p::processes] for p in range(processes)]
    quotas = process_quotas([tdata.rows_in(archive, c) for c in shares], plan.steps, local_batch)
    return [tdata.EpochPlan(chunks=c, steps=q, rows_per_worker=plan.rows_per_worker)
            for c, q in zip(shares, quotas, strict=True)]


@dataclass(frozen=True)
class EpochWork:
    """One epoch of one training worker: its plan (chunks, steps) and the shuffle seed of its stream."""

    epoch: int
    plan: tdata.EpochPlan
    seed: int


class PlannedEpochs(IterableDataset):
    """The batches of several epochs, as made inside one loader process (PyTorch's ``get_worker_info`` says which).

    Yields ``(epoch, x)``, with ``pairs`` ``(epoch, x, x_partner)``, x float32 (B, *input_shape) from
    ``preprocess``; and ``(epoch,)`` markers that pad this process's epoch to the longest quota (dropped by the
    consumer). ``splits[i]`` is ``work[i]`` split over the processes (:func:`split_epoch`, made once by the parent).
    Other args as :func:`spacessl.train.data.epoch_batches`, plus the archive URL (each process opens it).
    """

    def __init__(self, url: str, work: Sequence[EpochWork], splits: Sequence[list[tdata.EpochPlan]], *,
                 local_batch: int, preprocess: Any, prefetch: int = 2, buffer_chunks: int = 2,
                 pair_within_s: float = 0.0, storage_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.url, self.local_batch, self.preprocess = url, local_batch, preprocess
        self.work = list(zip(work, splits, strict=True))
        self.prefetch, self.buffer_chunks, self.pair_within_s = prefetch, buffer_chunks, pair_within_s
        self.storage_options = storage_options

    def __iter__(self) -> Iterator[tuple]:
        info = get_worker_info()
        me = info.id if info is not None else 0
        archive = open_archive(self.url, storage_options=self.storage_options)
        for w, parts in self.work:
            mine = parts[me]
            if mine.steps:
                # process 0's stream has the threaded path's seed, so one process reproduces it batch for batch
                seed = w.seed + 7_368_787 * me
                batches = tdata.epoch_batches(archive, mine, local_batch=self.local_batch, seed=seed,
                                              prefetch=self.prefetch, buffer_chunks=self.buffer_chunks,
                                              pair_within_s=self.pair_within_s)
                for batch in batches:
                    x = self.preprocess(batch.samples)
                    if self.pair_within_s > 0:
                        yield (w.epoch, x, self.preprocess(batch.pairs))
                    else:
                        yield (w.epoch, x)
            for _ in range(max(p.steps for p in parts) - mine.steps):
                yield (w.epoch,)


class ProcessBatches:
    """Preprocessed batches on ``device`` for a run of epochs, read by ``processes`` loader processes.

    ``epoch(e)`` yields exactly ``work[e].plan.steps`` items in order: x (B, ...) float32 on ``device``, or with
    ``pair_within_s`` > 0 ``(x, x_partner)``. Epochs must be taken in the order of ``work`` (what is left of an
    epoch whose consumer stopped early is skipped by the next one); the processes run ahead
    across epoch ends by up to ``depth`` batches each. An error in a process (a damaged chunk, a vanished archive) is
    raised by ``epoch``'s iterator with the process's traceback; ``close`` stops the processes (also on garbage
    collection).
    """

    def __init__(self, url: str, work: Sequence[EpochWork], *, local_batch: int, preprocess: Any,
                 device: torch.device, processes: int = 1, depth: int = 2, prefetch: int = 2,
                 buffer_chunks: int = 2, pair_within_s: float = 0.0,
                 storage_options: dict[str, Any] | None = None) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        # every epoch's split, made here once: an impossible one is refused now, not in a process mid-run
        archive = open_archive(url, storage_options=storage_options) if processes > 1 else None
        splits = [split_epoch(archive, w.plan, processes, local_batch) for w in work]
        self.work = {w.epoch: w for w in work}
        self.device, self.pairs = device, pair_within_s > 0
        self.pin = device.type == "cuda"
        dataset = PlannedEpochs(url, work, splits, local_batch=local_batch, preprocess=preprocess,
                                prefetch=prefetch, buffer_chunks=buffer_chunks, pair_within_s=pair_within_s,
                                storage_options=storage_options)
        self._loader = DataLoader(dataset, batch_size=None, num_workers=processes, prefetch_factor=max(1, depth),
                                  pin_memory=self.pin, multiprocessing_context=START_METHOD)
        self._it: Iterator | None = None

    def epoch(self, epoch: int) -> Iterator[torch.Tensor] | Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch`` on the device (see the class docstring)."""
        if epoch not in self.work:
            raise ValueError(f"epoch {epoch} is not one of this loader's epochs {sorted(self.work)}")
        if self._it is None:
            self._it = iter(self._loader)
        need = self.work[epoch].plan.steps
        got = 0
        while got < need:
            item = next(self._it, None)
            if item is None:
                raise RuntimeError(f"the loader processes ended before epoch {epoch} was complete "
                                   f"({got} of {need} batches); were the epochs taken out of order?")
            if int(item[0]) < epoch or len(item) == 1:
                continue  # the rest of an epoch its consumer left early, or a process's padding
            if int(item[0]) > epoch:
                raise RuntimeError(f"the loader processes are at epoch {int(item[0])}, past {epoch}: epochs must be "
                                   "taken in order")
            got += 1
            x = item[1].to(self.device, non_blocking=self.pin)
            if self.pairs:
                yield x, item[2].to(self.device, non_blocking=self.pin)
            else:
                yield x

    def close(self) -> None:
        """Stop the loader processes (idempotent)."""
        it, self._it = self._it, None
        if it is not None:
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()

    def __enter__(self) -> ProcessBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadBatches:
    """:class:`ProcessBatches`' interface over the threaded path (``runtime.reader_processes: 0``): each ``epoch(e)``
    streams ``work[e]`` through :func:`spacessl.train.data.device_batches` in threads of this process."""

    def __init__(self, archive: Archive, work: Sequence[EpochWork], *, local_batch: int, preprocess: Any,
                 device: torch.device, prefetch: int = 2, buffer_chunks: int = 2, pair_within_s: float = 0.0) -> None:
        self.archive, self.work, self.local_batch = archive, {w.epoch: w for w in work}, local_batch
        self.preprocess, self.device = preprocess, device
        self.prefetch, self.buffer_chunks, self.pair_within_s = prefetch, buffer_chunks, pair_within_s

    def epoch(self, epoch: int) -> Iterator[torch.Tensor] | Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch`` on the device."""
        if epoch not in self.work:
            raise ValueError(f"epoch {epoch} is not one of this loader's epochs {sorted(self.work)}")
        w = self.work[epoch]
        batches = tdata.epoch_batches(self.archive, w.plan, local_batch=self.local_batch, seed=w.seed,
                                      prefetch=self.prefetch, buffer_chunks=self.buffer_chunks,
                                      pair_within_s=self.pair_within_s)
        yield from tdata.device_batches(batches, self.preprocess, self.device, pairs=self.pair_within_s > 0)

    def close(self) -> None:
        """Nothing to stop: each epoch's threads end with its iterator."""

    def __enter__(self) -> ThreadBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def train_batches(archive: Archive, work: Sequence[EpochWork], *, processes: int, local_batch: int,
                  preprocess: Any, device: torch.device, prefetch: int = 2, buffer_chunks: int = 2,
                  pair_within_s: float = 0.0) -> ThreadBatches | ProcessBatches:
    """A training worker's batches for the epochs of ``work``, read as ``runtime.reader_processes`` says:
    in threads of this process (``processes`` 0) or in that many loader processes."""
    common = dict(local_batch=local_batch, preprocess=preprocess, device=device, prefetch=prefetch,
                  buffer_chunks=buffer_chunks, pair_within_s=pair_within_s)
    if not processes:
        return ThreadBatches(archive, work, **common)
    return ProcessBatches(archive.url, work, processes=processes, storage_options=archive.storage_options, **common)

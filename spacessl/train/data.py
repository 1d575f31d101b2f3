"""Which archive rows each training worker reads: held-out chunks, per-epoch worker shares, equal step counts.

Every worker opens the archive itself and reads only its own whole chunks (``Archive.shards``); nothing passes
through the driver or Ray's object store. DDP needs every worker to take the same number of optimiser steps, so
the steps of an epoch are set by the smallest worker share::

    steps = min over ranks r of  rows(r) // local_batch       (capped by max_steps_per_epoch)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from spacessl.archive import Archive, Batch
from spacessl.archive.reader import put_unless_stopped
from spacessl.errors import ConfigError
from spacessl.train.threads import limit_this_thread


def has_labels(archive: Archive) -> bool:
    """True when the archive declares label names (kNN monitoring is possible)."""
    return bool(archive.label_names)


def holdout_chunks(archive: Archive, fraction: float, seed: int = 0) -> list[int]:
    """Chunks held out of training for kNN monitoring: ``round(fraction · num_chunks)`` (at least one) chunks
    picked by a seeded permutation; none when the archive has no labels, ``fraction`` is 0 or it has one chunk."""
    if fraction <= 0.0 or not has_labels(archive) or archive.num_chunks < 2:
        return []
    count = min(archive.num_chunks - 1, max(1, round(fraction * archive.num_chunks)))
    order = np.random.default_rng([seed, 7919]).permutation(archive.num_chunks)
    return sorted(int(c) for c in order[:count])


def train_chunks(archive: Archive, holdout: list[int]) -> list[int]:
    """All chunks that are not held out, ascending."""
    held = set(holdout)
    return [c for c in range(archive.num_chunks) if c not in held]


def rows_in(archive: Archive, chunks: list[int]) -> int:
    """Number of rows in the given chunks."""
    total = 0
    for c in chunks:
        start, stop = archive.chunk_range(c)
        total += stop - start
    return total


def local_batch_size(global_batch: int, world_size: int) -> int:
    """Per-worker batch of a global batch split evenly; ConfigError when it does not divide."""
    if global_batch % world_size:
        raise ConfigError(
            f"train.batch_size={global_batch} does not split evenly over runtime.num_workers={world_size}; "
            f"use a multiple of {world_size}")
    return global_batch // world_size


@dataclass(frozen=True)
class EpochPlan:
    """What one worker reads in one epoch.

    Attributes:
        chunks: this worker's chunk indices, in reading order.
        steps: optimiser steps every worker takes this epoch.
        rows_per_worker: rows available to each rank (rank order).
    """

    chunks: list[int]
    steps: int
    rows_per_worker: list[int]


def plan_epoch(archive: Archive, pool: list[int], *, world_size: int, rank: int, epoch: int, seed: int,
               local_batch: int, max_steps: int | None = None) -> EpochPlan:
    """This worker's chunks for ``epoch`` and the common step count (from the smallest worker share)."""
    shares = [archive.shards(world_size, r, epoch=epoch, seed=seed, chunks=pool) for r in range(world_size)]
    rows = [rows_in(archive, s) for s in shares]
    steps = min(rows) // local_batch
    if steps < 1:
        raise ConfigError(
            f"archive {archive.url} is too small for this run: the smallest worker share is {min(rows)} rows "
            f"({len(pool)} training chunks of {archive.chunk_size} over {world_size} workers) but the local batch "
            f"is {local_batch}; lower train.batch_size or runtime.num_workers, or write the archive with a "
            "smaller chunk_size")
    if max_steps is not None:
        steps = min(steps, max_steps)
    return EpochPlan(chunks=shares[rank], steps=steps, rows_per_worker=rows)


def epoch_batches(archive: Archive, plan: EpochPlan, *, local_batch: int, seed: int, prefetch: int = 2,
                  buffer_chunks: int = 2, pair_within_s: float = 0.0) -> Iterator[Batch]:
    """Exactly ``plan.steps`` shuffled full batches of this worker's chunks (re-reading them if ever short); with
    ``pair_within_s`` > 0 each carries temporal partners (``Batch.pairs``, see :meth:`Archive.stream`)."""
    produced = 0
    attempt = 0
    while produced < plan.steps:
        stream = archive.stream(plan.chunks, batch_size=local_batch, shuffle=True, seed=seed + 104729 * attempt,
                                prefetch=prefetch, buffer_chunks=buffer_chunks, drop_last=True, fields=(),
                                pair_within_s=pair_within_s)
        try:
            for batch in stream:
                yield batch
                produced += 1
                if produced >= plan.steps:
                    break
        finally:
            stream.close()
        attempt += 1


def device_batches(batches: Iterable[Batch], preprocess: Callable[[np.ndarray], torch.Tensor],
                   device: torch.device, *, depth: int = 2, pairs: bool = False
                   ) -> Iterator[torch.Tensor] | Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Preprocessed sample tensors on ``device``, prepared up to ``depth`` batches ahead by a background thread.

    The thread pulls each batch from ``batches`` (the archive stream) and runs ``preprocess`` on the CPU (torch ops
    release the GIL); on CUDA it also pins the result, so the host-to-device copy issued here is asynchronous. So the
    reader's gather, the preprocessing and the copy overlap the model's step instead of running between steps.
    Order is kept; an error in the thread is raised here. Shape: each batch's samples (B, ...) -> (B, ...) float32.
    When ``device`` is the CPU the thread preprocesses on one intra-op thread (:func:`limit_this_thread`): the
    step's own threads take the cores, and a second OpenMP team would slow every one of the step's operators.
    With ``pairs`` each item is ``(samples, partners)``, both (B, ...), from ``Batch.pairs``.
    """
    pin = device.type == "cuda"
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    end = object()

    def put(item: object) -> bool:
        return put_unless_stopped(q, item, stop)

    def work() -> None:
        try:
            if device.type == "cpu":
                limit_this_thread(1)
            for batch in batches:
                x = preprocess(batch.samples)
                item = x.pin_memory() if pin else x
                if pairs:
                    if batch.pairs is None:
                        raise ValueError("device_batches(pairs=True) needs batches with pairs "
                                         "(Archive.stream with pair_within_s > 0)")
                    xp = preprocess(batch.pairs)
                    item = (item, xp.pin_memory() if pin else xp)
                if not put(item):
                    return
            put(end)
        except BaseException as exc:  # noqa: BLE001 - raised again in the consumer
            put(exc)

    thread = threading.Thread(target=work, name="spacessl-device-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            if pairs:
                yield item[0].to(device, non_blocking=pin), item[1].to(device, non_blocking=pin)
            else:
                yield item.to(device, non_blocking=pin)
    finally:
        stop.set()
        while True:  # unblock the thread so that it can see the stop
            try:
                q.get_nowait()
            except queue.Empty:
                break
        thread.join(timeout=10)
        close = getattr(batches, "close", None)
        if close is not None and not thread.is_alive():
            close()


def read_rows(archive: Archive, chunks: list[int], max_rows: int) -> Batch:
    """The first ``max_rows`` rows of ``chunks`` (in the given order) with labels: a kNN bank or query set."""
    parts: list[Batch] = []
    have = 0
    for c in chunks:
        if have >= max_rows:
            break
        start, stop = archive.chunk_range(c)
        stop = min(stop, start + max_rows - have)
        parts.append(archive.read(start, stop, fields=["label"]))
        have += stop - start
    if not parts:
        return Batch(np.empty((0, *archive.sample_shape), archive.dtype), np.empty(0, np.int64),
                     {"label": np.empty(0, np.int16)})
    return Batch(np.concatenate([p.samples for p in parts]), np.concatenate([p.ids for p in parts]),
                 {"label": np.concatenate([p.meta["label"] for p in parts])})

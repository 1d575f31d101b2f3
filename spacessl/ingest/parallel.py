"""Ordered parallel map over a process pool with a bounded number of tasks in flight.

Ingest decodes in worker processes and writes from one process: results must come back in input order (the
archive is then deterministic and resumable) and memory must stay bounded however long the input list is
(at most ``window`` task results exist at once).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Number of CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _context(preload: list[str]) -> multiprocessing.context.BaseContext:
    # forkserver: children fork from a clean server process (never from the writer, which runs Zarr's I/O thread),
    # and start fast because the server has imported `preload` once.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        if preload:
            ctx.set_forkserver_preload(preload)
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - platforms without forkserver


def ordered_map(fn: Callable[..., R], tasks: Iterable[T], *, workers: int, window: int | None = None,
                preload: list[str] | None = None, **kwargs: Any) -> Iterator[R]:
    """Yield ``fn(task, **kwargs)`` for every task, in task order.

    Args:
        fn: a module-level function (it is pickled to the workers).
        tasks: the tasks, consumed lazily.
        workers: worker processes; 0 runs everything in this process (debugging, tiny inputs).
        window: most tasks submitted but not yet yielded (default ``4 * workers``).
        preload: modules the worker processes import once at start.
        kwargs: constant keyword arguments passed with every task.
    """
    if workers <= 0:
        for task in tasks:
            yield fn(task, **kwargs)
        return
    window = max(1, window or 4 * workers)
    it = iter(tasks)
    pending: deque[Future] = deque()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(preload or []))
    try:
        for task in islice(it, window):
            pending.append(pool.submit(fn, task, **kwargs))
        while pending:
            result = pending.popleft().result()
            for task in islice(it, 1):
                pending.append(pool.submit(fn, task, **kwargs))
            yield result
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)

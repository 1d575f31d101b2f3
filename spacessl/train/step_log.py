"""Per-step metrics of the training loop, logged from one background thread so that a step never waits for them.

Every ``train.log_every_steps`` steps world rank 0 logs the step's loss, learning rate and samples/s to MLflow and,
a few times an epoch, prints a progress line. Done in the training thread, each of those waits twice: for the
device, because reading the loss (``float(loss)``) needs the step's kernels to finish, and for the tracking store,
one ``log_batch`` call (10-20 ms to a server on the same host, more over a network). On a GPU, whose step takes
20 ms for a batch of 256 windows, that wait costs the loop about a tenth of its rate
(``benchmarks/step_log.py``). :class:`StepLog` hands each entry, device tensors and all, to a single worker thread
(``concurrent.futures``) that reads the values, logs them and prints the line, in the order given; the training
thread goes on with the next step. :meth:`StepLog.drain` waits for everything handed over, so that an epoch's
metrics are in the store before its checkpoint is reported.

::

    steplog = StepLog(lambda metrics, step: log_metrics(uri, run_id, metrics, step), say=print)
    steplog.submit(step, {"loss": out["loss"], "lr": 0.01}, line=lambda v: f"loss {v['loss']:.4f}")
    steplog.drain()          # before the epoch's report
    steplog.close()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import torch

log = logging.getLogger(__name__)

#: entries handed over and not yet logged, at most; beyond it :meth:`StepLog.submit` waits (a store that stops
#: answering slows training as a synchronous call would, instead of holding ever more entries in memory)
MAX_PENDING = 64


class StepLog:
    """Log step metrics from one background thread, in order.

    Args:
        log_metrics: ``log_metrics(values, step)`` with ``values`` {name: float}; called in the worker thread.
            Its errors are logged as warnings and never reach the training thread.
        say: prints a progress line (called in the worker thread, after ``log_metrics``).
        max_pending: entries waiting at most before :meth:`submit` blocks.
    """

    def __init__(self, log_metrics: Callable[[dict[str, float], int], None], *,
                 say: Callable[[str], None] = print, max_pending: int = MAX_PENDING):
        self._log_metrics, self._say = log_metrics, say
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spacessl-steplog")
        self._slots = threading.BoundedSemaphore(max(1, int(max_pending)))

    def submit(self, step: int, values: Mapping[str, torch.Tensor | float],
               line: Callable[[dict[str, float]], str] | None = None) -> None:
        """Hand over the metrics of ``step``: each value a float or a 0-d tensor on any device (read in the worker
        thread; the tensors must not be changed in place afterwards). ``line(floats)`` makes the progress line, if
        one is wanted."""
        self._slots.acquire()
        try:
            future = self._pool.submit(self._run, int(step), dict(values), line)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())

    def _run(self, step: int, values: dict[str, torch.Tensor | float],
             line: Callable[[dict[str, float]], str] | None) -> None:
        try:
            floats = {k: float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)
                      for k, v in values.items()}
            self._log_metrics(floats, step)
            if line is not None:
                self._say(line(floats))
        except Exception as exc:  # noqa: BLE001 - a failed log must not stop training
            log.warning("step %d: metrics not logged (%s); training continues", step, exc)

    def drain(self) -> None:
        """Wait until every entry handed over so far is logged (or has failed): the one worker thread takes
        entries in order, so a no-op queued behind them finishes last."""
        self._pool.submit(lambda: None).result()

    def close(self, *, cancel_pending: bool = False) -> None:
        """Log what is pending (or, with ``cancel_pending``, only the entry being logged) and stop the thread."""
        self._pool.shutdown(wait=True, cancel_futures=cancel_pending)

    def __enter__(self) -> StepLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # leaving on an error: do not hold it up for entries a failing tracking store may take minutes each to refuse
        self.close(cancel_pending=exc_type is not None)

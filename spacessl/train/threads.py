"""The intra-op threads of one Python thread, set without touching any other thread's.

PyTorch runs its CPU operators on OpenMP (libgomp on Linux), which keeps one team of worker threads for each
thread that starts parallel operators. When libgomp manages more threads than there are cores, it stops every team
from spinning between operators (100 spins instead of about 300,000) and puts the workers to sleep on a futex, so
each of a training step's thousands of short operators waits for its workers to wake. A background thread that
preprocesses batches with torch operators beside a CPU training step starts such a second team: on two cores the
step then ran 1.3-1.9 x slower (``benchmarks/omp_teams.py``). Run that thread's operators on one thread and no
second team starts.

``torch.set_num_threads`` cannot do that: besides the calling thread it sets the process-wide default that every
thread started later takes on its first operator. :func:`limit_this_thread` sets OpenMP's own per-thread setting
(``omp_set_num_threads``), after torch has read its default into this thread.
"""

from __future__ import annotations

import ctypes
import functools
import os

import torch

#: OpenMP runtimes PyTorch builds link, looked up among the libraries already loaded (never loaded here)
OPENMP_RUNTIMES = ("libgomp.so.1", "libiomp5.so", "libomp.so", "libomp.dylib", "libiomp5.dylib")


@functools.lru_cache(maxsize=1)
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime loaded in this process (PyTorch's), or None when none of :data:`OPENMP_RUNTIMES` is."""
    mode = getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_LAZY", 1)
    for name in OPENMP_RUNTIMES:
        try:
            lib = ctypes.CDLL(name, mode=mode)
        except OSError:
            continue
        if hasattr(lib, "omp_set_num_threads"):
            return lib
    return None


def limit_this_thread(threads: int = 1) -> bool:
    """Run the calling thread's torch CPU operators on at most ``threads`` threads; every other thread, and every
    thread started later, keeps ``torch.get_num_threads()`` as it was.

    Returns True when the limit holds (``torch.get_num_threads()`` in this thread is then ``threads``), False
    where it cannot be set this way (no OpenMP runtime found, or ATen built on another thread pool); the thread
    then runs as before.
    """
    if threads < 1:
        raise ValueError(f"limit_this_thread: threads must be at least 1, got {threads}")
    torch.get_num_threads()  # torch copies its process-wide setting into a thread once, on first use: let it now
    lib = _openmp()
    if lib is None:
        return False
    lib.omp_set_num_threads(ctypes.c_int(int(threads)))
    return torch.get_num_threads() == threads

"""Interleaved timing shared by the benchmark scripts: variants called in turn, so that a drift of a shared
machine's speed hits every variant alike."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def add_device_args(p: argparse.ArgumentParser) -> None:
    """``--device`` (default cpu) and ``--threads`` (torch's threads; default all cores) for a timing script."""
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")


def device_of(args: argparse.Namespace) -> torch.device:
    """The device that ``add_device_args``' options name, with torch's threads set as they say."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer sees finished calls."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Median seconds of each callable, called in turn ``repeats`` times after one untimed call each."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(repeats + 1):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            if i:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}

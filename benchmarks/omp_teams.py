"""What a second OpenMP team costs a CPU training step, and what :func:`spacessl.train.threads.limit_this_thread`
gives back.

    python benchmarks/omp_teams.py [--rounds 4] [--steps 6] [--batch 64] [--threads N]

Times the quality benchmark's image training step (ResNet-18 behind the space-to-depth stem at 64 px, two
``allsky`` views, SimCLR, fused AdamW; :func:`pixel_conv.recipe_steps`) in this thread under three conditions, in
turn for ``--rounds`` rounds of ``--steps`` steps each, so that a drift of the machine's speed hits all alike:

- ``alone``: no other thread has run a torch operator;
- ``beside a team``: a second thread has run one parallel operator at torch's default thread count and waits,
  idle, while the steps run (what the threaded data path's preprocessing thread did between batches);
- ``beside a limited thread``: the same, after ``limit_this_thread(1)`` in that thread (what it does now).

The waiting thread takes no CPU; it only owns an OpenMP team. Prints the median step of each and its ratio to
``alone`` (1.00: no cost). The cost is libgomp's: with more managed threads than cores it stops its teams from
spinning between operators (``spacessl/train/threads.py``). It shows when the step's threads fill the cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixel_conv import build, recipe_steps  # noqa: E402

from spacessl.train.threads import limit_this_thread  # noqa: E402

CONDITIONS = ("alone", "beside a team", "beside a limited thread")


class Bystander:
    """A thread that runs one parallel torch operator (after ``limit_this_thread(1)`` when ``limited``) and then
    waits, owning whatever OpenMP team that started, until :meth:`close`; its team goes with the thread."""

    def __init__(self, limited: bool):
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(limited,), daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self, limited: bool) -> None:
        if limited and not limit_this_thread(1):
            print("limit_this_thread found no OpenMP runtime to set: the limited condition is not limited")
        torch.randn(1 << 22).mul_(2.0)  # 4 Mi elements: parallel at torch's grain size
        self._ready.set()
        self._stop.wait()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=6, help="timed steps per condition and round")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="the step's torch threads (default: all cores)")
    args = p.parse_args()
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    step = recipe_steps({"s2d64": build(2, True, None, torch.device("cpu"))}, x, torch.device("cpu"))["s2d64"]
    print(f"quality recipe's image step, batch {args.batch}, {threads} torch thread(s), {os.cpu_count()} cores; "
          f"{args.rounds} rounds of {args.steps} steps per condition; load average {os.getloadavg()[0]:.1f}")
    for _ in range(3):
        step()
    times: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    for _ in range(args.rounds):
        for cond in CONDITIONS:
            other = None if cond == "alone" else Bystander(limited=cond.endswith("limited thread"))
            try:
                step()  # the first step after a change of teams is not timed
                for _ in range(args.steps):
                    t0 = time.perf_counter()
                    step()
                    times[cond].append(time.perf_counter() - t0)
            finally:
                if other is not None:
                    other.close()
    base = statistics.median(times["alone"])
    for cond in CONDITIONS:
        med = statistics.median(times[cond])
        print(f"{cond:<26} median {med * 1e3:7.1f} ms   ratio to alone {med / base:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How much the training data path holds Python's GIL: a pure-Python loop (a stand-in for the training thread, which
spends a short GPU step launching kernels from Python) is timed alone and then beside the loop's own data path
(``Archive.stream`` → ``device_batches`` with preprocessing, on the CPU), in one run.

Prints the loop's slow-down (beside / alone; 1.00 = the data path never takes the GIL from it) and the data path's
rate alone and while the loop runs (how much of its work waits for the GIL). With one core each the two share no
CPU, so what is left is the GIL.

    python benchmarks/data_contention.py                                  # 1-D ResNet windows, icequake_simclr
    python benchmarks/data_contention.py --config configs/demo_aurora.yaml --switch-interval 0.001
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def python_loop(n: int = 2_000_000) -> float:
    """Seconds for ``n`` additions in the interpreter (holds the GIL throughout, as kernel launches do)."""
    t = time.perf_counter()
    s = 0
    for i in range(n):
        s += i
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs/icequake_simclr.yaml"))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--n", type=int, default=8192, help="samples of the synthetic archive")
    p.add_argument("--repeats", type=int, default=3, help="loop timings per side (the fastest counts)")
    p.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (s); default 0.005")
    args = p.parse_args()

    from train_throughput import synthetic_archive

    from spacessl.archive import open_archive
    from spacessl.config import load_config
    from spacessl.train import data as tdata
    from spacessl.train.loop import build_components

    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    torch.set_num_threads(1)
    cfg = load_config(args.config, [])
    with tempfile.TemporaryDirectory(prefix="spacessl-contention-") as d:
        archive = open_archive(synthetic_archive(Path(d) / "bench.zarr", cfg, args.n))
        comps = build_components(cfg, archive)
        plan = tdata.plan_epoch(archive, list(range(archive.num_chunks)), world_size=1, rank=0, epoch=0, seed=0,
                                local_batch=args.batch)
        plan = dataclasses.replace(plan, steps=10**9)

        def batches():
            return tdata.device_batches(tdata.epoch_batches(archive, plan, local_batch=args.batch, seed=0,
                                                            prefetch=cfg.data.prefetch,
                                                            buffer_chunks=cfg.data.buffer_chunks),
                                        comps.preprocess, torch.device("cpu"))

        it = batches()
        for _ in itertools.islice(it, 5):
            pass
        t = time.perf_counter()
        n_alone = sum(1 for _ in itertools.islice(it, 100))
        rate_alone = n_alone * args.batch / (time.perf_counter() - t)
        it.close()

        alone = min(python_loop() for _ in range(args.repeats))
        stop, count = threading.Event(), [0]

        def consume() -> None:
            stream = batches()
            for _ in stream:
                count[0] += 1
                if stop.is_set():
                    break
            stream.close()

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        time.sleep(1.0)
        c0, t = count[0], time.perf_counter()
        beside = min(python_loop() for _ in range(args.repeats))
        rate_beside = (count[0] - c0) * args.batch / (time.perf_counter() - t)
        stop.set()
        thread.join(timeout=10)
    print(f"config {args.config}, batch {args.batch}, {os.cpu_count()} CPUs, switch interval "
          f"{sys.getswitchinterval() * 1000:g} ms, torch threads 1")
    print(f"python loop alone {alone * 1000:.0f} ms, beside the data path {beside * 1000:.0f} ms: "
          f"slow-down {beside / alone:.2f}")
    print(f"data path alone {rate_alone:,.0f} samples/s, while the loop runs {rate_beside:,.0f} samples/s "
          f"({rate_beside / rate_alone:.2f} of alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

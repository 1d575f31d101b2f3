"""How much the training data path holds Python's GIL: a pure-Python loop (a stand-in for the training thread, which
spends a short GPU step launching kernels from Python) is timed alone and then beside the loop's own data path,
on the CPU, in one run, for both data paths the training loop has:

- threads: ``Archive.stream`` → ``device_batches`` with preprocessing, in threads of the training process
  (``runtime.reader_processes: 0``);
- processes: the same stream and preprocessing in ``--reader-processes`` loader processes that hand batches over in
  shared memory (``spacessl.train.loader``, ``runtime.reader_processes: N``).

Prints, per path, the CPU time the training process itself spends per batch (what can hold its GIL), the loop's
slow-down (beside / alone; 1.00 = the data path never takes the GIL from it) and the
data path's rate alone and while the loop runs (how much of its work waits for the GIL).

Then the training loop itself, simulated: a step of ``--step-ms`` made of many tiny torch ops (each holds the GIL
for its Python part and releases it in the native call, as a GPU step's kernel launches do), which takes the next
batch from the data path before each step. Samples/s of (a) the step alone (one batch made once) and (b) the step
fed by each data path, and (b)/(a): the CPU analogue of train_throughput's (b)/(a) for a short, Python-bound step.

    python benchmarks/data_contention.py                                  # 1-D ResNet windows, icequake_simclr
    python benchmarks/data_contention.py --config configs/demo_aurora.yaml --switch-interval 0.001
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
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


def contention(make_stream, batch: int, repeats: int) -> dict[str, float]:
    """The data path's rate alone and beside :func:`python_loop`, and the loop's time alone and beside it.

    ``make_stream()`` starts a fresh, endless stream of preprocessed batches of ``batch`` samples.
    Returns rate_alone, rate_beside (samples/s), alone, beside (s, the fastest of ``repeats`` loop timings),
    cpu_ms (CPU time the training process itself spends per batch of the data path alone, ms).
    """
    it = make_stream()
    for _ in itertools.islice(it, 5):
        pass
    t, cpu = time.perf_counter(), time.process_time()
    n_alone = sum(1 for _ in itertools.islice(it, 100))
    rate_alone = n_alone * batch / (time.perf_counter() - t)
    cpu_ms = (time.process_time() - cpu) / n_alone * 1000  # every thread of this process, none of its children
    it.close()

    alone = min(python_loop() for _ in range(repeats))
    stop, count, started = threading.Event(), [0], threading.Event()

    def consume() -> None:
        stream = make_stream()
        for _ in stream:
            count[0] += 1
            if count[0] >= 5:
                started.set()
            if stop.is_set():
                break
        stream.close()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    started.wait(timeout=120)
    time.sleep(0.5)
    c0, t = count[0], time.perf_counter()
    beside = min(python_loop() for _ in range(repeats))
    rate_beside = (count[0] - c0) * batch / (time.perf_counter() - t)
    stop.set()
    thread.join(timeout=30)
    return {"rate_alone": rate_alone, "rate_beside": rate_beside, "alone": alone, "beside": beside,
            "cpu_ms": cpu_ms}


def op_step(ops: int) -> None:
    """A Python-bound step: ``ops`` tiny torch ops, each a Python call that releases the GIL in its native part."""
    x = torch.zeros(1)
    for _ in range(ops):
        x = x + 1.0


def calibrate(step_ms: float) -> int:
    """Tiny-op count whose :func:`op_step` takes ``step_ms`` alone."""
    per_op = []
    for _ in range(5):
        t = time.perf_counter()
        op_step(20_000)
        per_op.append((time.perf_counter() - t) / 20_000)
    return max(1, round(step_ms / 1000 / float(np.median(per_op))))


def fed_rate(next_batch, ops: int, batch: int, steps: int) -> float:
    """Samples/s of ``steps`` simulated steps, each after ``next_batch()`` (5 untimed first)."""
    for _ in range(5):
        next_batch()
        op_step(ops)
    t = time.perf_counter()
    for _ in range(steps):
        next_batch()
        op_step(ops)
    return steps * batch / (time.perf_counter() - t)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs/icequake_simclr.yaml"))
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--n", type=int, default=8192, help="samples of the synthetic archive")
    p.add_argument("--repeats", type=int, default=3, help="loop timings per side (the fastest counts)")
    p.add_argument("--step-ms", type=float, default=20.0,
                   help="simulated step (H100, 1-D ResNet SimCLR on 256 windows: about 20 ms)")
    p.add_argument("--steps", type=int, default=150, help="timed simulated steps per path")
    p.add_argument("--reader-processes", type=int, default=1, help="loader processes of the process path")
    p.add_argument("--switch-interval", type=float, default=None, help="sys.setswitchinterval (s); default 0.005")
    args = p.parse_args()

    from train_throughput import data_path, synthetic_archive

    from spacessl.archive import open_archive
    from spacessl.config import load_config
    from spacessl.train.loop import build_components

    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    torch.set_num_threads(1)
    cfg = load_config(args.config, [])
    with tempfile.TemporaryDirectory(prefix="spacessl-contention-") as d:
        archive = open_archive(synthetic_archive(Path(d) / "bench.zarr", cfg, args.n))
        comps = build_components(cfg, archive)
        with_processes = cfg.model_copy(deep=True)
        with_processes.runtime.reader_processes = args.reader_processes
        threads = cfg.model_copy(deep=True)
        threads.runtime.reader_processes = 0

        def stream(c):
            return lambda: data_path(c, archive, comps.preprocess, args.batch, torch.device("cpu"))

        paths = {"threads": stream(threads), f"{args.reader_processes} process(es)": stream(with_processes)}
        results = {name: contention(make, args.batch, args.repeats) for name, make in paths.items()}
        ops = calibrate(args.step_ms)
        fed = {"(a) step alone": fed_rate(lambda: None, ops, args.batch, args.steps)}
        for name, make in paths.items():
            it = make()
            fed[f"(b) fed by the data path in {name}"] = fed_rate(lambda: next(it), ops, args.batch, args.steps)
            it.close()
    print(f"config {args.config}, batch {args.batch}, {os.cpu_count()} CPUs, switch interval "
          f"{sys.getswitchinterval() * 1000:g} ms, torch threads 1 in the training process")
    for name, r in results.items():
        print(f"data path in {name}: {r['cpu_ms']:.1f} ms of the training process's CPU per batch")
    for name, r in results.items():
        print(f"data path in {name}: python loop alone {r['alone'] * 1000:.0f} ms, beside the data path "
              f"{r['beside'] * 1000:.0f} ms: slow-down {r['beside'] / r['alone']:.2f}; data path alone "
              f"{r['rate_alone']:,.0f} samples/s, while the loop runs {r['rate_beside']:,.0f} samples/s "
              f"({r['rate_beside'] / r['rate_alone']:.2f} of alone)")
    print(f"simulated step of {ops} tiny torch ops ({args.batch / fed['(a) step alone'] * 1000:.1f} ms alone), "
          f"batch {args.batch}:")
    for name, rate in fed.items():
        print(f"  {name:50s} {rate:9,.0f} samples/s   ratio to (a) {rate / fed['(a) step alone']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What logging step metrics costs the training loop: in the training thread, or handed to StepLog's thread.

Every ``--log-every`` steps world rank 0 logs loss, learning rate and samples/s to MLflow (and accumulates the
embedding spread). Three loops of ``--steps`` steps each, called in turn ``--repeats`` times, timed in one run:

  (0) no logging (the baseline)
  (1) logged in the training thread, as the loop did before StepLog: read the loss and the spread (``float``, which
      waits for the device), then one ``log_batch`` call to the tracking store
  (2) handed to :class:`spacessl.train.step_log.StepLog`, which does both in its own thread (drained at the end of
      each timed loop, as the training loop drains it at the end of each epoch)

The step is a stand-in for a device step of ``--step-ms``: on the CPU the host sleeps for that long (as it waits
for a GPU), on CUDA a chain of matrix products of about that length runs on the GPU. The tracking store is a real
``mlflow server`` started on 127.0.0.1 with a SQLite store (the set-up of the test suite), unless
``--tracking-uri`` names one (a remote server shows what a network adds).

    python benchmarks/step_log.py                         # 20 ms steps: the H100's 1-D ResNet step, 256 windows
    python benchmarks/step_log.py --step-ms 110           # the OATH step at 256 px
    python benchmarks/step_log.py --device cuda
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import interleaved  # noqa: E402


def device_step(device: torch.device, step_ms: float):
    """A callable that keeps the device busy for about ``step_ms`` and returns (loss, z) on the device."""
    z = torch.randn(256, 128, device=device)
    if device.type != "cuda":
        def sleep_step():
            time.sleep(step_ms / 1000)
            return z.sum() / 1e3, z
        return sleep_step
    a = torch.randn(4096, 4096, device=device, dtype=torch.bfloat16)
    torch.cuda.synchronize(device)
    t0, n = time.perf_counter(), 20
    for _ in range(n):
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize(device)
    reps = max(1, round(step_ms / 1000 / ((time.perf_counter() - t0) / n)))

    def gpu_step():
        b = a
        for _ in range(reps):
            b = (b @ a).clamp_(-1, 1)
        return b.float().mean(), z
    return gpu_step


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--step-ms", type=float, default=20.0, help="length of the stand-in device step")
    p.add_argument("--steps", type=int, default=200, help="steps per timed loop")
    p.add_argument("--log-every", type=int, default=10, help="train.log_every_steps")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tracking-uri", default="", help="an existing tracking store (default: a local mlflow server)")
    args = p.parse_args()

    from spacessl import tracking
    from spacessl.models.collapse import embedding_std, embedding_std_tensor
    from spacessl.train.step_log import StepLog

    device = torch.device(args.device)
    step = device_step(device, args.step_ms)
    server = None
    with tempfile.TemporaryDirectory(prefix="spacessl-steplog-") as tmp:
        uri = args.tracking_uri
        if not uri:
            from tests.conftest import start_mlflow_server

            server, uri = start_mlflow_server(Path(tmp))
        try:
            client = tracking.client(uri)
            run_id = client.create_run(client.create_experiment("step-log")).info.run_id
            counter = itertools.count()

            def log(values: dict[str, float], at: int) -> None:
                tracking.log_metrics(uri, run_id, values, at)

            def loop(mode: str) -> None:
                spread = 0.0
                steplog = StepLog(log, say=lambda _: None) if mode == "steplog" else None
                t_win = time.perf_counter()
                for i in range(1, args.steps + 1):
                    loss, z = step()
                    if mode == "none" or i % args.log_every:
                        continue
                    now, at = time.perf_counter(), next(counter)
                    rate = args.log_every * 256 / (now - t_win)
                    if steplog is None:
                        spread += embedding_std(z)
                        log({"loss": float(loss), "lr": 0.1, "samples_per_s": rate}, at)
                    else:
                        spread = spread + embedding_std_tensor(z)
                        steplog.submit(at, {"loss": loss, "lr": 0.1, "samples_per_s": rate})
                    t_win = now
                if steplog is not None:
                    steplog.drain()
                    steplog.close()
                float(spread)

            print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                  f"torch {torch.__version__}, {device}; tracking {uri.split('://')[0]}; "
                  f"{args.steps} steps of {args.step_ms:g} ms, logged every {args.log_every}, "
                  f"median of {args.repeats}")
            sec = interleaved({"none": lambda: loop("none"), "thread": lambda: loop("thread"),
                               "steplog": lambda: loop("steplog")}, args.repeats, device)
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
    labels = {"none": "(0) no logging", "thread": "(1) logged in the training thread",
              "steplog": "(2) logged by StepLog's thread"}
    for name, label in labels.items():
        print(f"{label:36s} {args.steps / sec[name]:8.2f} steps/s   ratio to (0) {sec['none'] / sec[name]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

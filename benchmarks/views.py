"""The two views of a training step: two calls of the view pipeline on the batch, or one call on both halves.

On a GPU ``spacessl.train.loop.views`` draws both views of a step in one call of the pipeline on the (2B, ...) batch
of both halves; before, it called the pipeline twice on the (B, ...) batch (as it still does on the CPU). Every
augmentation draws its parameters per sample, so the views are equally random either way; what changes is the number
of operator calls per step. On a GPU
each is a kernel launch of a few microseconds' host time, so the pipelines' small element-wise operations are bound
by those calls, not by the data (the H100's window step: (a+)/(a) 0.78 in docs/benchmarks.md, train_throughput).

For each pipeline (images 1 x ``--size`` px with ``allsky`` and ``oath``, waveforms 3 x ``--window`` at 100 Hz
with ``default``) it prints, in one run: the operator calls of one step's views either way (top-level ATen calls
counted by torch's profiler, each one kernel launch or more on CUDA), and the median milliseconds of both ways,
called in turn, at batch ``--batch`` (the training batch: on a CPU bound by the data) and at ``--small-batch``
(bound by the calls, as a GPU step is).

    python benchmarks/views.py
    python benchmarks/views.py --device cuda --batch 256
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import interleaved  # noqa: E402


def op_calls(fn) -> int:
    """Top-level ATen operator calls that ``fn()`` makes."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--small-batch", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="frame side in px")
    p.add_argument("--window", type=int, default=1000, help="waveform samples (3 components)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    from spacessl.augment import build_augment
    from spacessl.augment.images import fov_mask
    from spacessl.train.loop import views

    device = torch.device(args.device)
    generator = torch.Generator(device=device).manual_seed(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), {device}; median of {args.repeats}")
    print(f"{'pipeline':34s} {'batch':>5s} {'calls: 2 x B':>12s} {'1 x 2B':>7s} {'ms: 2 x B':>10s} {'1 x 2B':>8s} "
          f"{'ratio':>6s}")
    cases = [("image allsky", "allsky"), ("image oath", "oath"), ("waveform default", "default")]
    for label, preset in cases:
        if preset == "default":
            augment = build_augment("waveform", preset, sampling_rate_hz=100.0)
            make = lambda b: torch.randn(b, 3, args.window, device=device)  # noqa: E731
        else:
            augment = build_augment("image", preset)
            mask = fov_mask(args.size, args.size).to(device)
            make = lambda b: torch.rand(b, 1, args.size, args.size, device=device) * mask  # noqa: E731
        for batch in (args.batch, args.small_batch):
            x = make(batch)

            def two_calls(x=x):
                return views(x, augment, generator, joint=False)

            def one_call(x=x):
                return views(x, augment, generator, joint=True)

            calls = (op_calls(two_calls), op_calls(one_call))
            sec = interleaved({"two": two_calls, "one": one_call}, args.repeats, device)
            print(f"{label:34s} {batch:5d} {calls[0]:12d} {calls[1]:7d} {1e3 * sec['two']:10.2f} "
                  f"{1e3 * sec['one']:8.2f} {sec['two'] / sec['one']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

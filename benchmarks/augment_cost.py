"""Cost of the view pipelines against the training step they feed, in one run on the same threads.

    python benchmarks/augment_cost.py [--batch 64] [--size 64] [--window 1000] [--repeats 10] [--device cpu]
                                      [--threads N]

For each modality it times

- augment: ``Preprocess`` of a raw batch (uint16 frames / float32 counts) and the two random views a training
  step needs (``spacessl.train.loop.views``: on the CPU two pipeline calls, on a GPU one on both halves): images
  with the ``allsky`` and ``oath`` presets, waveforms with ``default``;
- baseline: one SimSiam training step on those views (forward of both views, loss, backward, SGD step) with the
  encoder the modality uses (ResNet-18 at ``--size`` px; 1-D ResNet on 3 x ``--window`` samples).

Prints milliseconds per batch (median of ``--repeats``) and augment/step; the data path must not starve the
model, so the goal is augment/step <= 0.1 (a loader that prepares the next batch while the step runs then hides it
completely).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spacessl.augment import Preprocess, build_augment  # noqa: E402
from spacessl.augment.images import fov_mask  # noqa: E402
from spacessl.models import build_encoder, build_method  # noqa: E402
from spacessl.train.loop import views as two_views  # noqa: E402


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_fn(method: torch.nn.Module, x0: torch.Tensor, x1: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(method.parameters(), lr=0.0125, momentum=0.57, weight_decay=5e-4)
    method.train()

    def step() -> None:
        loss = method(x0, x1)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=64, help="frame side in px")
    p.add_argument("--raw-size", type=int, default=64, help="side of the raw frames before Preprocess")
    p.add_argument("--window", type=int, default=1000, help="waveform samples T (3 components)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print(f"device {dev}, torch threads {torch.get_num_threads()}, batch {args.batch}")

    # images -----------------------------------------------------------------------------------------------
    mask = fov_mask(args.raw_size, args.raw_size).numpy()
    raw = (rng.integers(0, 65536, size=(args.batch, 1, args.raw_size, args.raw_size)) * mask).astype(np.uint16)
    pre = Preprocess(modality="image", input_size=args.size, fov_radius=1.0)
    x = pre(raw).to(dev)
    method = build_method("simsiam", encoder=build_encoder(modality="image", in_channels=1)).to(dev)
    t_step = timed(step_fn(method, x, x.clone()), args.repeats, dev)
    print(f"image step   SimSiam ResNet-18 {args.size}px          {1e3 * t_step:8.1f} ms/batch  (baseline)")
    for preset in ("allsky", "oath"):
        aug = build_augment("image", preset)

        def views(aug=aug) -> None:
            two_views(pre(raw).to(dev), aug, None)

        t_aug = timed(views, args.repeats, dev)
        print(f"image views  Preprocess + 2 x {preset:<7s}            {1e3 * t_aug:8.1f} ms/batch  "
              f"augment/step = {t_aug / t_step:.3f}")

    # waveforms --------------------------------------------------------------------------------------------
    raw_w = (rng.normal(size=(args.batch, 3, args.window)) * 1e4).astype(np.float32)
    pre_w = Preprocess(modality="waveform", window_samples=args.window)
    xw = pre_w(raw_w).to(dev)
    method_w = build_method("simclr", encoder=build_encoder(modality="waveform", in_channels=3)).to(dev)
    t_step_w = timed(step_fn(method_w, xw, xw.clone()), args.repeats, dev)
    print(f"wave  step   SimCLR 1-D ResNet 3x{args.window}           {1e3 * t_step_w:8.1f} ms/batch  (baseline)")
    aug_w = build_augment("waveform", "default", sampling_rate_hz=100.0)

    def views_w() -> None:
        two_views(pre_w(raw_w).to(dev), aug_w, None)

    t_aug_w = timed(views_w, args.repeats, dev)
    print(f"wave  views  Preprocess + 2 x default            {1e3 * t_aug_w:8.1f} ms/batch  "
          f"augment/step = {t_aug_w / t_step_w:.3f}")


if __name__ == "__main__":
    main()

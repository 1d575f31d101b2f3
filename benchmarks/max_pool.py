"""What channels-last max pooling saves on the CPU: ResNet-18's stem pooling as ``ChannelsLastMaxPool2d`` against
``nn.MaxPool2d``, on the same inputs.

    python benchmarks/max_pool.py [--repeats 15] [--step-repeats 60] [--threads N]

Times, interleaved so that a drift of the machine's speed hits both alike, (1) the pooling layer alone, forward
and backward, at the shapes ResNet-18 pools in this project's configs: 64 frames of 64 px behind the
space-to-depth stem (the quality benchmark's image recipe), 64 frames of 64 px in plain ResNet-18
(``configs/demo_aurora.yaml``) and 16 frames of 256 px (OATH's size); (2) the whole training step of the quality
benchmark's image recipe (two ``allsky`` views, SimCLR 512/128 at temperature 0.2, backward, fused AdamW) with
each pooling, many more times (the step varies from call to call by more than the difference). Prints the
median milliseconds and the ratio ordinary / channels-last (> 1: channels-last is that many times faster).
Outputs are identical (``tests/models/test_max_pool.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixel_conv import recipe_steps  # noqa: E402
from timing import interleaved  # noqa: E402

from spacessl.models.encoders import ResNet18Encoder  # noqa: E402
from spacessl.models.max_pool import ChannelsLastMaxPool2d  # noqa: E402

#: name -> input of ResNet-18's stem pooling (B, 64, H, W): the stem's output
SHAPES = {"s2d 64 px, batch 64": (64, 64, 16, 16), "plain 64 px, batch 64": (64, 64, 32, 32),
          "plain 256 px, batch 16": (16, 64, 128, 128)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15, help="timings of each pooling layer")
    p.add_argument("--step-repeats", type=int, default=60,
                   help="timings of each training step (the difference is a few per cent of the step)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(f"channels-last max pooling on the CPU ({torch.get_num_threads()} threads), median of {args.repeats}")
    print(f"{'what':<34} {'ordinary ms':>12} {'channels-last ms':>17} {'ratio':>6}")
    g = torch.Generator().manual_seed(0)
    for name, shape in SHAPES.items():
        x = torch.randn(*shape, generator=g).requires_grad_()
        grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=g)
        pools = {"ordinary": nn.MaxPool2d(3, 2, 1), "fast": ChannelsLastMaxPool2d(3, 2, 1)}
        t = interleaved({k: (lambda pool=pool: pool(x).backward(grad)) for k, pool in pools.items()},
                        args.repeats, cpu)
        print(f"{'pooling, ' + name:<34} {t['ordinary'] * 1e3:>12.2f} {t['fast'] * 1e3:>17.2f} "
              f"{t['ordinary'] / t['fast']:>6.2f}", flush=True)

    torch.manual_seed(0)
    encoders = {"ordinary": ResNet18Encoder(1, space_to_depth=2, channels_last_max_pool=False)}
    encoders["fast"] = ResNet18Encoder(1, space_to_depth=2)
    encoders["fast"].load_state_dict(encoders["ordinary"].state_dict())
    x = torch.rand(64, 1, 64, 64, generator=g)
    steps = recipe_steps(encoders, x, cpu)
    t = interleaved(steps, args.step_repeats, cpu)
    print(f"{'training step, s2d 64 px, batch 64':<34} {t['ordinary'] * 1e3:>12.2f} {t['fast'] * 1e3:>17.2f} "
          f"{t['ordinary'] / t['fast']:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

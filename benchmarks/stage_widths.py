"""What narrower encoder stages (``model.widths``) save per training step: the quality benchmark's image recipe
with ResNet-18's stage widths against narrower ones, on the same batch.

    python benchmarks/stage_widths.py [--repeats 20] [--batch 64] [--threads N] [--device cpu|cuda]

Times, interleaved so that a drift of the machine's speed hits every variant alike, the whole training step of the
quality benchmark's image recipe (64 px frames through the space-to-depth stem, two ``allsky`` views, SimCLR 512/128
at temperature 0.2, backward, fused AdamW) for each set of widths. Prints the median milliseconds, the ratio
ResNet-18 / variant (> 1: the variant's step is that many times faster) and the encoder's parameters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixel_conv import recipe_steps  # noqa: E402
from timing import add_device_args, device_of, interleaved  # noqa: E402

from spacessl.models.encoders import RESNET18_WIDTHS, ResNet18Encoder, count_parameters  # noqa: E402

#: name -> (stage widths, embed_dim): ResNet-18, then narrower first stages, then every stage halved
VARIANTS: dict[str, tuple[tuple[int, ...], int]] = {
    "resnet18": (RESNET18_WIDTHS, 512),
    "[32,64,256,512]": ((32, 64, 256, 512), 512),
    "[32,64,128,512]": ((32, 64, 128, 512), 512),
    "[32,64,128,256]": ((32, 64, 128, 256), 256),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20, help="timed steps of each variant")
    p.add_argument("--batch", type=int, default=64)
    add_device_args(p)
    args = p.parse_args()
    device = device_of(args)
    torch.manual_seed(0)
    encoders = {name: ResNet18Encoder(1, embed_dim, space_to_depth=2, widths=widths).to(device)
                for name, (widths, embed_dim) in VARIANTS.items()}
    x = torch.rand(args.batch, 1, 64, 64, generator=torch.Generator().manual_seed(0)).to(device)
    t = interleaved(recipe_steps(encoders, x, device), args.repeats, device)
    print(f"training step of the image recipe on {device} ({torch.get_num_threads()} threads), batch {args.batch}, "
          f"64 px through the space-to-depth stem, median of {args.repeats}")
    print(f"{'widths':<18} {'step ms':>8} {'resnet18/this':>14} {'encoder params':>15}")
    for name, enc in encoders.items():
        print(f"{name:<18} {t[name] * 1e3:>8.1f} {t['resnet18'] / t[name]:>14.2f} {count_parameters(enc):>15,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

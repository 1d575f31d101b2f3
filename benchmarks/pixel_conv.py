"""What small-map convolutions save: ResNet-18 with its convolutions over 1 x 1 and 2 x 2 maps as matrix products
against the same network with plain ``nn.Conv2d`` everywhere.

    python benchmarks/pixel_conv.py [--repeats 12] [--batch 64] [--device cpu|cuda] [--threads N]

Four encoders, each built twice from the same weights (``ResNet18Encoder(small_map_convs=True|False)``):

- ``s2d64``: the quality benchmark's image encoder, 64 px frames through the space-to-depth stem (third stage
  2 x 2, last stage 1 x 1),
- ``plain32``: plain ResNet-18 at 32 px (the same map sizes),
- ``plain64``: plain ResNet-18 at 64 px (last stage 2 x 2),
- ``plain96``: plain ResNet-18 at 96 px (last stage 3 x 3, nothing to change: the control, ratio ~1).

For each it times, interleaved so that a drift of the machine's speed hits both alike, (1) the encoder alone:
forward and backward of one batch of single-channel frames; (2) the whole training step of the quality benchmark's
image recipe: two ``allsky`` views, SimCLR (projection 512/128, NT-Xent at temperature 0.2), backward and fused
AdamW (:func:`spacessl.train.loop.train_step`). Prints the median milliseconds of each and the ratio plain /
small-map (> 1: the small-map network is that many times faster). Both compute the same result and gradients
to float rounding (``tests/models/test_pixel_conv.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import add_device_args, device_of, interleaved  # noqa: E402

from spacessl.augment import build_augment  # noqa: E402
from spacessl.models.encoders import ResNet18Encoder  # noqa: E402
from spacessl.models.registry import build_method  # noqa: E402
from spacessl.train.loop import train_step  # noqa: E402

#: name -> (space-to-depth factor, input side in px)
ENCODERS = {"s2d64": (2, 64), "plain32": (1, 32), "plain64": (1, 64), "plain96": (1, 96)}
#: the quality benchmark's image recipe: AdamW at 0.002 per 256, weight decay 1e-4
LR, WEIGHT_DECAY = 0.002, 1e-4


def build(factor: int, small_map: bool, state: dict | None, device: torch.device) -> torch.nn.Module:
    encoder = ResNet18Encoder(1, space_to_depth=factor, small_map_convs=small_map)
    if state is not None:
        encoder.load_state_dict(state)
    return encoder.to(device).train()


def recipe_steps(encoders: dict[str, torch.nn.Module], x: torch.Tensor,
                 device: torch.device) -> dict[str, object]:
    """One training step of the quality benchmark's image recipe per encoder, on the batch ``x`` (B, 1, H, W):
    two ``allsky`` views, SimCLR (projection 512/128, NT-Xent at temperature 0.2), backward, fused AdamW."""
    augment = build_augment("image", "allsky")
    steps = {}
    for key, encoder in encoders.items():
        method = build_method("simclr", encoder=encoder, embed_dim=encoder.embed_dim, proj_hidden_dim=512,
                              proj_out_dim=128, temperature=0.2).to(device).train()
        opt = torch.optim.AdamW(method.parameters(), lr=LR * x.shape[0] / 256, weight_decay=WEIGHT_DECAY, fused=True)
        gen = torch.Generator(device=device).manual_seed(1)
        steps[key] = (lambda m=method, o=opt, r=gen: train_step(m, x, augment=augment, generator=r, optimizer=o,
                                                                scheduler=None))
    return steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=12)
    p.add_argument("--batch", type=int, default=64)
    add_device_args(p)
    args = p.parse_args()
    device = device_of(args)
    print(f"small-map convolutions on {device} ({torch.get_num_threads()} threads), batch {args.batch}, "
          f"median of {args.repeats}")
    print(f"{'encoder':<8} {'what':<14} {'plain ms':>9} {'small-map ms':>13} {'plain/small-map':>16}")
    for name, (factor, side) in ENCODERS.items():
        torch.manual_seed(0)
        plain = build(factor, False, None, device)
        fast = build(factor, True, plain.state_dict(), device)
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.rand(args.batch, 1, side, side, generator=g, device=device)

        def pass_of(encoder: torch.nn.Module):
            return lambda: encoder(x).square().mean().backward()

        t = interleaved({"plain": pass_of(plain), "fast": pass_of(fast)}, args.repeats, device)
        print(f"{name:<8} {'encoder pass':<14} {t['plain'] * 1e3:>9.1f} {t['fast'] * 1e3:>13.1f} "
              f"{t['plain'] / t['fast']:>16.2f}", flush=True)

        steps = recipe_steps({"plain": plain, "fast": fast}, x, device)
        t = interleaved(steps, args.repeats, device)
        print(f"{name:<8} {'training step':<14} {t['plain'] * 1e3:>9.1f} {t['fast'] * 1e3:>13.1f} "
              f"{t['plain'] / t['fast']:>16.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The optimiser's share of a training step: torch's fused SGD/AdamW against the unfused implementations.

    python benchmarks/optimizer_step.py [--repeats 15] [--device cpu|cuda] [--threads N]

For the two encoders the quality benchmark trains (ResNet-18 with the space-to-depth stem, 11.5 M parameters with
SimCLR's projection head; the 1-D ResNet), it fills every gradient once and times ``optimizer.step()`` of

- ``for-loop``: one op per term of the update per parameter (``foreach=False``),
- ``foreach``: the same terms over lists of tensors (torch's default on CUDA),
- ``fused``: one kernel per parameter for the whole update (what :func:`spacessl.train.loop.build_optimizer` builds
  on the CPU and CUDA),

interleaved so that a drift of the machine's speed hits all three alike, with the recipes' settings (AdamW lr 0.002
per 256, weight decay 1e-4; SGD momentum 0.9, weight decay 1e-5). Prints the median milliseconds per step and the
ratio for-loop / fused (> 1: the fused step is that many times faster). The step it saves is what the benchmark's
training step loses (``benchmarks/train_throughput.py`` times whole steps).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import add_device_args, device_of, interleaved  # noqa: E402

from spacessl.models import build_encoder, build_method  # noqa: E402

#: (encoder name, modality, input channels) of the quality benchmark's two recipes
ENCODERS = {"image": ("resnet18_s2d", "image", 1), "waveform": ("resnet1d", "waveform", 3)}
#: optimiser name -> (class, keyword arguments of the recipes)
OPTIMISERS = {"adamw": (torch.optim.AdamW, {"lr": 0.002 * 64 / 256, "weight_decay": 1e-4}),
              "sgd": (torch.optim.SGD, {"lr": 0.6 * 64 / 256, "momentum": 0.9, "weight_decay": 1e-5})}
IMPLEMENTATIONS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def time_steps(method: torch.nn.Module, optimiser: str, repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of ``step()`` per implementation, the three interleaved, after one warm-up step each."""
    cls, kwargs = OPTIMISERS[optimiser]
    params = [p for p in method.parameters() if p.requires_grad]
    g = torch.Generator(device=device).manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, device=device) * 1e-3
    opts = {name: cls(params, **kwargs, **extra) for name, extra in IMPLEMENTATIONS.items()}
    return interleaved({name: opt.step for name, opt in opts.items()}, repeats, device)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    add_device_args(p)
    args = p.parse_args()
    device = device_of(args)
    print(f"optimiser step on {device} ({torch.get_num_threads()} threads), median of {args.repeats}")
    print(f"{'encoder':<9} {'optimiser':<9} {'params':>10} {'for-loop ms':>12} {'foreach ms':>11} {'fused ms':>9} "
          f"{'for-loop/fused':>15}")
    for key, (encoder, modality, channels) in ENCODERS.items():
        torch.manual_seed(0)
        method = build_method("simclr", encoder=build_encoder(encoder, modality=modality, in_channels=channels),
                              proj_hidden_dim=512, proj_out_dim=128).to(device)
        n = sum(p.numel() for p in method.parameters())
        for optimiser in OPTIMISERS:
            t = time_steps(method, optimiser, args.repeats, device)
            print(f"{key:<9} {optimiser:<9} {n:>10,} {t['for-loop'] * 1e3:>12.1f} {t['foreach'] * 1e3:>11.1f} "
                  f"{t['fused'] * 1e3:>9.1f} {t['for-loop'] / t['fused']:>15.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The per-frame percentile stretch with order statistics from ``topk`` against the same stretch from a full sort.

    python benchmarks/percentile_stretch.py [--batch 64] [--repeats 20] [--threads 1]

``data.stretch: percentile`` scales every frame between its 1st and 99.5th percentile inside the field of view,
in the data path of training (one loader process, one torch thread) and of ``spacessl embed``.
:func:`spacessl.augment.preprocess.percentile_stretch` takes the four order statistics it needs with one
``topk`` from each end of the row (:func:`~spacessl.augment.preprocess.order_statistics`); the reference here is
the same function with the order statistics read from a full ``sort`` of each frame, as it was before. Frames of
64 and 256 px with the field-of-view mask, interleaved after one untimed call each; prints the median milliseconds
per batch and the ratio sort / topk (> 1: that many times faster). Both give the same result exactly (the same
order statistics).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import interleaved  # noqa: E402

import spacessl.augment.preprocess as preprocess  # noqa: E402
from spacessl.augment.images import fov_mask  # noqa: E402
from spacessl.augment.preprocess import percentile_stretch  # noqa: E402

PERCENTILES = (1.0, 99.5)


def sort_statistics(x: torch.Tensor, ranks) -> torch.Tensor:
    """The reference's order statistics: (R, N) -> (R, len(ranks)) read from a full sort of each row."""
    return x.sort(dim=1).values[:, list(ranks)]


def stretch_by_sort(x: torch.Tensor, percentiles: tuple[float, float], mask: torch.Tensor) -> torch.Tensor:
    """The reference: :func:`percentile_stretch` itself, with its order statistics taken from a full sort."""
    fast = preprocess.order_statistics
    preprocess.order_statistics = sort_statistics
    try:
        return percentile_stretch(x, percentiles, mask)
    finally:
        preprocess.order_statistics = fast


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch threads (a loader process uses 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"percentile stretch ({PERCENTILES[0]}, {PERCENTILES[1]}) of {args.batch} frames, "
          f"{torch.get_num_threads()} thread(s), median of {args.repeats}")
    print(f"{'side px':>7} {'sort ms':>8} {'topk ms':>8} {'sort/topk':>10}")
    for side in (64, 256):
        g = torch.Generator().manual_seed(side)
        x = torch.rand(args.batch, 1, side, side, generator=g).mul_(4000).floor_()  # uint16-like levels, ties
        mask = fov_mask(side, side, 1.0)
        fns = {"sort": lambda: stretch_by_sort(x, PERCENTILES, mask),
               "topk": lambda: percentile_stretch(x, PERCENTILES, mask)}
        if not torch.equal(fns["sort"](), fns["topk"]()):
            raise SystemExit(f"the two stretches differ at {side} px")
        ms = {k: v * 1e3 for k, v in interleaved(fns, args.repeats).items()}
        print(f"{side:>7} {ms['sort']:>8.1f} {ms['topk']:>8.1f} {ms['sort'] / ms['topk']:>10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

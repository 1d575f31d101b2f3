"""How much an evaluation's kNN accuracy owes to its one train/test split: the same embeddings scored over many
grouped splits.

    python benchmarks/split_spread.py out/q34/aurora.emb.zarr [out/q35/aurora.emb.zarr ...] [--seeds 10]
        [--split grouped|random] [--test-fraction 0.3] [--max-samples 20000]

``spacessl evaluate`` (and ``benchmarks/quality.py``) score one split, the one of ``--seed 0``. For each embeddings
store this draws the rows the evaluation draws at seed 0 (all labelled rows when there are no more than
``--max-samples``), splits them with split seeds 0 .. N-1 as ``spacessl evaluate --split ... --seed S`` splits
them, and scores the weighted cosine kNN (k = 20, T = 0.07) on each split. Prints one line per store: the accuracy of every seed, their mean and standard
deviation, and where seed 0 (the reported figure) lies against the mean. kNN only: the linear probe's
cross-validated choice of C costs a minute per split.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spacessl.embed.store import open_embeddings  # noqa: E402
from spacessl.evaluate.knn import DEFAULT_K, DEFAULT_TEMPERATURE, knn_accuracy  # noqa: E402
from spacessl.evaluate.sample import sample_embeddings  # noqa: E402
from spacessl.evaluate.splits import SPLITS, make_split  # noqa: E402


def spread(url: str, *, seeds: int = 10, split: str = "grouped", test_fraction: float = 0.3,
           max_samples: int = 20_000) -> np.ndarray:
    """kNN accuracy (seeds,) of the embeddings at ``url`` over the splits of seeds 0 .. seeds - 1."""
    sample = sample_embeddings(open_embeddings(url), max_samples, seed=0)
    return knn_over_splits(sample.vectors, sample, seeds=seeds, split=split, test_fraction=test_fraction)


def knn_over_splits(vectors: np.ndarray, sample, *, seeds: int = 10, split: str = "grouped",
                    test_fraction: float = 0.3) -> np.ndarray:
    """kNN accuracy (seeds,) of ``vectors`` (n, D), one row per row of ``sample`` (a
    :func:`~spacessl.evaluate.sample.sample_embeddings` draw: its labels, sources and times), over the splits of
    seeds 0 .. seeds - 1."""
    out = []
    for seed in range(seeds):
        train, test = make_split(split, sample.labels, source=sample.source, time_ns=sample.time_ns,
                                 test_fraction=test_fraction, seed=seed)
        acc, _ = knn_accuracy(vectors[train], sample.labels[train], vectors[test], sample.labels[test],
                              k=DEFAULT_K, temperature=DEFAULT_TEMPERATURE)
        out.append(acc)
    return np.asarray(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("embeddings", nargs="+", help="embeddings stores with a labelled archive")
    p.add_argument("--seeds", type=int, default=10, help="split seeds 0 .. N-1 (default 10)")
    p.add_argument("--split", choices=SPLITS, default="grouped")
    p.add_argument("--test-fraction", type=float, default=0.3)
    p.add_argument("--max-samples", type=int, default=20_000)
    args = p.parse_args(argv)
    if args.seeds < 2:
        p.error(f"--seeds must be at least 2 to give a spread, got {args.seeds}")
    warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
    print(f"kNN accuracy over {args.seeds} {args.split} splits (seed 0 is the one `spacessl evaluate` reports)")
    for url in args.embeddings:
        accs = spread(url, seeds=args.seeds, split=args.split, test_fraction=args.test_fraction,
                      max_samples=args.max_samples)
        mean, sd = float(accs.mean()), float(accs.std(ddof=1))
        print(f"{url}: {' '.join(f'{a:.3f}' for a in accs)}  mean {mean:.3f} sd {sd:.3f}  "
              f"seed 0 {accs[0] - mean:+.3f} from the mean")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How k-means depends on its number of k-means++ restarts, on a stored embeddings set.

    python benchmarks/kmeans_restarts.py out/q40/seismic.emb.zarr [--restarts 100] [--whiten 32] [--k K]
    python benchmarks/kmeans_restarts.py out/q37/aurora.emb.zarr --whiten 0 --k 12    # as `spacessl cluster`

Runs ``--restarts`` single k-means++ restarts (seeds 0 .. R-1) of spherical k-means with ``--k`` clusters (default:
the number of classes) on the evaluation's rows, by default PCA-whitened to ``--whiten`` axes (the evaluation's
protocol, :func:`~spacessl.evaluate.clustering.kmeans_scores`; ``--whiten 0``: the vectors as they are, what
``spacessl cluster`` clusters), and prints the Hungarian accuracy of the restart with the best objective, how many
restarts come within 0.1 % of that objective, and for n = 3 .. R the Hungarian accuracy and NMI that keeping the best
objective of n restarts gives: with seeds 0 .. n-1 (what ``nredo=n`` does) and over windows of n consecutive seeds
(lowest, mean and highest). The evaluation keeps the best of ``EVAL_RESTARTS``, ``spacessl cluster`` of
``CLUSTER_RESTARTS``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spacessl.embed.store import open_embeddings  # noqa: E402
from spacessl.evaluate.clustering import (CLUSTER_RESTARTS, EVAL_RESTARTS, assign, fit_kmeans,  # noqa: E402
                                          hungarian_accuracy, pca_whiten)
from spacessl.evaluate.metrics import KMEANS_WHITEN_DIM  # noqa: E402
from spacessl.evaluate.sample import sample_embeddings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("embeddings", help="an embeddings store with a labelled archive")
    p.add_argument("--restarts", type=int, default=100)
    p.add_argument("--whiten", type=int, default=KMEANS_WHITEN_DIM, help="PCA axes (0: the vectors as they are)")
    p.add_argument("--max-samples", type=int, default=20_000)
    p.add_argument("--k", type=int, default=None, help="clusters (default: the number of classes)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning, module="zarr")
    sample = sample_embeddings(open_embeddings(args.embeddings), args.max_samples, seed=0)
    y = sample.labels
    x = pca_whiten(sample.vectors, args.whiten) if args.whiten else sample.vectors
    k = args.k or len(np.unique(y))
    objs, accs, nmis = [], [], []
    for seed in range(args.restarts):
        centroids, obj = fit_kmeans(x, k, seed=seed, nredo=1)
        clusters = assign(x, centroids)[0]
        objs.append(obj)
        accs.append(hungarian_accuracy(y, clusters))
        nmis.append(normalized_mutual_info_score(y, clusters))
    obj, acc, nmi = np.asarray(objs), np.asarray(accs), np.asarray(nmis)
    best = int(obj.argmax())  # spherical: the objective is a sum of similarities
    print(f"{args.embeddings}: {len(y)} rows, k = {k}, {args.whiten or 'no'} whitened axes, {args.restarts} restarts")
    print(f"best objective {obj[best]:.1f} (seed {best}): accuracy {acc[best]:.3f}; "
          f"{int((obj >= obj[best] * 0.999).sum())} restarts within 0.1 % of it; single restarts "
          f"{acc.min():.3f}-{acc.max():.3f}")
    print(f"{'':>9}{'accuracy':>38}   {'NMI':>34}   (the best objective of n restarts)")
    print(f"{'restarts':>9}" + f"{'seeds 0..n-1':>14}{'lowest':>8}{'mean':>8}{'highest':>8}" * 2)
    for n in sorted({3, 10, 20, 30, EVAL_RESTARTS, CLUSTER_RESTARTS, args.restarts}):
        if n > args.restarts:
            continue
        kept = [s + int(obj[s:s + n].argmax()) for s in range(0, args.restarts - n + 1, max(1, n // 2))]
        first = int(obj[:n].argmax())
        print(f"{n:>9}" + "".join(f"{v[first]:>14.3f}{v[kept].min():>8.3f}{v[kept].mean():>8.3f}{v[kept].max():>8.3f}"
                                  for v in (acc, nmi)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""k-means on embeddings (FAISS, on GPUs when present) and the scores that compare clusters with labels.

- k-means: ``faiss.Kmeans`` (Lloyd iterations) from k-means++ seedings, the best of ``nredo`` restarts kept;
  spherical by default because embeddings are compared by cosine similarity (rows and centroids L2-normalised).
- Hungarian-matched accuracy: the one-to-one cluster → class assignment that maximises agreement
  (Kuhn 1955; scipy ``linear_sum_assignment``), the score Kinzel et al. (SRL 2024) report for k-means on SimCLR
  features of seismic events. With more clusters than classes the unmatched clusters count as wrong.
- NMI and ARI: scikit-learn's ``normalized_mutual_info_score`` and ``adjusted_rand_score``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score

from spacessl.evaluate.knn import l2_normalize


def faiss_gpu_count() -> int:
    """GPUs FAISS can use (0 for the faiss-cpu build)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def kmeans_pp_init(x: np.ndarray, k: int, *, seed: int = 0, max_rows: int = 20_000) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) on up to ``max_rows`` rows of ``x`` (N, D): each next
    centre is drawn with probability proportional to the squared distance to the nearest centre so far.
    Returns (k, D) float32."""
    rng = np.random.default_rng(seed)
    if len(x) > max_rows:
        x = x[rng.choice(len(x), size=max_rows, replace=False)]
    x = np.ascontiguousarray(x, dtype=np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    centres = [int(rng.integers(len(x)))]
    d2 = np.maximum(sq + sq[centres[0]] - 2.0 * (x @ x[centres[0]]), 0.0)
    for _ in range(1, k):
        total = float(d2.sum())
        nxt = int(rng.choice(len(x), p=d2 / total)) if total > 0 else int(rng.integers(len(x)))
        centres.append(nxt)
        d2 = np.minimum(d2, np.maximum(sq + sq[nxt] - 2.0 * (x @ x[nxt]), 0.0))
    return x[centres].copy()


#: k-means++ restarts of ``spacessl cluster`` (and of :func:`fit_kmeans` unless told), the one with the best objective
#: kept. With 3 the partition depended on the seed: on 6,000 frame embeddings of a benchmark run, the best of 3
#: scored Hungarian accuracy 0.639-0.799 at k = 6 over windows of consecutive seeds, the best of 20 0.791-0.792; at
#: k = 12 the NMI spread over 0.568-0.621 and 0.580-0.595 (docs/benchmarks.md, kmeans_restarts). A restart on 512-d
#: vectors takes 0.1-0.2 s on a CPU core.
CLUSTER_RESTARTS = 20


#: FAISS's own least number of training points per centroid before it warns
MIN_POINTS_PER_CENTROID = faiss.ClusteringParameters().min_points_per_centroid


def fit_kmeans(x: np.ndarray, k: int, *, niter: int = 25, nredo: int = CLUSTER_RESTARTS, seed: int = 0,
               spherical: bool = True, gpu: bool | None = None,
               max_points_per_centroid: int = 1024) -> tuple[np.ndarray, float]:
    """Train k-means centroids on the rows of ``x`` (N, D).

    Each of ``nredo`` runs starts from its own k-means++ seeding and runs ``niter`` Lloyd iterations in FAISS;
    the run with the best objective is kept.

    Args:
        k: clusters (N >= k).
        spherical: L2-normalise rows and centroids (cosine k-means); else plain Euclidean.
        gpu: use FAISS GPUs; None = when present.
        max_points_per_centroid: FAISS subsamples to ``k × this`` rows for training.
    Returns:
        (centroids (k, D) float32, final objective) — the sum of squared distances (Euclidean) or of
        similarities (spherical) as FAISS reports it.
    """
    x = l2_normalize(x) if spherical else np.ascontiguousarray(x, dtype=np.float32)
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means needs 1 <= k <= N, got k={k} for N={len(x)}")
    if len(x) < MIN_POINTS_PER_CENTROID * k:  # said once here, not by FAISS at every restart
        warnings.warn(f"k-means of {len(x)} points into {k} clusters: fewer than {MIN_POINTS_PER_CENTROID} points "
                      "per cluster, so the clusters are rough", stacklevel=2)
    use_gpu = faiss_gpu_count() > 0 if gpu is None else gpu
    best: tuple[np.ndarray, float] | None = None
    for r in range(max(1, nredo)):
        km = faiss.Kmeans(x.shape[1], int(k), niter=niter, nredo=1, seed=seed + r, spherical=spherical,
                          gpu=use_gpu, max_points_per_centroid=max_points_per_centroid, min_points_per_centroid=1,
                          verbose=False)
        km.train(x, init_centroids=kmeans_pp_init(x, int(k), seed=seed + r))
        obj = float(km.obj[-1]) if len(km.obj) else float("nan")
        better = best is None or (obj > best[1] if spherical else obj < best[1])
        if better:
            best = (np.ascontiguousarray(km.centroids, dtype=np.float32), obj)
    assert best is not None
    return best


def assign(x: np.ndarray, centroids: np.ndarray, *, spherical: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row of ``x`` (N, D).

    Returns:
        (cluster (N,) int64, distance (N,) float32): cosine distance ``1 - cos`` when ``spherical``, else the
        Euclidean distance.
    """
    if spherical:
        index = faiss.IndexFlatIP(centroids.shape[1])
        index.add(l2_normalize(centroids))
        sims, idx = index.search(l2_normalize(x), 1)
        return idx[:, 0].astype(np.int64), (1.0 - sims[:, 0]).astype(np.float32)
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    d2, idx = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return idx[:, 0].astype(np.int64), np.sqrt(np.maximum(d2[:, 0], 0.0)).astype(np.float32)


def kmeans(x: np.ndarray, k: int, **kwargs) -> np.ndarray:
    """Cluster ids (N,) of k-means with ``k`` clusters on ``x`` (N, D); kwargs go to :func:`fit_kmeans`."""
    centroids, _ = fit_kmeans(x, k, **kwargs)
    return assign(x, centroids, spherical=kwargs.get("spherical", True))[0]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_true: int | None = None,
                     num_pred: int | None = None) -> np.ndarray:
    """Counts (num_true, num_pred) int64: row = true class, column = predicted class or cluster."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    nt = int(num_true if num_true is not None else (y_true.max() + 1 if len(y_true) else 0))
    npred = int(num_pred if num_pred is not None else (y_pred.max() + 1 if len(y_pred) else 0))
    m = np.zeros((nt, npred), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def hungarian_match(y_true: np.ndarray, y_pred: np.ndarray) -> dict[int, int]:
    """The one-to-one map cluster → class that maximises the number of agreeing rows."""
    m = confusion_matrix(y_true, y_pred)  # (classes, clusters)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return {int(c): int(r) for r, c in zip(rows, cols, strict=True)}


def hungarian_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy of cluster ids ``y_pred`` (N,) against classes ``y_true`` (N,) under the best one-to-one map."""
    y_true = np.asarray(y_true, dtype=np.int64)
    if len(y_true) == 0:
        return float("nan")
    m = confusion_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return float(m[rows, cols].sum() / len(y_true))


def relabel(y_pred: np.ndarray, mapping: dict[int, int], unmatched: int = -1) -> np.ndarray:
    """Cluster ids → matched class ids (clusters without a class get ``unmatched``)."""
    lut = np.full(int(np.max(y_pred)) + 1 if len(y_pred) else 0, unmatched, dtype=np.int64)
    for c, cls in mapping.items():
        lut[c] = cls
    return lut[np.asarray(y_pred, dtype=np.int64)]


@dataclass
class ClusterScores:
    """k-means scored against labels: Hungarian accuracy, NMI, ARI and the class × cluster counts."""

    accuracy: float
    nmi: float
    ari: float
    confusion: np.ndarray = field(repr=False)  # (classes, classes) after Hungarian relabelling
    clusters: np.ndarray = field(repr=False)  # (N,) raw cluster ids


@dataclass
class PcaWhitening:
    """A PCA whitening fitted on some rows (:meth:`fit`), to apply to others (:meth:`apply`), e.g. shard by shard.

    ``mean`` (D,) float64, ``axes`` (d, D) float64 (principal axes, leading first), ``scale`` (d,) float64 (each axis's
    standard deviation ** (2·power)); ``apply(x)`` = ``(x - mean) @ axes.T * scale``."""

    mean: np.ndarray
    axes: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, dim: int, *, power: float = -0.5) -> PcaWhitening:
        """Fit on the rows of ``x`` (N, D): the ``dim`` leading principal axes (at most the rank of the centred rows,
        N - 1; zero-variance axes dropped), each scaled by its variance ** ``power``: -0.5 whitens, 0 only projects,
        between them whitens in part (FAISS's ``PCAMatrix`` ``eigen_power``). No labels."""
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)  # s: (min(N, D),), vt: (min(N, D), D)
        rank = int((s > s[0] * 1e-6).sum()) if len(s) and s[0] > 0 else 0  # centred: at most N - 1
        keep = max(1, min(int(dim), rank))
        std = s[:keep] / np.sqrt(max(1, len(x) - 1))
        return cls(mean=mean, axes=vt[:keep], scale=np.where(std > 0, std, 1.0) ** (2.0 * power))

    @property
    def dim(self) -> int:
        return int(len(self.axes))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Rows of ``x`` (N, D) → (N, d) float32."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) @ self.axes.T * self.scale).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """To an ``.npz`` file with arrays ``mean``, ``axes`` and ``scale``."""
        np.savez(path, mean=self.mean, axes=self.axes, scale=self.scale)

    @classmethod
    def load(cls, path: str | Path) -> PcaWhitening:
        with np.load(path) as z:
            return cls(mean=z["mean"], axes=z["axes"], scale=z["scale"])


def pca_whiten(x: np.ndarray, dim: int, *, power: float = -0.5) -> np.ndarray:
    """Rows of ``x`` (N, D) projected on their ``dim`` leading principal axes and scaled to unit variance per axis
    (PCA whitening, fitted on ``x`` itself, no labels): (N, min(dim, D, N - 1)) float32. Zero-variance axes are
    dropped. ``power`` scales each axis by its variance ** power instead: -0.5 whitens, 0 only projects, between
    them whitens in part (FAISS's ``PCAMatrix`` ``eigen_power``)."""
    return PcaWhitening.fit(x, dim, power=power).apply(x)


#: k-means++ restarts of the evaluation's k-means, the one with the best objective kept. With few restarts the
#: partition depends on the seeding: on well separated embeddings (kNN 0.98) 3 restarts ended in a local optimum
#: at 0.65 Hungarian accuracy, while the best objective of 20 or more found the partition at 0.95-0.97. A restart
#: of k = 4 on 6,000 rows x 32 axes takes about 6 ms.
EVAL_RESTARTS = 50


def kmeans_scores(x: np.ndarray, y: np.ndarray, *, k: int | None = None, seed: int = 0, nredo: int = EVAL_RESTARTS,
                  spherical: bool = True, whiten_dim: int | None = None) -> ClusterScores:
    """k-means with ``k`` (default: number of classes in ``y``) clusters on ``x`` (N, D), scored against ``y``.

    With ``whiten_dim``, k-means runs on :func:`pca_whiten` (``x``, whiten_dim) (then L2-normalised when
    ``spherical``), the protocol of Caron et al. (DeepCluster, 2018): self-supervised embeddings put most of their
    variance in a few directions that need not separate the classes, and whitening equalises them."""
    y = np.asarray(y, dtype=np.int64)
    num_classes = int(y.max()) + 1
    k = int(k or len(np.unique(y)))
    if whiten_dim:
        x = pca_whiten(x, whiten_dim)
    clusters = kmeans(x, k, seed=seed, nredo=nredo, spherical=spherical)
    mapping = hungarian_match(y, clusters)
    matched = relabel(clusters, mapping)
    conf = confusion_matrix(y[matched >= 0], matched[matched >= 0], num_classes, num_classes)
    return ClusterScores(accuracy=hungarian_accuracy(y, clusters), nmi=float(normalized_mutual_info_score(y, clusters)),
                         ari=float(adjusted_rand_score(y, clusters)), confusion=conf, clusters=clusters)


@dataclass
class KChoice:
    """Result of :func:`choose_k`: the chosen k, the score of every k tried and a sentence saying why."""

    k: int
    scores: dict[int, float]
    reason: str


def choose_k(x: np.ndarray, k_range: range | list[int] = range(2, 21), *, seed: int = 0,
             max_silhouette_rows: int = 5000) -> KChoice:
    """Choose k by the mean cosine silhouette (Rousseeuw 1987) of spherical k-means over ``k_range``.

    The silhouette of a row is ``(b - a) / max(a, b)`` with ``a`` its mean distance to its own cluster and ``b`` to
    the nearest other cluster; the k with the largest mean wins (ties → the smaller k). Rows beyond
    ``max_silhouette_rows`` are subsampled for the silhouette (it is O(N²)).
    """
    x = l2_normalize(x)
    ks = [int(k) for k in k_range if 2 <= int(k) < len(x)]
    if not ks:
        raise ValueError(f"no k in {list(k_range)} fits {len(x)} rows (need 2 <= k < N)")
    rng = np.random.default_rng(seed)
    sub = rng.choice(len(x), size=min(len(x), max_silhouette_rows), replace=False)
    scores: dict[int, float] = {}
    for k in ks:
        labels = assign(x, fit_kmeans(x, k, seed=seed, nredo=2)[0])[0]
        if len(np.unique(labels[sub])) < 2:
            scores[k] = -1.0
            continue
        scores[k] = float(silhouette_score(x[sub], labels[sub], metric="cosine"))
    best = max(ks, key=lambda k: (round(scores[k], 6), -k))
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    runner = next(((k, s) for k, s in ranked if k != best), None)
    reason = (f"k={best} has the highest mean cosine silhouette ({scores[best]:.3f}) of k in "
              f"{ks[0]}..{ks[-1]} on {len(x)} sampled embeddings")
    if runner is not None:
        reason += f"; next best k={runner[0]} ({runner[1]:.3f})"
    return KChoice(k=best, scores=scores, reason=reason)

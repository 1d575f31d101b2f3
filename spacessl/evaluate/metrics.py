"""All frozen-embedding metrics of one feature set on one split.

For features ``x`` (N, D) with labels ``y`` (N,) and a split (train rows, test rows):

- ``knn_acc``: temperature-weighted cosine kNN (k=20, T=0.07; :mod:`spacessl.evaluate.knn`), bank = train rows,
  scored on test rows;
- ``linear_acc``: logistic regression on standardised features (:mod:`spacessl.evaluate.linear_probe`), fit on
  train rows, scored on test rows, its regularisation chosen by cross-validation inside the train rows (folds keep
  ``groups`` whole when given) unless ``linear_c`` fixes it;
- ``kmeans_acc``, ``nmi``, ``ari``: spherical k-means with k = number of classes on all N rows (unsupervised, so
  no rows are held out) after PCA whitening to ``KMEANS_WHITEN_DIM`` dimensions, the best objective of
  ``EVAL_RESTARTS`` k-means++ restarts (:mod:`spacessl.evaluate.clustering`), scored by Hungarian-matched
  accuracy, NMI and ARI (:mod:`spacessl.evaluate.clustering`); ``kmeans_whiten=0`` clusters the vectors as they are;
- confusion matrices (true class × predicted class) of all three, the k-means one after Hungarian matching.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spacessl.evaluate.clustering import confusion_matrix, kmeans_scores
from spacessl.evaluate.knn import DEFAULT_K, DEFAULT_TEMPERATURE, knn_accuracy
from spacessl.evaluate.linear_probe import linear_probe, select_c

METRIC_KEYS = ("knn_acc", "linear_acc", "kmeans_acc", "nmi", "ari")
#: dimensions k-means sees after PCA whitening (DeepCluster's protocol, which used 256 for 4096-d features)
KMEANS_WHITEN_DIM = 32


@dataclass
class FeatureMetrics:
    """Scores of one feature set; ``confusion`` maps "knn" / "linear" / "kmeans" to (C, C) int64 counts."""

    knn_acc: float
    linear_acc: float
    kmeans_acc: float
    nmi: float
    ari: float
    confusion: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: the linear probe's inverse L2 strength (chosen on the train rows unless fixed); NaN without a probe
    linear_c: float = float("nan")

    def scores(self) -> dict[str, float]:
        """The five headline numbers, keyed as in ``METRIC_KEYS``."""
        return {key: float(getattr(self, key)) for key in METRIC_KEYS}


def feature_metrics(x: np.ndarray, y: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray, *,
                    k: int = DEFAULT_K, temperature: float = DEFAULT_TEMPERATURE, seed: int = 0,
                    linear: bool = True, kmeans_whiten: int = KMEANS_WHITEN_DIM, groups: np.ndarray | None = None,
                    linear_c: float | None = None) -> FeatureMetrics:
    """Score features ``x`` (N, D) against labels ``y`` (N,) int >= 0 on the given split (row index arrays).

    ``groups`` (N,): group id per row, for the linear probe's validation folds (pass them with a grouped split);
    ``linear_c``: a fixed inverse L2 strength instead of the one :func:`select_c` picks.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    num_classes = int(y.max()) + 1
    xtr, ytr, xte, yte = x[train_rows], y[train_rows], x[test_rows], y[test_rows]
    knn_acc, knn_pred = knn_accuracy(xtr, ytr, xte, yte, k=k, temperature=temperature)
    c = float("nan")
    if linear:
        c = linear_c if linear_c is not None else select_c(
            xtr, ytr, groups=None if groups is None else np.asarray(groups)[train_rows], seed=seed)[0]
        lin_acc, lin_pred = linear_probe(xtr, ytr, xte, yte, c=c, seed=seed)
    else:
        lin_acc, lin_pred = float("nan"), np.empty(0, np.int64)
    km = kmeans_scores(x, y, seed=seed, whiten_dim=kmeans_whiten or None)
    confusion = {"knn": confusion_matrix(yte, knn_pred, num_classes, num_classes), "kmeans": km.confusion}
    if linear:
        confusion["linear"] = confusion_matrix(yte, lin_pred, num_classes, num_classes)
    return FeatureMetrics(knn_acc=knn_acc, linear_acc=lin_acc, kmeans_acc=km.accuracy, nmi=km.nmi, ari=km.ari,
                          confusion=confusion, linear_c=float(c))

"""Weighted k-nearest-neighbour classification of frozen embeddings (cosine similarity).

Votes are temperature-weighted as in instance discrimination (Wu et al., "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", CVPR 2018) and DINO's ``eval_knn.py`` (Caron et al., ICCV 2021): each of
the ``k`` nearest training embeddings votes for its class with weight ``exp(cos / T)``, ``T = 0.07``; the class with
the largest summed weight wins. Both sides are L2-normalised first, so any feature set (raw pixels included) is
compared by cosine similarity.
"""

from __future__ import annotations

import faiss
import numpy as np

DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` (N, D) scaled to unit L2 norm, as contiguous float32 (zero rows stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, eps), dtype=np.float32)


def knn_predict(train_x: np.ndarray, train_y: np.ndarray, query_x: np.ndarray, *, k: int = DEFAULT_K,
                temperature: float = DEFAULT_TEMPERATURE, num_classes: int | None = None,
                batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Classify ``query_x`` by a temperature-weighted vote of its ``k`` most cosine-similar training rows.

    Args:
        train_x: (Nt, D) reference embeddings; train_y: (Nt,) int class ids >= 0.
        query_x: (Nq, D) embeddings to classify.
        k: neighbours (capped at Nt).
        temperature: vote weight ``exp(cos / temperature)``.
        num_classes: C; default ``max(train_y) + 1``.
        batch_size: queries per exact FAISS search (memory Nq_batch × k).
    Returns:
        (pred, scores): pred (Nq,) int64 predicted class; scores (Nq, C) float32 normalised vote weights.
    """
    train_y = np.asarray(train_y, dtype=np.int64)
    if len(train_x) == 0:
        raise ValueError("knn_predict needs at least one training embedding")
    if len(train_x) != len(train_y):
        raise ValueError(f"train_x has {len(train_x)} rows but train_y has {len(train_y)}")
    c = int(num_classes if num_classes is not None else train_y.max() + 1)
    k = max(1, min(int(k), len(train_x)))
    bank = l2_normalize(train_x)
    index = faiss.IndexFlatIP(bank.shape[1])
    index.add(bank)
    q = l2_normalize(query_x)
    pred = np.empty(len(q), dtype=np.int64)
    scores = np.zeros((len(q), c), dtype=np.float32)
    for s in range(0, len(q), batch_size):
        sims, idx = index.search(q[s:s + batch_size], k)  # (b, k) each
        weights = np.exp((sims - sims[:, :1]) / temperature)  # shift by the best similarity: no overflow
        votes = np.zeros((len(idx), c), dtype=np.float64)
        np.add.at(votes, (np.arange(len(idx))[:, None], train_y[idx]), weights)
        votes /= votes.sum(axis=1, keepdims=True)
        scores[s:s + len(idx)] = votes
        pred[s:s + len(idx)] = votes.argmax(axis=1)
    return pred, scores


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
                 k: int = DEFAULT_K, temperature: float = DEFAULT_TEMPERATURE) -> tuple[float, np.ndarray]:
    """Accuracy of :func:`knn_predict` on the labelled test rows; returns (accuracy, predictions (Nt,))."""
    test_y = np.asarray(test_y, dtype=np.int64)
    if len(test_y) == 0:
        return float("nan"), np.empty(0, np.int64)
    num_classes = int(max(np.max(train_y), test_y.max())) + 1
    pred, _ = knn_predict(train_x, train_y, test_x, k=k, temperature=temperature, num_classes=num_classes)
    return float(np.mean(pred == test_y)), pred

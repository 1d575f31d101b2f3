"""Neighbour search back-ends shared by outlier ranking and label propagation.

A back-end is a callable ``search(queries (B, D), width) -> (similarities (B, w), archive ids (B, w))``, best first,
ids -1 where fewer than ``width`` results exist, similarities = cosine (inner product of unit vectors):

- :func:`exact_search`: FAISS ``IndexFlatIP`` over vectors held in memory (small sets, tests);
- :func:`index_search`: the sharded index built by ``spacessl index`` (:class:`spacessl.index.search.ShardedIndex`).
"""

from __future__ import annotations

from typing import Any, Protocol

import faiss
import numpy as np

from spacessl.evaluate.knn import l2_normalize


class NeighbourSearch(Protocol):
    """(similarities (B, w) float32, archive ids (B, w) int64, -1 padded) for query vectors (B, D)."""

    def __call__(self, queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]: ...


def exact_search(vectors: np.ndarray, ids: np.ndarray) -> NeighbourSearch:
    """Exact inner-product search over ``vectors`` (N, D) whose rows are archive ids ``ids`` (N,)."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(l2_normalize(vectors))
    ids = np.asarray(ids, dtype=np.int64)

    def search(queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        sims, rows = index.search(l2_normalize(queries), max(1, min(width, index.ntotal)))
        return sims, np.where(rows >= 0, ids[np.maximum(rows, 0)], -1)

    return search


def index_search(index_dir: str, **search_kwargs: Any) -> tuple[NeighbourSearch, Any]:
    """A back-end over the sharded index at ``index_dir`` and the opened index (for its manifest).

    ``search_kwargs`` (since, until, source, label, dedup_s, ...) pass through to ``ShardedIndex.search``.
    """
    from spacessl.index.search import ShardedIndex

    index = ShardedIndex.open(str(index_dir))

    def search(queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        dist, ids = index.search(l2_normalize(queries), int(width), **search_kwargs)
        return to_similarity(np.asarray(dist, dtype=np.float32)), np.asarray(ids, dtype=np.int64)

    return search, index


def to_similarity(dist: np.ndarray) -> np.ndarray:
    """Cosine similarity from the index's cosine distances ``1 - cos`` (+inf for a missing result → -inf)."""
    return (1.0 - dist).astype(np.float32)

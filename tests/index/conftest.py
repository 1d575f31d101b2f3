"""Seeded synthetic embeddings (clustered, camera-like metadata) and indexes built from them, shared by the index
tests. Small on purpose: 20,000 × 32 in 5 shards (the last one partial)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from spacessl.index.synthetic import ClusteredVectors, write_synthetic

N = 20_000
DIM = 32
CHUNK, SHARD_CHUNKS = 1024, 4   # shards of 4096 rows: 4 full + 3616


@dataclass
class SynStore:
    gen: ClusteredVectors
    n: int
    archive_url: str
    emb_url: str
    root: Path

    def vectors(self) -> np.ndarray:
        return self.gen.rows(0, self.n)[0]

    def meta(self) -> dict[str, np.ndarray]:
        return self.gen.rows(0, self.n)[1]

    def fresh_queries(self, q: int) -> np.ndarray:
        """Vectors of rows after the stored ones: same distribution, not in the index."""
        return np.ascontiguousarray(self.gen.rows(self.n + 10_000, self.n + 10_000 + q)[0])


@pytest.fixture(scope="session")
def syn_gen() -> ClusteredVectors:
    return ClusteredVectors(DIM, n_clusters=60, seed=0)


@pytest.fixture(scope="session")
def syn_store(syn_gen, tmp_path_factory) -> SynStore:
    root = tmp_path_factory.mktemp("syn")
    archive, emb = write_synthetic(root, N, syn_gen, chunk_size=CHUNK, shard_chunks=SHARD_CHUNKS)
    return SynStore(syn_gen, N, archive, emb, root)


@pytest.fixture(scope="session")
def flat_index(syn_store, tmp_path_factory) -> Path:
    from spacessl.index.build import build_index

    out = tmp_path_factory.mktemp("flat") / "idx"
    build_index(syn_store.emb_url, out, kind="flat", progress=False, workers=2, tune_queries=200, shard_rows=4096)
    return out


@pytest.fixture(scope="session")
def ivf_index(syn_store, tmp_path_factory) -> Path:
    """The auto-chosen index of the store (IVF-Flat at this size), tuned to recall@10 >= 0.95."""
    from spacessl.index.build import build_index

    out = tmp_path_factory.mktemp("ivf") / "idx"
    build_index(syn_store.emb_url, out, kind="auto", progress=False, workers=2, tune_queries=300, shard_rows=4096)
    return out


def brute_force(vectors: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All cosine distances, sorted: (distances (Q, N) ascending, ids (Q, N)); ties by id."""
    sims = queries @ vectors.T
    order = np.argsort(-sims, axis=1, kind="stable")
    return 1.0 - np.take_along_axis(sims, order, 1), order

"""A bounded, stratified, reproducible sample of the labelled rows of an embeddings set, read by streaming.

Evaluation needs every sample's vector, label, source and time in memory, plus (for the baselines) raw samples
and a second forward pass, so large archives are evaluated on at most ``max_n`` labelled rows (default 20,000).
One pass over the ids and labels keeps, per class, the ``max_n`` rows with the smallest pseudo-random key
``splitmix64(id ⊕ seed)``; the class quotas are then set proportional to the class counts (largest remainder,
at least ``min_per_class`` rows, or all of a smaller class), so the sample is a uniform stratified draw that does
not depend on the order the rows are read in. Memory: O(classes × max_n), whatever the archive size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spacessl.errors import SpacesslError

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


class EvaluationDataError(SpacesslError):
    """The embeddings or their archive cannot be evaluated (no labels, mismatched archive, ...)."""


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele et al. 2014) applied elementwise to uint64 ``x``: a stateless hash."""
    z = np.asarray(x, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return z ^ (z >> np.uint64(31))


def row_keys(ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """Pseudo-random uint64 key (N,) of each row id: the same id and seed always give the same key."""
    salt = np.uint64((int(seed) * 0x632BE59BD9B4E019) & 0xFFFFFFFFFFFFFFFF)
    return splitmix64(np.asarray(ids, dtype=np.int64).astype(np.uint64) ^ salt)


def quotas(counts: np.ndarray, max_n: int, min_per_class: int = 10) -> np.ndarray:
    """Rows to draw per class (C,): proportional to ``counts`` (largest remainder), at least
    ``min(count, min_per_class)`` each, summing to ``min(max_n, counts.sum())`` where the minimums allow."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total <= max_n:
        return counts.copy()
    floor = np.minimum(counts, min_per_class)
    rest = max(0, max_n - int(floor.sum()))
    extra_cap = counts - floor
    share = extra_cap / max(1, int(extra_cap.sum())) * rest
    q = np.floor(share).astype(np.int64)
    left = rest - int(q.sum())
    order = np.argsort(-(share - q), kind="stable")
    for c in order[:left]:
        q[c] += 1
    return floor + np.minimum(q, extra_cap)


class StratifiedReservoir:
    """Streaming per-class bottom-k by key. Feed (positions, ids, labels) blocks; rows with label < 0 are skipped."""

    def __init__(self, max_n: int, seed: int = 0):
        if max_n < 1:
            raise EvaluationDataError(f"the evaluation sample size must be >= 1, got {max_n}")
        self.max_n = int(max_n)
        self.seed = int(seed)
        self.counts: dict[int, int] = {}
        self._keep: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # class -> (keys, positions)

    def add(self, positions: np.ndarray, ids: np.ndarray, labels: np.ndarray) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        ok = labels >= 0
        positions, ids, labels = np.asarray(positions)[ok], np.asarray(ids)[ok], labels[ok]
        keys = row_keys(ids, self.seed)
        for cls in np.unique(labels):
            rows = labels == cls
            self.counts[int(cls)] = self.counts.get(int(cls), 0) + int(rows.sum())
            k_old, p_old = self._keep.get(int(cls), (np.empty(0, np.uint64), np.empty(0, np.int64)))
            k = np.concatenate([k_old, keys[rows]])
            p = np.concatenate([p_old, positions[rows].astype(np.int64)])
            if len(k) > self.max_n:
                top = np.argpartition(k, self.max_n - 1)[: self.max_n]
                k, p = k[top], p[top]
            self._keep[int(cls)] = (k, p)

    def positions(self, min_per_class: int = 10) -> np.ndarray:
        """Sorted positions of the stratified sample."""
        if not self.counts:
            return np.empty(0, np.int64)
        classes = sorted(self.counts)
        q = quotas(np.array([self.counts[c] for c in classes]), self.max_n, min_per_class)
        out = []
        for cls, n in zip(classes, q, strict=True):
            k, p = self._keep[cls]
            out.append(p[np.argsort(k, kind="stable")[:n]])
        return np.sort(np.concatenate(out))


@dataclass
class EvalSample:
    """The evaluated rows: archive ids (n,), SSL vectors (n, D) float32, labels (n,), sources (n,) str and
    UTC times (n,) int64 ns."""

    ids: np.ndarray
    vectors: np.ndarray
    labels: np.ndarray
    source: np.ndarray
    time_ns: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def sample_embeddings(emb, max_n: int = 20_000, *, seed: int = 0, min_per_class: int = 10,
                      block_rows: int = 1 << 20) -> EvalSample:
    """Stratified sample of the labelled rows of ``emb`` (an opened embeddings store) with their metadata.

    Reads ids and labels in blocks of ``block_rows`` and then only the sampled vectors and meta rows.
    """
    archive = emb.archive()
    if not archive.label_names:
        raise EvaluationDataError(f"{archive.url} has no labels (no label_names attribute): evaluate needs a "
                                  "labelled archive, e.g. one from `spacessl synth` or an ingest with a labels CSV")
    reservoir = StratifiedReservoir(max_n, seed)
    for p0 in range(0, emb.n, block_rows):
        p1 = min(emb.n, p0 + block_rows)
        ids = np.asarray(emb.ids[p0:p1].compute(), dtype=np.int64)
        lo, hi = int(ids.min()), int(ids.max()) + 1
        labels = np.asarray(archive.read_meta(lo, hi, ["label"], decode=False)["label"])[ids - lo]
        reservoir.add(np.arange(p0, p1), ids, labels)
    pos = reservoir.positions(min_per_class)
    if len(pos) == 0:
        raise EvaluationDataError(f"{archive.url} declares labels {archive.label_names} but every embedded row is "
                                  "unlabelled (label -1); nothing to evaluate")
    vectors, ids = take_rows(emb, pos)
    meta = archive.take(ids, fields=["label", "source", "time_ns"]).meta
    return EvalSample(ids=ids, vectors=vectors, labels=np.asarray(meta["label"], dtype=np.int64),
                      source=np.asarray(meta["source"]), time_ns=np.asarray(meta["time_ns"], dtype=np.int64))


def take_rows(emb, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (m, D) float32, ids (m,) int64) of store rows ``positions`` (sorted), reading only the Zarr chunks
    that hold them."""
    positions = np.asarray(positions, dtype=np.int64)
    group = getattr(emb, "group", None)
    if group is not None and "vectors" in group and "ids" in group:
        vectors = group["vectors"].get_orthogonal_selection((positions, slice(None)))
        ids = group["ids"].get_orthogonal_selection((positions,))
    else:
        vectors, ids = emb.vectors[positions].compute(), emb.ids[positions].compute()
    return np.asarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)


def uniform_positions(emb, max_n: int, *, seed: int = 0, block_rows: int = 1 << 20) -> np.ndarray:
    """Sorted positions (≤ max_n,) of a uniform random sample of all rows of ``emb`` (labelled or not), drawn by
    streaming the ids (bottom-``max_n`` of :func:`row_keys`)."""
    keys = np.empty(0, np.uint64)
    pos = np.empty(0, np.int64)
    for p0 in range(0, emb.n, block_rows):
        p1 = min(emb.n, p0 + block_rows)
        ids = np.asarray(emb.ids[p0:p1].compute(), dtype=np.int64)
        keys = np.concatenate([keys, row_keys(ids, seed)])
        pos = np.concatenate([pos, np.arange(p0, p1, dtype=np.int64)])
        if len(keys) > max_n:
            top = np.argpartition(keys, max_n - 1)[:max_n]
            keys, pos = keys[top], pos[top]
    return np.sort(pos)

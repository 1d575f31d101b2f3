"""``spacessl outliers``: rank samples by how far they lie from the rest of the archive.

Score of a sample = cosine distance ``1 - cos`` to its k-th nearest neighbour, where neighbours from the same
source within ``dedup_s`` seconds (the sample's own near-duplicates: the neighbouring frames of an all-sky
sequence, overlapping seismic windows) and the sample itself do not count. A rare event has no k-th neighbour
close to it elsewhere in the archive, an ordinary one has many; the density view of Breunig et al.'s LOF and of
k-NN distance outlier detection (Ramaswamy et al., SIGMOD 2000).

Search: exact (FAISS ``IndexFlatIP``) over the embeddings for sets up to ``exact_max`` rows (source and time
of every row read from the archive: 12 bytes a row), else through the sharded index built by ``spacessl index``
(source and time from the index's memory-mapped per-id columns). Each query asks for ``k + margin`` neighbours;
a query whose neighbours are mostly its own near-duplicates is searched again, four times wider, until k valid
neighbours are found. Memory: the ``top`` best rows kept in a running merge, plus one query block.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spacessl.errors import SpacesslError
from spacessl.evaluate.neighbours import NeighbourSearch, exact_search, index_search


class OutlierError(SpacesslError):
    """Outlier ranking cannot run with these arguments."""


def kth_neighbour_similarity(query_ids: np.ndarray, query_vectors: np.ndarray, search: NeighbourSearch, *,
                             lookup: "MetaLookup", k: int = 10, dedup_s: float = 60.0, margin: int = 32,
                             max_width: int = 4096) -> np.ndarray:
    """Cosine similarity (B,) of each query to its k-th valid neighbour (see the module docstring).

    Args:
        query_ids: (B,) archive ids of the queries; query_vectors: (B, D).
        lookup: source code and time of any archive id.
        k: which neighbour (1 = nearest other sample).
        dedup_s: same-source neighbours closer in time than this are near-duplicates and skipped.
    Returns:
        (B,) float32; -1 where fewer than k valid neighbours exist within ``max_width``.
    """
    query_ids = np.asarray(query_ids, dtype=np.int64)
    out = np.full(len(query_ids), -1.0, dtype=np.float32)
    todo = np.arange(len(query_ids))
    width = k + margin
    dedup_ns = int(dedup_s * 1e9)
    qsrc, qt = lookup(query_ids)
    while len(todo):
        sims, nid = search(query_vectors[todo], width)
        nsrc, nt = lookup(np.where(nid >= 0, nid, 0))
        dup = (nsrc == qsrc[todo, None]) & (np.abs(nt - qt[todo, None]) < dedup_ns)
        valid = (nid >= 0) & (nid != query_ids[todo, None]) & ~dup
        count = np.cumsum(valid, axis=1)
        found = count[:, -1] >= k
        col = np.argmax(count >= k, axis=1)
        rows = np.flatnonzero(found)
        out[todo[rows]] = sims[rows, col[rows]]
        exhausted = sims.shape[1] < width or width >= max_width
        todo = todo[~found]
        if exhausted:
            break
        width = min(max_width, width * 4)
    return out


class MetaLookup:
    """(source code, time_ns) of archive ids, from arrays covering ids [0, N)."""

    def __init__(self, source_codes: np.ndarray, time_ns: np.ndarray):
        self.source = source_codes  # (N,) int codes; numpy or memory-mapped
        self.time_ns = time_ns  # (N,) int64

    def __call__(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(self.source[ids], dtype=np.int64), np.asarray(self.time_ns[ids], dtype=np.int64))

    @classmethod
    def from_archive(cls, archive: Any) -> MetaLookup:
        """Reads the two int columns of the archive ((N,) int32 + int64: 12 bytes per row)."""
        return cls(archive.meta("source").compute(), archive.meta("time_ns").compute())


def rank_outliers(vectors: np.ndarray, ids: np.ndarray, source_codes: np.ndarray, time_ns: np.ndarray, *,
                  k: int = 10, dedup_s: float = 60.0, top: int = 100,
                  block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact outlier ranking of an in-memory set: vectors (N, D), ids (N,) (any distinct ints), per-row source
    codes (N,) and times (N,) ns. Returns (ids, scores) of the ``top`` rows, highest score (= 1 - cos to the k-th
    valid neighbour) first."""
    ids = np.asarray(ids, dtype=np.int64)
    src = np.asarray(source_codes, dtype=np.int64)
    tns = np.asarray(time_ns, dtype=np.int64)
    rows = np.arange(len(ids))
    search_rows = exact_search(vectors, rows)  # searches and look-ups by row position
    lookup = MetaLookup(src, tns)
    best_ids, best_scores = np.empty(0, np.int64), np.empty(0, np.float32)
    for s in range(0, len(ids), block):
        r = rows[s:s + block]
        sim = kth_neighbour_similarity(r, vectors[r], search_rows, lookup=lookup, k=k, dedup_s=dedup_s)
        best_ids, best_scores = _merge_top(best_ids, best_scores, ids[r], 1.0 - sim, top)
    return best_ids, best_scores


def _merge_top(ids_a: np.ndarray, sc_a: np.ndarray, ids_b: np.ndarray, sc_b: np.ndarray,
               top: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.concatenate([ids_a, ids_b])
    sc = np.concatenate([sc_a, sc_b]).astype(np.float32)
    order = np.lexsort((ids, -sc))[:top]
    return ids[order], sc[order]


@dataclass
class OutlierReport:
    """What :func:`find_outliers` did."""

    out: str
    n: int
    top: int
    k: int
    dedup_s: float
    mode: str
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    label_counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        labels = ", ".join(f"{k}: {v}" for k, v in self.label_counts.items())
        return (f"ranked {self.n} embeddings by distance to their {self.k}-th neighbour (same-source neighbours "
                f"within {self.dedup_s:g} s skipped, {self.mode} search) in {self.seconds:.1f} s\n"
                f"  top {self.top} written to {self.files.get('csv')}, montage {self.files.get('montage')}"
                + (f"\n  labels among the top {self.top}: {labels}" if labels else ""))


def find_outliers(url: str, out: str | Path, *, top: int = 100, k: int = 10, dedup_s: float = 60.0,
                  index_dir: str | None = None, exact_max: int = 500_000, montage_n: int = 48,
                  block: int = 4096, progress: bool = False) -> OutlierReport:
    """Rank every embedding of the store at ``url``; write ``outliers.csv``, ``outliers.parquet`` and
    ``outliers.png`` (the first ``montage_n``) into the folder ``out``."""
    from spacessl.embed.store import open_embeddings
    from spacessl.evaluate.catalog import frame, label_strings, write_catalog
    from spacessl.evaluate.montage import montage

    t0 = time.perf_counter()
    if top < 1 or k < 1:
        raise OutlierError(f"--top and --k must be >= 1, got top={top}, k={k}")
    emb = open_embeddings(url)
    archive = emb.archive()
    if index_dir is not None:
        search, index = index_search(index_dir)
        load_meta = getattr(index, "_load_meta", None)  # the index's memory-mapped per-id columns
        meta = load_meta() if load_meta is not None else None
        lookup = MetaLookup(meta["source"], meta["time_ns"]) if meta else MetaLookup.from_archive(archive)
        mode = "index"
    elif emb.n <= exact_max:
        lookup = MetaLookup.from_archive(archive)
        allv = np.asarray(emb.vectors.compute(), dtype=np.float32)
        search, mode = exact_search(allv, np.asarray(emb.ids.compute(), dtype=np.int64)), "exact"
        del allv
    else:
        raise OutlierError(f"{url} holds {emb.n} embeddings, more than the exact-search limit {exact_max}; build "
                           "an index (`spacessl index ...`) and pass --index, or raise --exact-max")
    best_ids, best_sc = np.empty(0, np.int64), np.empty(0, np.float32)
    for ids, vecs in emb.iter_shards():
        for s in range(0, len(ids), block):
            sim = kth_neighbour_similarity(ids[s:s + block], vecs[s:s + block], search, lookup=lookup, k=k,
                                           dedup_s=dedup_s)
            best_ids, best_sc = _merge_top(best_ids, best_sc, ids[s:s + block], 1.0 - sim, top)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = np.argsort(best_ids)
    batch = archive.take(best_ids[order], fields=[f for f in ("time_ns", "source", "origin", "label")
                                                  if f in archive.meta_fields])
    inv = np.argsort(order)
    meta = {key: np.asarray(v)[inv] for key, v in batch.meta.items()}
    labels = label_strings(meta.get("label", np.full(len(best_ids), -1)), archive.label_names)
    df = frame(best_ids, meta["time_ns"], meta["source"], meta["origin"], label=labels,
               score=best_sc.astype(np.float32), rank=np.arange(len(best_ids)))
    csv_path, pq_path = write_catalog(df, out / "outliers")
    m = min(montage_n, len(best_ids))
    samples = batch.samples[inv][:m]
    mpath = montage(samples, out / "outliers.png", modality=archive.modality,
                    titles=[f"{r}: #{i} {s:.3f}" for r, (i, s) in enumerate(zip(best_ids[:m], best_sc[:m],
                                                                                   strict=True))],
                    sampling_rate_hz=archive.attrs.get("sampling_rate_hz"),
                    suptitle=f"top {m} outliers: 1 - cos to the {k}-th neighbour (same source within {dedup_s:g} s "
                             "skipped)")
    counts: dict[str, int] = {}
    for lab in labels:
        if lab:
            counts[lab] = counts.get(lab, 0) + 1
    report = OutlierReport(out=str(out), n=emb.n, top=len(best_ids), k=k, dedup_s=dedup_s, mode=mode,
                           files={"csv": str(csv_path), "parquet": str(pq_path), "montage": str(mpath)},
                           seconds=time.perf_counter() - t0, label_counts=dict(sorted(counts.items())))
    (out / "outliers.json").write_text(json.dumps(report.__dict__, indent=2, default=str))
    return report

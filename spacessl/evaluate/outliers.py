"""``spacessl outliers``: rank samples by how far they lie from the rest of the archive and from their own context.

Score of a sample = ``archive`` term + ``context`` term, both cosine distances ``1 - cos`` of unit embeddings:

- archive: distance to its k-th nearest neighbour, where neighbours from the same source within ``dedup_s``
  seconds (the sample's own near-duplicates: the neighbouring frames of an all-sky sequence, overlapping seismic
  windows) and the sample itself do not count. A rare event has no k-th neighbour close to it elsewhere in the
  archive, an ordinary one has many; the density view of Breunig et al.'s LOF and of k-NN distance outlier
  detection (Ramaswamy et al., SIGMOD 2000).
- context (on by default): distance to the *nearest* sample of the same source within ``dedup_s`` seconds
  (at most ``context_max`` on each side in time), 0 where there is none. An ordinary sample has a near-duplicate
  beside it; a transient (a meteor crossing one all-sky frame, a glitch in one window) is unlike everything just
  before and after it, even when it resembles some other kind of sample elsewhere (a meteor streak looks like
  an auroral arc), which the archive term alone cannot see. A change of scene (an arc appearing) keeps one side
  similar and scores near 0: the term responds to samples isolated in time, not to onsets. The idea is the frame
  differencing of meteor and transient surveys, done on embeddings.

The list: samples in score order, with near-duplicates folded (``fold_cos``): a sample of the same source as a
listed one, within ``dedup_s`` of it and at least ``fold_cos`` cosine-similar to it, counts in that sample's
``folded`` column instead of taking a place of its own. An unusual episode of twenty near-identical frames is one
entry, while two different meteors a few frames apart stay two.

Search: exact (FAISS ``IndexFlatIP``) over the embeddings for sets up to ``exact_max`` rows (source and time
of every row read from the archive: 12 bytes a row), else through the sharded index built by ``spacessl index``
(source and time from the index's memory-mapped per-id columns). Each query asks for ``k + margin`` neighbours;
a query whose neighbours are mostly its own near-duplicates is searched again, four times wider, until k valid
neighbours are found. The context term reads the embeddings once in (source, time) order, a block at a time.
Memory: the (N,) id, source, time, score and context columns (36 bytes a row) and one block.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spacessl.errors import SpacesslError, refuse_existing
from spacessl.evaluate.knn import l2_normalize
from spacessl.evaluate.neighbours import NeighbourSearch, exact_search, index_search


FOLD_COS = 0.9  #: default cosine at or above which a same-source sample within dedup_s is a near-duplicate
MAX_WIDTH = 4096  #: most neighbours one search of :func:`kth_neighbour_similarity` returns
MAX_K = MAX_WIDTH - 32  #: largest k, leaving its search a margin for the near-duplicates it skips


#: what :func:`find_outliers` writes into its output folder
OUTPUT_FILES = ("outliers.csv", "outliers.parquet", "outliers.png", "outliers.json")


class OutlierError(SpacesslError):
    """Outlier ranking cannot run with these arguments."""


def kth_neighbour_similarity(query_ids: np.ndarray, query_vectors: np.ndarray, search: NeighbourSearch, *,
                             lookup: "MetaLookup", k: int = 10, dedup_s: float = 60.0, margin: int = 32,
                             max_width: int = MAX_WIDTH) -> np.ndarray:
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


def context_similarity(vectors_of: Callable[[np.ndarray], np.ndarray], source_codes: np.ndarray,
                       time_ns: np.ndarray, *, window_s: float = 60.0, context_max: int = 16,
                       block: int = 65536) -> np.ndarray:
    """Cosine similarity (N,) of each sample to its most similar same-source sample within ``window_s`` seconds.

    Args:
        vectors_of: rows (m,) int64, ascending → their vectors (m, D) (rows index the set, 0..N-1; normalised here).
        source_codes: (N,) int source code of each row; time_ns: (N,) int64 time of each row.
        window_s: how far apart in time (s) a context sample may be.
        context_max: at most this many same-source samples on each side in time are compared.
        block: rows compared per step, in (source, time) order; memory is (block + 2 context_max) vectors.
    Returns:
        (N,) float32, NaN where a row has no same-source sample within ``window_s``.
    """
    src = np.asarray(source_codes, dtype=np.int64)
    tns = np.asarray(time_ns, dtype=np.int64)
    n = len(src)
    out = np.full(n, np.nan, dtype=np.float32)
    if n < 2 or window_s <= 0:
        return out
    order = np.lexsort((tns, src))  # rows in (source, time) order
    window_ns = int(window_s * 1e9)
    h = int(context_max)
    for b in range(0, n, block):
        lo, hi = max(0, b - h), min(n, b + block + h)
        rows = order[lo:hi]
        vec = _unit_vectors(vectors_of, rows)
        s, t = src[rows], tns[rows]
        best = np.full(len(rows), -np.inf, dtype=np.float32)
        for off in range(1, h + 1):
            if off >= len(rows):
                break
            ok = (s[off:] == s[:-off]) & (t[off:] - t[:-off] < window_ns)
            if not ok.any():
                break  # rows are in time order within a source: a wider offset is further apart still
            i = np.flatnonzero(ok)
            sim = np.einsum("ij,ij->i", vec[i], vec[i + off])
            np.maximum.at(best, i, sim)
            np.maximum.at(best, i + off, sim)
        core = slice(b - lo, b - lo + min(block, n - b))
        part = best[core]
        out[rows[core]] = np.where(np.isfinite(part), part, np.nan)
    return out


def _unit_vectors(vectors_of: Callable[[np.ndarray], np.ndarray], rows: np.ndarray) -> np.ndarray:
    """(m, D) unit vectors of ``rows`` (m,) in their given order, read through ``vectors_of`` in ascending order."""
    fetch = np.sort(rows)
    return l2_normalize(np.asarray(vectors_of(fetch), dtype=np.float32))[np.searchsorted(fetch, rows)]


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
                  k: int = 10, dedup_s: float = 60.0, top: int = 100, context: bool = True, context_max: int = 16,
                  block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact outlier ranking of an in-memory set: vectors (N, D), ids (N,) (any distinct ints), per-row source
    codes (N,) and times (N,) ns. Returns (ids, scores) of the ``top`` rows, highest score first (the module
    docstring's score; the archive term alone with ``context=False``). Near-duplicates are not folded."""
    ids = np.asarray(ids, dtype=np.int64)
    src = np.asarray(source_codes, dtype=np.int64)
    tns = np.asarray(time_ns, dtype=np.int64)
    rows = np.arange(len(ids))
    search_rows = exact_search(vectors, rows)  # searches and look-ups by row position
    lookup = MetaLookup(src, tns)
    scores = (context_distance(lambda r: vectors[r], src, tns, window_s=dedup_s, context_max=context_max)
              if context else np.zeros(len(ids), np.float32))
    for s in range(0, len(ids), block):
        r = rows[s:s + block]
        scores[r] += 1.0 - kth_neighbour_similarity(r, vectors[r], search_rows, lookup=lookup, k=k, dedup_s=dedup_s)
    order = rank_order(scores, ids)[:top]
    return ids[order], scores[order]


def rank_order(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row positions (N,) by descending score, ties by ascending id."""
    return np.lexsort((np.asarray(ids), -np.asarray(scores)))


def fold_near_duplicates(order: np.ndarray, vectors_of: Callable[[np.ndarray], np.ndarray],
                         source_codes: np.ndarray, time_ns: np.ndarray, *, window_s: float, min_cos: float,
                         top: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The first ``top`` distinct samples of a ranking, each with the near-duplicates folded into it.

    Walks ``order`` (row positions, best first). A row of the same source as an already listed one, less than
    ``window_s`` seconds from it and with cosine >= ``min_cos`` to it, is folded into the highest-ranked such row
    (the frames of one unusual episode make one entry, not twenty); every other row is listed, until ``top`` are.

    Args:
        vectors_of: rows (m,) ascending → their vectors (m, D) (normalised here).
        source_codes, time_ns: (N,) per row.
    Returns:
        (listed rows (<= top,) int64 in rank order, folded (<= top,) int64: how many rows ranked above the walk's
        end were folded into each).
    """
    window_ns = int(window_s * 1e9)
    listed: list[int] = []
    folded: list[int] = []
    by_source: dict[int, list[tuple[int, int, np.ndarray]]] = {}  # source → [(time, position in listed, unit vec)]
    for s in range(0, len(order), chunk):
        rows = np.asarray(order[s:s + chunk], dtype=np.int64)
        for r, v in zip(rows, _unit_vectors(vectors_of, rows), strict=True):
            src, t = int(source_codes[r]), int(time_ns[r])
            home = next((i for tk, i, vk in by_source.get(src, ())
                         if abs(t - tk) < window_ns and float(v @ vk) >= min_cos), None)
            if home is not None:
                folded[home] += 1
                continue
            if len(listed) == top:
                return np.asarray(listed, np.int64), np.asarray(folded, np.int64)
            by_source.setdefault(src, []).append((t, len(listed), v))
            listed.append(int(r))
            folded.append(0)
    return np.asarray(listed, np.int64), np.asarray(folded, np.int64)


def context_distance(vectors_of: Callable[[np.ndarray], np.ndarray], source_codes: np.ndarray, time_ns: np.ndarray,
                     *, window_s: float, context_max: int) -> np.ndarray:
    """The context term (N,) float32: ``1 - context_similarity``, 0 where a row has no context."""
    sim = context_similarity(vectors_of, source_codes, time_ns, window_s=window_s, context_max=context_max)
    return np.where(np.isnan(sim), 0.0, 1.0 - sim).astype(np.float32)


@dataclass
class OutlierReport:
    """What :func:`find_outliers` did."""

    out: str
    n: int
    top: int
    k: int
    dedup_s: float
    mode: str
    context: bool = True
    fold_cos: float | None = FOLD_COS
    folded: int = 0
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    label_counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        labels = ", ".join(f"{k}: {v}" for k, v in self.label_counts.items())
        ctx = (f" plus distance to the nearest same-source sample within {self.dedup_s:g} s" if self.context
               else "")
        return (f"ranked {self.n} embeddings by distance to their {self.k}-th neighbour (same-source neighbours "
                f"within {self.dedup_s:g} s skipped){ctx}, {self.mode} search, in {self.seconds:.1f} s\n"
                f"  top {self.top} written to {self.files.get('csv')}"
                + (f", montage {self.files['montage']}" if "montage" in self.files else " (no montage)")
                + (f"\n  {self.folded} near-duplicates (same source within {self.dedup_s:g} s, cos >= "
                   f"{self.fold_cos:g}) folded into the listed samples" if self.fold_cos is not None else "")
                + (f"\n  labels among the top {self.top}: {labels}" if labels else ""))


def find_outliers(url: str, out: str | Path, *, top: int = 100, k: int = 10, dedup_s: float = 60.0,
                  index_dir: str | None = None, exact_max: int = 500_000, montage_n: int = 48,
                  context: bool = True, context_max: int = 16, fold_cos: float | None = FOLD_COS,
                  block: int = 4096, overwrite: bool = False, progress: bool = False) -> OutlierReport:
    """Rank every embedding of the store at ``url``; write ``outliers.csv``, ``outliers.parquet`` (columns id, time,
    source, origin, label, score, archive_distance, context_distance, folded, rank) and ``outliers.png`` (the first
    ``montage_n``; none for 0) into the folder ``out``.

    ``fold_cos``: a sample of the same source as a listed one, within ``dedup_s`` of it and at least this similar,
    is folded into it (:func:`fold_near_duplicates`); None lists every sample. An earlier run's outputs in ``out``
    are replaced only with ``overwrite`` (else refused before any search). Memory: the (N,) id, source, time,
    score and context columns (36 bytes a row), plus all vectors for exact search."""
    from spacessl.embed.store import open_embeddings
    from spacessl.evaluate.catalog import frame, label_strings, write_catalog
    from spacessl.evaluate.montage import montage

    t0 = time.perf_counter()
    if top < 1 or k < 1:
        raise OutlierError(f"--top and --k must be >= 1, got top={top}, k={k}")
    if dedup_s < 0 or montage_n < 0 or context_max < 1:
        raise OutlierError(f"--dedup-s and --montage must be >= 0 and --context-max >= 1, got {dedup_s:g}, "
                           f"{montage_n} and {context_max} (defaults 60, 48 and 16)")
    if fold_cos is not None and not -1.0 <= fold_cos <= 1.0:
        raise OutlierError(f"--fold-cos is a cosine and must lie in [-1, 1], got {fold_cos}; use --keep-duplicates "
                           "to list every sample")
    out = Path(out)
    if not overwrite:
        refuse_existing([out / f for f in OUTPUT_FILES], what="an outlier list", error=OutlierError)
    emb = open_embeddings(url)
    if k >= emb.n:
        raise OutlierError(f"--k {k} asks for the {k}-th neighbour but {url} holds {emb.n} embeddings; give a k "
                           f"below {emb.n} (default 10)")
    if k > MAX_K:
        raise OutlierError(f"--k {k} is more than the {MAX_K} neighbours a search returns; give a k up to {MAX_K} "
                           "(default 10)")
    archive = emb.archive()
    row_ids = np.asarray(emb.ids.compute(), dtype=np.int64)  # archive id of each embedding row
    if index_dir is not None:
        search, index = index_search(index_dir)
        load_meta = getattr(index, "_load_meta", None)  # the index's memory-mapped per-id columns
        meta = load_meta() if load_meta is not None else None
        lookup = MetaLookup(meta["source"], meta["time_ns"]) if meta else MetaLookup.from_archive(archive)
        mode = "index"
    elif emb.n <= exact_max:
        lookup = MetaLookup.from_archive(archive)
        allv = np.asarray(emb.vectors.compute(), dtype=np.float32)
        search, mode = exact_search(allv, row_ids), "exact"
    else:
        raise OutlierError(f"{url} holds {emb.n} embeddings, more than the exact-search limit {exact_max}; build "
                           "an index (`spacessl index ...`) and pass --index, or raise --exact-max")
    row_src, row_t = lookup(row_ids)
    vectors_of = (lambda r: allv[r]) if mode == "exact" else emb.rows
    scores = (context_distance(vectors_of, row_src, row_t, window_s=dedup_s, context_max=context_max)
              if context else np.zeros(emb.n, np.float32))  # (N,): the context term, then + the archive term
    ctx = scores.copy()
    # exact: the vectors are in memory already; index: read shard by shard
    parts = ((row_ids, allv),) if mode == "exact" else emb.iter_shards()
    start = 0
    for ids, vecs in parts:
        for s in range(0, len(ids), block):
            sim = kth_neighbour_similarity(ids[s:s + block], vecs[s:s + block], search, lookup=lookup, k=k,
                                           dedup_s=dedup_s)
            scores[start + s:start + s + len(sim)] += 1.0 - sim
        start += len(ids)
    order = rank_order(scores, row_ids)
    if fold_cos is None:
        rows, folded = order[:top], np.zeros(min(top, len(order)), np.int64)
    else:
        rows, folded = fold_near_duplicates(order, vectors_of, row_src, row_t, window_s=dedup_s, min_cos=fold_cos,
                                            top=top)
    if mode == "exact":
        del allv
    best_ids, best_sc, best_ctx = row_ids[rows], scores[rows], ctx[rows]
    out.mkdir(parents=True, exist_ok=True)
    order = np.argsort(best_ids)
    batch = archive.take(best_ids[order], fields=[f for f in ("time_ns", "source", "origin", "label")
                                                  if f in archive.meta_fields])
    inv = np.argsort(order)
    meta = {key: np.asarray(v)[inv] for key, v in batch.meta.items()}
    labels = label_strings(meta.get("label", np.full(len(best_ids), -1)), archive.label_names)
    df = frame(best_ids, meta["time_ns"], meta["source"], meta["origin"], label=labels,
               score=best_sc, archive_distance=best_sc - best_ctx, context_distance=best_ctx, folded=folded,
               rank=np.arange(len(best_ids)))
    csv_path, pq_path = write_catalog(df, out / "outliers")
    files = {"csv": str(csv_path), "parquet": str(pq_path)}
    m = min(montage_n, len(best_ids))
    if m:
        samples = batch.samples[inv][:m]
        files["montage"] = str(montage(
            samples, out / "outliers.png", modality=archive.modality,
            titles=[f"{r}: #{i} {s:.3f}" + (f" (+{f})" if f else "")
                    for r, (i, s, f) in enumerate(zip(best_ids[:m], best_sc[:m], folded[:m], strict=True))],
            sampling_rate_hz=archive.attrs.get("sampling_rate_hz"),
            suptitle=f"top {m} outliers: 1 - cos to the {k}-th neighbour (same source within {dedup_s:g} s "
                     "skipped)" + (" + 1 - cos to the nearest same-source sample within that time" if context else "")))
    else:
        (out / "outliers.png").unlink(missing_ok=True)  # --montage 0: none; an earlier run's goes under overwrite
    counts: dict[str, int] = {}
    for lab in labels:
        if lab:
            counts[lab] = counts.get(lab, 0) + 1
    report = OutlierReport(out=str(out), n=emb.n, top=len(best_ids), k=k, dedup_s=dedup_s, mode=mode,
                           context=context, fold_cos=fold_cos, folded=int(folded.sum()),
                           files=files,
                           seconds=time.perf_counter() - t0, label_counts=dict(sorted(counts.items())))
    (out / "outliers.json").write_text(json.dumps(report.__dict__, indent=2, default=str))
    return report

"""Build a sharded FAISS index from an embeddings store, tune it to a recall target, and grow it.

The folder layout and manifest are described in :mod:`spacessl.index.layout`. The base index (OPQ, coarse
quantizer, PQ codebooks) is trained once on a sample and saved as ``trained.faiss``. An index shard is a run of
whole embeddings-store shards (about ``shard_rows`` = 2²⁰ vectors: archive shards of a few thousand samples would
make a billion-sample index of 10⁵ files); each is added to a copy of the trained index, store shard by store shard,
in parallel threads (FAISS releases the GIL), and written as its own file without the coarse quantizer, which all
shards share. Shard files are written atomically (temporary name, then rename); a killed
build is resumed by running it again: the trained index and finished shard files are reused, and the result is the
same as an uninterrupted build. The manifest is written last, then the index is recorded on its model's MLflow
training run (:func:`record_index_lineage`). On a machine with GPUs
(``faiss.get_num_gpus() > 0``) the k-means of the coarse quantizer runs on all of them.

Tuning raises nprobe (IVF) or efSearch (HNSW), and for a re-ranked IVF-PQ the re-ranking depth ``k_factor`` once
nprobe stops paying, until recall@10 against exact search meets the target, on queries held out of training and
scored leave-one-out (each query is an indexed vector; itself is dropped from both lists, as a query by id does).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from spacessl.embed.store import Embeddings, open_embeddings
from spacessl.errors import SpacesslError
from spacessl.index import layout
from spacessl.index.layout import MANIFEST, TRAINED, TRAINED_REFINE
from spacessl.index.plan import IndexPlan, choose, parse_bytes
from spacessl.ingest.parallel import default_workers

MANIFEST_VERSION = layout.VERSION
PLAN_FILE = "plan.json"


class IndexBuildError(SpacesslError):
    """The index cannot be built or grown as asked."""


def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu, which has no GPU symbols)."""
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def make_template(plan: IndexPlan, d: int) -> tuple[faiss.Index, faiss.Index | None]:
    """Untrained (base index, SQ8 re-ranking index or None) for ``plan``; inner-product metric.

    An ``OPQ{m}_{D'}`` prefix is built here rather than by the factory, so that its iterations can be set.
    """
    factory = plan.factory
    opq = None
    head, _, rest = factory.partition(",")
    if head.startswith("OPQ") and rest:
        m, _, d_out = head[3:].partition("_")
        opq = faiss.OPQMatrix(d, int(m), int(d_out or d))
        if plan.opq_niter:
            opq.niter = plan.opq_niter
            opq.niter_pq_0 = min(opq.niter_pq_0, 10)  # first PQ fit inside OPQ (FAISS default 40)
        opq.max_train_points = min(opq.max_train_points, 256 * 64)
        inner = faiss.index_factory(int(d_out or d), rest, faiss.METRIC_INNER_PRODUCT)
        base = faiss.IndexPreTransform(opq, inner)
    else:
        base = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
    refine = None
    if plan.refine:
        refine = faiss.index_factory(d, plan.refine, faiss.METRIC_INNER_PRODUCT)
    return base, refine


def sample_rows(emb: Embeddings, size: int, seed: int,
                exclude: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """About ``size`` rows as (ids, float32 vectors), spread over the store: random rows of many random chunks (an
    eighth of each, or an even share of every chunk for a larger sample), one chunk in memory at a time. Rows in
    ``exclude`` = [lo, hi) are never taken (the tuning block).

    Consecutive rows are near-duplicates (the next frames of one camera), so whole chunks make a clumpy sample: on
    1,000,000 synthetic vectors with 32-frame events, an IVF4096 quantizer trained on 17 whole chunks needed nprobe 32
    for recall@10 0.97, one trained on rows spread over all chunks nprobe 8 for 0.99.
    """
    lo, hi = exclude
    size = min(size, emb.n - (hi - lo))
    chunk = emb.chunk_size
    n_chunks = -(-emb.n // chunk)
    rng = np.random.default_rng(seed)
    per_chunk = int(min(chunk, max(-(-size // n_chunks), -(-chunk // 8))))
    ids, vecs, got = [], [], 0
    for c in rng.permutation(n_chunks):
        c0 = int(c) * chunk
        i, v = emb.read(c0, min(emb.n, c0 + chunk))
        rows = np.arange(c0, c0 + len(i))
        keep = np.flatnonzero((rows < lo) | (rows >= hi))
        if len(keep) == 0:
            continue
        take = np.sort(rng.choice(keep, size=min(len(keep), per_chunk, size - got), replace=False))
        ids.append(i[take])
        vecs.append(v[take])
        got += len(take)
        if got >= size:
            break
    return np.concatenate(ids), np.ascontiguousarray(np.concatenate(vecs))


def tuning_block(emb: Embeddings, n_queries: int, seed: int) -> tuple[int, int]:
    """A random run of rows [lo, hi), whole chunks, kept out of training and out of the tuning searches; the tuning
    queries come from it, so that they are as new to the index as a fresh sample (their near-duplicate neighbouring
    frames, and the events they show, are outside both the quantizer's training and the searched vectors).
    About 8 rows per query, at least 1 % and at most 20 % of the store."""
    rows = min(max(8 * n_queries, emb.n // 100), emb.n // 5)
    chunk = emb.chunk_size
    rows = -(-rows // chunk) * chunk if rows >= chunk else rows
    if rows <= 0 or rows >= emb.n:
        return 0, 0
    lo = int(np.random.default_rng([seed, 7]).integers(0, emb.n - rows + 1))
    lo = lo // chunk * chunk if rows >= chunk else lo
    return lo, min(emb.n, lo + rows)


def train_template(plan: IndexPlan, emb: Embeddings, seed: int = 0,
                   exclude: tuple[int, int] = (0, 0)) -> tuple[faiss.Index, faiss.Index | None]:
    """Train the base (and re-ranking) index once on a sample of the store (rows in ``exclude`` left out)."""
    if plan.train_size <= 0:
        return make_template(plan, emb.dim)
    _, x = sample_rows(emb, plan.train_size, seed, exclude)
    return train_on(plan, x, seed)


def train_on(plan: IndexPlan, x: np.ndarray, seed: int = 0) -> tuple[faiss.Index, faiss.Index | None]:
    """(base, re-ranking index or None) for ``plan``, trained on the (n, D) float32 sample ``x``."""
    base, refine = make_template(plan, x.shape[1])
    ivf = layout.ivf_of(base)
    if ivf is not None:
        ivf.cp.seed = seed
        ivf.cp.niter = plan.kmeans_niter or ivf.cp.niter
        ivf.cp.max_points_per_centroid = 256
        if gpu_count() > 0:  # k-means of the coarse quantizer on every GPU (kept alive until trained)
            gpu_kmeans = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(ivf.d))
            ivf.clustering_index = gpu_kmeans
        pq = getattr(ivf, "pq", None)
        if pq is not None:
            ivf.do_polysemous_training = False  # only for Hamming-filtered search, which is not used
            if plan.kmeans_niter:
                pq.cp.niter = plan.kmeans_niter  # PQ codebooks: same k-means effort as the coarse quantizer
    if not base.is_trained:
        base.train(x)
    if refine is not None:
        refine.train(x)
    return base, refine


def write_meta(emb: Embeddings, out: Path) -> dict[str, Any]:
    """Per-id time, source code and label as memory-mappable .npy columns (streamed shard by shard)."""
    archive = emb.archive()
    meta_dir = out / "meta"
    meta_dir.mkdir(parents=True, exist_ok=True)
    cols = {"time_ns": np.int64, "source": np.int32, "label": np.int16}
    arrays = {name: np.lib.format.open_memmap(meta_dir / f"{name}.npy.partial", mode="w+", dtype=dt,
                                              shape=(archive.n,)) for name, dt in cols.items()}
    span = archive.chunk_size * archive.shard_chunks
    for s0 in range(0, archive.n, span):
        s1 = min(archive.n, s0 + span)
        block = archive.read_meta(s0, s1, list(cols), decode=False)
        for name in cols:
            arrays[name][s0:s1] = block[name]
    for name, arr in arrays.items():
        arr.flush()
        del arr
        os.replace(meta_dir / f"{name}.npy.partial", meta_dir / f"{name}.npy")
    layout.atomic_write_text(meta_dir / "sources.json", json.dumps(archive.names("source")))
    return {"columns": list(cols), "n": archive.n, "label_names": archive.label_names}


DEFAULT_SHARD_ROWS = 2**20  #: vectors per index shard (whole embeddings-store shards are grouped up to about this)


def shard_group_size(emb: Embeddings, shard_rows: int | None) -> int:
    """How many consecutive embeddings-store shards make one index shard (at least one)."""
    span = emb.chunk_size * emb.shard_chunks
    return max(1, round((shard_rows or DEFAULT_SHARD_ROWS) / span))


def index_shards(emb: Embeddings, group: int) -> list[tuple[int, int, int]]:
    """(index shard j, first store shard, store shard stop) for every index shard of ``emb``."""
    return [(j, lo, min(emb.num_shards, lo + group)) for j, lo in enumerate(range(0, emb.num_shards, group))]


def _rows(emb: Embeddings, lo: int, hi: int) -> tuple[int, int]:
    return emb.shard_range(lo)[0], emb.shard_range(hi - 1)[1]


def _shard_entry(j: int, lo: int, hi: int, rows: tuple[int, int], ids: np.ndarray, refine: bool) -> dict[str, Any]:
    start, stop = rows
    contiguous = len(ids) == 0 or (int(ids[-1]) - int(ids[0]) == len(ids) - 1 and bool(np.all(np.diff(ids) == 1)))
    return {"shard": j, "file": layout.shard_file(j), "refine_file": layout.refine_file(j) if refine else None,
            "store_shards": [lo, hi], "rows": [start, stop], "count": stop - start,
            "id_start": int(ids[0]) if len(ids) else start, "id_stop": int(ids[-1]) + 1 if len(ids) else start,
            "ids_file": None if contiguous else layout.ids_file(j)}


def write_shard(out: Path, entry: dict[str, Any], emb: Embeddings) -> None:
    """Add one index shard's vectors (its store shards, streamed one at a time) under local ids 0..count-1 to copies
    of the trained indexes and write them (id map and re-ranking codes first, the base file last: its existence marks
    the shard done)."""
    lo, hi = entry["store_shards"]
    index = faiss.read_index(str(out / TRAINED))
    refine = faiss.read_index(str(out / TRAINED_REFINE)) if entry["refine_file"] else None
    all_ids = []
    for s in range(lo, hi):
        ids, vecs = emb.read(*emb.shard_range(s))
        vecs = np.ascontiguousarray(vecs)
        index.add(vecs)
        if refine is not None:
            refine.add(vecs)
        all_ids.append(ids)
    if entry["ids_file"]:
        layout.atomic_save_npy(out / entry["ids_file"], np.concatenate(all_ids).astype(np.int64))
    if refine is not None:
        layout.atomic_write_index(refine, out / entry["refine_file"])
        del refine
    swap = layout.detach_quantizer(index)  # the coarse quantizer is shared: not stored per shard
    layout.atomic_write_index(index, out / entry["file"])
    if swap is not None:
        swap.restore()
    del index


def _shard_done(out: Path, entry: dict[str, Any]) -> bool:
    return (out / entry["file"]).exists() and (not entry["refine_file"] or (out / entry["refine_file"]).exists())


def add_shards(emb: Embeddings, out: Path, groups: list[tuple[int, int, int]], *, refine: bool, workers: int,
               progress: bool, rebuild: set[int] | None = None) -> list[dict[str, Any]]:
    """Write one index file per group of store shards from trained.faiss, ``workers`` groups at a time, each on an
    equal share of the cores (FAISS's OpenMP threads per worker); finished files are kept."""
    (out / "shards").mkdir(parents=True, exist_ok=True)
    rebuild = rebuild or set()

    def one(group: tuple[int, int, int]) -> dict[str, Any]:
        j, lo, hi = group
        rows = _rows(emb, lo, hi)
        ids = np.asarray(emb.group["ids"][rows[0]:rows[1]])
        entry = _shard_entry(j, lo, hi, rows, ids, refine)
        if not _shard_done(out, entry) or j in rebuild:
            write_shard(out, entry, emb)
        return entry

    entries = []
    # the cores shared out: each thread keeps its own OpenMP team, and teams that together hold more threads than
    # there are cores stop spinning between FAISS's parallel loops (spacessl/train/threads.py)
    workers = max(1, min(workers, len(groups)))
    threads = max(1, default_workers() // workers)
    with ThreadPoolExecutor(max_workers=workers, initializer=faiss.omp_set_num_threads, initargs=(threads,)) as pool:
        for entry in tqdm(pool.map(one, groups), total=len(groups), desc="index shards", unit="shard",
                          disable=not progress, dynamic_ncols=True):
            entries.append(entry)
    return entries


def exact_topk(emb: Embeddings, queries: np.ndarray, k: int,
               row_ranges: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Exact top-k ids (Q, k) by inner product over the store (or the listed row ranges), one store shard at a time."""
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    span = emb.chunk_size * emb.shard_chunks
    for start, stop in row_ranges if row_ranges is not None else [(0, emb.n)]:
        for s0 in range(start, stop, span):
            ids, vecs = emb.read(s0, min(stop, s0 + span))
            sims, local = faiss.knn(queries, vecs, min(k, len(vecs)), metric=faiss.METRIC_INNER_PRODUCT)
            gids = np.where(local >= 0, ids[np.clip(local, 0, None)], -1)
            heap.add_result(np.ascontiguousarray(sims, dtype=np.float32),
                            np.ascontiguousarray(gids, dtype=np.int64))
    heap.finalize()
    return heap.I


def recall_per_query(found: np.ndarray, truth: np.ndarray, k: int = 10) -> np.ndarray:
    """(Q,) |found[:k] ∩ truth[:k]| / k per query (ids < 0 never count)."""
    return np.array([len(set(f[:k].tolist()) & set(t[:k].tolist()) - {-1}) / k for f, t in zip(found, truth)])


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean recall@k: mean over queries of |found[:k] ∩ truth[:k]| / k."""
    r = recall_per_query(found, truth, k)
    return float(r.mean()) if len(r) else 1.0


def drop_self(ids: np.ndarray, qids: np.ndarray, k: int) -> np.ndarray:
    """Each row of ``ids`` without its query's own id, cut to ``k`` (leave-one-out scoring)."""
    out = np.full((len(ids), k), -1, dtype=np.int64)
    for r, (row, q) in enumerate(zip(ids, qids)):
        kept = row[row != q][:k]
        out[r, :len(kept)] = kept
    return out


def _next_step(value: int) -> int:
    """The next of 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (powers of two and their 1.5 multiples)."""
    power = 1 << (max(1, value).bit_length() - 1)
    return power * 3 // 2 if value < power * 3 // 2 and power >= 2 else power * 2


def _next_params(kind: str, params: dict[str, Any], plan: IndexPlan, gain: float | None) -> dict[str, Any] | None:
    """The next, more accurate (and slower) parameters to try, or None when nothing is left to raise."""
    p = dict(params)
    if kind == "hnsw":
        if p["efSearch"] >= 4096:
            return None
        p["efSearch"] *= 2
        return p
    kf = p.get("k_factor")
    if kf is not None and gain is not None and gain < 0.005 and kf < 32 and p["nprobe"] >= 8:
        p["k_factor"] = kf * 2  # nprobe stopped paying: the re-ranking depth limits recall
    elif p["nprobe"] < plan.nlist:
        p["nprobe"] = min(plan.nlist, _next_step(p["nprobe"]))
        if "quantizer_efSearch" in p:
            p["quantizer_efSearch"] = max(p["quantizer_efSearch"], p["nprobe"])
    elif kf is not None and kf < 32:
        p["k_factor"] = kf * 2
    else:
        return None
    return p


def tune(out: Path, emb: Embeddings, plan: IndexPlan, *, recall_target: float, block: tuple[int, int],
         n_queries: int = 500, seed: int = 1) -> dict[str, Any]:
    """Raise nprobe / efSearch (/ k_factor) until recall@10 against exact search meets the target; measure latency.

    Queries are rows of the tuning ``block`` (see :func:`tuning_block`), searched against every other vector (the
    block is excluded by an ID selector); with no block (tiny stores), rows query the whole index leave-one-out. A
    setting meets the target when the one-sided 95 % lower confidence bound of its mean recall@10 (mean − 1.645
    standard errors over the queries) does, so that new queries meet it too. Returns the chosen parameters, their
    recall@10 and its bound, single-query latency (median, ms), batch queries/s and the curve of every setting tried.
    """
    from spacessl.index.search import FilterSpec, ShardedIndex

    rng = np.random.default_rng(seed)
    lo, hi = block
    pool = np.arange(lo, hi) if hi > lo else np.arange(emb.n)
    rows = np.sort(rng.choice(pool, size=min(n_queries, len(pool)), replace=False))
    qids = np.asarray(emb.group["ids"].get_orthogonal_selection(rows), dtype=np.int64)
    queries = np.ascontiguousarray(emb.group["vectors"].get_orthogonal_selection((rows, slice(None))),
                                   dtype=np.float32)
    if hi > lo:
        id_lo, id_hi = int(emb.group["ids"][lo]), int(emb.group["ids"][hi - 1]) + 1
        spec, ranges, extra = FilterSpec(exclude_range=(id_lo, id_hi)), [(0, lo), (hi, emb.n)], 0
    else:
        spec, ranges, extra = None, None, 1  # leave-one-out: one more, then drop the query itself
    k = int(min(10, max(1, emb.n - (hi - lo) - extra)))
    truth = drop_self(exact_topk(emb, queries, k + extra, ranges), qids, k)
    index = ShardedIndex.open(out, manifest_override={"search_params": {}})

    def measure(params: dict[str, Any]) -> tuple[float, float, float]:
        index.set_params(**params)
        t0 = time.perf_counter()
        _, found = index.search_raw(queries, k + extra, exclude=spec)
        ms = (time.perf_counter() - t0) / max(1, len(queries)) * 1e3
        per = recall_per_query(drop_self(found, qids, k), truth, k)
        low = float(per.mean() - 1.645 * per.std(ddof=1) / np.sqrt(len(per))) if len(per) > 1 else float(per.mean())
        return float(per.mean()), low, ms

    if plan.kind == "flat":
        params: dict[str, Any] | None = {}
    elif plan.kind == "hnsw":
        params = {"efSearch": 16}
    else:
        params = {"nprobe": 1, **{key: v for key, v in plan.search_params.items() if key != "nprobe"}}
    curve: list[dict[str, Any]] = []
    chosen, best = dict(params), -1.0
    while params is not None:
        rec, low, ms = measure(params)
        curve.append({**params, "recall_at_10": round(rec, 4), "lower_bound": round(low, 4),
                      "batch_ms_per_query": round(ms, 4)})
        if low > best + 1e-9:
            chosen, best = dict(params), low
        if low >= recall_target or plan.kind == "flat":
            chosen = dict(params)
            break
        gain = rec - curve[-2]["recall_at_10"] if len(curve) > 1 else None
        params = _next_params(plan.kind, params, plan, gain)
    rec, low, _ = measure(chosen)
    single = queries[: min(100, len(queries))]
    times = []
    for q in single:
        t0 = time.perf_counter()
        index.search_raw(q[None], k)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    index.search_raw(queries, k)
    qps = len(queries) / max(time.perf_counter() - t0, 1e-9)
    index.close()
    scoring = (f"rows {lo}..{hi} held out of training and search, queries drawn from them" if hi > lo
               else "leave-one-out: each query's own id dropped")
    return {"search_params": chosen, "recall_at_10": round(rec, 4), "recall_lower_bound": round(low, 4),
            "latency_ms": round(float(np.median(times)) * 1e3, 3) if times else 0.0,
            "batch_qps": round(qps, 1), "queries": int(len(queries)), "target": recall_target,
            "met_target": low >= recall_target, "scoring": scoring, "curve": curve}


def build_index(embeddings_url: str, out_dir: str | Path, *, kind: str = "auto", memory_budget: str = "8GB",
                recall_target: float = 0.95, overwrite: bool = False, workers: int | None = None,
                progress: bool = True, seed: int = 0, plan: IndexPlan | None = None,
                tune_queries: int = 500, shard_rows: int | None = None) -> dict[str, Any]:
    """Build (or resume building) the index of ``embeddings_url`` in ``out_dir``; returns the manifest.

    Args:
        embeddings_url: a complete embeddings store (``spacessl embed``).
        out_dir: index folder to write (local path).
        kind, memory_budget: passed to :func:`spacessl.index.plan.choose`, unless ``plan`` is given.
        recall_target: recall@10 the tuning must reach.
        overwrite: replace a finished index.
        workers: shards added in parallel (default min(CPUs, 8)).
        plan: an explicit plan (overrides ``kind`` and ``memory_budget``).
        tune_queries: held-out queries for tuning.
        shard_rows: vectors per index shard (default 2²⁰), rounded to whole embeddings-store shards.
    """
    t0 = time.perf_counter()
    emb = open_embeddings(embeddings_url)
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        if not overwrite:
            raise IndexBuildError(f"{out} already holds an index; pass --overwrite to rebuild it, or "
                                  "`spacessl index add` to append new shards")
        shutil.rmtree(out)
    elif overwrite and out.exists():
        shutil.rmtree(out)  # an unfinished build: start over as asked
    out.mkdir(parents=True, exist_ok=True)
    plan = plan or choose(emb.n, emb.dim, kind=kind, memory_budget=memory_budget)
    group = shard_group_size(emb, shard_rows)
    block = tuning_block(emb, tune_queries, seed)
    settings = {"plan": plan.to_dict(), "embeddings_url": str(embeddings_url), "store_shards_per_index_shard": group,
                "tuning_block": list(block)}
    plan_path = out / PLAN_FILE
    if (out / TRAINED).exists() and plan_path.exists():
        if json.loads(plan_path.read_text()) != settings:
            raise IndexBuildError(f"{out} holds an unfinished build with other settings (plan or embeddings); "
                                  "rerun it with the same ones, or pass --overwrite to start over")
    else:
        base, refine = train_template(plan, emb, seed, exclude=block)
        if refine is not None:
            layout.atomic_write_index(refine, out / TRAINED_REFINE)
        layout.atomic_write_index(base, out / TRAINED)
        layout.atomic_write_text(plan_path, json.dumps(settings))
    train_s = time.perf_counter() - t0
    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    entries = add_shards(emb, out, index_shards(emb, group), refine=bool(plan.refine), workers=workers,
                         progress=progress)
    add_s = time.perf_counter() - t0 - train_s
    meta = write_meta(emb, out)
    manifest = _manifest(emb, plan, entries, meta, embeddings_url, group)
    manifest["search_params"] = dict(plan.search_params)
    layout.atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))  # provisional, so the index opens
    t1 = time.perf_counter()
    manifest["tuning"] = tune(out, emb, plan, recall_target=recall_target, block=block, n_queries=tune_queries)
    manifest["search_params"] = manifest["tuning"]["search_params"]
    manifest["build_seconds"] = {"train": round(train_s, 2), "add": round(add_s, 2),
                                 "tune": round(time.perf_counter() - t1, 2),
                                 "total": round(time.perf_counter() - t0, 2)}
    manifest["memory_budget_bytes"] = parse_bytes(memory_budget)
    layout.atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))
    plan_path.unlink(missing_ok=True)
    record_index_lineage(out, manifest, emb)
    return manifest


def record_index_lineage(out: Path, manifest: dict[str, Any], emb: Embeddings) -> str | None:
    """Record the finished index on its model's MLflow training run (tag ``lineage.index.<key>`` = the index
    folder; see :func:`spacessl.tracking.record_lineage`), in $MLFLOW_TRACKING_URI or else the store the embedding
    job used. Returns the run id, or None when nothing was recorded (a warning says why when it failed)."""
    from spacessl.tracking import record_lineage, recorded_tracking_uri

    tuning = manifest.get("tuning") or {}
    info = {"index_kind": manifest["kind"], "factory": manifest["factory"], "n": manifest["n"],
            "dim": manifest["dim"], "recall_at_10": tuning.get("recall_at_10"),
            "search_params": manifest.get("search_params"), "embeddings_url": manifest["embeddings_url"],
            "archive_url": manifest.get("archive_url"), "archive_fingerprint": manifest.get("archive_fingerprint")}
    return record_lineage(str(manifest.get("model_uri") or ""), "index", str(out.resolve()), info,
                          tracking_uri=recorded_tracking_uri(emb.attrs), run_id=str(manifest.get("run_id") or ""))


def _manifest(emb: Embeddings, plan: IndexPlan, entries: list[dict[str, Any]], meta: dict[str, Any],
              embeddings_url: str, group: int) -> dict[str, Any]:
    shards = sorted(entries, key=lambda e: e["shard"])
    return {
        "format": layout.FORMAT, "version": layout.VERSION, "metric": "inner_product",
        "distance": "1 - cosine similarity (vectors are unit length)", "dim": emb.dim,
        "n": int(sum(e["count"] for e in shards)),
        "kind": plan.kind, "factory": plan.factory, "plan": plan.to_dict(),
        "trained": TRAINED, "trained_refine": TRAINED_REFINE if plan.refine else None,
        "shared_quantizer": plan.kind in ("ivf-flat", "ivf-pq"),
        "store_shards_per_index_shard": group, "shards": shards,
        "model_uri": emb.attrs.get("model_uri"), "run_id": emb.attrs.get("run_id"),
        "embeddings_url": str(embeddings_url), "archive_url": emb.attrs.get("archive_url"),
        "archive_fingerprint": emb.attrs.get("archive_fingerprint"), "meta": meta,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "faiss_version": faiss.__version__,
    }


def add_to_index(index_dir: str | Path, embeddings_url: str, *, workers: int | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Append the shards of a grown archive's embeddings without retraining.

    ``embeddings_url`` embeds the grown archive with the same model; shards already in the index with the same rows
    are kept, a shard that grew (the old last one) is rebuilt, and new shards are added from trained.faiss. The
    tuned search parameters are kept (they were measured at the old size; rebuild to re-tune).
    """
    out = Path(index_dir)
    manifest = layout.load_manifest(out)
    emb = open_embeddings(embeddings_url)
    if emb.dim != manifest["dim"]:
        raise IndexBuildError(f"{embeddings_url} holds {emb.dim}-d vectors, the index {manifest['dim']}-d ones")
    if manifest.get("model_uri") and emb.attrs.get("model_uri") != manifest["model_uri"]:
        raise IndexBuildError(f"{embeddings_url} was embedded with {emb.attrs.get('model_uri')}, the index with "
                              f"{manifest['model_uri']}: re-embed with the index's model or build a new index")
    if emb.n < manifest["n"]:
        raise IndexBuildError(f"{embeddings_url} has {emb.n} rows, fewer than the index's {manifest['n']}: "
                              "`index add` only appends; build a new index for a different archive")
    group = int(manifest["store_shards_per_index_shard"])
    have = {e["shard"]: e for e in manifest["shards"]}
    groups = index_shards(emb, group)
    changed = {j for j, lo, hi in groups if j in have and list(_rows(emb, lo, hi)) != have[j]["rows"]}
    todo = [g for g in groups if g[0] not in have or g[0] in changed]
    plan = IndexPlan.from_dict(manifest["plan"])
    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    entries = add_shards(emb, out, todo, refine=bool(plan.refine), workers=workers, progress=progress,
                         rebuild=changed)
    merged = {**have, **{e["shard"]: e for e in entries}}
    meta = write_meta(emb, out)
    new = _manifest(emb, plan, list(merged.values()), meta, embeddings_url, group)
    for key in ("search_params", "tuning", "build_seconds", "memory_budget_bytes", "created"):
        if key in manifest:
            new[key] = manifest[key]
    new["added"] = manifest.get("added", []) + [{
        "embeddings_url": str(embeddings_url), "shards": [g[0] for g in todo], "n_before": manifest["n"],
        "n_after": new["n"],
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}]
    layout.atomic_write_text(out / MANIFEST, json.dumps(new, indent=2))
    record_index_lineage(out, new, emb)
    return new

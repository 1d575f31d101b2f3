"""Build a sharded FAISS index from an embeddings store, tune it to a recall target, and grow it.

Layout of an index folder::

    IDX/
      manifest.json            format version, metric, dim, kind, factory, parameters, shard files and id ranges,
                               model URI, embeddings / archive URLs, tuned search parameters, measured recall@10
                               and latency
      trained.faiss            the trained, empty index (coarse quantizer, OPQ, PQ codebooks): trained once
      shards/shard-00000.faiss one index per embeddings shard, holding that shard's vectors with global ids
      meta/time_ns.npy         (N,) int64   per-id metadata for filters, memory-mapped at search time
      meta/source.npy          (N,) int32   codes into meta/sources.json
      meta/label.npy           (N,) int16
      meta/sources.json

Shard files are written atomically (temporary name, then rename) in parallel threads (FAISS releases the GIL); a
killed build is resumed by running it again: the trained index and finished shard files are reused. The manifest is
written last. On a machine with GPUs (``faiss.get_num_gpus() > 0``) k-means training runs on all GPUs.
"""

from __future__ import annotations

import json
import os
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
from spacessl.index.plan import IndexPlan, choose, parse_bytes

MANIFEST_VERSION = 1
MANIFEST = "manifest.json"


class IndexBuildError(SpacesslError):
    """The index cannot be built or grown as asked."""


def gpu_count() -> int:
    """GPUs FAISS can use (0 with faiss-cpu, which has no GPU symbols)."""
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def _atomic_write_index(index: faiss.Index, path: Path) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.partial")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def make_template(plan: IndexPlan, d: int) -> faiss.Index:
    """An untrained index for ``plan``, wrapped so that it stores global ids."""
    base = faiss.index_factory(d, plan.factory, faiss.METRIC_INNER_PRODUCT)
    if plan.refine:
        refine = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        base = faiss.IndexRefine(base, refine)
        base.own_fields = True
        base.own_refine_index = True
        refine.this.disown()
    return faiss.IndexIDMap2(base)


def sample_rows(emb: Embeddings, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """About ``size`` rows as (ids, float32 vectors), read as random whole chunks (streaming-friendly)."""
    chunk = emb.chunk_size
    n_chunks = -(-emb.n // chunk)
    order = np.random.default_rng(seed).permutation(n_chunks)
    ids, vecs, got = [], [], 0
    for c in order:
        i, v = emb.read(int(c) * chunk, min(emb.n, (int(c) + 1) * chunk))
        ids.append(i)
        vecs.append(v)
        got += len(i)
        if got >= size:
            break
    return np.concatenate(ids)[:size], np.ascontiguousarray(np.concatenate(vecs)[:size])


def train_template(plan: IndexPlan, emb: Embeddings, seed: int = 0) -> tuple[faiss.Index, np.ndarray]:
    """Train the template once on a sample; returns it and the training ids (to hold out of tuning queries)."""
    template = make_template(plan, emb.dim)
    if plan.kind in ("flat", "hnsw"):
        return template, np.empty(0, dtype=np.int64)
    ids, x = sample_rows(emb, plan.train_size, seed)
    inner = faiss.downcast_index(template.index)
    ivf = faiss.extract_index_ivf(inner)
    if gpu_count() > 0:  # k-means of the coarse quantizer on every GPU
        clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(ivf.d))
        ivf.clustering_index = clustering_index
    ivf.cp.seed = seed
    ivf.cp.max_points_per_centroid = 256
    template.train(x)
    return template, ids


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
    _atomic_write_text(meta_dir / "sources.json", json.dumps(archive.names("source")))
    return {"columns": list(cols), "n": archive.n, "label_names": archive.label_names}


def add_shards(emb: Embeddings, out: Path, shards: list[int], *, workers: int, progress: bool,
               rebuild: set[int] | None = None) -> list[dict[str, Any]]:
    """Fill one index file per embeddings shard from trained.faiss, in parallel; finished files are kept."""
    shard_dir = out / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    rebuild = rebuild or set()

    def one(s: int) -> dict[str, Any]:
        path = shard_dir / f"shard-{s:05d}.faiss"
        start, stop = emb.shard_range(s)
        if not path.exists() or s in rebuild:
            index = faiss.read_index(str(out / "trained.faiss"))
            ids, vecs = emb.read(start, stop)
            index.add_with_ids(np.ascontiguousarray(vecs), ids)
            _atomic_write_index(index, path)
        return {"file": f"shards/{path.name}", "shard": s, "id_start": start, "id_stop": stop,
                "count": stop - start}

    entries = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for entry in tqdm(pool.map(one, shards), total=len(shards), desc="index shards", unit="shard",
                          disable=not progress, dynamic_ncols=True):
            entries.append(entry)
    return entries


def exact_topk(emb: Embeddings, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids by inner product, streamed over the store's shards with a result heap."""
    heap = faiss.ResultHeap(len(queries), k, keep_max=True)
    for ids, vecs in emb.iter_shards():
        sims, local = faiss.knn(queries, vecs, min(k, len(vecs)), metric=faiss.METRIC_INNER_PRODUCT)
        if sims.shape[1] < k:
            pad = k - sims.shape[1]
            sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
            local = np.pad(local, ((0, 0), (0, pad)), constant_values=-1)
        gids = np.where(local >= 0, ids[np.clip(local, 0, None)], -1)
        heap.add_result(sims.astype(np.float32), gids.astype(np.int64))
    heap.finalize()
    return heap.I


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean |found[:k] ∩ truth[:k]| / k."""
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k


def tune(out: Path, emb: Embeddings, plan: IndexPlan, *, recall_target: float, held_out: np.ndarray,
         n_queries: int = 500, seed: int = 1) -> dict[str, Any]:
    """Raise nprobe / efSearch until recall@10 against exact search meets the target; measure latency."""
    from spacessl.index.search import ShardedIndex

    rng = np.random.default_rng(seed)
    candidates = np.setdiff1d(np.arange(emb.n), held_out) if len(held_out) < emb.n else np.arange(emb.n)
    qids = np.sort(rng.choice(candidates, size=min(n_queries, len(candidates)), replace=False))
    queries = np.ascontiguousarray(emb.vectors.vindex[qids].compute().astype(np.float32)) if len(qids) else \
        np.empty((0, emb.dim), np.float32)
    k = min(10, emb.n)
    truth = exact_topk(emb, queries, k)
    index = ShardedIndex.open(out, manifest_override={"search_params": {}})
    if plan.kind == "flat":
        values: list[dict[str, Any]] = [{}]
    elif plan.kind == "hnsw":
        values = [{"efSearch": e} for e in (16, 32, 64, 128, 256, 512, 1024)]
    else:
        values = [{"nprobe": p, **({"k_factor": plan.search_params.get("k_factor")} if plan.refine else {})}
                  for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048) if p <= plan.nlist]
    curve = []
    chosen = values[-1]
    for params in values:
        index.set_params(**params)
        _, found = index.search_raw(queries, k)
        rec = recall_at(found, truth, k)
        curve.append({**params, "recall_at_10": round(rec, 4)})
        if rec >= recall_target:
            chosen = params
            break
    index.set_params(**chosen)
    _, found = index.search_raw(queries, k)
    rec = recall_at(found, truth, k)
    single = queries[: min(100, len(queries))]
    t0 = time.perf_counter()
    for q in single:
        index.search_raw(q[None], k)
    latency_ms = (time.perf_counter() - t0) / max(1, len(single)) * 1e3
    t0 = time.perf_counter()
    index.search_raw(queries, k)
    qps = len(queries) / max(time.perf_counter() - t0, 1e-9)
    return {"search_params": chosen, "recall_at_10": round(rec, 4), "latency_ms": round(latency_ms, 3),
            "batch_qps": round(qps, 1), "queries": int(len(queries)), "target": recall_target,
            "met_target": rec >= recall_target, "curve": curve}


def build_index(embeddings_url: str, out_dir: str | Path, *, kind: str = "auto", memory_budget: str = "8GB",
                recall_target: float = 0.95, overwrite: bool = False, workers: int | None = None,
                progress: bool = True, seed: int = 0) -> dict[str, Any]:
    """Build (or resume building) the index of ``embeddings_url`` in ``out_dir``; returns the manifest."""
    t0 = time.perf_counter()
    emb = open_embeddings(embeddings_url)
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        if not overwrite:
            raise IndexBuildError(f"{out} already holds an index; pass --overwrite to rebuild it, or "
                                  "`spacessl index add` to append new shards")
        import shutil
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = choose(emb.n, emb.dim, kind=kind, memory_budget=memory_budget)
    plan_path = out / "plan.json"
    if (out / "trained.faiss").exists() and plan_path.exists():
        saved = json.loads(plan_path.read_text())
        if saved["plan"] != plan.to_dict() or saved["embeddings_url"] != str(embeddings_url):
            raise IndexBuildError(f"{out} holds an unfinished build with other settings; pass --overwrite")
        held_out = np.asarray(saved["train_ids"], dtype=np.int64)
    else:
        template, held_out = train_template(plan, emb, seed)
        _atomic_write_index(template, out / "trained.faiss")
        _atomic_write_text(plan_path, json.dumps({"plan": plan.to_dict(), "embeddings_url": str(embeddings_url),
                                                  "train_ids": held_out.tolist()}))
    train_s = time.perf_counter() - t0
    workers = workers or max(1, min(os.cpu_count() or 1, 8))
    entries = add_shards(emb, out, list(range(emb.num_shards)), workers=workers, progress=progress)
    meta = write_meta(emb, out)
    manifest = _manifest(emb, plan, entries, meta, embeddings_url)
    manifest["search_params"] = dict(plan.search_params)
    _atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))  # provisional, so the index opens
    manifest["tuning"] = tune(out, emb, plan, recall_target=recall_target, held_out=held_out)
    manifest["search_params"] = manifest["tuning"]["search_params"]
    manifest["build_seconds"] = {"train": round(train_s, 2), "total": round(time.perf_counter() - t0, 2)}
    manifest["memory_budget_bytes"] = parse_bytes(memory_budget)
    _atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))
    plan_path.unlink(missing_ok=True)
    return manifest


def _manifest(emb: Embeddings, plan: IndexPlan, entries: list[dict[str, Any]], meta: dict[str, Any],
              embeddings_url: str) -> dict[str, Any]:
    return {
        "format": "spacessl-index", "version": MANIFEST_VERSION, "metric": "inner_product",
        "distance": "1 - cosine similarity (vectors are unit length)", "dim": emb.dim, "n": emb.n,
        "kind": plan.kind, "factory": plan.factory, "plan": plan.to_dict(),
        "shards": sorted(entries, key=lambda e: e["shard"]),
        "model_uri": emb.attrs.get("model_uri"), "run_id": emb.attrs.get("run_id"),
        "embeddings_url": str(embeddings_url), "archive_url": emb.attrs.get("archive_url"),
        "archive_fingerprint": emb.attrs.get("archive_fingerprint"), "meta": meta,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "faiss_version": faiss.__version__,
    }


def add_to_index(index_dir: str | Path, embeddings_url: str, *, workers: int | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Append the shards of a grown archive's embeddings without retraining.

    ``embeddings_url`` embeds the grown archive with the same model; shards already in the index with the same row
    count are kept, a shard that grew (the old last one) is rebuilt, and new shards are added from trained.faiss.
    """
    out = Path(index_dir)
    if not (out / MANIFEST).exists():
        raise IndexBuildError(f"{out} holds no index (no manifest.json); build one with `spacessl index build`")
    manifest = json.loads((out / MANIFEST).read_text())
    emb = open_embeddings(embeddings_url)
    if emb.dim != manifest["dim"]:
        raise IndexBuildError(f"{embeddings_url} holds {emb.dim}-d vectors, the index {manifest['dim']}-d ones")
    if manifest.get("model_uri") and emb.attrs.get("model_uri") != manifest["model_uri"]:
        raise IndexBuildError(f"{embeddings_url} was embedded with {emb.attrs.get('model_uri')}, the index with "
                              f"{manifest['model_uri']}: re-embed with the index's model or build a new index")
    if emb.n < manifest["n"]:
        raise IndexBuildError(f"{embeddings_url} has {emb.n} rows, fewer than the index's {manifest['n']}")
    have = {e["shard"]: e for e in manifest["shards"]}
    rebuild = {s for s, e in have.items() if s < emb.num_shards and emb.shard_range(s)[1] - emb.shard_range(s)[0]
               != e["count"]}
    todo = [s for s in range(emb.num_shards) if s not in have or s in rebuild]
    entries = add_shards(emb, out, todo, workers=workers or max(1, min(os.cpu_count() or 1, 8)),
                         progress=progress, rebuild=rebuild)
    merged = {**have, **{e["shard"]: e for e in entries}}
    meta = write_meta(emb, out)
    plan = IndexPlan(**manifest["plan"])
    new = _manifest(emb, plan, list(merged.values()), meta, embeddings_url)
    for key in ("search_params", "tuning", "build_seconds", "memory_budget_bytes"):
        if key in manifest:
            new[key] = manifest[key]
    new["added"] = manifest.get("added", []) + [{"embeddings_url": str(embeddings_url), "shards": todo,
                                                 "n_before": manifest["n"], "n_after": emb.n}]
    _atomic_write_text(out / MANIFEST, json.dumps(new, indent=2))
    return new

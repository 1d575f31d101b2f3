"""Search a sharded index: every shard searched, top-k merged exactly, then filters and temporal de-duplication.

    index = ShardedIndex.open("frames.idx")                  # shards memory-mapped where the type allows
    dist, ids = index.search(queries, 20, source="gill", dedup_s=30, exclude_ids=[qid],
                             exclude_near=[("gill", t_query_ns)])

Distances are cosine distances, ``1 - <q, x>`` for unit vectors, ascending. Missing results are id -1 with
distance +inf. Merging per-shard top-k lists with a result heap gives exactly the top-k of one big index for exact
kinds (Flat); approximate kinds return what each shard's index finds with the tuned nprobe / efSearch.

Filters (time range, source, label) and de-duplication use per-id metadata columns saved with the index
(memory-mapped). They over-fetch (4·k, doubling) until k results survive or every indexed vector was considered.
De-duplication keeps at most one result per source within ±Δt (the best-ranked), and drops the query's own
neighbourhood (same source within Δt of the query), so a list shows distinct events rather than the next frames of
the same one.

``distributed=True`` holds the shards in Ray actors (for indexes larger than one machine): each actor loads its
shard files once; a search fans out to all actors and merges. When an actor dies mid-search, the search returns the
merged results of the live shards, records the missing shard ids in :attr:`ShardedIndex.last_missing_shards` and
Ray restarts the actor (it reloads its shards) for the next search.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from spacessl.errors import SpacesslError
from spacessl.index.build import MANIFEST, gpu_count


class IndexSearchError(SpacesslError):
    """The index is missing or damaged, or a search argument is invalid."""


def _read_index(path: Path, mmap: bool) -> faiss.Index:
    if mmap:
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            pass  # this index type cannot be memory-mapped
    return faiss.read_index(str(path))


def apply_params(index: faiss.Index, params: dict[str, Any]) -> None:
    """Set nprobe / efSearch / k_factor through FAISS's wrappers (IDMap, Refine, OPQ pre-transform)."""
    ps = faiss.ParameterSpace()
    for key, value in params.items():
        if value is None:
            continue
        name = {"k_factor": "k_factor_rf"}.get(key, key)
        try:
            ps.set_index_parameter(index, name, value)
        except RuntimeError as exc:
            raise IndexSearchError(f"cannot set search parameter {key}={value} on this index: {exc}") from exc


def _search_shard(index: faiss.Index, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    kk = int(min(k, max(1, index.ntotal)))
    sims, ids = index.search(xq, kk)
    if kk < k:
        sims = np.pad(sims, ((0, 0), (0, k - kk)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, k - kk)), constant_values=-1)
    sims = np.where(ids < 0, -np.inf, sims).astype(np.float32)
    return sims, ids.astype(np.int64)


class _ShardActor:
    """Holds some shard files in a Ray actor."""

    def __init__(self, index_dir: str, files: list[str], params: dict[str, Any], mmap: bool):
        faiss.omp_set_num_threads(1)
        self.indexes = [_read_index(Path(index_dir) / f, mmap) for f in files]
        self.set_params(params)

    def set_params(self, params: dict[str, Any]) -> None:
        for index in self.indexes:
            apply_params(index, params)

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        heap = faiss.ResultHeap(len(xq), k, keep_max=True)
        for index in self.indexes:
            heap.add_result(*_search_shard(index, xq, k))
        heap.finalize()
        return heap.D, heap.I


class ShardedIndex:
    """A sharded FAISS index opened for search. Create with :meth:`open`."""

    def __init__(self, index_dir: Path, manifest: dict[str, Any], *, distributed: bool, mmap: bool,
                 actors_per_shard_group: int = 1):
        self.index_dir = index_dir
        self.manifest = manifest
        self.dim = int(manifest["dim"])
        self.ntotal = int(sum(s["count"] for s in manifest["shards"]))
        self.params: dict[str, Any] = dict(manifest.get("search_params") or {})
        self.distributed = distributed
        self.last_missing_shards: list[int] = []
        self._lock = threading.Lock()
        self._meta: dict[str, np.ndarray] | None = None
        self._sources: list[str] | None = None
        files = [s["file"] for s in manifest["shards"]]
        self.shard_ids = [int(s["shard"]) for s in manifest["shards"]]
        if distributed:
            self._open_actors(files, mmap)
        else:
            self.shards = [_read_index(index_dir / f, mmap) for f in files]
            self._gpu_resources = self._to_gpus()
            for index in self.shards:
                apply_params(index, self.params)

    @classmethod
    def open(cls, index_dir: str | Path, *, distributed: bool = False, mmap: bool = True,
             manifest_override: dict[str, Any] | None = None, num_actors: int | None = None) -> ShardedIndex:
        """Open the index in ``index_dir`` (a folder written by ``spacessl index build``)."""
        index_dir = Path(index_dir)
        path = index_dir / MANIFEST
        if not path.exists():
            raise IndexSearchError(f"{index_dir} holds no index (no {MANIFEST}); build one with "
                                   "`spacessl index build EMBEDDINGS --out DIR`")
        manifest = json.loads(path.read_text())
        if manifest.get("format") != "spacessl-index" or manifest.get("version") != 1:
            raise IndexSearchError(f"{path} is not a version-1 spacessl index manifest")
        manifest.update(manifest_override or {})
        self = cls(index_dir, manifest, distributed=distributed, mmap=mmap)
        return self

    # ------------------------------------------------------------------------------------------- devices

    def _to_gpus(self) -> list[Any]:
        n = gpu_count()
        if n == 0:
            return []
        resources = [faiss.StandardGpuResources() for _ in range(n)]
        moved = []
        for i, index in enumerate(self.shards):  # spread shards round-robin over the GPUs
            try:
                moved.append(faiss.index_cpu_to_gpu(resources[i % n], i % n, index))
            except RuntimeError:
                moved.append(index)  # this type has no GPU implementation: stays on the CPU
        self.shards = moved
        return resources

    def _open_actors(self, files: list[str], mmap: bool) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(num_cpus=None, include_dashboard=False, log_to_driver=False)
        n_actors = max(1, min(len(files), int(ray.cluster_resources().get("CPU", 1))))
        groups = [list(range(i, len(files), n_actors)) for i in range(n_actors)]
        remote = ray.remote(num_cpus=0.25, max_restarts=-1, max_task_retries=0)(_ShardActor)
        self._actor_groups = groups
        self._actors = [remote.remote(str(self.index_dir), [files[j] for j in g], self.params, mmap)
                        for g in groups]

    # ------------------------------------------------------------------------------------------- search

    def set_params(self, **params: Any) -> None:
        """Set search parameters (nprobe, efSearch, k_factor) on every shard."""
        self.params.update(params)
        if self.distributed:
            import ray
            ray.get([a.set_params.remote(self.params) for a in self._actors])
        else:
            for index in self.shards:
                apply_params(index, self.params)

    def search_raw(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over all shards, no filters: (distances (Q, k) ascending, ids (Q, k))."""
        xq = self._check_queries(xq)
        k = int(k)
        if self.distributed:
            sims, ids = self._search_actors(xq, k)
        else:
            heap = faiss.ResultHeap(len(xq), k, keep_max=True)
            if len(xq) < 8 and len(self.shards) > 1:  # few queries: parallel over shards
                with ThreadPoolExecutor(max_workers=min(8, len(self.shards))) as pool:
                    parts = list(pool.map(lambda ix: _search_shard(ix, xq, k), self.shards))
            else:  # many queries: FAISS parallelises over the queries inside each shard
                parts = [_search_shard(ix, xq, k) for ix in self.shards]
            for sims, ids in parts:
                heap.add_result(sims, ids)
            heap.finalize()
            sims, ids = heap.D, heap.I
        dist = np.where(ids >= 0, 1.0 - sims, np.inf).astype(np.float32)
        return dist, ids

    def _search_actors(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import ray
        from ray.exceptions import RayActorError

        refs = [a.search.remote(xq, k) for a in self._actors]
        heap = faiss.ResultHeap(len(xq), k, keep_max=True)
        missing: list[int] = []
        for group, ref in zip(self._actor_groups, refs):
            try:
                sims, ids = ray.get(ref)
                heap.add_result(np.ascontiguousarray(sims), np.ascontiguousarray(ids))
            except RayActorError:
                missing.extend(self.shard_ids[j] for j in group)
        heap.finalize()
        self.last_missing_shards = sorted(missing)
        return heap.D, heap.I

    def _check_queries(self, xq: np.ndarray) -> np.ndarray:
        xq = np.ascontiguousarray(np.atleast_2d(np.asarray(xq, dtype=np.float32)))
        if xq.shape[1] != self.dim:
            raise IndexSearchError(f"query vectors have dimension {xq.shape[1]}; this index holds {self.dim}-d "
                                   "vectors")
        return xq

    # ------------------------------------------------------------------------------------------- filters

    def _load_meta(self) -> dict[str, np.ndarray]:
        if self._meta is None:
            meta_dir = self.index_dir / "meta"
            self._meta = {name: np.load(meta_dir / f"{name}.npy", mmap_mode="r")
                          for name in ("time_ns", "source", "label")}
            self._sources = json.loads((meta_dir / "sources.json").read_text())
        return self._meta

    @property
    def sources(self) -> list[str]:
        self._load_meta()
        return list(self._sources or [])

    def source_code(self, name: str) -> int:
        """Code of a source name; an unknown name is an error listing the known ones."""
        sources = self.sources
        try:
            return sources.index(name)
        except ValueError:
            shown = ", ".join(sources[:20]) + (" ..." if len(sources) > 20 else "")
            raise IndexSearchError(f"source {name!r} is not in this index; sources: {shown}") from None

    def search(self, xq: np.ndarray, k: int, *, since: int | None = None, until: int | None = None,
               source: str | None = None, label: int | None = None, dedup_s: float | None = None,
               exclude_ids: Any = (), exclude_near: Any = ()) -> tuple[np.ndarray, np.ndarray]:
        """Top-k with filters and de-duplication: (distances (Q, k), ids (Q, k)), id -1 where fewer remain.

        Args:
            since, until: keep results with since <= time_ns < until (ns since the epoch).
            source: keep results from this source name only.
            label: keep results with this label code only (-1 = unlabelled).
            dedup_s: at most one result per source within ± this many seconds; with ``exclude_near``, also the
                window around each (source, time_ns) given there is dropped (the query's own neighbourhood).
            exclude_ids: ids never returned (e.g. the query itself).
            exclude_near: per query (or one for all) a (source name, time_ns) pair, or None.
        """
        xq = self._check_queries(xq)
        if k < 1:
            raise IndexSearchError(f"k must be >= 1, got {k}")
        simple = (since is None and until is None and source is None and label is None and not dedup_s
                  and not len(exclude_ids))
        if simple:
            return self.search_raw(xq, k)
        meta = self._load_meta()
        src_code = self.source_code(source) if source is not None else None
        excluded = {int(i) for i in np.asarray(list(exclude_ids), dtype=np.int64).ravel()}
        near = list(exclude_near) if exclude_near is not None else []
        if len(near) == 1 and len(xq) > 1:
            near = near * len(xq)
        dedup_ns = int(dedup_s * 1e9) if dedup_s else 0
        out_d = np.full((len(xq), k), np.inf, dtype=np.float32)
        out_i = np.full((len(xq), k), -1, dtype=np.int64)
        todo = list(range(len(xq)))
        fetch = min(self.ntotal, max(4 * k, k + len(excluded) + 16))
        while todo:
            dist, ids = self.search_raw(xq[todo], fetch)
            still = []
            for row, qi in enumerate(todo):
                own = near[qi] if qi < len(near) else None
                own_code = None
                if own is not None and dedup_ns:
                    own_code = (self.source_code(own[0]) if own[0] in self.sources else None, int(own[1]))
                keep = self._filter_row(dist[row], ids[row], meta, k, since, until, src_code, label, excluded,
                                        dedup_ns, own_code)
                n = len(keep)
                if n < k and fetch < self.ntotal:
                    still.append(qi)
                    continue
                out_d[qi, :n] = dist[row][keep]
                out_i[qi, :n] = ids[row][keep]
            todo = still
            fetch = min(self.ntotal, fetch * 4)
        return out_d, out_i

    @staticmethod
    def _filter_row(dist: np.ndarray, ids: np.ndarray, meta: dict[str, np.ndarray], k: int, since: int | None,
                    until: int | None, src_code: int | None, label: int | None, excluded: set[int],
                    dedup_ns: int, own: tuple[int | None, int] | None) -> list[int]:
        valid = ids >= 0
        safe = np.where(valid, ids, 0)
        times = np.asarray(meta["time_ns"][safe])
        srcs = np.asarray(meta["source"][safe])
        ok = valid.copy()
        if since is not None:
            ok &= times >= since
        if until is not None:
            ok &= times < until
        if src_code is not None:
            ok &= srcs == src_code
        if label is not None:
            ok &= np.asarray(meta["label"][safe]) == label
        if excluded:
            ok &= ~np.isin(ids, list(excluded))
        if own is not None and own[0] is not None:
            ok &= ~((srcs == own[0]) & (np.abs(times - own[1]) <= dedup_ns))
        keep: list[int] = []
        kept_times: dict[int, list[int]] = {}
        for j in np.flatnonzero(ok):
            if dedup_ns:
                s, t = int(srcs[j]), int(times[j])
                prev = kept_times.setdefault(s, [])
                if any(abs(t - p) <= dedup_ns for p in prev):
                    continue
                prev.append(t)
            keep.append(int(j))
            if len(keep) == k:
                break
        return keep

    def close(self) -> None:
        """Release actors (distributed) or GPU resources."""
        if self.distributed:
            import ray
            for a in self._actors:
                ray.kill(a)
            self._actors = []

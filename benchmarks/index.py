"""Index benchmark: the auto-chosen sharded index against exact flat search, and 8 shards against one index.

    python benchmarks/index.py                 # 1,000,000 x 128, 8 shards
    python benchmarks/index.py --n 200000      # smaller run
    python benchmarks/index.py --rates-only    # per-core rates of the billion-scale configuration (docs/scale.md)

Steps, all timed in this run on this machine:

1. write N clustered synthetic unit vectors (:mod:`spacessl.index.synthetic`) as a minimal archive and an embeddings
   store of 8 shards, block by block;
2. build the index with the real build path (``build_index(kind="auto")``: plan, train once, add 8 shards in parallel,
   tune to recall@10 >= 0.95 on held-out queries); build time;
3. Q fresh query vectors from the same generator (not in the index); exact top-10 by a flat inner-product index in
   RAM (the baseline: its queries/s);
4. the sharded index with its tuned parameters: recall@10 against exact, queries/s (goal: >= 0.95 at >= 20x exact);
5. one unsharded index with the same parameters (the 8 shard files merged into one IVF index): queries/s (goal: the
   8 shards reach >= 0.8 of it); also the 8 shards with a coarse search per shard (``preassigned=False``).

Queries/s are batch figures (all Q queries in one call), best of ``--repeats`` rounds;
single-query latency is the median over 200 single calls (50 for exact). The searches are timed in turns within each
round, so that all see the same load on a shared machine. The FAISS baselines run on 1 and on all OpenMP threads (on
a busy machine one thread is often faster) and the ratios use the faster; the sharded index runs its own thread pool
(one OpenMP thread per task).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np


def with_threads(nt: int, fn: Any) -> Any:
    """``fn`` run with FAISS on ``nt`` OpenMP threads (restored afterwards)."""
    def run(q: np.ndarray) -> Any:
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(nt)
        try:
            return fn(q)
        finally:
            faiss.omp_set_num_threads(before)
    return run


def interleaved(methods: dict[str, tuple[Any, np.ndarray]], repeats: int,
                singles: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """Batch queries/s (best of ``repeats`` rounds) and median single-query latency (ms) of each method, timed in
    turns so that every method sees the same machine load (the machine is shared)."""
    best = {name: float("inf") for name in methods}
    for _ in range(repeats):
        for name, (fn, q) in methods.items():
            t0 = time.perf_counter()
            fn(q)
            best[name] = min(best[name], (time.perf_counter() - t0) / len(q))
    lat: dict[str, list[float]] = {name: [] for name in methods}
    for i, q in enumerate(singles):
        for name, (fn, _) in methods.items():
            if name.startswith("exact") and i >= 50:
                continue
            t0 = time.perf_counter()
            fn(q[None])
            lat[name].append(time.perf_counter() - t0)
    return ({n: 1.0 / v for n, v in best.items()}, {n: float(np.median(v)) * 1e3 for n, v in lat.items()})


def recall(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found.tolist(), truth.tolist())]))


def merged_single_index(index_dir: Path, manifest: dict) -> faiss.Index:
    """The shard files merged into one IVF index (ids made global), with the shared quantizer of trained.faiss."""
    from spacessl.index import layout

    single = faiss.read_index(str(index_dir / "trained.faiss"))
    target = layout.ivf_of(single)
    for e in manifest["shards"]:
        shard = faiss.read_index(str(index_dir / e["file"]))
        swap = layout.attach_quantizer(shard, target.quantizer)
        target.merge_from(layout.ivf_of(shard), e["id_start"])
        swap.restore()
        del shard
    single.ntotal = target.ntotal
    return single


def scale_rates(d: int = 512, n_train: int = 20_000, n_add: int = 50_000, seed: int = 0) -> dict[str, float]:
    """Per-core rates of the billion-scale configuration (OPQ64 + IVF-PQ64x8 + SQ8 re-ranking at D=512), on one
    OpenMP thread: training time, vectors added per second, PQ codes scanned per second, HNSW coarse assignment."""
    from spacessl.index.build import train_on
    from spacessl.index.plan import IndexPlan
    from spacessl.index.synthetic import ClusteredVectors

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        gen = ClusteredVectors(d, n_clusters=200, seed=seed + 1)
        x = gen.rows(0, n_train + n_add)[0]
        xq = np.ascontiguousarray(gen.rows(n_train + n_add + 10_000, n_train + n_add + 10_500)[0])
        nlist = 1024
        plan = IndexPlan("ivf-pq", f"OPQ64_{d},IVF{nlist},PQ64x8", nlist=nlist, pq_m=64, refine="SQ8",
                         train_size=n_train, kmeans_niter=10, opq_niter=25)
        t0 = time.perf_counter()
        base, refine = train_on(plan, np.ascontiguousarray(x[:n_train]))
        train_s = time.perf_counter() - t0
        add = np.ascontiguousarray(x[n_train:])
        t0 = time.perf_counter()
        base.add(add)
        refine.add(add)
        add_rate = n_add / (time.perf_counter() - t0)
        ivf = faiss.extract_index_ivf(base)
        nprobe = 64
        t0 = time.perf_counter()
        base.search(xq, 40, params=faiss.SearchParametersPreTransform(
            index_params=faiss.SearchParametersIVF(nprobe=nprobe)))
        scan_s = time.perf_counter() - t0
        scanned = len(xq) * n_add * nprobe / nlist
        cents = np.ascontiguousarray(gen.rows(10**6, 10**6 + 16_384)[0])
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        t0 = time.perf_counter()
        hnsw.add(cents)
        hnsw_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        hnsw.search(add[:5000], 64, params=faiss.SearchParametersHNSW(efSearch=128))
        assign_rate = 5000 / (time.perf_counter() - t0)
    finally:
        faiss.omp_set_num_threads(threads)
    return {"train_s": train_s, "n_train": n_train, "add_per_s": add_rate, "codes_per_s": scanned / scan_s,
            "query_ms_nprobe64": scan_s / len(xq) * 1e3, "hnsw_assign_per_s": assign_rate,
            "hnsw_build_16k_s": hnsw_build}


def main(argv: list[str] | None = None) -> int:
    from spacessl.embed.store import open_embeddings
    from spacessl.index.build import build_index
    from spacessl.index.search import ShardedIndex
    from spacessl.index.synthetic import ClusteredVectors, write_synthetic

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="indexed vectors (default 1,000,000)")
    p.add_argument("--dim", type=int, default=128, help="dimension (default 128)")
    p.add_argument("--shards", type=int, default=8, help="store / index shards (default 8)")
    p.add_argument("--queries", type=int, default=1000, help="held-out queries (default 1000)")
    p.add_argument("--clusters", type=int, default=None, help="synthetic clusters (default N/1000, >= 50)")
    p.add_argument("--memory-budget", default="8GB")
    p.add_argument("--recall-target", type=float, default=0.95)
    p.add_argument("--repeats", type=int, default=5, help="timed rounds, best kept (default 5)")
    p.add_argument("--workdir", default=None, help="where to write (default: a temporary folder, removed after)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rates", action="store_true",
                   help="also measure per-core rates of the billion-scale configuration (D=512, OPQ64 + IVF-PQ64 + "
                        "SQ8) for docs/scale.md")
    p.add_argument("--rates-only", action="store_true", help="only the per-core rates")
    args = p.parse_args(argv)
    if args.rates or args.rates_only:
        r = scale_rates(seed=args.seed)
        print(f"per-core rates, D=512, OPQ64_512,IVF1024,PQ64x8 + SQ8, 1 thread: training on {r['n_train']} vectors "
              f"{r['train_s']:.1f} s; add {r['add_per_s']:.0f} vectors/s (OPQ, assignment, PQ and SQ8 encoding); "
              f"scan {r['codes_per_s'] / 1e6:.1f} M PQ codes/s ({r['query_ms_nprobe64']:.1f} ms per query at nprobe "
              f"64 of 1024 over 50,000); HNSW32 over 16,384 centroids: built in {r['hnsw_build_16k_s']:.1f} s, "
              f"{r['hnsw_assign_per_s']:.0f} assignments/s (efSearch 128, 64 lists)")
        if args.rates_only:
            return 0

    work = Path(args.workdir or tempfile.mkdtemp(prefix="spacessl-bench-index-"))
    work.mkdir(parents=True, exist_ok=True)
    threads = faiss.omp_get_max_threads()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, faiss {faiss.__version__} with {threads} threads")
    try:
        gen = ClusteredVectors(args.dim, n_clusters=args.clusters or max(50, args.n // 1000), seed=args.seed)
        shard_chunks = 8
        chunk = -(-args.n // (args.shards * shard_chunks))
        t0 = time.perf_counter()
        _, emb_url = write_synthetic(work, args.n, gen, name="bench", chunk_size=chunk, shard_chunks=shard_chunks)
        print(f"data: {args.n} x {args.dim} synthetic clustered vectors, {open_embeddings(emb_url).num_shards} "
              f"shards, written in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        manifest = build_index(emb_url, work / "idx", kind="auto", memory_budget=args.memory_budget,
                               recall_target=args.recall_target, progress=False,
                               shard_rows=-(-args.n // args.shards))
        build_s = time.perf_counter() - t0
        tuning = manifest["tuning"]
        print(f"build: {manifest['factory']} ({manifest['plan']['reason']})")
        print(f"  {build_s:.1f} s total: {manifest['build_seconds']}")
        print(f"  tuned {tuning['search_params']}: recall@10 {tuning['recall_at_10']} (lower bound "
              f"{tuning['recall_lower_bound']}; {tuning['queries']} queries, {tuning['scoring']})")
        curve = [(c.get("nprobe") or c.get("efSearch"), c["recall_at_10"]) for c in tuning["curve"]]
        print(f"  tuning curve (nprobe/efSearch, recall@10): {curve}")

        xq, _ = gen.rows(args.n, args.n + args.queries)  # fresh samples, not in the index
        xq = np.ascontiguousarray(xq)
        k = 10
        flat = faiss.IndexFlatIP(args.dim)
        for ids, vecs in open_embeddings(emb_url).iter_shards():
            flat.add(vecs)
        faiss.omp_set_num_threads(1)
        _, truth = flat.search(xq, k)
        faiss.omp_set_num_threads(threads)

        index = ShardedIndex.open(work / "idx")
        methods: dict[str, tuple[Any, np.ndarray]] = {}   # name -> (search(queries) -> ids, queries timed in batch)
        for nt in sorted({1, threads}):
            methods[f"exact flat, {nt} OpenMP thread(s)"] = (with_threads(nt, lambda q: flat.search(q, k)[1]),
                                                            xq)
        methods[f"auto {manifest['kind']}, {len(manifest['shards'])} shards"] = (
            lambda q: index.search_raw(q, k)[1], xq)
        if manifest.get("shared_quantizer"):
            plain = ShardedIndex.open(work / "idx", preassigned=False)
            methods[f"{len(manifest['shards'])} shards, coarse search per shard"] = (
                lambda q: plain.search_raw(q, k)[1], xq)
            single = merged_single_index(work / "idx", manifest)
            params = faiss.SearchParametersIVF(nprobe=int(index.params["nprobe"]))
            if faiss.downcast_index(single).__class__ is faiss.IndexPreTransform:
                params = faiss.SearchParametersPreTransform(index_params=params)
            for nt in sorted({1, threads}):
                methods[f"one index, same parameters, {nt} OpenMP thread(s)"] = (
                    with_threads(nt, lambda q: single.search(q, k, params=params)[1]), xq)
        qps, ms = interleaved(methods, args.repeats, xq[:200])
        print(f"\nqueries: {len(xq)} held-out vectors, k={k}; queries/s of one batch call, best of "
              f"{args.repeats} rounds, the searches interleaved in each round; latency = median of 200 single queries, "
              "interleaved likewise")
        print(f"{'search':56s} {'recall@10':>9s} {'queries/s':>10s} {'latency ms':>10s}")
        for name, (fn, _) in methods.items():
            rec = recall(fn(xq), truth, k)
            print(f"{name:56s} {rec:9.4f} {qps[name]:10.1f} {ms[name]:10.2f}")
        best = lambda prefix: max((v, n) for n, v in qps.items() if n.startswith(prefix))  # noqa: E731
        exact_qps, _ = best("exact flat")
        sharded = f"auto {manifest['kind']}, {len(manifest['shards'])} shards"
        rec = recall(methods[sharded][0](xq), truth, k)
        print(f"\nauto index vs exact (its faster thread setting): recall@10 {rec:.4f} (goal >= 0.95) at "
              f"{qps[sharded] / exact_qps:.1f}x the exact queries/s (goal >= 20x)")
        if manifest.get("shared_quantizer"):
            single_qps, single_name = best("one index")
            per_shard = qps[f"{len(manifest['shards'])} shards, coarse search per shard"]
            print(f"{len(manifest['shards'])} shards vs one index ({single_name}): "
                  f"{qps[sharded] / single_qps:.2f} of its queries/s (goal >= 0.8); with a coarse search per shard: "
                  f"{per_shard / single_qps:.2f}")
        print(f"build: {build_s:.1f} s for {args.n} vectors ({args.n / build_s:.0f} vectors/s end to end, "
              f"train {manifest['build_seconds']['train']} s, add {manifest['build_seconds']['add']} s, "
              f"tune {manifest['build_seconds']['tune']} s)")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Index build: layout and manifest, memory mapping, recall of the auto-chosen approximate kinds against exact search,
`index add` against a full rebuild, resume after a kill, CLI and job entry point."""

from __future__ import annotations

import dataclasses
import json

import faiss
import numpy as np
import pytest

from spacessl.index import layout
from spacessl.index.build import IndexBuildError, add_to_index, build_index, recall_at
from spacessl.index.plan import choose
from spacessl.index.search import IndexSearchError, ShardedIndex
from spacessl.index.synthetic import ClusteredVectors, write_synthetic
from tests.index.conftest import DIM, N, brute_force


def fresh_recall(index_dir, store, q: int = 1000, k: int = 10) -> float:
    xq = store.fresh_queries(q)
    _, truth = brute_force(store.vectors(), xq)
    index = ShardedIndex.open(index_dir)
    _, found = index.search_raw(xq, k)
    index.close()
    return recall_at(found, truth[:, :k], k)


def test_flat_build_layout_and_manifest(flat_index, syn_store):
    m = layout.load_manifest(flat_index)
    assert m["version"] == layout.VERSION and m["kind"] == "flat" and m["dim"] == DIM and m["n"] == N
    assert m["embeddings_url"] == syn_store.emb_url and m["model_uri"] == "synthetic:clustered"
    assert m["shared_quantizer"] is False and m["distance"].startswith("1 - cosine")
    assert [s["shard"] for s in m["shards"]] == [0, 1, 2, 3, 4]
    assert [s["count"] for s in m["shards"]] == [4096] * 4 + [N - 4 * 4096]
    for s in m["shards"]:
        assert s["id_start"] == s["rows"][0] and s["id_stop"] == s["rows"][1] and s["ids_file"] is None
        assert (flat_index / s["file"]).exists()
    assert m["tuning"]["recall_at_10"] == 1.0 and m["tuning"]["met_target"]
    assert not (flat_index / "plan.json").exists() and not list(flat_index.rglob("*.partial*"))
    for col in ("time_ns", "source", "label"):
        assert np.load(flat_index / "meta" / f"{col}.npy").shape == (N,)


def test_shard_files_are_memory_mapped_and_search_alike(ivf_index, flat_index, syn_store):
    xq = syn_store.fresh_queries(50)
    for path in (flat_index, ivf_index):
        mapped = ShardedIndex.open(path)
        in_ram = ShardedIndex.open(path, mmap=False)
        assert {s["opened"] for s in mapped.info()["shards"]} == {"mmap-ifc"}
        assert {s["opened"] for s in in_ram.info()["shards"]} == {"ram"}
        d1, i1 = mapped.search_raw(xq, 10)
        d2, i2 = in_ram.search_raw(xq, 10)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(d1, d2, atol=1e-6)


def test_ivf_shards_share_one_quantizer(ivf_index):
    m = layout.load_manifest(ivf_index)
    assert m["kind"] == "ivf-flat" and m["shared_quantizer"] is True
    trained = faiss.read_index(str(ivf_index / "trained.faiss"))
    nlist = layout.ivf_of(trained).nlist
    assert layout.ivf_of(trained).quantizer.ntotal == nlist
    shard = faiss.read_index(str(ivf_index / m["shards"][0]["file"]))
    assert layout.ivf_of(shard).quantizer.ntotal == 0            # placeholder: the quantizer is not stored per shard
    assert layout.ivf_of(shard).ntotal == m["shards"][0]["count"]


def test_auto_ivf_flat_meets_the_recall_target(ivf_index, syn_store):
    m = layout.load_manifest(ivf_index)
    t = m["tuning"]
    assert t["met_target"] and t["recall_lower_bound"] >= 0.95 and "held out" in t["scoring"]
    assert t["curve"][-1]["nprobe"] == t["search_params"]["nprobe"] and t["latency_ms"] > 0
    assert fresh_recall(ivf_index, syn_store) >= 0.95


def test_auto_ivf_pq_with_refine_meets_the_recall_target(syn_store, tmp_path):
    plan = choose(N, DIM, memory_budget="1.5MB")            # compressed codes, re-ranked from SQ8
    assert plan.kind == "ivf-pq" and plan.refine == "SQ8" and plan.factory.startswith("OPQ16_32,")
    plan = dataclasses.replace(plan, opq_niter=1, kmeans_niter=6, train_size=10_000)  # less training: test time
    m = build_index(syn_store.emb_url, tmp_path / "pq", plan=plan, progress=False, workers=2, tune_queries=300,
                     shard_rows=4096)
    assert m["trained_refine"] == layout.TRAINED_REFINE
    assert all((tmp_path / "pq" / s["refine_file"]).exists() for s in m["shards"])
    assert m["tuning"]["met_target"] and "k_factor" in m["search_params"]
    assert fresh_recall(tmp_path / "pq", syn_store) >= 0.95
    xq = syn_store.fresh_queries(64)                          # one coarse search + SQ8 re-ranking = IndexRefine
    fast, plain = ShardedIndex.open(tmp_path / "pq"), ShardedIndex.open(tmp_path / "pq", preassigned=False)
    d1, i1 = fast.search_raw(xq, 10)
    d2, i2 = plain.search_raw(xq, 10)
    assert (i1 == i2).mean() > 0.999                          # float rounding may swap exact ties
    np.testing.assert_allclose(d1, d2, atol=1e-5)


def test_hnsw_meets_the_recall_target(syn_store, tmp_path):
    m = build_index(syn_store.emb_url, tmp_path / "hnsw", kind="hnsw", progress=False, workers=2, tune_queries=300,
                     shard_rows=4096)
    assert m["kind"] == "hnsw" and m["tuning"]["met_target"] and m["search_params"]["efSearch"] >= 16
    assert fresh_recall(tmp_path / "hnsw", syn_store) >= 0.95


def test_add_equals_a_full_rebuild(syn_gen, tmp_path):
    """Grow the archive: the old last shard was partial; `index add` rebuilds it and adds the new ones."""
    small = write_synthetic(tmp_path, 5_000, syn_gen, name="small", chunk_size=512, shard_chunks=4)[1]
    grown = write_synthetic(tmp_path, 9_000, syn_gen, name="grown", chunk_size=512, shard_chunks=4)[1]
    build_index(small, tmp_path / "added", kind="flat", progress=False, tune_queries=50,
                shard_rows=2048)
    before = json.loads((tmp_path / "added" / "manifest.json").read_text())
    kept = {s["file"]: (tmp_path / "added" / s["file"]).stat().st_mtime_ns for s in before["shards"][:2]}
    m = add_to_index(tmp_path / "added", grown, progress=False)
    assert m["added"][-1]["shards"] == [2, 3, 4] and m["n"] == 9_000
    assert all((tmp_path / "added" / f).stat().st_mtime_ns == t for f, t in kept.items())  # full shards kept
    full = build_index(grown, tmp_path / "full", kind="flat", progress=False, tune_queries=50,
                shard_rows=2048)
    assert [(s["shard"], s["rows"], s["count"]) for s in m["shards"]] == \
        [(s["shard"], s["rows"], s["count"]) for s in full["shards"]]
    xq = np.ascontiguousarray(syn_gen.rows(20_000, 20_050)[0])
    a, b = ShardedIndex.open(tmp_path / "added"), ShardedIndex.open(tmp_path / "full")
    da, ia = a.search_raw(xq, 20)
    db, ib = b.search_raw(xq, 20)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(da, db)
    ma, mb = np.load(tmp_path / "added/meta/time_ns.npy"), np.load(tmp_path / "full/meta/time_ns.npy")
    np.testing.assert_array_equal(ma, mb)
    for shard in (2, 3, 4):
        assert (tmp_path / "added" / layout.shard_file(shard)).read_bytes() == \
            (tmp_path / "full" / layout.shard_file(shard)).read_bytes()


def test_index_shards_group_store_shards_and_grow_alike(syn_gen, tmp_path):
    """Two store shards per index shard: 5,000 rows = store shards [0,1] [2]; grown to 9,000 = [0,1] [2,3] [4]."""
    small = write_synthetic(tmp_path, 5_000, syn_gen, name="small", chunk_size=512, shard_chunks=4)[1]
    grown = write_synthetic(tmp_path, 9_000, syn_gen, name="grown", chunk_size=512, shard_chunks=4)[1]
    m = build_index(small, tmp_path / "added", kind="flat", progress=False, tune_queries=50, shard_rows=4096)
    assert m["store_shards_per_index_shard"] == 2
    assert [(s["store_shards"], s["rows"]) for s in m["shards"]] == [([0, 2], [0, 4096]), ([2, 3], [4096, 5000])]
    m = add_to_index(tmp_path / "added", grown, progress=False)
    assert m["added"][-1]["shards"] == [1, 2]
    assert [s["store_shards"] for s in m["shards"]] == [[0, 2], [2, 4], [4, 5]]
    full = build_index(grown, tmp_path / "full", kind="flat", progress=False, tune_queries=50, shard_rows=4096)
    assert m["shards"] == full["shards"]
    xq = np.ascontiguousarray(syn_gen.rows(20_000, 20_020)[0])
    _, truth = brute_force(syn_gen.rows(0, 9_000)[0], xq)
    _, found = ShardedIndex.open(tmp_path / "added").search_raw(xq, 10)
    np.testing.assert_array_equal(found, truth[:, :10])


def test_add_refuses_other_dimension_or_model(syn_store, flat_index, tmp_path):
    other = write_synthetic(tmp_path, 3_000, ClusteredVectors(16, seed=0), name="d16", chunk_size=512)[1]
    with pytest.raises(IndexBuildError, match="16-d"):
        add_to_index(flat_index, other)
    with pytest.raises(IndexBuildError, match="already holds an index"):
        build_index(syn_store.emb_url, flat_index, kind="flat", progress=False)


def test_build_resumes_after_a_kill_identically(syn_store, tmp_path, monkeypatch):
    import spacessl.index.build as build

    real, calls = build.write_shard, []

    def dying(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(args[1]["shard"])
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "write_shard", dying)
    with pytest.raises(KeyboardInterrupt):
        build_index(syn_store.emb_url, tmp_path / "resumed", kind="ivf-flat", progress=False, workers=1,
                    shard_rows=4096)
    monkeypatch.setattr(build, "write_shard", real)
    out = tmp_path / "resumed"
    assert not (out / "manifest.json").exists() and (out / "trained.faiss").exists()
    with pytest.raises(IndexSearchError, match="unfinished build"):
        ShardedIndex.open(out)
    done = {p.name: p.stat().st_mtime_ns for p in (out / "shards").glob("*.faiss")}
    trained_t = (out / "trained.faiss").stat().st_mtime_ns
    assert len(done) == 2
    build_index(syn_store.emb_url, out, kind="ivf-flat", progress=False, workers=1,
                    shard_rows=4096)
    assert (out / "trained.faiss").stat().st_mtime_ns == trained_t                # not retrained
    assert all((out / "shards" / f).stat().st_mtime_ns == t for f, t in done.items())  # finished shards kept
    build_index(syn_store.emb_url, tmp_path / "straight", kind="ivf-flat", progress=False, workers=1,
                    shard_rows=4096)
    for name in ["trained.faiss"] + [f"shards/shard-{s:05d}.faiss" for s in range(5)]:
        assert (out / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    a = json.loads((out / "manifest.json").read_text())
    b = json.loads((tmp_path / "straight" / "manifest.json").read_text())
    assert a["shards"] == b["shards"] and a["search_params"] == b["search_params"]


def test_old_manifest_version_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "spacessl-index", "version": 1}))
    with pytest.raises(IndexSearchError, match="version-1 index.*--overwrite"):
        ShardedIndex.open(tmp_path)


def test_cli_build_info_add(syn_gen, tmp_path, capsys):
    from spacessl.cli import main

    small = write_synthetic(tmp_path, 3_000, syn_gen, name="s", chunk_size=512, shard_chunks=2)[1]
    grown = write_synthetic(tmp_path, 4_000, syn_gen, name="g", chunk_size=512, shard_chunks=2)[1]
    assert main(["index", "build", small, "--out", str(tmp_path / "idx"), "--workers", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "flat" in out and "10^4" in out and "recall@10" in out and "latency" in out
    assert main(["index", "build", small, "--out", str(tmp_path / "idx")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["index", "add", str(tmp_path / "idx"), grown, "--no-progress"]) == 0
    assert "4000" in capsys.readouterr().out
    assert main(["index", "info", str(tmp_path / "idx")]) == 0
    info = capsys.readouterr().out
    assert "4000 vectors" in info and "shards" in info and "mmap" in info


def test_job_entry_point(syn_gen, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("index_job", Path(__file__).parents[2] / "jobs" / "index.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    small = write_synthetic(tmp_path, 2_000, syn_gen, name="j", chunk_size=512, shard_chunks=2)[1]
    assert job.main(["build", small, "--out", str(tmp_path / "idx"), "--kind", "flat", "--no-progress"]) == 0
    assert (tmp_path / "idx" / "manifest.json").exists()

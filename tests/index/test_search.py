"""Search: sharded exact search against one exact index, the preassigned IVF path against the plain one, filters and
de-duplication against a brute-force reference (ID-selector and over-fetch paths), distributed shards in Ray actors."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from spacessl.index.search import FilterSpec, IndexSearchError, ShardedIndex, merge_topk
from tests.index.conftest import brute_force

S = 10**9


def reference(store, q: np.ndarray, k: int, *, since=None, until=None, source=None, label=None, dedup_s=0.0,
              exclude=(), near=None) -> tuple[np.ndarray, np.ndarray]:
    """The filtered, de-duplicated top-k by brute force: (distances, ids), padded with inf / -1."""
    x, meta = store.vectors(), store.meta()
    sims = x @ q
    dedup_ns = int(dedup_s * S)
    kept: dict[int, list[int]] = {}
    ids: list[int] = []
    for i in np.argsort(-sims, kind="stable"):
        t, s = int(meta["time_ns"][i]), int(meta["source"][i])
        if since is not None and t < since or until is not None and t >= until:
            continue
        if source is not None and store.gen.sources[s] != source or label is not None and meta["label"][i] != label:
            continue
        if int(i) in exclude:
            continue
        if near is not None and dedup_ns and store.gen.sources[s] == near[0] and abs(t - near[1]) <= dedup_ns:
            continue
        if dedup_ns and any(abs(t - p) <= dedup_ns for p in kept.get(s, [])):
            continue
        kept.setdefault(s, []).append(t)
        ids.append(int(i))
        if len(ids) == k:
            break
    d = np.full(k, np.inf, np.float32)
    out = np.full(k, -1, np.int64)
    d[:len(ids)] = 1.0 - sims[ids]
    out[:len(ids)] = ids
    return d, out


def test_sharded_exact_equals_one_flat_index(flat_index, syn_store):
    xq = syn_store.fresh_queries(100)
    one = faiss.IndexFlatIP(syn_store.gen.dim)
    one.add(syn_store.vectors())
    sims, ids = one.search(xq, 25)
    index = ShardedIndex.open(flat_index)
    assert len(index.group.shards) == 5
    dist, found = index.search_raw(xq, 25)
    np.testing.assert_array_equal(found, ids)
    np.testing.assert_allclose(dist, 1.0 - sims, atol=1e-6)
    d1, i1 = index.search_raw(xq[:1], 25)                       # single query: the sequential path
    np.testing.assert_array_equal(i1, ids[:1])
    assert index.search(xq, 25)[1].tolist() == found.tolist()  # no filters: the same search


def test_excluded_id_range_by_selector(flat_index, syn_store):
    xq = syn_store.fresh_queries(10)
    index = ShardedIndex.open(flat_index)
    dist, ids = index.search_raw(xq, 10, exclude=FilterSpec(exclude_range=(3000, 9000)))
    x = syn_store.vectors()
    rest = np.r_[0:3000, 9000:len(x)]
    _, truth = brute_force(x[rest], xq)
    np.testing.assert_array_equal(ids, rest[truth[:, :10]])


def test_more_results_than_vectors_pad(flat_index, syn_store):
    index = ShardedIndex.open(flat_index, manifest_override={"shards": index_shards(flat_index)[:1]})
    dist, ids = index.search_raw(syn_store.fresh_queries(2), 5000)
    assert (ids[:, :4096] >= 0).all() and (ids[:, 4096:] == -1).all() and np.isinf(dist[:, 4096:]).all()


def index_shards(path):
    from spacessl.index import layout
    return layout.load_manifest(path)["shards"]


def test_merge_topk_is_exact():
    rng = np.random.default_rng(0)
    parts = [(-np.sort(-rng.random((3, 4)).astype(np.float32), 1), rng.integers(0, 100, (3, 4))) for _ in range(3)]
    sims, ids = merge_topk(parts, 3, 5)
    all_s = np.concatenate([p[0] for p in parts], 1)
    np.testing.assert_array_equal(sims, -np.sort(-all_s, 1)[:, :5])
    sims, ids = merge_topk(parts[:1], 3, 6)
    assert (ids[:, 4:] == -1).all() and np.isinf(sims[:, 4:]).all()


def test_preassigned_equals_plain_ivf(ivf_index, syn_store):
    xq = syn_store.fresh_queries(64)
    fast, plain = ShardedIndex.open(ivf_index), ShardedIndex.open(ivf_index, preassigned=False)
    assert fast.preassigned and not plain.preassigned
    for index in (fast, plain):
        index.set_params(nprobe=4)
    d1, i1 = fast.search_raw(xq, 10)
    d2, i2 = plain.search_raw(xq, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(d1, d2, atol=1e-6)
    t0, t1 = int(syn_store.meta()["time_ns"].min()), int(np.median(syn_store.meta()["time_ns"]))
    for index in (fast, plain):
        index.selector_fraction = 1.0                         # ID selector inside the IVF scan
    r1 = fast.search(xq, 10, source="cam01", since=t0, until=t1)
    r2 = plain.search(xq, 10, source="cam01", since=t0, until=t1)
    assert fast.last_filter_mode == "selector"
    np.testing.assert_array_equal(r1[1], r2[1])


CASES = [
    dict(since="q30", until="q60"),                          # 30 % of the times
    dict(source="cam02", label=1),                           # ~8 %
    dict(source="cam01", label=2, since="q40", until="q60"),  # ~1.7 %
    dict(label=0, dedup_s=30.0),
]


def resolve(case: dict, store) -> dict:
    times = store.meta()["time_ns"]
    return {key: int(np.quantile(times, int(v[1:]) / 100)) if isinstance(v, str) and v.startswith("q") else v
            for key, v in case.items()}


@pytest.mark.parametrize("case", range(len(CASES)))
def test_filters_equal_brute_force_on_both_paths(flat_index, syn_store, case):
    kw = resolve(CASES[case], syn_store)
    xq = syn_store.fresh_queries(6)
    index = ShardedIndex.open(flat_index)
    for fraction, mode in ((1.0, "selector"), (0.0, "over-fetch")):
        index.selector_fraction = fraction
        dist, ids = index.search(xq, 15, **kw)
        assert index.last_filter_mode == mode
        for row, q in enumerate(xq):
            d_ref, i_ref = reference(syn_store, q, 15, **kw)
            assert ids[row].tolist() == i_ref.tolist(), (mode, kw)
            np.testing.assert_allclose(dist[row], d_ref, atol=1e-5)


def test_auto_choice_of_filter_path(flat_index, syn_store):
    index = ShardedIndex.open(flat_index)
    xq = syn_store.fresh_queries(2)
    index.search(xq, 5, **resolve(CASES[2], syn_store))
    assert index.last_filter_mode == "selector"                # ~1.7 % allowed
    index.search(xq, 5, **resolve(CASES[0], syn_store))
    assert index.last_filter_mode == "over-fetch"              # 30 % allowed
    spec = FilterSpec(source=index.source_code("cam01"))
    assert index.allowed_count(spec) == syn_store.n // 4
    with pytest.raises(IndexSearchError, match="cam09"):
        index.search(xq, 5, source="cam09")


def test_dedup_drops_the_query_neighbourhood(flat_index, syn_store):
    """Query by a stored sample: itself, its own camera within ±Δt, and repeats within ±Δt of a kept result go."""
    meta = syn_store.meta()
    index = ShardedIndex.open(flat_index)
    qids = [123, 4567, 15001]
    xq = syn_store.vectors()[qids]
    near = [(syn_store.gen.sources[meta["source"][i]], int(meta["time_ns"][i])) for i in qids]
    raw = index.search_raw(xq, 10)[1]
    assert all(raw[r][0] == q for r, q in enumerate(qids))    # without de-duplication: itself, then its next frames
    dist, ids = index.search(xq, 10, dedup_s=60.0, exclude_ids=qids, exclude_near=near)
    for row, q in enumerate(qids):
        d_ref, i_ref = reference(syn_store, xq[row], 10, dedup_s=60.0, exclude={q}, near=near[row])
        assert ids[row].tolist() == i_ref.tolist()
        np.testing.assert_allclose(dist[row], d_ref, atol=1e-5)
        got = [(meta["source"][i], meta["time_ns"][i]) for i in ids[row]]
        assert all(not (s == meta["source"][q] and abs(t - meta["time_ns"][q]) <= 60 * S) for s, t in got)


def test_ivf_filters_exact_at_full_nprobe_and_widened_when_restrictive(ivf_index, syn_store):
    index = ShardedIndex.open(ivf_index)
    nlist = index.coarse.nlist
    xq = syn_store.fresh_queries(5)
    kw = resolve(CASES[2], syn_store)
    index.set_params(nprobe=nlist)                            # every list: exact
    dist, ids = index.search(xq, 10, **kw)
    assert index.last_filter_mode == "selector"
    for row, q in enumerate(xq):
        assert ids[row].tolist() == reference(syn_store, q, 10, **kw)[1].tolist()
    index.set_params(nprobe=1)                                # one list holds few allowed vectors: widened
    dist, ids = index.search(xq, 10, **kw)
    meta = syn_store.meta()
    assert (ids >= 0).all()
    assert all(syn_store.gen.sources[meta["source"][i]] == "cam01" and meta["label"][i] == 2 for i in ids.ravel())


def process_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    status = Path(f"/proc/{pid}/status")
    try:
        return "\tZ" not in [line for line in status.read_text().splitlines() if line.startswith("State:")][0]
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_distributed_equals_local_and_survives_a_dead_actor(ray_cluster, ivf_index, syn_store):
    ray = ray_cluster
    xq = syn_store.fresh_queries(20)
    local = ShardedIndex.open(ivf_index)
    dist = ShardedIndex.open(ivf_index, distributed=True, num_actors=2)
    try:
        d1, i1 = local.search_raw(xq, 10)
        d2, i2 = dist.search_raw(xq, 10)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(d1, d2, atol=1e-6)
        kw = resolve(CASES[2], syn_store)
        np.testing.assert_array_equal(local.search(xq, 10, **kw)[1], dist.search(xq, 10, **kw)[1])
        assert dist.last_missing_shards == []

        group = [dist.shard_ids[j] for j in dist._actor_groups[0]]
        pid = ray.get(dist.actors[0].pid.remote())
        os.kill(pid, signal.SIGKILL)                          # the actor's process dies; Ray restarts it
        while process_alive(pid):
            time.sleep(0.01)
        d3, i3 = dist.search_raw(xq, 10)
        assert dist.last_missing_shards == group
        others = [e for e in index_shards(ivf_index) if e["shard"] not in group]
        part = ShardedIndex.open(ivf_index, manifest_override={"shards": others})
        np.testing.assert_array_equal(i3, part.search_raw(xq, 10)[1])
        deadline = time.time() + 120
        while True:                                           # the restarted actor reloads its shards
            d4, i4 = dist.search_raw(xq, 10)
            if not dist.last_missing_shards or time.time() > deadline:
                break
            time.sleep(1)
        assert dist.last_missing_shards == []
        np.testing.assert_array_equal(i4, i1)
    finally:
        dist.close()

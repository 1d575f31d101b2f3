"""Index planning: kind and parameters from N, D and the memory budget."""

from __future__ import annotations

import math

import pytest

from spacessl.errors import SpacesslError
from spacessl.index.plan import HNSW_QUANTIZER_FROM, IndexPlan, choose, nlist_for, parse_bytes


def test_parse_bytes():
    assert parse_bytes("8GB") == 8 * 10**9
    assert parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes(" 1.5 kb ") == 1500
    assert parse_bytes(1000) == 1000
    with pytest.raises(SpacesslError, match="not a size"):
        parse_bytes("eight gigs")


@pytest.mark.parametrize("n", [1_000, 20_000, 1_000_000, 10**8, 10**9])
def test_nlist_is_a_power_of_two_near_4_sqrt_n(n):
    nlist = nlist_for(n)
    assert nlist & (nlist - 1) == 0 and nlist >= 16 or n < 16 * 39
    assert nlist * 39 <= n or nlist == 16
    if n >= 10**6:
        assert 2 * math.sqrt(n) <= nlist <= 8 * math.sqrt(n)


def test_small_sets_are_exact():
    plan = choose(5_000, 512)
    assert plan.kind == "flat" and plan.factory == "Flat" and "10^4" in plan.reason


def test_mid_sets_use_ivf_flat_within_budget():
    plan = choose(200_000, 512, memory_budget="8GB")
    assert plan.kind == "ivf-flat" and plan.factory == f"IVF{plan.nlist},Flat"
    assert plan.nlist == nlist_for(200_000) and plan.train_size >= 39 * plan.nlist
    assert plan.search_params["nprobe"] >= 1
    assert plan.index_bytes(200_000) == 200_000 * (512 * 4 + 8)


def test_large_or_tight_sets_use_opq_ivf_pq():
    plan = choose(10**8, 512, memory_budget="64GB")
    assert plan.kind == "ivf-pq" and plan.pq_m == 64
    assert plan.factory == f"OPQ64_512,IVF{plan.nlist},PQ64x8" and plan.opq_niter > 0
    assert plan.refine == ""                           # 1e8 x (64 + 8 + 512) B exceeds 64 GB: no refine
    assert plan.bytes_per_vector == 72
    refined = choose(10**8, 512, memory_budget="80GB")
    assert refined.refine == "SQ8" and refined.bytes_per_vector == 64 + 8 + 512
    assert refined.search_params["k_factor"] >= 2


def test_ivf_flat_over_budget_falls_to_pq():
    assert choose(1_000_000, 512, memory_budget="1GB").kind == "ivf-pq"


def test_billion_scale_uses_an_hnsw_coarse_quantizer():
    plan = choose(10**9, 512, memory_budget="200GB")
    assert plan.nlist >= HNSW_QUANTIZER_FROM and f"IVF{plan.nlist}_HNSW32" in plan.factory
    assert plan.search_params["quantizer_efSearch"] >= plan.search_params["nprobe"]


def test_pq_keeps_two_dimensions_per_sub_quantizer():
    plan = choose(20_000, 32, kind="ivf-pq")
    assert plan.pq_m == 16 and plan.factory.startswith("OPQ16_32,")


def test_kind_forced_and_errors():
    assert choose(1_000, 64, kind="hnsw").factory == "HNSW32,Flat"
    assert choose(50_000, 64, kind="flat").kind == "flat"
    with pytest.raises(SpacesslError, match="not one of"):
        choose(1_000, 64, kind="lsh")
    with pytest.raises(SpacesslError, match="memory budget"):
        choose(10**9, 512, memory_budget="1GB")
    with pytest.raises(SpacesslError, match="empty"):
        choose(0, 512)


def test_plan_round_trips_and_ignores_unknown_keys():
    plan = choose(200_000, 128)
    again = IndexPlan.from_dict({**plan.to_dict(), "from_a_newer_version": 1})
    assert again == plan

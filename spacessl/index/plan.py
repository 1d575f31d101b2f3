"""Choosing a FAISS index type and its parameters from N, D and a memory budget.

Rules (inner product on unit vectors, i.e. cosine similarity):

* N < 10⁴: exact ``Flat``: brute force is already sub-millisecond.
* the full-precision vectors fit the budget (N·D·4 bytes, with 20 % headroom) and N ≤ 2·10⁶: ``IVF{nlist},Flat``:
  exact distances inside the probed lists, so recall is limited only by nprobe; HNSW (``--kind hnsw``) is the
  alternative for lower latency at ~1.5× the memory and a much slower build.
* otherwise: ``OPQ{m}_{D'},IVF{nlist},PQ{m}x8``: m bytes per vector, m the largest of 64, 32, 16, 8 that fits the
  budget and divides D' (D' = D rounded down to a multiple of m), with a flat 8-bit scalar-quantised refinement
  stage (``RFlat``-style re-ranking of 4·k candidates) when D more bytes per vector also fit: this lifts recall@10
  from PQ's ~0.9 to ≥ 0.95.

nlist ≈ 4·√N rounded to a power of two (at least 16, and at most N/39 so k-means has ≥ 39 points per centroid).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from spacessl.errors import SpacesslError

KINDS = ("auto", "flat", "hnsw", "ivf-flat", "ivf-pq")
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int | float) -> int:
    """"8GB" → 8·10⁹, "512MiB" → 512·2²⁰, 1000 → 1000."""
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise SpacesslError(f"memory budget {text!r} is not a size such as 8GB, 512MiB or 2000000000")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass
class IndexPlan:
    """What to build. ``factory`` is a FAISS index_factory string (without the ID map)."""

    kind: str
    factory: str
    nlist: int = 0
    pq_m: int = 0
    hnsw_m: int = 0
    refine: str = ""  #: "" or a factory string for a re-ranking stage ("SQ8")
    train_size: int = 0
    bytes_per_vector: float = 0.0
    reason: str = ""
    search_params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nlist_for(n: int) -> int:
    """≈ 4·√N as a power of two, within [16, N/39]."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 2 ** max(4, round(math.log2(target)))
    while nlist > 16 and nlist * 39 > n:
        nlist //= 2
    return max(1, nlist)


def choose(n: int, d: int, *, kind: str = "auto", memory_budget: str | int = "8GB") -> IndexPlan:
    """The index for ``n`` vectors of dimension ``d`` within ``memory_budget`` bytes."""
    if kind not in KINDS:
        raise SpacesslError(f"index kind {kind!r} is not one of {list(KINDS)}")
    budget = parse_bytes(memory_budget)
    flat_bytes = n * (d * 4 + 8)
    if kind == "auto":
        if n < 10_000:
            kind, why = "flat", f"N={n} < 10^4: exact search is already fast"
        elif flat_bytes * 1.2 <= budget and n <= 2_000_000:
            kind, why = "ivf-flat", (f"N={n}, full vectors need {flat_bytes / 1e9:.2f} GB, within the "
                                     f"{budget / 1e9:.1f} GB budget: IVF-Flat keeps exact distances")
        else:
            kind, why = "ivf-pq", (f"N={n}: full vectors ({flat_bytes / 1e9:.1f} GB) exceed the budget "
                                   f"({budget / 1e9:.1f} GB) or N > 2·10^6: compressed OPQ + IVF-PQ codes")
    else:
        why = f"kind {kind} requested"
    if kind == "flat":
        return IndexPlan("flat", "Flat", bytes_per_vector=d * 4 + 8, reason=why)
    if kind == "hnsw":
        m = 32
        return IndexPlan("hnsw", f"HNSW{m},Flat", hnsw_m=m, bytes_per_vector=d * 4 + 8 + m * 2 * 4 * 1.1,
                         reason=why, search_params={"efSearch": 64})
    nlist = nlist_for(n)
    train = min(n, max(nlist * 64, 50_000))
    if kind == "ivf-flat":
        return IndexPlan("ivf-flat", f"IVF{nlist},Flat", nlist=nlist, train_size=train,
                         bytes_per_vector=d * 4 + 8, reason=why, search_params={"nprobe": 8})
    for m in (64, 32, 16, 8):
        if d >= m and n * (m + 8) * 1.2 <= budget:
            break
    else:
        raise SpacesslError(f"{n} vectors do not fit a {budget / 1e9:.2f} GB memory budget even at 8 bytes per "
                            "vector; raise --memory-budget or shard the index over several machines")
    d_out = d // m * m
    refine = "SQ8" if n * (m + 8 + d) * 1.2 <= budget else ""
    factory = f"OPQ{m}_{d_out},IVF{nlist},PQ{m}x8"
    return IndexPlan("ivf-pq", factory, nlist=nlist, pq_m=m, refine=refine, train_size=min(n, max(train, 256 * m)),
                     bytes_per_vector=m + 8 + (d if refine else 0), reason=why,
                     search_params={"nprobe": 8, **({"k_factor": 4} if refine else {})})

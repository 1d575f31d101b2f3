"""Choosing a FAISS index type and its parameters from N, D and a memory budget.

Rules (inner product on unit vectors, i.e. cosine similarity):

* N < 10⁴: exact ``Flat``: brute force is already sub-millisecond.
* the full-precision vectors fit the budget (N·(4D + 8) bytes, 20 % headroom) and N ≤ 2·10⁶: ``IVF{nlist},Flat``:
  exact distances inside the probed lists, so recall is limited only by nprobe; HNSW (``--kind hnsw``) is the
  alternative for lower single-query latency at ~1.5× the memory and a much slower build.
* otherwise: ``OPQ{m}_{D'},IVF{nlist},PQ{m}x8``: m bytes per vector, m the largest of 64, 32, 16, 8 with at least two
  dimensions per sub-quantizer (m ≤ D/2) that fits the budget (D' = D rounded down to a multiple of m), with an
  8-bit scalar-quantised re-ranking stage (SQ8, D bytes per vector, ``k_factor``·k candidates re-ranked) when those
  bytes fit too: it lifts recall@10 from PQ's ~0.9 to ≥ 0.95 (Jégou et al., "Searching in one billion vectors:
  re-rank with source coding", ICASSP 2011).

nlist ≈ 4·√N rounded to a power of two (at least 16, and at most N/39 so that k-means has ≥ 39 points per
centroid); from 2¹⁶ lists on, the coarse quantizer is an HNSW graph over the centroids (``IVF{nlist}_HNSW32``) so
that assigning a query stays sub-millisecond.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from spacessl.errors import SpacesslError

KINDS = ("auto", "flat", "hnsw", "ivf-flat", "ivf-pq")
HNSW_QUANTIZER_FROM = 2**16  #: nlist from which the coarse quantizer is an HNSW graph
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
ID_BYTES = 8  #: bytes of id and metadata bookkeeping counted per vector (the global id map / IVF list ids)


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
    """What to build. ``factory`` is a FAISS index_factory string; ids are kept outside FAISS (see build.py).

    Attributes:
        kind: "flat" | "hnsw" | "ivf-flat" | "ivf-pq".
        factory: index_factory string of the base index, inner-product metric.
        nlist: inverted lists (IVF kinds), 0 otherwise.
        pq_m: PQ bytes per vector (ivf-pq), 0 otherwise.
        hnsw_m: graph degree (hnsw), 0 otherwise.
        refine: "" or the factory string of the re-ranking stage ("SQ8").
        train_size: vectors sampled to train the coarse quantizer / OPQ / PQ (0: no training).
        kmeans_niter: k-means iterations of the coarse quantizer and of the PQ codebooks.
        opq_niter: OPQ rotation iterations (0: no OPQ).
        bytes_per_vector: index memory per vector, codes + ids (+ refine codes, + graph links).
        reason: why this kind, in words.
        search_params: starting search parameters (tuning raises nprobe / efSearch).
    """

    kind: str
    factory: str
    nlist: int = 0
    pq_m: int = 0
    hnsw_m: int = 0
    refine: str = ""
    train_size: int = 0
    kmeans_niter: int = 0
    opq_niter: int = 0
    bytes_per_vector: float = 0.0
    reason: str = ""
    search_params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexPlan:
        """Inverse of :meth:`to_dict`; unknown keys (from other versions) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def index_bytes(self, n: int) -> float:
        """Approximate memory (= disk) size of the index for ``n`` vectors, in bytes."""
        return n * self.bytes_per_vector


def nlist_for(n: int) -> int:
    """≈ 4·√N as a power of two, within [16, N/39]."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 2 ** max(4, round(math.log2(target)))
    while nlist > 16 and nlist * 39 > n:
        nlist //= 2
    return max(1, nlist)


def _ivf(nlist: int) -> str:
    return f"IVF{nlist}_HNSW32" if nlist >= HNSW_QUANTIZER_FROM else f"IVF{nlist}"


def choose(n: int, d: int, *, kind: str = "auto", memory_budget: str | int = "8GB") -> IndexPlan:
    """The index for ``n`` vectors of dimension ``d`` within ``memory_budget`` bytes."""
    if kind not in KINDS:
        raise SpacesslError(f"index kind {kind!r} is not one of {list(KINDS)}")
    if n < 1 or d < 1:
        raise SpacesslError(f"cannot index {n} vectors of dimension {d}: the embeddings store is empty")
    budget = parse_bytes(memory_budget)
    flat_bytes = n * (d * 4 + ID_BYTES)
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
        return IndexPlan("flat", "Flat", bytes_per_vector=d * 4 + ID_BYTES, reason=why)
    if kind == "hnsw":
        m = 32
        return IndexPlan("hnsw", f"HNSW{m},Flat", hnsw_m=m, bytes_per_vector=d * 4 + ID_BYTES + m * 2 * 4 * 1.1,
                         reason=why, search_params={"efSearch": 64})
    nlist = nlist_for(n)
    train = min(n, max(nlist * 40, 50_000))
    quantizer = {"quantizer_efSearch": 128} if nlist >= HNSW_QUANTIZER_FROM else {}
    if kind == "ivf-flat":
        return IndexPlan("ivf-flat", f"{_ivf(nlist)},Flat", nlist=nlist, train_size=train, kmeans_niter=10,
                         bytes_per_vector=d * 4 + ID_BYTES, reason=why, search_params={"nprobe": 8, **quantizer})
    for m in (64, 32, 16, 8):
        if 2 * m <= d and n * (m + ID_BYTES) * 1.2 <= budget:
            break
    else:
        raise SpacesslError(f"{n} vectors of dimension {d} do not fit a {budget / 1e9:.3f} GB memory budget even "
                            "at 8 bytes per vector (or D < 16); raise --memory-budget, shard the index over several "
                            "machines, or use --kind ivf-flat / hnsw")
    d_out = d // m * m
    refine = "SQ8" if n * (m + ID_BYTES + d) * 1.2 <= budget else ""
    factory = f"OPQ{m}_{d_out},{_ivf(nlist)},PQ{m}x8"
    return IndexPlan("ivf-pq", factory, nlist=nlist, pq_m=m, refine=refine,
                     train_size=min(n, max(train, 256 * 40)), kmeans_niter=10, opq_niter=25,
                     bytes_per_vector=m + ID_BYTES + (d if refine else 0), reason=why,
                     search_params={"nprobe": 8, **quantizer, **({"k_factor": 4} if refine else {})})

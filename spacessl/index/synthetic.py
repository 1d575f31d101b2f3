"""Seeded synthetic embeddings for index tests and benchmarks: clustered unit vectors with camera-like metadata.

Vectors lie near low-dimensional cluster manifolds, as encoder outputs do: row i belongs to an *event* (one source,
``event_len`` consecutive frames); each event picks a cluster c and a latent position z, and its frames are

    x = normalise(centre[c] + spread · B[c] (z + drift · ε) + noise · η),   B[c] (D, r), ε ~ N(0, I), η ~ N(0, I)

so consecutive frames of one source are near-duplicates (what temporal de-duplication removes) and different events
of the same cluster are genuine neighbours. Row i comes from source ``i % n_sources`` at time
``T0 + (i // n_sources) · step_s``; its label is ``c % n_labels``. Every row depends only on (seed, i), so any range
can be generated on its own, block by block, and a grown set repeats the rows of a smaller one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

T0_NS = 1_330_000_000 * 10**9   #: 2012-02-23T12:26:40Z
_EVENT_BLOCK = 1024
_ROW_BLOCK = 4096


class ClusteredVectors:
    """Generator of the synthetic set; see the module docstring. Shape of :meth:`rows`: (stop - start, dim)."""

    def __init__(self, dim: int, *, n_clusters: int = 100, intrinsic: int = 8, spread: float = 0.6,
                 drift: float = 0.15, noise: float = 0.02, event_len: int = 8, n_sources: int = 4,
                 n_labels: int = 3, step_s: float = 3.0, seed: int = 0):
        self.dim, self.n_clusters, self.intrinsic = dim, n_clusters, min(intrinsic, dim)
        self.spread, self.drift, self.noise = spread, drift, noise
        self.event_len, self.n_sources, self.n_labels, self.step_s, self.seed = (event_len, n_sources, n_labels,
                                                                                step_s, seed)
        rng = np.random.default_rng([seed, 0])
        self.centres = (rng.standard_normal((n_clusters, dim)) / np.sqrt(dim)).astype(np.float32)
        basis = rng.standard_normal((n_clusters, dim, self.intrinsic)) / np.sqrt(dim)
        self.bases = basis.astype(np.float32)
        self.sources = [f"cam{s:02d}" for s in range(n_sources)]

    def _events(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cluster = np.empty(len(keys), dtype=np.int64)
        z = np.empty((len(keys), self.intrinsic), dtype=np.float32)
        for b in np.unique(keys // _EVENT_BLOCK):
            rng = np.random.default_rng([self.seed, 1, int(b)])
            cb = rng.integers(0, self.n_clusters, _EVENT_BLOCK)
            zb = rng.standard_normal((_EVENT_BLOCK, self.intrinsic)).astype(np.float32)
            sel = keys // _EVENT_BLOCK == b
            cluster[sel] = cb[keys[sel] % _EVENT_BLOCK]
            z[sel] = zb[keys[sel] % _EVENT_BLOCK]
        return cluster, z

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(vectors (stop-start, dim) float32 unit length, meta {time_ns, source (codes), label, cluster})."""
        parts, metas = [], []
        for b0 in range((start // _ROW_BLOCK) * _ROW_BLOCK, stop, _ROW_BLOCK):
            x, m = self._row_block(b0 // _ROW_BLOCK)
            lo, hi = max(start, b0) - b0, min(stop, b0 + _ROW_BLOCK) - b0
            parts.append(x[lo:hi])
            metas.append({k: v[lo:hi] for k, v in m.items()})
        if not parts:
            return np.empty((0, self.dim), np.float32), {k: np.empty(0, np.int64) for k in
                                                           ("time_ns", "source", "label", "cluster")}
        return np.concatenate(parts), {k: np.concatenate([m[k] for m in metas]) for k in metas[0]}

    def _row_block(self, b: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        i = np.arange(b * _ROW_BLOCK, (b + 1) * _ROW_BLOCK, dtype=np.int64)
        source = i % self.n_sources
        step = i // self.n_sources
        keys = (step // self.event_len) * self.n_sources + source
        cluster, z = self._events(keys)
        rng = np.random.default_rng([self.seed, 2, b])
        eps = rng.standard_normal((len(i), self.intrinsic)).astype(np.float32)
        eta = rng.standard_normal((len(i), self.dim)).astype(np.float32)
        latent = z + self.drift * eps
        x = self.centres[cluster] + self.spread * np.einsum("ndr,nr->nd", self.bases[cluster], latent)
        x += self.noise * eta
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        meta = {"time_ns": T0_NS + (step * self.step_s * 1e9).astype(np.int64), "source": source.astype(np.int32),
                "label": (cluster % self.n_labels).astype(np.int16), "cluster": cluster}
        return x.astype(np.float32), meta


def write_synthetic(root: str | Path, n: int, gen: ClusteredVectors, *, name: str = "syn", chunk_size: int = 512,
                    shard_chunks: int = 4, dtype: str = "float32") -> tuple[str, str]:
    """Write ``n`` rows of ``gen`` as a minimal archive (1×1×1 samples carrying the metadata) and its embeddings
    store, block by block (one store shard in memory at a time). Returns (archive URL, embeddings URL)."""
    from spacessl.archive import ArchiveWriter
    from spacessl.embed.store import EmbeddingsWriter

    root = Path(root)
    archive_url, emb_url = str(root / f"{name}.zarr"), str(root / f"{name}.emb.zarr")
    span = chunk_size * shard_chunks
    with ArchiveWriter(archive_url, modality="image", sample_shape=(1, 1, 1), dtype="uint8", units="DN",
                       channels=["gray"], label_names=[f"class{j}" for j in range(gen.n_labels)],
                       chunk_size=chunk_size, shard_chunks=shard_chunks, attrs={"synthetic": "spacessl.index"}) as w:
        for s0 in range(0, n, span):
            _, meta = gen.rows(s0, min(n, s0 + span))
            k = len(meta["time_ns"])
            w.append(np.zeros((k, 1, 1, 1), np.uint8), input_index=s0 // span, time_ns=meta["time_ns"],
                     source=[gen.sources[c] for c in meta["source"]], origin="synthetic", label=meta["label"])
    from spacessl.archive import open_archive

    archive = open_archive(archive_url)
    ew = EmbeddingsWriter(emb_url, n=n, dim=gen.dim, dtype=dtype, chunk_size=chunk_size, shard_chunks=shard_chunks,
                          attrs={"model_uri": "synthetic:clustered", "run_id": None, "archive_url": archive_url,
                                 "archive_fingerprint": archive.fingerprint()})
    for s in range(ew.num_shards):
        start, stop = ew.shard_range(s)
        x, _ = gen.rows(start, stop)
        ew.write_shard(s, np.arange(start, stop, dtype=np.int64), x)
    ew.close()
    return archive_url, emb_url

"""The embeddings store: L2-normalised encoder outputs of every archive sample, written per shard.

A Zarr v3 group beside (or far from) its archive::

    E.zarr/                 attrs: spacessl_embeddings=1, complete, n, dim, dtype ("float16" | "float32"),
                            metric="ip" (vectors are unit length: inner product = cosine similarity),
                            model_uri, run_id, archive_url, archive_fingerprint, chunk_size, shard_chunks, ...
      vectors               (N, D) chunked (chunk_size, D): row i embeds archive row ids[i]
      ids                   (N,) int64 archive row ids
      done/<s>              marker: shard s is written in full

Shard s covers the same rows as archive shard s. Each embedding worker owns whole shards: it writes a shard's
chunks, then puts the shard's ``done/<s>`` marker (an atomic single-object put), so a killed job leaves only whole
shards marked done and a rerun skips exactly those. ``complete`` is set last.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dask.array as da
import fsspec
import numpy as np
import zarr
from zarr.codecs import BloscCodec

from spacessl.archive import store as st
from spacessl.errors import SpacesslError

STORE_VERSION = 1


#: what a store records implicitly for an attribute it was written without (stores older than the attribute)
ATTR_DEFAULTS: dict[str, Any] = {"views": 1}


def recorded(attrs: dict[str, Any], key: str) -> Any:
    """The value a store's attributes ``attrs`` record for ``key``, :data:`ATTR_DEFAULTS` where absent."""
    return attrs.get(key, ATTR_DEFAULTS.get(key))


class EmbeddingsError(SpacesslError):
    """An embeddings store is missing, foreign, unfinished or does not fit the request."""


def _marker_url(url: str, shard: int) -> str:
    return f"{url.rstrip('/')}/done/{shard}"


class EmbeddingsWriter:
    """Creates (or reopens, to resume) an embeddings store for ``n`` samples of dimension ``dim``.

    Args:
        url: store location (local path or fsspec URL).
        n: archive rows to embed.
        dim: vector dimension D.
        dtype: "float32" or "float16".
        chunk_size, shard_chunks: the archive's, so store shards match archive shards.
        attrs: provenance (model_uri, run_id, archive_url, archive_fingerprint, ...).
        overwrite: replace an existing store instead of refusing (complete) or resuming (unfinished).
    """

    def __init__(self, url: str, *, n: int, dim: int, dtype: str, chunk_size: int, shard_chunks: int,
                 attrs: dict[str, Any] | None = None, overwrite: bool = False,
                 storage_options: dict[str, Any] | None = None, _reopen: bool = False):
        self.url = str(url).rstrip("/")
        self.storage_options = storage_options
        if _reopen:
            self.group = st.open_group(self.url, mode="r+", storage_options=storage_options)
            self._load_attrs()
            return
        if dtype not in ("float32", "float16"):
            raise EmbeddingsError(f"embedding dtype {dtype!r} is not one of 'float32', 'float16'")
        wanted = {"n": int(n), "dim": int(dim), "dtype": dtype, "chunk_size": int(chunk_size),
                  "shard_chunks": int(shard_chunks)}
        attrs = dict(attrs or {})
        fresh = {"spacessl_embeddings": STORE_VERSION, "complete": False, "metric": "ip", **wanted, **attrs}
        group = None
        if st.exists(self.url, storage_options):
            group = st.open_group(self.url, mode="r+", storage_options=storage_options)
            old = dict(group.attrs)
            if overwrite:
                st.remove(self.url, storage_options)
                group = None
            elif old.get("spacessl_embeddings") != STORE_VERSION:
                raise EmbeddingsError(f"{self.url} exists and is not a spacessl embeddings store; choose another "
                                      "output or pass --overwrite")
            elif old.get("complete"):
                raise EmbeddingsError(f"{self.url} is a complete embeddings store; pass --overwrite to replace it")
            else:
                diffs = [k for k, v in wanted.items() if old.get(k) != v]
                diffs += [k for k in ("model_uri", "archive_url", "archive_fingerprint", "views")
                          if k in attrs and recorded(old, k) != attrs[k]]
                if diffs:
                    raise EmbeddingsError(
                        f"{self.url} is an unfinished embeddings store made with different settings "
                        f"({', '.join(diffs)}); rerun with the same model and archive to resume, or --overwrite")
                if self.done_shards():
                    self.group = group
                    self._load_attrs()
                    return
                group.attrs.put(fresh)  # no shard written, perhaps not every array made: set it up again in place
        elif st.holds_other_files(self.url, storage_options):
            if not overwrite:
                raise EmbeddingsError(f"{self.url} holds files that are not a Zarr store (a file, or a folder with "
                                      "content); choose another output or pass --overwrite")
            st.remove(self.url, storage_options)
        if group is None:  # the first write carries the marker, so a kill during the set-up leaves it resumable
            group = zarr.open_group(store=st.make_store(self.url, read_only=False, storage_options=storage_options),
                                    mode="w", zarr_format=3, attributes=fresh)
        group.create_array("vectors", shape=(n, dim), chunks=(chunk_size, dim), dtype=dtype, fill_value=0,
                           compressors=BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),
                           dimension_names=["sample", "feature"], overwrite=True)
        group.create_array("ids", shape=(n,), chunks=(chunk_size * shard_chunks,), dtype="int64", fill_value=-1,
                           dimension_names=["sample"], overwrite=True)
        self.group = group
        self._load_attrs()

    @classmethod
    def open(cls, url: str, storage_options: dict[str, Any] | None = None) -> EmbeddingsWriter:
        """Reopen an existing store to write shards (e.g. inside a worker)."""
        return cls(url, n=0, dim=0, dtype="float32", chunk_size=1, shard_chunks=1, _reopen=True,
                   storage_options=storage_options)

    def _load_attrs(self) -> None:
        self.attrs = dict(self.group.attrs)
        self.n = int(self.attrs["n"])
        self.dim = int(self.attrs["dim"])
        self.dtype = str(self.attrs["dtype"])
        self.chunk_size = int(self.attrs["chunk_size"])
        self.shard_chunks = int(self.attrs["shard_chunks"])

    @property
    def num_shards(self) -> int:
        return -(-self.n // (self.chunk_size * self.shard_chunks)) if self.n else 0

    def shard_range(self, s: int) -> tuple[int, int]:
        span = self.chunk_size * self.shard_chunks
        return s * span, min(self.n, (s + 1) * span)

    def done_shards(self) -> list[int]:
        """Shards whose marker exists (written in full)."""
        fs, path = fsspec.core.url_to_fs(f"{self.url}/done", **(self.storage_options or {}))
        if not fs.exists(path):
            return []
        return sorted(int(p.rstrip("/").rsplit("/", 1)[-1]) for p in fs.ls(path, detail=False)
                      if p.rstrip("/").rsplit("/", 1)[-1].isdigit())

    def write_shard(self, shard: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Write shard ``shard`` in full (rows ``ids`` = its archive rows, (rows, D) vectors), then mark it done."""
        start, stop = self.shard_range(shard)
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) != stop - start or vectors.shape != (stop - start, self.dim):
            raise EmbeddingsError(f"shard {shard} of {self.url} needs {stop - start} rows of dimension {self.dim}; "
                                  f"got ids {ids.shape} and vectors {vectors.shape}")
        self.group["vectors"][start:stop] = np.asarray(vectors, dtype=self.dtype)
        self.group["ids"][start:stop] = ids
        fs, path = fsspec.core.url_to_fs(_marker_url(self.url, shard), **(self.storage_options or {}))
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(path, b"done")

    def close(self) -> None:
        """Mark the store complete once every shard is done."""
        missing = sorted(set(range(self.num_shards)) - set(self.done_shards()))
        if missing:
            raise EmbeddingsError(f"{self.url}: shards {missing[:10]}{'...' if len(missing) > 10 else ''} are not "
                                  "written yet; rerun the embedding job to finish them")
        self.group.attrs["complete"] = True
        self.attrs["complete"] = True


class Embeddings:
    """Read-only view of a complete embeddings store; see :func:`open_embeddings`."""

    def __init__(self, url: str, group: zarr.Group, storage_options: dict[str, Any] | None = None):
        self.url = url
        self.group = group
        self.storage_options = storage_options
        self.attrs: dict[str, Any] = dict(group.attrs)
        self.n = int(self.attrs["n"])
        self.dim = int(self.attrs["dim"])
        self.dtype = str(self.attrs["dtype"])
        self.chunk_size = int(self.attrs["chunk_size"])
        self.shard_chunks = int(self.attrs["shard_chunks"])
        self._vectors = group["vectors"]
        self._ids = group["ids"]

    @property
    def num_shards(self) -> int:
        return -(-self.n // (self.chunk_size * self.shard_chunks)) if self.n else 0

    def shard_range(self, s: int) -> tuple[int, int]:
        span = self.chunk_size * self.shard_chunks
        return s * span, min(self.n, (s + 1) * span)

    @property
    def vectors(self) -> da.Array:
        """(N, D) Dask array of unit vectors."""
        return da.from_zarr(self._vectors, chunks=(self.chunk_size * self.shard_chunks, self.dim))

    @property
    def ids(self) -> da.Array:
        """(N,) Dask array of archive row ids."""
        return da.from_zarr(self._ids, chunks=(self.chunk_size * self.shard_chunks,))

    def vector(self, i: int) -> np.ndarray:
        """(D,) float32 vector of archive row ``i``."""
        if not 0 <= i < self.n:
            raise IndexError(f"id {i} is not in {self.url}: ids run from 0 to {self.n - 1}")
        return np.asarray(self._vectors[i], dtype=np.float32)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids (k,), vectors (k, D) float32) of rows [start, stop)."""
        return np.asarray(self._ids[start:stop]), np.asarray(self._vectors[start:stop], dtype=np.float32)

    @property
    def views(self) -> int:
        """Symmetric copies of each sample averaged into its vector (:mod:`spacessl.embed.views`)."""
        return int(recorded(self.attrs, "views"))

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """(m, D) float32 vectors of the row positions ``rows`` (m,) (ascending reads fastest)."""
        return np.asarray(self._vectors.get_orthogonal_selection((np.asarray(rows, dtype=np.int64), slice(None))),
                          dtype=np.float32)

    def iter_shards(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors float32) shard by shard, never more than one shard in memory."""
        for s in range(self.num_shards):
            yield self.read(*self.shard_range(s))

    def archive(self):
        """The archive these embeddings were computed from (for time, source, label, origin)."""
        from spacessl.archive import open_archive

        return open_archive(self.attrs["archive_url"])

    def __repr__(self) -> str:
        return f"Embeddings({self.url!r}, n={self.n}, dim={self.dim}, dtype={self.dtype})"


def open_embeddings(url: str, *, require_complete: bool = True,
                    storage_options: dict[str, Any] | None = None) -> Embeddings:
    """Open the embeddings store at ``url``; clear errors for a missing, foreign or unfinished one."""
    url = str(url).rstrip("/")
    if not st.exists(url, storage_options):
        raise EmbeddingsError(f"no embeddings store at {url}; create one with `spacessl embed --model ... "
                              f"--archive ... --out {url}`")
    group = st.open_group(url, mode="r", storage_options=storage_options)
    if group.attrs.get("spacessl_embeddings") != STORE_VERSION:
        raise EmbeddingsError(f"{url} is a Zarr group but not a spacessl embeddings store (version "
                              f"{group.attrs.get('spacessl_embeddings')!r}, expected {STORE_VERSION})")
    if require_complete and not group.attrs.get("complete"):  # before the arrays, which may not all exist yet
        raise EmbeddingsError(f"{url} is unfinished; rerun the `spacessl embed` command that writes it to finish "
                              "(finished shards are skipped)")
    return Embeddings(url, group, storage_options)

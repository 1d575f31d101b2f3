"""Read archives: Dask arrays for analysis, chunk-aligned worker shards and a prefetching, shuffling stream.

Training and embedding use the same reader on every worker::

    a = open_archive("s3://bucket/aurora.zarr")
    mine = a.shards(num_workers=world_size, rank=rank, epoch=epoch, seed=0)   # whole chunks, disjoint
    for batch in a.stream(mine, batch_size=64, shuffle=True, seed=epoch):
        batch.samples   # (B, C, H, W) numpy, the archive's dtype
        batch.ids       # (B,) int64 global row ids

With ``pair_within_s`` the stream also yields, for each sample, another sample of the same source recorded at most
that many seconds away (``batch.pairs``): temporal positive pairs for self-supervised training.

Peak memory of :meth:`Archive.stream` is bounded by ``(prefetch + buffer_chunks + 1) × chunk bytes``, whatever
the archive's size.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import dask.array as da
import numpy as np
import zarr

from spacessl.archive import store as st
from spacessl.archive.format import STR, ArchiveFormatError, decode_strings, validate_attrs


@dataclass
class Batch:
    """A batch of consecutive or shuffled samples.

    Attributes:
        samples: (B, *sample_shape) in the archive's dtype.
        ids: (B,) int64 global row ids.
        meta: per-sample fields, each (B,); string fields decoded to object arrays of str.
        pairs: None, or (B, *sample_shape): for each sample another sample of the same source close in time
            (:meth:`Archive.stream` with ``pair_within_s``).
    """

    samples: np.ndarray
    ids: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    pairs: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


def temporal_partners(source: np.ndarray, time_ns: np.ndarray, window_s: float,
                      rng: np.random.Generator) -> np.ndarray:
    """For every row, a random other row of the same source recorded at most ``window_s`` seconds away.

    Args:
        source: (N,) source ids (any comparable dtype: names or their codes).
        time_ns: (N,) int64 UTC times, ns.
        window_s: largest time difference of a pair, seconds (> 0).
        rng: draws the partner uniformly among the candidates.
    Returns:
        (N,) int64 row positions; a row with no other row of its source within the window is its own partner.
    """
    n = len(time_ns)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    codes = np.unique(np.asarray(source), return_inverse=True)[1].reshape(-1)
    t = np.asarray(time_ns, dtype=np.int64)
    order = np.lexsort((t, codes))  # by source, then time
    key, ts = codes[order], t[order]
    w = int(round(window_s * 1e9))
    lo = np.empty(n, dtype=np.int64)
    hi = np.empty(n, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    for s0, s1 in zip(starts, np.r_[starts[1:], n], strict=True):  # one source at a time (a buffer holds few)
        block = ts[s0:s1]
        lo[s0:s1] = s0 + np.searchsorted(block, block - w, side="left")
        hi[s0:s1] = s0 + np.searchsorted(block, block + w, side="right")
    pos = np.arange(n)
    others = hi - lo - 1  # candidates besides the row itself
    pick = lo + (rng.random(n) * np.maximum(others, 1)).astype(np.int64)
    pick = np.where(pick >= pos, pick + 1, pick)  # skip the row itself
    pick = np.where(others > 0, pick, pos)
    out = np.empty(n, dtype=np.int64)
    out[order] = order[pick]
    return out


class Archive:
    """A read-only view of a format-1 archive. Create with :func:`open_archive`."""

    def __init__(self, url: str, group: zarr.Group, storage_options: dict[str, Any] | None = None):
        self.url = url
        self.group = group
        self.storage_options = storage_options
        self.attrs: dict[str, Any] = dict(group.attrs)
        validate_attrs(self.attrs, url)
        self.n: int = int(self.attrs["n"])
        self.modality: str = self.attrs["modality"]
        self.sample_shape: tuple[int, ...] = tuple(self.attrs["sample_shape"])
        self.dtype = np.dtype(self.attrs["dtype"])
        self.chunk_size: int = int(self.attrs["chunk_size"])
        self.shard_chunks: int = int(self.attrs["shard_chunks"])
        self.meta_fields: dict[str, str] = dict(self.attrs["meta_fields"])
        self.label_names: list[str] | None = self.attrs.get("label_names")
        self.channels: list[str] = list(self.attrs["channels"])
        self.complete: bool = bool(self.attrs["complete"])
        try:
            self._samples = group["samples"]
            self._meta = {name: group[f"meta/{name}"] for name in self.meta_fields}
        except KeyError as exc:
            raise ArchiveFormatError(f"{url} lacks array {exc}; the archive is damaged, re-ingest it") from exc
        if self._samples.shape[0] < self.n or tuple(self._samples.shape[1:]) != self.sample_shape:
            raise ArchiveFormatError(f"{url}: samples array has shape {self._samples.shape} but the attributes "
                                     f"declare {self.n} samples of shape {self.sample_shape}; re-ingest it")
        self._tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------------------------------- layout

    @property
    def num_chunks(self) -> int:
        return -(-self.n // self.chunk_size)

    @property
    def num_shards(self) -> int:
        return -(-self.num_chunks // self.shard_chunks)

    def chunk_range(self, c: int) -> tuple[int, int]:
        """Rows [start, stop) of chunk ``c``."""
        return c * self.chunk_size, min(self.n, (c + 1) * self.chunk_size)

    def shard_range(self, s: int) -> tuple[int, int]:
        """Rows [start, stop) of shard ``s`` (a contiguous run of ``shard_chunks`` whole chunks)."""
        if not 0 <= s < max(1, self.num_shards):
            raise IndexError(f"shard {s} out of range: {self.url} has {self.num_shards} shards")
        span = self.chunk_size * self.shard_chunks
        return s * span, min(self.n, (s + 1) * span)

    def shards(self, num_workers: int, rank: int, epoch: int = 0, seed: int = 0,
               chunks: Sequence[int] | None = None) -> list[int]:
        """Chunk indices that worker ``rank`` of ``num_workers`` reads in ``epoch``.

        Every chunk (of ``chunks``, default all) goes to exactly one worker per epoch; the assignment and the order
        are reshuffled each epoch from ``(seed, epoch)``. Workers get chunk counts that differ by at most one.
        """
        if num_workers < 1 or not 0 <= rank < num_workers:
            raise ValueError(f"rank {rank} is not in [0, {num_workers})")
        pool = np.arange(self.num_chunks) if chunks is None else np.asarray(chunks, dtype=np.int64)
        order = np.random.default_rng([seed, epoch]).permutation(pool)
        return [int(c) for c in order[rank::num_workers]]

    # ------------------------------------------------------------------------------------------- arrays

    @property
    def samples(self) -> da.Array:
        """(N, *sample_shape) Dask array, one Dask chunk per archive chunk."""
        return da.from_zarr(self._samples, chunks=(self.chunk_size, *self.sample_shape))[: self.n]

    def meta(self, name: str) -> da.Array:
        """(N,) Dask array of a meta field (string fields give int32 codes into :meth:`names`)."""
        if name not in self._meta:
            raise KeyError(f"{self.url} has no meta field {name!r}; fields: {sorted(self._meta)}")
        arr = self._meta[name]
        return da.from_zarr(arr, chunks=(arr.chunks[0],))[: self.n]

    def _table(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._tables:
            if self.meta_fields.get(name) != STR:
                raise KeyError(f"meta field {name!r} of {self.url} is not a string field")
            self._tables[name] = (self.group[f"tables/{name}/utf8"][:], self.group[f"tables/{name}/offsets"][:])
        return self._tables[name]

    def names(self, name: str) -> list[str]:
        """The string table of a string field: code i means names(name)[i]."""
        utf8, offsets = self._table(name)
        return list(decode_strings(utf8, offsets, np.arange(len(offsets) - 1)))

    def decode(self, name: str, codes: np.ndarray) -> np.ndarray:
        """Codes of string field ``name`` → object array of str."""
        utf8, offsets = self._table(name)
        return decode_strings(utf8, offsets, codes)

    def read_meta(self, start: int, stop: int, fields: Sequence[str] | None = None,
                  decode: bool = True) -> dict[str, np.ndarray]:
        """Meta fields for rows [start, stop) as numpy (strings decoded unless ``decode=False``)."""
        out = {}
        for name in fields if fields is not None else self.meta_fields:
            values = self._meta[name][start:stop]
            out[name] = self.decode(name, values) if decode and self.meta_fields[name] == STR else values
        return out

    def read(self, start: int, stop: int, fields: Sequence[str] | None = None) -> Batch:
        """Rows [start, stop) as a numpy :class:`Batch`."""
        start, stop = max(0, start), min(self.n, stop)
        return Batch(self._samples[start:stop], np.arange(start, stop, dtype=np.int64),
                     self.read_meta(start, stop, fields))

    def take(self, ids: Sequence[int], fields: Sequence[str] | None = None) -> Batch:
        """Arbitrary rows (e.g. query results) as a :class:`Batch`, in the order given."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= self.n):
            raise IndexError(f"ids must lie in [0, {self.n}) for {self.url}; got {ids.min()}..{ids.max()}")
        samples = self._samples.get_orthogonal_selection((ids,)) if len(ids) else \
            np.empty((0, *self.sample_shape), self.dtype)
        meta = {}
        for name in fields if fields is not None else self.meta_fields:
            values = self._meta[name].get_orthogonal_selection((ids,)) if len(ids) else np.empty(0)
            meta[name] = self.decode(name, values) if self.meta_fields[name] == STR else values
        return Batch(samples, ids, meta)

    # ------------------------------------------------------------------------------------------- streaming

    def stream(self, chunks: Sequence[int], *, batch_size: int = 64, shuffle: bool = True, seed: int = 0,
               prefetch: int = 2, buffer_chunks: int = 2, drop_last: bool = False,
               fields: Sequence[str] | None = ("label",), decode: bool = False,
               read_threads: int = 2, pair_within_s: float = 0.0) -> Iterator[Batch]:
        """Batches from the given chunks, read ahead by a background thread.

        With ``shuffle``, chunks are taken ``buffer_chunks`` at a time and their samples permuted together (the
        remainder that does not fill a batch carries into the next group), so randomness spans several chunks while
        memory stays bounded by (prefetch + read_threads + buffer_chunks + 1) chunks. ``read_threads`` chunks are
        decompressed concurrently. ``fields`` selects meta fields (None = all; strings decoded only with ``decode``).
        With ``pair_within_s`` > 0 every batch also carries ``pairs``: for each sample, a random other sample of
        the same source at most ``pair_within_s`` seconds away among those in the buffer (itself when there is
        none; :func:`temporal_partners`).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if pair_within_s < 0:
            raise ValueError(f"pair_within_s must be >= 0 seconds, got {pair_within_s}")
        chunks = [int(c) for c in chunks]
        fields = list(self.meta_fields) if fields is None else list(fields)
        wanted = list(fields)
        if pair_within_s > 0:
            fields += [f for f in ("source", "time_ns") if f not in fields]
        q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()
        _END = object()

        def load(c: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
            s0, s1 = self.chunk_range(c)
            return (self._samples[s0:s1], np.arange(s0, s1, dtype=np.int64),
                    self.read_meta(s0, s1, fields, decode=decode))

        def reader() -> None:
            # ``read_threads`` chunks decode concurrently; at most ``prefetch`` finished chunks wait in the queue.
            try:
                with ThreadPoolExecutor(max_workers=max(1, read_threads)) as pool:
                    pending: deque = deque()
                    for c in chunks:
                        if stop.is_set():
                            return
                        pending.append(pool.submit(load, c))
                        if len(pending) >= max(1, read_threads):
                            if not put(pending.popleft().result()):
                                return
                    while pending:
                        if not put(pending.popleft().result()):
                            return
                q.put(_END)
            except BaseException as exc:  # surface reader errors in the consumer
                q.put(exc)

        def put(item) -> bool:
            return put_unless_stopped(q, item, stop)

        thread = threading.Thread(target=reader, name="spacessl-archive-prefetch", daemon=True)
        thread.start()
        rng = np.random.default_rng(seed)
        group = max(1, buffer_chunks) if shuffle else 1
        carry: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
        try:
            done = False
            while not done:
                parts = carry
                carry = []
                got = 0
                while got < group:
                    item = q.get()
                    if item is _END:
                        done = True
                        break
                    if isinstance(item, BaseException):
                        raise item
                    parts.append(item)
                    got += 1
                if not parts:
                    break
                batches = self._batches(parts, batch_size, rng if shuffle else None, pair_within_s, wanted,
                                        last=done)
                for batch, rest in batches:
                    if batch is None:
                        carry = [rest]
                    elif len(batch) == batch_size or not drop_last:
                        yield batch
        finally:
            stop.set()
            while True:  # unblock the reader so it can exit
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
            thread.join(timeout=5)

    @staticmethod
    def _batches(parts, batch_size, rng, pair_within_s: float, wanted: list[str], *, last: bool):
        """Yield (Batch, None) for every full batch drawn from ``parts`` and finally the rows left over: as a
        short (Batch, None) when ``last``, else as (None, remainder) to carry into the next group.

        Samples are gathered straight from the chunk arrays into each batch (one copy), in a random order over all
        parts when ``rng`` is given, else in order. With ``pair_within_s`` > 0 each batch carries the samples of
        its rows' temporal partners among all rows of ``parts``. Batches keep only the ``wanted`` meta fields.
        """
        sizes = np.array([len(p[1]) for p in parts])
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        total = int(offsets[-1])
        order = rng.permutation(total) if rng is not None else np.arange(total)
        n_full = total // batch_size * batch_size
        partner = None
        if pair_within_s > 0 and total:
            source = np.concatenate([p[2]["source"] for p in parts])
            time_ns = np.concatenate([p[2]["time_ns"] for p in parts])
            partner = temporal_partners(source, time_ns, pair_within_s,
                                        rng if rng is not None else np.random.default_rng(0))

        def gather(sel: np.ndarray, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
            """Samples, ids and the meta fields ``keys`` of the rows ``sel`` (positions over all parts)."""
            if len(parts) == 1:
                p = parts[0]
                return p[0][sel], p[1][sel], {k: p[2][k][sel] for k in keys}
            which = np.searchsorted(offsets[1:], sel, side="right")
            first = parts[0]
            samples = np.empty((len(sel), *first[0].shape[1:]), dtype=first[0].dtype)
            ids = np.empty(len(sel), dtype=np.int64)
            meta = {k: np.empty(len(sel), dtype=first[2][k].dtype) for k in keys}
            for j in np.unique(which):
                mask = which == j
                local = sel[mask] - offsets[j]
                samples[mask] = parts[j][0][local]
                ids[mask] = parts[j][1][local]
                for k in meta:
                    meta[k][mask] = parts[j][2][k][local]
            return samples, ids, meta

        def batch(sel: np.ndarray) -> Batch:
            out = Batch(*gather(sel, wanted))
            if partner is not None:
                out.pairs = gather(partner[sel], ())[0]
            return out

        if rng is None and len(parts) == 1 and partner is None:  # in order from one chunk: views, no copy
            p = parts[0]
            for b0 in range(0, n_full, batch_size):
                yield Batch(p[0][b0:b0 + batch_size], p[1][b0:b0 + batch_size],
                            {k: v[b0:b0 + batch_size] for k, v in p[2].items() if k in wanted}), None
        else:
            for b0 in range(0, n_full, batch_size):
                yield batch(order[b0:b0 + batch_size]), None
        if n_full < total:
            rest = order[n_full:]
            yield (batch(rest), None) if last else (None, gather(rest, list(parts[0][2])))  # carry every field

    # ------------------------------------------------------------------------------------------- identity

    def fingerprint(self) -> str:
        """Short hash of the layout, the sample count and the first and last chunk's bytes (cheap, stable)."""
        h = hashlib.sha256()
        layout = {k: self.attrs.get(k) for k in ("modality", "sample_shape", "dtype", "chunk_size", "n",
                                                  "channels", "label_names", "meta_fields")}
        h.update(json.dumps(layout, sort_keys=True).encode())
        for c in sorted({0, self.num_chunks - 1}):
            if c >= 0 and self.n:
                s0, s1 = self.chunk_range(c)
                h.update(np.ascontiguousarray(self._samples[s0:s1]).tobytes())
                h.update(np.ascontiguousarray(self._meta["time_ns"][s0:s1]).tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (f"Archive({self.url!r}, modality={self.modality!r}, n={self.n}, sample_shape={self.sample_shape}, "
                f"dtype={self.dtype.name}, complete={self.complete})")


def put_unless_stopped(q: queue.Queue, item: object, stop: threading.Event, poll_s: float = 0.1) -> bool:
    """Put ``item`` on the bounded queue ``q`` of a prefetch thread, waiting while it is full; returns False (the
    item dropped) once the consumer has set ``stop``, so that the thread can end instead of blocking for ever."""
    while not stop.is_set():
        try:
            q.put(item, timeout=poll_s)
            return True
        except queue.Full:
            continue
    return False


def open_archive(url: str, *, require_complete: bool = True,
                 storage_options: dict[str, Any] | None = None) -> Archive:
    """Open and validate the archive at ``url`` (local path or fsspec URL).

    Raises ArchiveFormatError naming the path and the fix when it is missing, foreign, of another version,
    damaged, or (with ``require_complete``) unfinished.
    """
    url = str(url).rstrip("/")
    if not st.exists(url, storage_options):
        raise ArchiveFormatError(f"no archive at {url} (no zarr.json); create one with `spacessl ingest ...` or "
                                 "`spacessl synth ...`, or check the path")
    try:
        group = st.open_group(url, mode="r", storage_options=storage_options)
    except Exception as exc:  # zarr raises several types for foreign or broken metadata
        raise ArchiveFormatError(f"{url} is not a readable Zarr v3 group ({exc}); is it a Zarr v2 store or "
                                 "damaged? Re-ingest it with spacessl") from exc
    attrs = dict(group.attrs)
    # checked before the arrays, which an archive killed while it was being set up may not all have yet
    if require_complete and "spacessl_format" in attrs and attrs.get("complete") is False:
        raise ArchiveFormatError(f"{url} is unfinished (complete=false, {attrs.get('n')} samples committed): rerun "
                                 "the command that wrote it to resume, or open with require_complete=False")
    return Archive(url, group, storage_options)

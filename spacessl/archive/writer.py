"""Append samples to an archive in whole chunks, resumably.

A producer walks its inputs (files, station-days, synthetic blocks) in a deterministic order and hands each
input's samples to :class:`ArchiveWriter` with that input's index. The writer buffers samples and commits whole
chunks; each commit writes the chunk of every array, the new strings of every string table and the rejects of the
finished inputs, and only then records the new sample count and the resume cursor in the group attributes (one
atomic put). A process killed at any point therefore leaves an archive whose committed part is consistent; running
the same producer again resumes it::

    with ArchiveWriter("frames.zarr", modality="image", sample_shape=(1, 64, 64), dtype="uint16",
                       units="DN", channels=["gray"]) as w:
        for i, path in enumerate(files):
            if i < w.resume_from:
                continue
            try:
                frames = decode(path)                       # (k, 1, 64, 64)
            except OSError as exc:
                w.reject(input_index=i, origin=path, reason="unreadable", detail=str(exc))
                continue
            w.append(frames, input_index=i, time_ns=t, source=[cam] * k, origin=[path] * k)

The writer drops samples it has already committed for the input at the cursor, so the result is identical, sample
for sample, to an uninterrupted run. ``complete`` is set last, by :meth:`close`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.codecs import BloscCodec

from spacessl.archive import store as st
from spacessl.archive.format import (BASE_META, DIMS, FORMAT_VERSION, MODALITIES, STR, ArchiveExistsError,
                                     ArchiveFormatError, code_dtype, encode_strings)
from spacessl.errors import SpacesslError

REJECT_COLUMNS = ("origin", "reason", "detail")
_LAYOUT_KEYS = ("modality", "sample_shape", "dtype", "dims", "units", "channels", "chunk_size", "shard_chunks",
                "meta_fields", "label_names")


@dataclass
class _Reject:
    input_index: int
    origin: str
    reason: str
    detail: str


def default_rejects_path(url: str) -> str:
    """``/data/frames.zarr`` → ``/data/frames.rejects.csv`` (beside the archive)."""
    base = str(url).rstrip("/")
    if base.endswith(".zarr"):
        base = base[: -len(".zarr")]
    return base + ".rejects.csv"


class _StringTable:
    """Append-only string table: in-memory code lookup, flushed to tables/<field>/{utf8,offsets}."""

    def __init__(self, group: zarr.Group, field: str, *, create: bool):
        if create:
            g = group.require_group(f"tables/{field}")
            self.utf8 = g.create_array("utf8", shape=(0,), chunks=(1 << 20,), dtype="uint8",
                                       compressors=BloscCodec(cname="zstd", clevel=3), overwrite=True)
            self.offsets = g.create_array("offsets", shape=(1,), chunks=(1 << 16,), dtype="int64", fill_value=0,
                                          overwrite=True)
            self.offsets[:] = np.zeros(1, dtype=np.int64)
        else:
            self.utf8 = group[f"tables/{field}/utf8"]
            self.offsets = group[f"tables/{field}/offsets"]
        self.codes: dict[str, int] = {}
        self.pending: list[str] = []
        self.n_flushed = 0
        self.bytes_flushed = 0

    def load(self, n_strings: int, n_bytes: int) -> None:
        """Truncate to the committed length and rebuild the lookup."""
        self.offsets.resize((n_strings + 1,))
        self.utf8.resize((n_bytes,))
        offs = self.offsets[:] if n_strings else np.zeros(1, dtype=np.int64)
        raw = self.utf8[:].tobytes() if n_bytes else b""
        self.codes = {raw[offs[i]:offs[i + 1]].decode("utf-8"): i for i in range(n_strings)}
        self.n_flushed, self.bytes_flushed = n_strings, n_bytes

    def encode(self, values: Sequence[str]) -> np.ndarray:
        out = np.empty(len(values), dtype=np.int32)
        for j, v in enumerate(values):
            code = self.codes.get(v)
            if code is None:
                code = len(self.codes)
                self.codes[v] = code
                self.pending.append(v)
            out[j] = code
        return out

    def flush(self) -> tuple[int, int]:
        if self.pending:
            data, lengths = encode_strings(self.pending)
            n0, b0 = self.n_flushed, self.bytes_flushed
            n1, b1 = n0 + len(self.pending), b0 + len(data)
            self.utf8.resize((b1,))
            self.utf8[b0:b1] = data
            self.offsets.resize((n1 + 1,))
            self.offsets[n0 + 1:n1 + 1] = b0 + np.cumsum(lengths)
            self.n_flushed, self.bytes_flushed = n1, b1
            self.pending = []
        return self.n_flushed, self.bytes_flushed


class ArchiveWriter:
    """Writes (or resumes writing) a format-1 archive at ``url``.

    Args:
        url: archive location (local path or fsspec URL).
        modality: "image" (samples (C, H, W)) or "waveform" (samples (C, T)).
        sample_shape: shape of one sample.
        dtype: sample dtype, e.g. "uint16" for 16-bit frames, "float32" for waveform counts.
        units: physical units of sample values ("DN", "counts", "m/s", ...).
        channels: one name per channel (["gray"], ["R", "G", "B"], ["Z", "N", "E"]).
        label_names: class names when the samples have labels (label i names label_names[i]).
        chunk_size: samples per chunk (the unit of writing and reading).
        shard_chunks: chunks per shard (the unit a parallel worker owns).
        extra_meta: more per-sample fields, name -> numpy dtype or "str" (string-table field).
        attrs: more group attributes (e.g. sampling_rate_hz, window_s for waveforms).
        overwrite: replace an existing archive instead of refusing or resuming.
        rejects_path: CSV listing rejected inputs (default: beside the archive, ``NAME.rejects.csv``).
    """

    def __init__(self, url: str, *, modality: str, sample_shape: Sequence[int], dtype: str | np.dtype,
                 units: str, channels: Sequence[str], dims: str | None = None,
                 label_names: Sequence[str] | None = None, chunk_size: int = 256, shard_chunks: int = 16,
                 extra_meta: dict[str, str] | None = None, attrs: dict[str, Any] | None = None,
                 overwrite: bool = False, rejects_path: str | None = None,
                 storage_options: dict[str, Any] | None = None, compression_level: int = 3):
        if modality not in MODALITIES:
            raise SpacesslError(f"modality {modality!r} is not one of {list(MODALITIES)}")
        if chunk_size < 1 or shard_chunks < 1:
            raise SpacesslError(f"chunk_size ({chunk_size}) and shard_chunks ({shard_chunks}) must be >= 1")
        self.url = str(url).rstrip("/")
        self.storage_options = storage_options
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.dtype = np.dtype(dtype)
        self.chunk_size = int(chunk_size)
        meta_fields = dict(BASE_META)
        for name, kind in (extra_meta or {}).items():
            if name in meta_fields:
                raise SpacesslError(f"extra meta field {name!r} clashes with a built-in field {list(BASE_META)}")
            meta_fields[name] = kind if kind == STR else np.dtype(kind).name
        self.meta_fields = meta_fields
        self.layout = {
            "modality": modality, "sample_shape": list(self.sample_shape), "dtype": self.dtype.name,
            "dims": dims or DIMS[modality], "units": units, "channels": list(channels),
            "chunk_size": self.chunk_size, "shard_chunks": int(shard_chunks), "meta_fields": meta_fields,
            "label_names": list(label_names) if label_names is not None else None,
        }
        self.user_attrs = dict(attrs or {})
        self.rejects_path = rejects_path or default_rejects_path(self.url)
        self._compressor = BloscCodec(cname="zstd", clevel=compression_level, shuffle="shuffle")
        self._open(overwrite)
        self._closed = False

    # ------------------------------------------------------------------------------------------- set-up

    def _open(self, overwrite: bool) -> None:
        if st.exists(self.url, self.storage_options):
            group = st.open_group(self.url, mode="r+", storage_options=self.storage_options)
            attrs = dict(group.attrs)
            if overwrite:
                st.remove(self.url, self.storage_options)
                self._remove_rejects()
            elif "spacessl_format" not in attrs:
                raise ArchiveExistsError(f"{self.url} holds a Zarr group that is not a spacessl archive; "
                                         "choose another output path or pass --overwrite to replace it")
            elif attrs.get("complete"):
                raise ArchiveExistsError(f"{self.url} is a complete archive; pass --overwrite to replace it "
                                         "or choose another output path")
            else:
                self._resume(group, attrs)
                return
        elif st.holds_other_files(self.url, self.storage_options):
            if not overwrite:
                raise ArchiveExistsError(f"{self.url} holds files that are not a Zarr archive (a file, or a folder "
                                         "with content); choose another output path or pass --overwrite")
            st.remove(self.url, self.storage_options)
        self._create()

    def _create(self, group: zarr.Group | None = None) -> None:
        """Set up an empty archive, or (``group``) set up again in place one that committed nothing.

        The group's first write already carries the format marker and an empty resume state, and a set-up in place
        keeps it, so a kill at any moment leaves either nothing or an unfinished archive that `_resume` sets up again.
        """
        tables = [name for name, kind in self.meta_fields.items() if kind == STR]
        attrs = {"spacessl_format": FORMAT_VERSION, "complete": False, "n": 0, **self.layout, **self.user_attrs,
                 "_writer": {"input_index": 0, "offset": 0, "rejects": 0, "tables": {k: [0, 0] for k in tables}}}
        if attrs["label_names"] is None:
            del attrs["label_names"]
        if group is None:
            group = zarr.open_group(store=st.make_store(self.url, read_only=False,
                                                        storage_options=self.storage_options),
                                    mode="w", zarr_format=3, attributes=attrs)
        else:
            group.attrs.put(attrs)
        shape = self.sample_shape
        group.create_array("samples", shape=(0, *shape), chunks=(self.chunk_size, *shape), dtype=self.dtype,
                           compressors=self._compressor, fill_value=0,
                           dimension_names=["sample", *self.layout["dims"]], overwrite=True)
        meta_chunk = self.chunk_size * self.layout["shard_chunks"]
        for name, kind in self.meta_fields.items():
            group.create_array(f"meta/{name}", shape=(0,), chunks=(meta_chunk,), dtype=code_dtype(kind),
                               compressors=BloscCodec(cname="zstd", clevel=3, shuffle="shuffle"),
                               fill_value=-1 if name == "label" else 0, dimension_names=["sample"], overwrite=True)
        self.group = group
        self.tables = {name: _StringTable(group, name, create=True) for name in tables}
        self.n = 0
        self.cursor = (0, 0)
        self._rejects_committed = 0
        self._remove_rejects()
        self._init_buffers()

    def _resume(self, group: zarr.Group, attrs: dict[str, Any]) -> None:
        stored = {k: attrs.get(k) for k in _LAYOUT_KEYS}
        wanted = dict(self.layout)
        diffs = [k for k in _LAYOUT_KEYS if stored[k] != wanted[k]]
        diffs += [k for k, v in self.user_attrs.items() if attrs.get(k) != v]
        if diffs:
            raise ArchiveExistsError(
                f"{self.url} is an unfinished archive written with different settings ({', '.join(diffs)}); "
                "rerun with the same settings to resume it, or pass --overwrite to start again")
        state = attrs.get("_writer")
        if not state:
            raise ArchiveFormatError(f"{self.url} is incomplete but has no resume state; pass --overwrite")
        if int(attrs["n"]) == 0 and (state["input_index"], state["offset"], state["rejects"]) == (0, 0, 0):
            self._create(group)  # nothing committed, perhaps not every array created yet: nothing to lose
            return
        self.group = group
        self.n = int(attrs["n"])
        group["samples"].resize((self.n, *self.sample_shape))
        for name in self.meta_fields:
            group[f"meta/{name}"].resize((self.n,))
        self.tables = {}
        for name, (n_strings, n_bytes) in state["tables"].items():
            table = _StringTable(group, name, create=False)
            table.load(int(n_strings), int(n_bytes))
            self.tables[name] = table
        self.cursor = (int(state["input_index"]), int(state["offset"]))
        self._rejects_committed = int(state["rejects"])
        self._truncate_rejects(self._rejects_committed)
        self._init_buffers()

    def _init_buffers(self) -> None:
        self._buf_samples: list[np.ndarray] = []
        self._buf_meta: dict[str, list[np.ndarray]] = {k: [] for k in self.meta_fields}
        self._buf_pos: list[np.ndarray] = []  # (k, 2): input index, offset within input
        self._buffered = 0
        self._last_input = -1
        self._input_count = 0  # samples seen so far for self._last_input
        self._pending_rejects: list[_Reject] = []

    # ------------------------------------------------------------------------------------------- public

    @property
    def resume_from(self) -> int:
        """First input index the producer must feed (inputs before it are committed in full)."""
        return self.cursor[0]

    def append(self, samples: np.ndarray, *, input_index: int, time_ns: Any, source: Sequence[str] | str,
               origin: Sequence[str] | str, label: Any = None, **extra: Any) -> None:
        """Add the samples (k, *sample_shape) of input ``input_index`` with their per-sample metadata.

        Scalars (a single time, source, origin or label) are broadcast to all k samples.
        """
        samples = np.asarray(samples)
        if samples.ndim != len(self.sample_shape) + 1 or tuple(samples.shape[1:]) != self.sample_shape:
            raise SpacesslError(f"samples of input {input_index} have shape {samples.shape}; "
                                f"this archive holds samples of shape {self.sample_shape}")
        k = samples.shape[0]
        self._advance(input_index)
        first = self._input_count
        self._input_count += k
        if k == 0:
            return
        values = {"time_ns": time_ns, "source": source, "origin": origin,
                  "label": -1 if label is None else label, **extra}
        unknown = set(values) - set(self.meta_fields)
        if unknown:
            raise SpacesslError(f"unknown meta fields {sorted(unknown)}; declare them in extra_meta "
                                f"(known: {sorted(self.meta_fields)})")
        missing = set(self.meta_fields) - set(values)
        if missing:
            raise SpacesslError(f"input {input_index} lacks meta fields {sorted(missing)}")
        skip = 0
        if input_index == self.cursor[0]:
            skip = max(0, min(k, self.cursor[1] - first))
        if skip == k:
            return
        self._buf_samples.append(np.ascontiguousarray(samples[skip:], dtype=self.dtype))
        for name, kind in self.meta_fields.items():
            column = self._column(name, kind, values[name], k)
            self._buf_meta[name].append(column[skip:])
        pos = np.empty((k - skip, 2), dtype=np.int64)
        pos[:, 0] = input_index
        pos[:, 1] = np.arange(first + skip, first + k)
        self._buf_pos.append(pos)
        self._buffered += k - skip
        while self._buffered >= self.chunk_size:
            self._commit(self.chunk_size)

    def reject(self, *, input_index: int, origin: str, reason: str, detail: str = "") -> None:
        """List a bad input (or part of one) in the rejects CSV instead of the archive."""
        self._advance(input_index)
        if input_index < self.cursor[0]:
            return
        self._pending_rejects.append(_Reject(input_index, str(origin), str(reason), str(detail)))

    def close(self) -> None:
        """Commit the last partial chunk, write the rejects, then mark the archive complete."""
        if self._closed:
            return
        while self._buffered:
            self._commit(min(self.chunk_size, self._buffered))
        self._flush_rejects(final=True)
        attrs = dict(self.group.attrs)
        attrs.pop("_writer", None)
        attrs["complete"] = True
        attrs["n"] = self.n
        for name, table in self.tables.items():
            if len(table.codes) <= 4096:
                attrs[f"{name}_names"] = list(table.codes)
        self.group.attrs.put(attrs)
        self._closed = True

    @property
    def n_rejects(self) -> int:
        return self._rejects_committed + len(self._pending_rejects)

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()

    # ------------------------------------------------------------------------------------------- internals

    def _advance(self, input_index: int) -> None:
        if input_index < self._last_input:
            raise SpacesslError(f"inputs must be fed in order: got input {input_index} after {self._last_input}")
        if input_index != self._last_input:
            self._last_input = input_index
            self._input_count = 0

    def _column(self, name: str, kind: str, value: Any, k: int) -> np.ndarray:
        if kind == STR:
            if isinstance(value, (str, bytes)):
                value = [value] * k
            value = [v.decode() if isinstance(v, bytes) else str(v) for v in value]
            if len(value) != k:
                raise SpacesslError(f"meta field {name!r} has {len(value)} values for {k} samples")
            return self.tables[name].encode(value)
        arr = np.asarray(value, dtype=code_dtype(kind))
        if arr.ndim == 0:
            arr = np.full(k, arr, dtype=arr.dtype)
        if arr.shape != (k,):
            raise SpacesslError(f"meta field {name!r} has shape {arr.shape} for {k} samples")
        return arr

    def _take(self, parts: list[np.ndarray], k: int) -> np.ndarray:
        whole = np.concatenate(parts) if len(parts) > 1 else parts[0]
        head, tail = whole[:k], whole[k:]
        parts.clear()
        if len(tail):
            parts.append(tail)
        return head

    def _commit(self, k: int) -> None:
        samples = self._take(self._buf_samples, k)
        meta = {name: self._take(parts, k) for name, parts in self._buf_meta.items()}
        pos = self._take(self._buf_pos, k)
        self._buffered -= k
        n0, n1 = self.n, self.n + k
        arr = self.group["samples"]
        arr.resize((n1, *self.sample_shape))
        arr[n0:n1] = samples
        for name, values in meta.items():
            m = self.group[f"meta/{name}"]
            m.resize((n1,))
            m[n0:n1] = values
        if self._buffered:
            nxt = self._buf_pos[0][0]
            cursor = (int(nxt[0]), int(nxt[1]))
        else:
            cursor = (int(pos[-1, 0]), int(pos[-1, 1]) + 1)
        tables = {name: list(t.flush()) for name, t in self.tables.items()}
        self._flush_rejects(final=False, before_input=cursor[0])
        # one write of the group metadata: ``attrs.update`` would write it once per key, and a kill between the
        # two writes would leave the new count beside the old cursor (the chunk would be appended again on resume)
        self.group.attrs.put({**self.group.attrs.asdict(), "n": n1,
                              "_writer": {"input_index": cursor[0], "offset": cursor[1],
                                          "rejects": self._rejects_committed, "tables": tables}})
        self.n, self.cursor = n1, cursor

    # ------------------------------------------------------------------------------------------- rejects

    def _flush_rejects(self, *, final: bool, before_input: int = 0) -> None:
        ready = [r for r in self._pending_rejects if final or r.input_index < before_input]
        if not ready:
            return
        self._pending_rejects = [r for r in self._pending_rejects if not (final or r.input_index < before_input)]
        rows = self._read_rejects() if not st.is_local(self.rejects_path) else None
        buf = io.StringIO()
        w = csv.writer(buf)
        if self._rejects_committed == 0:
            w.writerow(REJECT_COLUMNS)
        for r in ready:
            w.writerow((r.origin, r.reason, r.detail))
        if rows is None:
            with open(st.local_path(self.rejects_path), "a", newline="") as f:
                f.write(buf.getvalue())
                f.flush()
                os.fsync(f.fileno())
        else:
            self._replace_rejects(rows + buf.getvalue())
        self._rejects_committed += len(ready)

    def _read_rejects(self) -> str:
        try:
            with fsspec.open(self.rejects_path, "r") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _truncate_rejects(self, n_rows: int) -> None:
        """Cut the rejects CSV back to its header and the ``n_rows`` rows that the archive's state has committed
        (an append after the last commit, or part of one, is dropped; its inputs are read again)."""
        rows = list(csv.reader(io.StringIO(self._read_rejects())))
        keep = rows[: n_rows + 1] if n_rows else []
        if rows == keep:
            return
        buf = io.StringIO()
        csv.writer(buf).writerows(keep)
        self._replace_rejects(buf.getvalue())

    def _replace_rejects(self, text: str) -> None:
        """Write the whole rejects CSV as ``text`` in one step: a kill leaves the old file or the new one, never
        an emptied one."""
        st.write_whole(*fsspec.core.url_to_fs(self.rejects_path), text.encode())

    def _remove_rejects(self) -> None:
        fs, path = fsspec.core.url_to_fs(self.rejects_path)
        for p in (path, f"{path}.partial") if st.is_local(self.rejects_path) else (path,):
            if fs.exists(p):
                fs.rm(p)

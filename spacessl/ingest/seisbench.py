"""Labelled waveform collections in SeisBench's published format -> waveform archive, streaming.

A SeisBench dataset folder (e.g. STEAD or INSTANCE as downloaded) holds ``metadata.csv`` (one row per trace) and
``waveforms.hdf5``, or one pair per chunk (``metadata<chunk>.csv`` + ``waveforms<chunk>.hdf5``, chunks listed in
a ``chunks`` file or found from the file names). In the HDF5 file, ``data/<trace_name>`` holds one trace, or, in the
bucket layout, ``trace_name`` reads ``bucket3$12,:3,:6000`` = row 12 of ``data/bucket3`` cut to ``[:3, :6000]``.
The ``data_format`` group declares ``dimension_order`` ("CW" = components x samples, the default; "WC"),
``component_order`` (e.g. "ZNE"; a ``trace_component_order`` column overrides it per trace) and may declare
``sampling_rate`` (a ``trace_sampling_rate_hz`` or ``trace_dt_s`` column overrides it) and ``unit``.

The metadata are read in blocks of ``block_rows`` rows (pandas chunked reading), so million-trace sets stream in
bounded memory; block b is input b of the archive writer, so a killed ingest resumes at the first block not fully
committed. The label column's distinct values (sorted; numerically when all are integers) are the label names,
found by a first pass that reads only that column. Traces longer than the window are cut to their first ``T``
samples; shorter traces, traces lacking a requested component, unreadable traces and traces with non-finite samples
are listed as rejects.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spacessl.errors import SpacesslError

EXTRA_META = {"trace_name": "str", "channel_codes": "str"}
_STR_COLUMNS = ("trace_name", "station_network_code", "station_code", "station_location_code",
                "station_channel_code", "trace_component_order", "trace_start_time")


@dataclass
class SeisbenchSummary:
    archive: str
    traces: int
    windows: int
    rejects: int
    seconds: float
    rejects_path: str = ""

    def __str__(self) -> str:
        out = f"{self.archive}: {self.windows} of {self.traces} traces written in {self.seconds:.1f} s"
        if self.rejects:
            out += f"\n  {self.rejects} rejects listed in {self.rejects_path}"
        return out


def find_chunks(path: str) -> list[tuple[str, str, str]]:
    """(chunk, metadata csv, waveforms hdf5) of a SeisBench dataset folder, sorted by chunk name."""
    if not os.path.isdir(path):
        raise SpacesslError(f"SeisBench dataset {path} is not a folder; give the folder holding metadata.csv and "
                            "waveforms.hdf5")
    chunks: list[str] = []
    listing = os.path.join(path, "chunks")
    if os.path.isfile(listing):
        with open(listing) as f:
            chunks = [c.strip() for c in f.read().split("\n") if c.strip()]
    if not chunks:
        if os.path.isfile(os.path.join(path, "waveforms.hdf5")):
            chunks = [""]
        else:
            names = os.listdir(path)
            meta = {n[8:-4] for n in names if n.startswith("metadata") and n.endswith(".csv")}
            wave = {n[9:-5] for n in names if n.startswith("waveforms") and n.endswith(".hdf5")}
            chunks = sorted(meta & wave)
    if not chunks:
        raise SpacesslError(f"{path} holds no SeisBench dataset: expected metadata.csv and waveforms.hdf5 "
                            "(or metadata<chunk>.csv and waveforms<chunk>.hdf5 per chunk)")
    out = []
    for c in sorted(chunks):
        m, w = os.path.join(path, f"metadata{c}.csv"), os.path.join(path, f"waveforms{c}.hdf5")
        for p in (m, w):
            if not os.path.isfile(p):
                raise SpacesslError(f"SeisBench dataset {path}: chunk {c!r} lacks {os.path.basename(p)}")
        out.append((c, m, w))
    return out


def read_data_format(h5file) -> dict[str, Any]:
    """The ``data_format`` group as a dict of plain values (bytes decoded); {} when absent."""
    if "data_format" not in h5file:
        return {}
    g = h5file["data_format"]
    out = {}
    for key in g.keys():
        v = g[key][()]
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.ndarray) and v.dtype.kind in "SO" and v.size == 1:
            v = v.reshape(()).item()
            v = v.decode() if isinstance(v, bytes) else v
        elif isinstance(v, np.generic):
            v = v.item()
        out[key] = v
    for key, v in g.attrs.items():  # some writers use attributes instead of datasets
        out.setdefault(key, v.decode() if isinstance(v, bytes) else (v.item() if isinstance(v, np.generic) else v))
    return out


def parse_location(location: str) -> tuple:
    """``"12,:3,:6000"`` -> (12, slice(None, 3), slice(None, 6000)) (SeisBench's numpy-style trace locator)."""
    def num(s: str) -> int | None:
        return int(s) if s != "" else None

    out: list[Any] = []
    for part in location.replace(" ", "").split(","):
        bits = part.split(":")
        if len(bits) == 1:
            out.append(num(bits[0]))
        elif len(bits) in (2, 3):
            out.append(slice(*(num(b) for b in bits)))
        else:
            raise SpacesslError(f"invalid SeisBench trace location {location!r}")
    return tuple(out)


def _header(meta_csv: str) -> list[str]:
    import pandas as pd

    return list(pd.read_csv(meta_csv, nrows=0).columns)


def _label_names(chunks: Sequence[tuple[str, str, str]], column: str, block_rows: int) -> tuple[list[str], int]:
    """Sorted distinct values of ``column`` over all chunks (first pass) and the number of rows."""
    import pandas as pd

    values: set[str] = set()
    rows = 0
    for _, meta, _ in chunks:
        cols = _header(meta)
        if column not in cols:
            raise SpacesslError(f"label column {column!r} is not in {meta}; available columns: {', '.join(cols)}")
        for df in pd.read_csv(meta, usecols=[column], dtype={column: str}, keep_default_na=False,
                              chunksize=block_rows):
            rows += len(df)
            values.update(v.strip() for v in df[column] if v.strip() not in ("", "nan", "NaN"))
    names = sorted(values)
    if names and all(v.lstrip("-").isdigit() for v in names):
        names = sorted(names, key=int)
    return names, rows


def _resample(x: np.ndarray, sr: float, target: float) -> np.ndarray:
    """(C, W) resampled along W (``scipy.signal.resample_poly``)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    if abs(sr - target) <= 1e-7 * target:
        return x
    ratio = Fraction(target / sr).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


class _BlockReader:
    """Reads the traces of one metadata block, each bucket slice read once per block."""

    def __init__(self, h5):
        self.data = h5["data"]

    def read(self, names: Sequence[str]) -> list[np.ndarray | Exception]:
        out: list[np.ndarray | Exception] = [None] * len(names)  # type: ignore[list-item]
        buckets: dict[str, list[tuple[int, tuple]]] = {}
        for j, name in enumerate(names):
            try:
                if "$" in name:
                    bucket, loc = name.split("$", 1)
                    sel = parse_location(loc)
                    if not sel or not isinstance(sel[0], int):
                        out[j] = self.data[bucket][sel]
                    else:
                        buckets.setdefault(bucket, []).append((j, sel))
                else:
                    out[j] = self.data[name][()]
            except Exception as exc:  # noqa: BLE001 -- reported per trace
                out[j] = exc
        for bucket, items in buckets.items():
            try:
                ds = self.data[bucket]
                lo = min(s[0] for _, s in items)
                hi = max(s[0] for _, s in items) + 1
                block = ds[lo:hi]
                for j, sel in items:
                    out[j] = block[(sel[0] - lo, *sel[1:])]
            except Exception as exc:  # noqa: BLE001
                for j, _ in items:
                    out[j] = exc
        return out


def ingest_seisbench(path: str, out: str, *, label_column: str | None = "trace_category",
                     components: str | None = None, sampling_rate_hz: float | None = None,
                     n_samples: int | None = None, block_rows: int = 4096, chunk_size: int = 256,
                     shard_chunks: int = 16, overwrite: bool = False, progress: bool = True,
                     storage_options: dict[str, Any] | None = None) -> SeisbenchSummary:
    """Write every trace of the SeisBench dataset at ``path`` into the waveform archive ``out``.

    Args:
        path: dataset folder (metadata*.csv + waveforms*.hdf5).
        out: archive URL; an unfinished archive written with the same settings is resumed.
        label_column: metadata column whose values become the labels (None: unlabelled).
        components: archive channel order, e.g. "ZNE" (default: the dataset's component order).
        sampling_rate_hz: target rate (default: the dataset's, or the first trace's).
        n_samples: T, samples per window (default: the first trace's length after resampling).
        block_rows: metadata rows read (and traces ingested) per block.
        chunk_size, shard_chunks, overwrite: archive layout and replacement.
        progress: tqdm progress bar in traces.
    """
    import h5py
    import pandas as pd
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    chunks = find_chunks(path)
    label_names, total = (_label_names(chunks, label_column, block_rows) if label_column
                          else (None, _count_rows(chunks, block_rows)))
    with h5py.File(chunks[0][2], "r") as h5:
        fmt = read_data_format(h5)
        first = _first_trace(chunks[0][1], h5, fmt)
    dim_order = str(fmt.get("dimension_order", "CW"))
    if sorted(dim_order) != ["C", "W"]:
        raise SpacesslError(f"{path}: dimension_order {dim_order!r} is not supported; expected 'CW' or 'WC'")
    src_order_default = fmt.get("component_order") or first["component_order"]
    comps = components or src_order_default
    if not comps:
        raise SpacesslError(f"{path} does not declare its component order; pass --components (e.g. ZNE)")
    sr_default = fmt.get("sampling_rate")
    target_sr = float(sampling_rate_hz or first["sampling_rate"] or sr_default or 0)
    if not target_sr > 0:
        raise SpacesslError(f"{path} does not declare a sampling rate; pass --resample HZ")
    if n_samples is None:
        x = first["data"] if dim_order == "CW" else first["data"].T
        n_samples = int(_resample(np.asarray(x, np.float64), first["sampling_rate"] or target_sr, target_sr).shape[-1])
    T, C = int(n_samples), len(comps)
    if T < 2:
        raise SpacesslError(f"window of {T} samples is too short; pass --samples")

    from spacessl.archive.writer import ArchiveWriter

    attrs = {"sampling_rate_hz": target_sr, "window_s": T / target_sr,
             "ingest": {"format": "seisbench", "path": os.path.abspath(path), "label_column": label_column,
                        "components": comps, "block_rows": int(block_rows)}}
    w = ArchiveWriter(out, modality="waveform", sample_shape=(C, T), dtype="float32", dims="CT",
                      units=str(fmt.get("unit", "counts") or "counts"), channels=list(comps),
                      label_names=label_names, chunk_size=chunk_size, shard_chunks=shard_chunks,
                      extra_meta=EXTRA_META, attrs=attrs, overwrite=overwrite, storage_options=storage_options)
    code = {n: i for i, n in enumerate(label_names or [])}
    block_index = 0
    with tqdm(total=total, unit="trace", desc="ingest", disable=not progress, dynamic_ncols=True) as bar:
        for _, meta_csv, wave_h5 in chunks:
            cols = set(_header(meta_csv))
            dtypes = {c: str for c in _STR_COLUMNS if c in cols}
            if label_column:
                dtypes[label_column] = str
            with h5py.File(wave_h5, "r") as h5:
                reader = _BlockReader(h5)
                for df in pd.read_csv(meta_csv, dtype=dtypes, keep_default_na=False, chunksize=block_rows,
                                      low_memory=False):
                    i = block_index
                    block_index += 1
                    if i < w.resume_from:
                        bar.update(len(df))
                        continue
                    _ingest_block(w, i, df, reader, wave_h5, fmt, dim_order, comps, target_sr, T, label_column,
                                  code, src_order_default)
                    bar.update(len(df))
    w.close()
    return SeisbenchSummary(str(out), total, w.n, w.n_rejects, time.perf_counter() - t_start, w.rejects_path)


def _count_rows(chunks, block_rows: int) -> int:
    import pandas as pd

    return sum(len(df) for _, m, _ in chunks for df in pd.read_csv(m, usecols=[0], chunksize=block_rows))


def _first_trace(meta_csv: str, h5, fmt: dict) -> dict:
    import pandas as pd

    df = pd.read_csv(meta_csv, nrows=1, dtype={c: str for c in _STR_COLUMNS}, keep_default_na=False)
    if len(df) == 0 or "trace_name" not in df.columns:
        raise SpacesslError(f"{meta_csv} has no rows or no trace_name column")
    row = df.iloc[0]
    data = _BlockReader(h5).read([str(row["trace_name"])])[0]
    if isinstance(data, Exception):
        raise SpacesslError(f"cannot read the first trace {row['trace_name']!r} of {meta_csv}: {data}")
    return {"data": np.asarray(data), "sampling_rate": _row_rate(row, fmt),
            "component_order": str(row["trace_component_order"]) if "trace_component_order" in row else ""}


def _row_rate(row, fmt: dict) -> float | None:
    for col, inv in (("trace_sampling_rate_hz", False), ("trace_dt_s", True)):
        if col in row and str(row[col]) not in ("", "nan"):
            v = float(row[col])
            if v > 0:
                return 1.0 / v if inv else v
    sr = fmt.get("sampling_rate")
    return float(sr) if sr else None


def _ingest_block(w, i: int, df, reader: _BlockReader, wave_h5: str, fmt: dict, dim_order: str, comps: str,
                  target_sr: float, T: int, label_column: str | None, code: dict[str, int],
                  src_order_default: str) -> None:
    names = [str(n) for n in df["trace_name"]]
    datas = reader.read(names)
    has = set(df.columns)
    C = len(comps)
    samples = np.zeros((len(names), C, T), np.float32)
    keep, times, sources, labels, codes = [], [], [], [], []
    start_times = (pd_times(df["trace_start_time"]) if "trace_start_time" in has
                   else np.zeros(len(df), np.int64))
    for j, (name, data) in enumerate(zip(names, datas)):
        row = df.iloc[j]
        if isinstance(data, Exception):
            w.reject(input_index=i, origin=wave_h5, reason="unreadable", detail=f"{name}: {data}"[:500])
            continue
        x = np.asarray(data, np.float64)
        if x.ndim != 2:
            w.reject(input_index=i, origin=wave_h5, reason="bad shape",
                     detail=f"{name}: shape {x.shape}, expected 2-D ({dim_order})")
            continue
        if dim_order == "WC":
            x = x.T
        order = str(row["trace_component_order"]) if "trace_component_order" in has and row[
            "trace_component_order"] else src_order_default
        if not order:
            order = comps if x.shape[0] == C else ""
        idx = [order.find(c) for c in comps]
        if any(k < 0 or k >= x.shape[0] for k in idx):
            w.reject(input_index=i, origin=wave_h5, reason="missing component",
                     detail=f"{name}: has components {order!r}, archive needs {comps!r}")
            continue
        x = x[idx]
        sr = _row_rate(row, fmt) or target_sr
        x = _resample(x, sr, target_sr)
        if x.shape[1] < T:
            w.reject(input_index=i, origin=wave_h5, reason="short trace",
                     detail=f"{name}: {x.shape[1]} samples at {target_sr} Hz, window needs {T}")
            continue
        x = x[:, :T].astype(np.float32)
        if not np.isfinite(x).all():
            w.reject(input_index=i, origin=wave_h5, reason="non-finite", detail=f"{name}: NaN or inf samples")
            continue
        samples[len(keep)] = x
        keep.append(j)
        times.append(start_times[j])
        net = row["station_network_code"] if "station_network_code" in has else ""
        sta = row["station_code"] if "station_code" in has else ""
        loc = row["station_location_code"] if "station_location_code" in has else ""
        sources.append(f"{net}.{sta}.{loc}")
        band = row["station_channel_code"] if "station_channel_code" in has else ""
        codes.append(",".join(f"{band}{c}" for c in comps))
        if label_column:
            v = str(row[label_column]).strip()
            labels.append(code.get(v, -1))
    k = len(keep)
    w.append(samples[:k], input_index=i, time_ns=np.asarray(times, np.int64), source=sources, origin=wave_h5,
             label=np.asarray(labels, np.int16) if label_column else None,
             trace_name=[names[j] for j in keep], channel_codes=codes)


def pd_times(col) -> np.ndarray:
    """ISO strings -> (n,) int64 ns since the epoch; unparseable or empty -> 0."""
    import pandas as pd

    t = pd.to_datetime(col, utc=True, errors="coerce", format="mixed")
    return t.fillna(pd.Timestamp(0, tz="UTC")).dt.as_unit("ns").astype("int64").to_numpy()


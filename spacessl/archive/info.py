"""Summary of an archive: what `spacessl archive info` prints."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from spacessl.archive import store as st
from spacessl.archive.reader import Archive


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def archive_info(archive: Archive) -> dict[str, Any]:
    """Modality, N, sample shape and dtype, chunking, shards, label counts, time range, sources, size, complete.

    Streams the small meta columns chunk by chunk (never the samples).
    """
    labels = np.bincount(np.asarray(archive.meta("label").compute()).astype(np.int64) + 1,
                         minlength=1) if archive.n else np.zeros(1, np.int64)
    counts: dict[str, int] = {}
    if labels[0]:
        counts["unlabelled"] = int(labels[0])
    for i, c in enumerate(labels[1:]):
        if c:
            name = archive.label_names[i] if archive.label_names and i < len(archive.label_names) else str(i)
            counts[name] = int(c)
    times = archive.meta("time_ns")
    t0, t1 = (int(times.min().compute()), int(times.max().compute())) if archive.n else (0, 0)
    src_codes = np.bincount(np.asarray(archive.meta("source").compute()), minlength=1) if archive.n else []
    src_names = archive.names("source")
    sources = {src_names[i]: int(c) for i, c in enumerate(src_codes) if c}
    info = {
        "url": archive.url,
        "format": archive.attrs["spacessl_format"],
        "modality": archive.modality,
        "complete": archive.complete,
        "n": archive.n,
        "sample_shape": list(archive.sample_shape),
        "dims": archive.attrs["dims"],
        "dtype": archive.dtype.name,
        "units": archive.attrs["units"],
        "channels": archive.channels,
        "chunk_size": archive.chunk_size,
        "num_chunks": archive.num_chunks,
        "shard_chunks": archive.shard_chunks,
        "num_shards": archive.num_shards,
        "label_counts": counts,
        "time_range": [_iso(t0), _iso(t1)] if archive.n else None,
        "sources": sources,
        "meta_fields": archive.meta_fields,
        "size_on_disk_bytes": st.size_on_disk(archive.url, archive.storage_options),
        "fingerprint": archive.fingerprint(),
    }
    for key in ("sampling_rate_hz", "window_s", "max_value"):
        if key in archive.attrs:
            info[key] = archive.attrs[key]
    return info


def _human(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def format_info(info: dict[str, Any]) -> str:
    """Human-readable table of :func:`archive_info`."""
    lines = [
        f"archive      {info['url']}",
        f"modality     {info['modality']} (format {info['format']}, {'complete' if info['complete'] else 'INCOMPLETE'})",
        f"samples      {info['n']} × {info['dims']} {tuple(info['sample_shape'])} {info['dtype']} [{info['units']}]",
        f"channels     {', '.join(info['channels'])}",
        f"chunking     {info['chunk_size']} samples/chunk, {info['num_chunks']} chunks, "
        f"{info['shard_chunks']} chunks/shard, {info['num_shards']} shards",
    ]
    if "sampling_rate_hz" in info:
        lines.append(f"sampling     {info['sampling_rate_hz']} Hz, window {info.get('window_s')} s")
    if info["time_range"]:
        lines.append(f"time range   {info['time_range'][0]} .. {info['time_range'][1]}")
    src = info["sources"]
    shown = ", ".join(f"{k} ({v})" for k, v in list(src.items())[:12]) + (" ..." if len(src) > 12 else "")
    lines.append(f"sources      {len(src)}: {shown}")
    labels = ", ".join(f"{k} {v}" for k, v in info["label_counts"].items())
    lines.append(f"labels       {labels or 'none'}")
    lines.append(f"size         {_human(info['size_on_disk_bytes'])} on disk")
    lines.append(f"fingerprint  {info['fingerprint']}")
    return "\n".join(lines)

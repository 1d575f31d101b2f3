"""Similarity queries: one sample (an archive id, a loose file or a vector) → its nearest archive samples.

::

    r = query("out/aurora.idx", file="onset.png", k=20, since="2008-02-01", source="gill", dedup="30s")
    print(r.table())            # rank, id, distance, time (ISO UTC), source, label, origin
    r.to_json()                 # {"query": {...}, "results": [{"rank", "id", "distance", ...}, ...]}
    r.gallery("onset.png")      # the query beside its neighbours

The query vector:

- ``id``: the stored embedding of archive row ``id``; the query's own neighbourhood (same source, within the
  de-duplication window) is left out of the results, so the list shows other events, not the next frames of the
  same one;
- ``file``: decoded as ingest decodes (:mod:`spacessl.index.query_input`), then the same Preprocess and encoder as
  the archive (the model URI recorded by the index / embeddings store). A file that is itself in the archive
  finds itself first (distance ≈ 0), and its neighbours after it;
- ``vector``: a ``.npy`` file (or array) of D values, L2-normalised here.

Filters (time range, source, label) and temporal de-duplication (at most one result per source within ±Δt) are
applied by :class:`spacessl.index.search.ShardedIndex` during the search, so ``k`` results come back whenever that
many samples pass the filters.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from spacessl.errors import SpacesslError


class QueryError(SpacesslError):
    """A query argument is invalid (unknown id, bad time, unknown label, wrong vector size, ...)."""


# ------------------------------------------------------------------------------------------------- parsing

_UNITS_S = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0, "m": 60.0,
            "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hrs": 3600.0,
            "hour": 3600.0, "hours": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$")


def parse_duration(value: str | float | int | None) -> float | None:
    """Seconds of a duration such as "30s", "5min", "2h", "1.5d" or a plain number of seconds.

    None, "", "0", "none" and "off" give None (no de-duplication).
    """
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    text = str(value).strip().lower()
    if text in ("", "none", "off", "no", "0"):
        return None
    m = _DURATION_RE.match(text)
    if not m or m.group(2) not in ("", *_UNITS_S):
        raise QueryError(f"cannot read duration {value!r}; write a number with a unit: e.g. 30s, 5min, 2h, 1d "
                         "(ms, s, min, h, d), or 0 / none to switch it off")
    seconds = float(m.group(1)) * _UNITS_S.get(m.group(2) or "s", 1.0)
    return seconds if seconds > 0 else None


def parse_time(value: str | int | dt.datetime | np.datetime64 | None) -> int | None:
    """UTC ns since the epoch of an ISO 8601 time ("2008-02-01", "2008-02-01T06:30:00Z", "...+02:00"); naive
    times are UTC; an int is taken as ns already."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, dt.datetime):
        t = value
    else:
        text = str(value).strip()
        try:
            t = dt.datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise QueryError(f"cannot read time {value!r}; use ISO 8601 UTC such as 2008-02-01 or "
                             "2008-02-01T06:30:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def iso_utc(ns: int | None) -> str | None:
    """ns since the epoch → "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (UTC; microseconds shown when not zero)."""
    if ns is None:
        return None
    ns = int(ns)
    sec, rem = divmod(ns, 10**9)
    t = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=sec, microseconds=rem // 1000)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if rem:
        text += f".{rem // 1000:06d}"
    return text + "Z"


# ------------------------------------------------------------------------------------------------- result


@dataclass
class QueryResult:
    """What a query found.

    Attributes:
        query: how the query was posed (kind, id/file, time, source, label, origin) and the search settings.
        results: one dict per neighbour, best first: rank (1-based), id, distance, time (ISO UTC), source,
            label (name or None), origin.
        archive_url: the archive the ids refer to (for the gallery).
        query_sample: the raw query sample (1, *sample_shape), None for a vector query.
    """

    query: dict[str, Any]
    results: list[dict[str, Any]]
    archive_url: str = ""
    query_sample: np.ndarray | None = field(default=None, repr=False)

    @property
    def ids(self) -> np.ndarray:
        return np.array([r["id"] for r in self.results], dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "results": self.results}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def table(self) -> str:
        """A plain-text table: rank, id, distance, time, source, label, origin."""
        cols = ["rank", "id", "distance", "time", "source", "label", "origin"]
        rows = [[str(r["rank"]), str(r["id"]), f"{max(r['distance'], 0.0):.4f}", r["time"] or "-", r["source"] or "-",
                 r["label"] or "-", r["origin"] or "-"] for r in self.results]
        widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
        right = {0, 1, 2}
        lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cols, widths)))]
        for row in rows:
            lines.append("  ".join(v.rjust(w) if i in right else v.ljust(w)
                                   for i, (v, w) in enumerate(zip(row, widths))).rstrip())
        q = self.query
        what = {"id": f"id {q.get('id')}", "file": f"file {q.get('file')}", "vector": "vector"}[q["kind"]]
        head = f"query: {what}"
        if q.get("time"):
            head += f", {q['time']}"
        if q.get("source"):
            head += f", {q['source']}"
        if q.get("label"):
            head += f" [{q['label']}]"
        if not rows:
            lines.append("(no sample passes the filters)")
        return head + "\n" + "\n".join(line.rstrip() for line in lines)

    def gallery(self, path: str | Path, *, columns: int = 5) -> Path:
        """Draw the query beside its neighbours into ``path`` (PNG); see :func:`spacessl.index.gallery.draw`."""
        from spacessl.archive import open_archive
        from spacessl.index.gallery import draw

        archive = open_archive(self.archive_url)
        return draw(self, archive, path, columns=columns)


# ------------------------------------------------------------------------------------------------- query


def _label_code(archive: Any, label: str | int | None) -> int | None:
    if label is None or label == "":
        return None
    names = list(archive.label_names or [])
    if isinstance(label, (int, np.integer)) or str(label).lstrip("-").isdigit():
        code = int(label)
        if code != -1 and not 0 <= code < len(names):
            raise QueryError(f"label {label} is out of range: {archive.url} has labels "
                             f"{', '.join(f'{i}={n}' for i, n in enumerate(names)) or '(none)'} and -1 = unlabelled")
        return code
    if label in names:
        return names.index(label)
    raise QueryError(f"unknown label {label!r}; {archive.url} has labels: {', '.join(names) or '(none)'}")


def _describe_rows(archive: Any, ids: np.ndarray) -> list[dict[str, Any]]:
    """time, source, label name and origin of archive rows ``ids``."""
    fields = [f for f in ("time_ns", "source", "label", "origin") if f in archive.meta_fields]
    meta = archive.take(ids, fields=fields).meta if len(ids) else {}
    names = list(archive.label_names or [])
    out = []
    for j in range(len(ids)):
        lab = int(meta["label"][j]) if "label" in meta else -1
        out.append({"time": iso_utc(int(meta["time_ns"][j])) if "time_ns" in meta else None,
                    "time_ns": int(meta["time_ns"][j]) if "time_ns" in meta else None,
                    "source": str(meta["source"][j]) if "source" in meta else None,
                    "label": names[lab] if 0 <= lab < len(names) else None,
                    "origin": str(meta["origin"][j]) if "origin" in meta else None})
    return out


def load_vector(vector: Any, dim: int) -> np.ndarray:
    """(D,) float32 unit vector from an array or a ``.npy`` file; QueryError when it has the wrong size."""
    if isinstance(vector, (str, Path)):
        try:
            arr = np.load(vector, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise QueryError(f"cannot read query vector {vector}: {exc}; save it with numpy.save") from exc
    else:
        arr = np.asarray(vector)
    shape = np.shape(arr)
    arr = np.asarray(arr, dtype=np.float32).reshape(-1)
    if arr.size != dim:
        raise QueryError(f"query vector has shape {shape} ({arr.size} values) but the index holds {dim}-d "
                         f"embeddings; give one vector of shape ({dim},)")
    if not np.isfinite(arr).all():
        raise QueryError("query vector has non-finite values")
    norm = float(np.linalg.norm(arr))
    if norm == 0:
        raise QueryError("query vector is all zeros")
    return arr / norm


@lru_cache(maxsize=4)
def _cached_embedder(uri: str, archive_url: str, tracking_uri: str | None, views: int) -> Any:
    from spacessl.archive import open_archive
    from spacessl.embed.embedder import Embedder

    return Embedder.load(uri, open_archive(archive_url), tracking_uri=tracking_uri, views=views)


def _embedder(uri: str, archive: Any, tracking_uri: str | None, views: int = 1) -> Any:
    """The query-side Embedder, loaded once per (model, archive, views) in a long-lived process (a query service);
    ``views`` as the embeddings store records it, so that a file embeds the way the archive's rows were."""
    return _cached_embedder(uri, archive.url, tracking_uri, int(views))


def query(index_dir: Any, *, id: int | None = None, file: str | Path | None = None,  # noqa: A002
          vector: Any = None, k: int = 20, since: Any = None, until: Any = None, source: str | None = None,
          label: str | int | None = None, dedup: str | float | None = "30s", model_uri: str | None = None,
          tracking_uri: str | None = None) -> QueryResult:
    """The ``k`` archive samples most similar to one query (give exactly one of ``id``, ``file``, ``vector``).

    Args:
        index_dir: an index folder built by ``spacessl index build``, or an opened ``ShardedIndex`` (a service
            keeps one open across queries).
        id: archive row id of the query sample.
        file: an image or waveform file, decoded as ingest does.
        vector: a (D,) array or a ``.npy`` file.
        k: how many neighbours.
        since, until: ISO 8601 UTC times (or ns) bounding the results' times, [since, until).
        source: only results from this camera/station.
        label: only results with this label (name or code; -1 = unlabelled).
        dedup: at most one result per source within ± this duration ("30s", "5min", "2h"; None/"0" = off).
        model_uri: encoder for a file query (default: the one recorded by the index / embeddings store).
        tracking_uri: MLflow store for models:/ and runs:/ URIs (default: $MLFLOW_TRACKING_URI, else the store
            the embedding job recorded, else the local store).
    """
    from spacessl.embed.store import open_embeddings
    from spacessl.index.search import ShardedIndex

    given = [name for name, v in (("id", id), ("file", file), ("vector", vector)) if v is not None]
    if len(given) != 1:
        raise QueryError(f"give exactly one of id, file, vector (got {', '.join(given) or 'none'})")
    if k < 1:
        raise QueryError(f"k must be >= 1, got {k}")
    dedup_s = parse_duration(dedup)
    since_ns, until_ns = parse_time(since), parse_time(until)
    if since_ns is not None and until_ns is not None and until_ns <= since_ns:
        raise QueryError(f"--until {until} is not after --since {since}")

    index = index_dir if isinstance(index_dir, ShardedIndex) else ShardedIndex.open(str(index_dir))
    manifest = dict(getattr(index, "manifest", {}) or {})
    emb = open_embeddings(manifest["embeddings_url"])
    archive = emb.archive()
    index_name = str(getattr(index, "index_dir", index_dir))
    label_code = _label_code(archive, label)

    q: dict[str, Any] = {"kind": given[0], "index": index_name, "k": int(k), "since": iso_utc(since_ns),
                         "until": iso_utc(until_ns), "source_filter": source, "label_filter": label,
                         "dedup_s": dedup_s}
    exclude: list[int] = []
    own: tuple[str, int] | None = None
    sample = None
    if id is not None:
        qid = int(id)
        if not 0 <= qid < archive.n:
            raise QueryError(f"id {qid} is not in the archive: ids run from 0 to {archive.n - 1}")
        vec = np.asarray(emb.vector(qid), dtype=np.float32)
        row = _describe_rows(archive, np.array([qid]))[0]
        q.update(id=qid, **{k_: v for k_, v in row.items() if k_ != "time_ns"})
        sample = archive.read(qid, qid + 1, fields=[]).samples
        exclude = [qid]
        if row["source"] is not None and row["time_ns"] is not None:
            own = (row["source"], row["time_ns"])
    elif file is not None:
        from spacessl.index.query_input import load_query_file

        qs = load_query_file(str(file), archive)
        uri = model_uri or manifest.get("model_uri") or emb.attrs.get("model_uri")
        if not uri:
            raise QueryError(f"{index_dir} records no model URI; pass model_uri / --model")
        from spacessl.tracking import recorded_tracking_uri

        embedder = _embedder(uri, archive, recorded_tracking_uri(emb.attrs, tracking_uri), emb.views)
        vec = embedder(qs.sample)[0]
        if vec.shape[0] != emb.dim:
            raise QueryError(f"model {uri} gives {vec.shape[0]}-d vectors but the index holds {emb.dim}-d ones; "
                             "query with the model the archive was embedded with")
        sample = qs.sample
        q.update(file=str(file), time=iso_utc(qs.time_ns), source=qs.source, label=None, origin=qs.origin,
                 cut=qs.how, model_uri=uri)
    else:
        vec = load_vector(vector, emb.dim)
        q.update(vector=str(vector) if isinstance(vector, (str, Path)) else "array", time=None, source=None,
                 label=None, origin=None)

    dist, ids = index.search(vec[None].astype(np.float32), k, since=since_ns, until=until_ns, source=source,
                             label=label_code, dedup_s=dedup_s, exclude_ids=exclude,
                             **({"exclude_near": [own]} if own is not None else {}))
    dist, ids = np.asarray(dist)[0], np.asarray(ids)[0]
    keep = ids >= 0
    dist, ids = dist[keep], ids[keep]
    rows = _describe_rows(archive, ids)
    results = [{"rank": r + 1, "id": int(i), "distance": float(d), "time": m["time"], "source": m["source"],
                "label": m["label"], "origin": m["origin"]} for r, (i, d, m) in enumerate(zip(ids, dist, rows))]
    return QueryResult(q, results, archive_url=archive.url, query_sample=sample)

"""Event catalogs: one row per archive sample, written as CSV and Parquet side by side, read back by either.

Columns (cluster catalogs; propagation and outlier lists add or swap their own score columns):

    id        int64    archive row id (``Archive.take([id])`` gets the sample back)
    time      UTC start time: ISO 8601 with ns in CSV (``2024-01-05T07:21:03.000000000Z``), timestamp[ns, UTC]
              in Parquet
    source    str      camera or station
    origin    str      file the sample came from
    label     str      class name where the archive is labelled (empty when unlabelled)
    cluster   int      cluster id
    distance  float    cosine distance (1 - cos) to the cluster centroid
    rank      int      0 = nearest the centroid within its cluster

:class:`CatalogWriter` appends in parts (memory bounded by one part) and writes both files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

CLUSTER_COLUMNS = ("id", "time", "source", "origin", "label", "cluster", "distance", "rank")


def iso_times(time_ns: np.ndarray) -> np.ndarray:
    """UTC ns since the epoch (N,) → ISO 8601 strings with ns precision and a ``Z`` suffix (N,) object."""
    t = np.asarray(time_ns, dtype=np.int64).astype("datetime64[ns]")
    return np.array([s + "Z" for s in np.datetime_as_string(t, unit="ns")], dtype=object)


def time_ns(series: pd.Series) -> np.ndarray:
    """A tz-aware (UTC) timestamp column → (N,) int64 ns since the epoch."""
    if not isinstance(series.dtype, pd.DatetimeTZDtype):
        series = pd.to_datetime(series, utc=True)
    return series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").view(np.int64)


def label_strings(labels: np.ndarray, names: list[str] | None) -> np.ndarray:
    """Label codes (N,) → class names ('' for -1 or an unlabelled archive)."""
    labels = np.asarray(labels, dtype=np.int64)
    if not names:
        return np.full(len(labels), "", dtype=object)
    table = np.array([*names, ""], dtype=object)
    return table[np.where((labels >= 0) & (labels < len(names)), labels, len(names))]


def frame(ids: np.ndarray, time_ns: np.ndarray, source: np.ndarray, origin: np.ndarray, **columns: Any) -> pd.DataFrame:
    """A catalog DataFrame: ``id``, ``time`` (tz-aware UTC), ``source``, ``origin``, then ``columns`` in order."""
    data: dict[str, Any] = {
        "id": np.asarray(ids, dtype=np.int64),
        "time": pd.to_datetime(np.asarray(time_ns, dtype=np.int64), unit="ns", utc=True),
        "source": np.asarray(source, dtype=object).astype(str),
        "origin": np.asarray(origin, dtype=object).astype(str),
    }
    data.update({k: np.asarray(v) for k, v in columns.items()})
    return pd.DataFrame(data)


class CatalogWriter:
    """Append catalog parts to ``<stem>.csv`` and ``<stem>.parquet``; :meth:`close` finishes both.

    Both are written to temporary names and renamed on close, so a killed run never leaves a catalog that looks
    complete.
    """

    def __init__(self, stem: str | Path):
        self.stem = Path(stem)
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.stem.with_suffix(".csv")
        self.parquet_path = self.stem.with_suffix(".parquet")
        self._csv_tmp = self.csv_path.with_name(self.csv_path.name + ".tmp")
        self._pq_tmp = self.parquet_path.with_name(self.parquet_path.name + ".tmp")
        self._pq: pq.ParquetWriter | None = None
        self._csv_started = False
        self.rows = 0

    def append(self, df: pd.DataFrame) -> None:
        out = df.copy()
        table = _to_arrow(out)
        if self._pq is None:
            self._pq = pq.ParquetWriter(self._pq_tmp, table.schema)
        self._pq.write_table(table.cast(self._pq.schema))
        if "time" in out:
            out["time"] = iso_times(time_ns(df["time"]))
        out.to_csv(self._csv_tmp, mode="a" if self._csv_started else "w", header=not self._csv_started,
                   index=False, float_format="%.6g")
        self._csv_started = True
        self.rows += len(df)

    def close(self, empty: pd.DataFrame | None = None) -> tuple[Path, Path]:
        """Finish both files (an empty catalog with the columns of ``empty`` when nothing was appended)."""
        if self._pq is None:
            self.append(empty if empty is not None else pd.DataFrame({c: [] for c in CLUSTER_COLUMNS}))
        assert self._pq is not None
        self._pq.close()
        self._csv_tmp.replace(self.csv_path)
        self._pq_tmp.replace(self.parquet_path)
        return self.csv_path, self.parquet_path


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    """DataFrame → Arrow table; ``time`` as timestamp[ns, UTC], strings as utf8."""
    cols = {}
    for name in df.columns:
        if name == "time":
            cols[name] = pa.array(time_ns(df[name]), type=pa.timestamp("ns", tz="UTC"))
        elif df[name].dtype == object or pd.api.types.is_string_dtype(df[name]):
            cols[name] = pa.array(df[name].astype(str).to_numpy(dtype=object), type=pa.string())
        else:
            cols[name] = pa.array(df[name].to_numpy())
    return pa.table(cols)


def write_catalog(df: pd.DataFrame, stem: str | Path) -> tuple[Path, Path]:
    """Write ``df`` as ``<stem>.csv`` and ``<stem>.parquet``; returns both paths."""
    w = CatalogWriter(stem)
    w.append(df)
    return w.close()


def read_catalog(path: str | Path) -> pd.DataFrame:
    """A catalog written by :class:`CatalogWriter` (CSV or Parquet): ``time`` as tz-aware UTC timestamps,
    ``source``/``origin``/``label`` as str (empty strings kept)."""
    path = Path(path)
    if path.suffix == ".parquet":
        df = pq.read_table(path).to_pandas()
    else:
        df = pd.read_csv(path, keep_default_na=False, na_values=[],
                         dtype={"source": str, "origin": str, "label": str})
        if "time" in df:
            df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    if "time" in df:
        df["time"] = df["time"].astype("datetime64[ns, UTC]")
    return df

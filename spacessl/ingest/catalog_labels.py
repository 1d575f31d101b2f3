"""Labels from an event catalog: a CSV with columns ``time, station, label``.

``time`` is anything pandas parses as a UTC time (ISO 8601 recommended); ``station`` may be ``NET.STA.LOC``,
``NET.STA``, ``STA`` or empty (applies to every station); ``label`` is a class name. Label names are the distinct
labels, sorted (numerically when they are all integers), so label i of the archive is ``label_names[i]``.

A triggered window gets the label of the nearest catalog entry of its station whose time is within ``tolerance_s``
of the trigger onset; a regular window (``--trigger none``) gets the label of the entry nearest to its onset
reference (start + pre) among those inside the window widened by the tolerance. Otherwise the label is -1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spacessl.errors import SpacesslError

COLUMNS = ("time", "station", "label")


@dataclass
class Catalog:
    """Catalog entries grouped by station key, times sorted."""

    label_names: list[str]
    by_key: dict[str, tuple[np.ndarray, np.ndarray]]  #: key -> ((n,) int64 time ns sorted, (n,) int16 label codes)

    def candidates(self, source: str) -> tuple[np.ndarray, np.ndarray]:
        """Entries that apply to ``source`` = NET.STA.LOC (exact id, NET.STA, STA, or any station)."""
        net, sta, *rest = source.split(".") + ["", ""]
        keys = {source, f"{net}.{sta}", sta, ""}
        parts = [self.by_key[k] for k in keys if k in self.by_key]
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int16)
        t = np.concatenate([p[0] for p in parts])
        lab = np.concatenate([p[1] for p in parts])
        order = np.argsort(t, kind="stable")
        return t[order], lab[order]


def load_catalog(path: str) -> Catalog:
    """Read the catalog CSV; raises SpacesslError naming the file and the missing column or bad time."""
    import pandas as pd

    try:
        df = pd.read_csv(path, dtype={"station": str, "label": str}, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise SpacesslError(f"cannot read label catalog {path}: {exc}") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SpacesslError(f"label catalog {path} lacks column(s) {missing}; it needs columns "
                            f"{', '.join(COLUMNS)} (have {list(df.columns)})")
    try:
        times = pd.to_datetime(df["time"], utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise SpacesslError(f"label catalog {path}: column 'time' has a value that is not a time ({exc}); "
                            "use ISO 8601 such as 2020-01-01T12:00:00.5Z") from exc
    labels = df["label"].astype(str).str.strip()
    if (labels == "").any():
        row = int(np.flatnonzero((labels == "").to_numpy())[0])
        raise SpacesslError(f"label catalog {path}: row {row + 2} has an empty label")
    names = sorted(set(labels))
    if all(n.lstrip("-").isdigit() for n in names):
        names = sorted(names, key=int)
    if len(names) > np.iinfo(np.int16).max:
        raise SpacesslError(f"label catalog {path} has {len(names)} distinct labels; at most 32767 fit")
    code = {n: i for i, n in enumerate(names)}
    t_ns = times.dt.as_unit("ns").astype("int64").to_numpy()
    codes = np.array([code[x] for x in labels], np.int16)
    stations = df["station"].astype(str).str.strip().to_numpy()
    by_key = {}
    for key in np.unique(stations):
        sel = stations == key
        order = np.argsort(t_ns[sel], kind="stable")
        by_key[str(key)] = (t_ns[sel][order], codes[sel][order])
    return Catalog(names, by_key)


def attach_labels(catalog: Catalog, source: str, ref_ns: np.ndarray, *, tolerance_s: float,
                  window: tuple[int, int] | None = None) -> np.ndarray:
    """(k,) int16 labels for windows of ``source`` whose onsets are ``ref_ns`` (k,) int64 ns.

    ``window`` = (ns before ref, ns after ref) widens the match to the whole window (regular windows).
    """
    ref_ns = np.asarray(ref_ns, np.int64)
    out = np.full(ref_ns.shape, -1, np.int16)
    t, lab = catalog.candidates(source)
    if len(t) == 0 or len(ref_ns) == 0:
        return out
    tol = int(round(tolerance_s * 1e9))
    before, after = (tol, tol) if window is None else (window[0] + tol, window[1] + tol)
    lo = np.searchsorted(t, ref_ns - before, side="left")
    hi = np.searchsorted(t, ref_ns + after, side="right")
    for j in np.flatnonzero(hi > lo):
        cand = t[lo[j]:hi[j]]
        out[j] = lab[lo[j] + int(np.argmin(np.abs(cand - ref_ns[j])))]
    return out

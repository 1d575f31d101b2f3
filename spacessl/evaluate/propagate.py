"""``spacessl propagate``: from a handful of labelled examples, every sample in the archive that looks like them.

"Find every event like these five": the seeds' embeddings are searched against the whole archive (the sharded
index, or an exact search over a small embeddings set); a sample's score is its highest cosine similarity to a
seed of a class, and it becomes a candidate of that class when the score reaches the class's threshold:

- ``threshold`` given: that cosine similarity for every class;
- else, from the seeds' mutual similarity: the median over seeds i of ``max over other seeds j of cos(s_i, s_j)``,
  how close a typical seed's nearest fellow seed is; a sample at least that close to a seed is as alike to it as
  the seeds are to each other. The median (not the minimum) keeps one odd seed from opening the gate to
  everything. A class with a single seed needs ``threshold``.

The search widens (×4) until every seed's last result falls below the threshold or ``max_candidates`` is
reached. A sample that passes for several classes goes to the class it is most similar to; seeds themselves are
left out. Output: ``candidates.csv`` / ``.parquet`` (id, time, source, origin, label (the archive's, if any),
class, score, seed_id, rank) and, for waveform archives, ``candidates.xml`` (QuakeML,
:mod:`~spacessl.evaluate.quakeml`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spacessl.errors import SpacesslError, refuse_existing
from spacessl.evaluate.knn import l2_normalize
from spacessl.evaluate.neighbours import NeighbourSearch, exact_search, index_search


#: what :func:`propagate` writes into its output folder
OUTPUT_FILES = ("candidates.csv", "candidates.parquet", "candidates.xml", "propagate.json")


class PropagateError(SpacesslError):
    """Seeds or arguments of a propagation are invalid."""


def read_seeds(path: str | Path) -> pd.DataFrame:
    """Seeds CSV → DataFrame with int ``id`` and str ``class`` (from a ``label`` or ``class`` column; "seed" when
    neither exists). Other columns are ignored."""
    path = Path(path)
    if not path.exists():
        raise PropagateError(f"seeds file {path} does not exist; write a CSV with a column 'id' (archive row ids) "
                             "and optionally 'label'")
    df = pd.read_csv(path, keep_default_na=False, dtype=str)
    if "id" not in df.columns:
        raise PropagateError(f"seeds file {path} has no 'id' column (columns: {', '.join(df.columns)}); add the "
                             "archive row ids of the examples as column 'id'")
    try:
        ids = df["id"].str.strip().astype(np.int64)
    except ValueError as exc:
        raise PropagateError(f"seeds file {path}: column 'id' must hold integer archive row ids ({exc})") from exc
    col = "label" if "label" in df.columns else "class" if "class" in df.columns else None
    cls = df[col].str.strip().replace("", "seed") if col else pd.Series(["seed"] * len(df))
    out = pd.DataFrame({"id": ids.to_numpy(), "class": cls.to_numpy()}).drop_duplicates("id")
    if out.empty:
        raise PropagateError(f"seeds file {path} lists no seeds")
    return out


def mutual_threshold(seeds: np.ndarray) -> float:
    """``median_i max_{j≠i} cos(s_i, s_j)`` of seed vectors (m, D), m >= 2."""
    s = l2_normalize(seeds)
    sim = s @ s.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.median(sim.max(axis=1)))


def search_above(search: NeighbourSearch, queries: np.ndarray, threshold: float, *, start: int = 1024,
                 max_candidates: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Search ``queries`` (B, D) wide enough to hold every neighbour with similarity >= ``threshold``: the width
    grows ×4 until each query's last result falls below it (or ``max_candidates``). Returns (sims (B, w),
    ids (B, w)), best first."""
    width = max(1, min(start, max_candidates))
    while True:
        sims, ids = search(queries, width)
        full = sims.shape[1] >= width and (ids[:, -1] >= 0).any()
        more = full and bool((sims[:, -1] >= threshold).any()) and width < max_candidates
        if not more:
            return sims, ids
        width = min(max_candidates, width * 4)


@dataclass
class PropagateReport:
    """What :func:`propagate` found."""

    out: str
    seeds: dict[str, list[int]]
    thresholds: dict[str, float]
    counts: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{sum(self.counts.values())} candidates from {sum(len(v) for v in self.seeds.values())} seeds "
                 f"in {self.seconds:.1f} s"]
        for cls in self.seeds:
            line = (f"  {cls}: {len(self.seeds[cls])} seeds, threshold cos >= {self.thresholds[cls]:.4f}, "
                    f"{self.counts.get(cls, 0)} candidates")
            if cls in self.agreement:
                line += f" ({self.agreement[cls] * 100:.1f}% carry the archive label {cls!r})"
            lines.append(line)
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in self.files.items()))
        return "\n".join(lines)


def _vectors_of(emb: Any, ids: np.ndarray) -> np.ndarray:
    """Stored embeddings (m, D) of archive ids ``ids`` (m,)."""
    if hasattr(emb, "vector"):
        return np.stack([np.asarray(emb.vector(int(i)), dtype=np.float32) for i in ids])
    pos = np.asarray(ids, dtype=np.int64)
    if (pos < 0).any() or (pos >= emb.n).any() or not np.array_equal(np.asarray(emb.ids[pos].compute()), pos):
        raise PropagateError("seed ids are not embedded rows of the store")
    return np.asarray(emb.vectors[pos].compute(), dtype=np.float32)


def propagate(seeds_csv: str | Path, out: str | Path, *, index_dir: str | None = None,
              embeddings: str | None = None, threshold: float | None = None, max_candidates: int = 100_000,
              dedup_s: float | None = None, quakeml: bool | None = None, overwrite: bool = False) -> PropagateReport:
    """Propagate the seeds' classes across the archive (see the module docstring); outputs go to folder ``out``.

    Args:
        index_dir: a sharded index (``spacessl index``); its manifest names the embeddings store.
        embeddings: the embeddings store, searched exactly when no index is given.
        threshold: cosine similarity a candidate must reach (default: from the seeds, per class).
        max_candidates: results per seed at most.
        dedup_s: with an index, at most one result per source within ± this many seconds.
        quakeml: also write QuakeML (default: for waveform archives).
        overwrite: replace the outputs of an earlier run in ``out`` (else refuse before searching); a QuakeML
            file this run does not write is removed with them.
    """
    from spacessl.embed.store import open_embeddings
    from spacessl.evaluate.catalog import frame, label_strings, write_catalog

    t0 = time.perf_counter()
    if max_candidates < 1:
        raise PropagateError(f"--max-candidates must be >= 1 (results per seed), got {max_candidates}")
    out = Path(out)
    if not overwrite:
        refuse_existing([out / f for f in OUTPUT_FILES], what="a propagated catalog", error=PropagateError)
    seeds = read_seeds(seeds_csv)
    if index_dir is not None:
        search, index = index_search(index_dir, **({"dedup_s": dedup_s} if dedup_s else {}))
        url = embeddings or (getattr(index, "manifest", {}) or {}).get("embeddings_url")
        if not url:
            raise PropagateError(f"index {index_dir} does not name its embeddings store; pass --embeddings")
        emb = open_embeddings(url)
    elif embeddings is not None:
        emb = open_embeddings(embeddings)
        search = exact_search(np.asarray(emb.vectors.compute(), dtype=np.float32),
                              np.asarray(emb.ids.compute(), dtype=np.int64))
    else:
        raise PropagateError("pass --index IDX/ (or --embeddings E.zarr for an exact search of a small set)")
    archive = emb.archive()
    bad = seeds["id"][(seeds["id"] < 0) | (seeds["id"] >= archive.n)]
    if len(bad):
        raise PropagateError(f"seed id(s) {', '.join(map(str, bad.tolist()[:5]))} are not in {archive.url}: ids "
                             f"run from 0 to {archive.n - 1}")
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise PropagateError(f"--threshold is a cosine similarity in [-1, 1], got {threshold}")

    seed_ids = set(seeds["id"].tolist())
    best: dict[int, tuple[float, str, int]] = {}
    thresholds: dict[str, float] = {}
    groups: dict[str, list[int]] = {}
    for cls, part in seeds.groupby("class", sort=False):
        ids = part["id"].to_numpy()
        groups[str(cls)] = ids.tolist()
        vecs = _vectors_of(emb, ids)
        if threshold is not None:
            thr = float(threshold)
        elif len(ids) >= 2:
            thr = mutual_threshold(vecs)
        else:
            raise PropagateError(f"class {cls!r} has a single seed ({ids[0]}); give --threshold (a cosine "
                                 "similarity such as 0.8) or add more seeds")
        thresholds[str(cls)] = thr
        sims, nids = search_above(search, vecs, thr, max_candidates=max_candidates)
        for q in range(len(ids)):
            keep = (nids[q] >= 0) & (sims[q] >= thr)
            for i, s in zip(nids[q][keep].tolist(), sims[q][keep].tolist(), strict=True):
                if i in seed_ids:
                    continue
                if i not in best or s > best[i][0]:
                    best[i] = (float(s), str(cls), int(ids[q]))

    cand = np.array(sorted(best, key=lambda i: (-best[i][0], i)), dtype=np.int64)
    fields = [f for f in ("time_ns", "source", "origin", "label", "lat_deg", "lon_deg") if f in archive.meta_fields]
    order = np.argsort(cand)
    batch = archive.take(cand[order], fields=fields) if len(cand) else None
    inv = np.argsort(order)
    meta = {k: np.asarray(v)[inv] for k, v in batch.meta.items()} if batch is not None else \
        {"time_ns": np.empty(0, np.int64), "source": np.empty(0, object), "origin": np.empty(0, object)}
    archive_labels = label_strings(meta.get("label", np.full(len(cand), -1)), archive.label_names)
    df = frame(cand, meta["time_ns"], meta["source"], meta["origin"], label=archive_labels,
               **{"class": np.array([best[i][1] for i in cand], dtype=object)},
               score=np.array([best[i][0] for i in cand], dtype=np.float32),
               seed_id=np.array([best[i][2] for i in cand], dtype=np.int64), rank=np.arange(len(cand)))
    out.mkdir(parents=True, exist_ok=True)
    csv_path, pq_path = write_catalog(df, out / "candidates")
    files = {"csv": str(csv_path), "parquet": str(pq_path)}
    if quakeml or (quakeml is None and archive.modality == "waveform"):
        from spacessl.evaluate.quakeml import write_quakeml

        coords = {}
        if "lat_deg" in meta and "lon_deg" in meta:
            coords = {str(s): (float(a), float(b)) for s, a, b in zip(meta["source"], meta["lat_deg"],
                                                                       meta["lon_deg"], strict=True)}
        files["quakeml"] = str(write_quakeml(df, out / "candidates.xml", channel=_channel_code(archive),
                                             coords=coords))
    else:
        (out / "candidates.xml").unlink(missing_ok=True)  # an earlier run's, replaced under overwrite
    counts = {str(c): int(n) for c, n in df["class"].value_counts().items()}
    agreement = {}
    names = set(archive.label_names or [])
    for cls in groups:
        if cls in names and counts.get(cls):
            agreement[cls] = float((df.loc[df["class"] == cls, "label"] == cls).mean())
    report = PropagateReport(out=str(out), seeds=groups, thresholds=thresholds, counts=counts, files=files,
                             agreement=agreement, seconds=time.perf_counter() - t0)
    (out / "propagate.json").write_text(json.dumps(report.__dict__, indent=2, default=str))
    return report


def _channel_code(archive: Any) -> str:
    """SEED channel code of the archive's first component ("Z" → "HHZ")."""
    first = str((archive.channels or ["Z"])[0])
    return first if len(first) == 3 else f"HH{first[-1:] or 'Z'}"

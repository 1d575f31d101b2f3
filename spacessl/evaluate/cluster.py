"""``spacessl cluster``: k-means over all embeddings, a catalog of every sample, a montage per cluster.

Steps (memory bounded by the training sample plus the largest cluster's catalog columns):

1. a uniform sample of up to ``train_size`` embeddings (streamed ids,
   :func:`~spacessl.evaluate.sample.uniform_positions`), with ``whiten`` PCA-whitened on its own principal axes
   (every later step then works on whitened vectors);
2. with ``k="auto"``, k chosen on up to ``auto_size`` of them by the cosine silhouette
   (:func:`~spacessl.evaluate.clustering.choose_k`);
3. spherical FAISS k-means on the sample (GPUs when FAISS sees them), the best objective of ``restarts`` k-means++
   seedings (:data:`~spacessl.evaluate.clustering.CLUSTER_RESTARTS`, 20, unless told);
4. every shard of the embeddings streamed and assigned to its nearest centroid; per-cluster parts written to
   disk with the sample's time, source, origin and label; membership over time counted on the way;
5. per cluster: parts sorted by distance to the centroid → rank; appended to ``catalog.csv`` and
   ``catalog.parquet``; montage of the ``nearest`` members and a seeded random sample of the rest.

Outputs in ``out/``: catalog.csv, catalog.parquet, montages/cluster_XXX.png, clusters_over_time.png,
centroids.npy (k, D) (D = ``whiten`` when whitened), whitening.npz (when whitened), summary.json.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from spacessl.errors import SpacesslError
from spacessl.evaluate.catalog import CatalogWriter, frame, label_strings
from spacessl.evaluate.clustering import (CLUSTER_RESTARTS, PcaWhitening, assign, choose_k, faiss_gpu_count,
                                          fit_kmeans)
from spacessl.evaluate.montage import montage
from spacessl.evaluate.sample import take_rows, uniform_positions


class ClusterError(SpacesslError):
    """Clustering cannot run with these arguments or outputs."""


@dataclass
class ClusterReport:
    """What :func:`cluster_embeddings` did."""

    out: str
    k: int
    k_reason: str
    n: int
    sizes: list[int]
    train_rows: int
    objective: float
    restarts: int = CLUSTER_RESTARTS
    whiten: int | None = None
    files: dict[str, Any] = field(default_factory=dict)
    k_scores: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    gpu: bool = False

    def summary(self) -> str:
        sizes = ", ".join(f"{c}:{s}" for c, s in enumerate(self.sizes))
        return (f"{self.n} embeddings in {self.k} clusters ({self.k_reason}); trained on {self.train_rows} rows"
                f"{' on GPU' if self.gpu else ''}{f', whitened to {self.whiten} axes' if self.whiten else ''}, "
                f"best of {self.restarts} restarts, in {self.seconds:.1f} s\n"
                f"  sizes {sizes}\n"
                f"  catalog {self.files.get('csv')} and {self.files.get('parquet')}\n"
                f"  montages in {self.files.get('montages')}, membership over time {self.files.get('over_time')}")


def parse_k(text: str | int) -> int | str:
    """"auto" or a positive integer (CLI ``--k``)."""
    if str(text) == "auto":
        return "auto"
    try:
        k = int(text)
    except ValueError as exc:
        raise ClusterError(f"--k must be a positive integer or 'auto', got {text!r}") from exc
    if k < 1:
        raise ClusterError(f"--k must be >= 1, got {k}")
    return k


def _shard_meta(archive: Any, ids: np.ndarray) -> dict[str, np.ndarray]:
    lo, hi = int(ids.min()), int(ids.max()) + 1
    fields = [f for f in ("time_ns", "source", "origin", "label") if f in archive.meta_fields]
    meta = archive.read_meta(lo, hi, fields)
    return {k: np.asarray(v)[ids - lo] for k, v in meta.items()}


def cluster_embeddings(url: str, out: str | Path, *, k: int | str = 12, train_size: int = 100_000,
                       auto_size: int = 10_000, k_range: range = range(2, 21), seed: int = 0, niter: int = 25,
                       restarts: int = CLUSTER_RESTARTS, whiten: int | None = None, montage_nearest: int = 16,
                       montage_random: int = 16, time_bins: int = 60, overwrite: bool = False,
                       progress: bool = False) -> ClusterReport:
    """Cluster the embeddings store at ``url`` and write the catalog and plots to the folder ``out``.

    ``restarts`` k-means++ seedings (seeds ``seed`` .. ``seed + restarts - 1``) each run ``niter`` Lloyd iterations on
    the training sample; the centroids of the best objective are kept. With ``whiten`` = d, every embedding is first
    projected on the training sample's d leading principal axes, each scaled to unit variance
    (:class:`~spacessl.evaluate.clustering.PcaWhitening`, saved as ``whitening.npz``), and k (``auto`` too),
    centroids and distances are those of the whitened vectors."""
    from spacessl.embed.store import open_embeddings

    t0 = time.perf_counter()
    say = print if progress else (lambda *a, **kw: None)
    if restarts < 1:
        raise ClusterError(f"--restarts must be >= 1, got {restarts} (k-means keeps the best of that many "
                           f"k-means++ seedings; default {CLUSTER_RESTARTS})")
    if train_size < 1 or auto_size < 2:
        raise ClusterError(f"--train-size must be >= 1 and --auto-size >= 2 embeddings, got {train_size} and "
                           f"{auto_size} (defaults 100000 and 10000)")
    if whiten is not None and whiten < 1:
        raise ClusterError(f"--whiten must be >= 1 principal axes, got {whiten} (leave it out to cluster the "
                           "embeddings as they are)")
    out = Path(out)
    if (out / "summary.json").exists() and not overwrite:
        raise ClusterError(f"{out} already holds a cluster catalog; pass --overwrite to replace it or choose "
                           "another --out")
    emb = open_embeddings(url)
    archive = emb.archive()
    if emb.n == 0:
        raise ClusterError(f"{url} holds no embeddings")
    pos = uniform_positions(emb, train_size, seed=seed)
    train, _ = take_rows(emb, pos)
    whitening = PcaWhitening.fit(train, whiten) if whiten else None
    if whitening is not None:
        train = whitening.apply(train)
        say(f"whitened to the sample's {whitening.dim} leading principal axes")
    scores: dict[int, float] = {}
    if k == "auto":
        sub = train[np.random.default_rng(seed).permutation(len(train))[:auto_size]]
        if not any(2 <= k_ < len(sub) for k_ in k_range):
            tried = f"k from {k_range[0]} to {k_range[-1]}" if len(k_range) else "no k (--k-min above --k-max)"
            raise ClusterError(f"--k auto: {tried} leaves none with 2 <= k < {len(sub)} (the embeddings it scores); "
                               "give --k-min >= 2 and --k-max >= --k-min (defaults 2 and 20), below the number of "
                               "embeddings")
        choice = choose_k(sub, k_range, seed=seed)
        k_val, reason, scores = choice.k, choice.reason, choice.scores
        say(f"--k auto: {reason}")
    else:
        k_val, reason = int(k), "given"
    if k_val > len(train):
        raise ClusterError(f"k={k_val} exceeds the {len(train)} embeddings available to train on")
    say(f"training spherical k-means, k={k_val}, on {len(train)} embeddings, best of {restarts} restarts")
    centroids, obj = fit_kmeans(train, k_val, niter=niter, nredo=restarts, seed=seed)
    del train

    tmp = out / ".parts"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp).mkdir(parents=True)
    tcol = archive.meta("time_ns")
    t_lo, t_hi = int(tcol.min().compute()), int(tcol.max().compute())
    edges = np.linspace(t_lo, t_hi + 1, time_bins + 1)
    over_time = np.zeros((k_val, time_bins), dtype=np.int64)
    sizes = np.zeros(k_val, dtype=np.int64)
    names = archive.label_names
    for s, (ids, vecs) in enumerate(emb.iter_shards()):
        if len(ids) == 0:
            continue
        cl, dist = assign(vecs if whitening is None else whitening.apply(vecs), centroids)
        meta = _shard_meta(archive, ids)
        tbin = np.clip(np.searchsorted(edges, meta["time_ns"], side="right") - 1, 0, time_bins - 1)
        np.add.at(over_time, (cl, tbin), 1)
        sizes += np.bincount(cl, minlength=k_val)
        df = frame(ids, meta["time_ns"], meta["source"], meta["origin"],
                   label=label_strings(meta.get("label", np.full(len(ids), -1)), names),
                   cluster=cl.astype(np.int32), distance=dist.astype(np.float32))
        for c in np.unique(cl):
            part = tmp / f"c{c:05d}"
            part.mkdir(exist_ok=True)
            df[cl == c].to_parquet(part / f"s{s:07d}.parquet", index=False)
        say(f"assigned shard {s}: {len(ids)} rows")

    writer = CatalogWriter(out / "catalog")
    mont_dir = out / "montages"
    mont_dir.mkdir(parents=True, exist_ok=True)
    for stale in mont_dir.glob("cluster_*.png"):  # an overwritten catalog's, maybe of more clusters
        stale.unlink()
    rng = np.random.default_rng(seed)
    montages = []
    sr = archive.attrs.get("sampling_rate_hz")
    for c in range(k_val):
        part = tmp / f"c{c:05d}"
        if not part.exists():
            continue
        df = pq.read_table(part).to_pandas()
        df = df.sort_values(["distance", "id"], kind="stable").reset_index(drop=True)
        df["rank"] = np.arange(len(df), dtype=np.int64)
        writer.append(df)
        near = df["id"].to_numpy()[:montage_nearest]
        rest = df["id"].to_numpy()[montage_nearest:]
        rand = np.sort(rng.choice(rest, size=min(montage_random, len(rest)), replace=False)) if len(rest) else rest
        pick = np.concatenate([near, rand])
        batch = archive.take(pick, fields=[])
        dmap = dict(zip(df["id"].to_numpy(), df["distance"].to_numpy(), strict=True))
        titles = [f"#{i} d={dmap[i]:.3f}" for i in pick]
        ncols = 8
        montages.append(str(montage(batch.samples, mont_dir / f"cluster_{c:03d}.png", modality=archive.modality,
                                    titles=titles, ncols=ncols, sampling_rate_hz=sr,
                                    suptitle=f"cluster {c}: {len(df)} samples; first {len(near)} nearest the "
                                             f"centroid, then {len(rand)} at random",
                                    row_labels={0: "nearest", -(-len(near) // ncols): "random"})))
    csv_path, pq_path = writer.close()
    shutil.rmtree(tmp)
    over_path = _plot_over_time(over_time, edges, out / "clusters_over_time.png")
    np.save(out / "centroids.npy", centroids)
    files = {}
    if whitening is not None:
        whitening.save(out / "whitening.npz")
        files["whitening"] = str(out / "whitening.npz")
    else:
        (out / "whitening.npz").unlink(missing_ok=True)  # an overwritten whitened catalog's
    report = ClusterReport(out=str(out), k=k_val, k_reason=reason, n=int(sizes.sum()), sizes=sizes.tolist(),
                           train_rows=int(len(pos)), objective=obj, restarts=restarts,
                           whiten=whitening.dim if whitening is not None else None,
                           files={"csv": str(csv_path), "parquet": str(pq_path), "montages": str(mont_dir),
                                  "montage_files": montages, "over_time": str(over_path),
                                  "centroids": str(out / "centroids.npy"), **files},
                           k_scores=scores, seconds=time.perf_counter() - t0, gpu=faiss_gpu_count() > 0)
    summary = asdict(report)
    summary.update(embeddings=str(url), archive=archive.url, seed=seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return report


def _plot_over_time(counts: np.ndarray, edges: np.ndarray, path: Path) -> Path:
    """Stacked share of each cluster per time bin (top) and samples per bin (bottom), as bars."""
    from spacessl.evaluate.montage import _plt

    plt = _plt()
    centres = pd.to_datetime(((edges[:-1] + edges[1:]) / 2).astype(np.int64), unit="ns", utc=True)
    total = counts.sum(axis=0)
    share = counts / np.maximum(total, 1)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, height_ratios=(3, 1))
    cmap = plt.get_cmap("tab20" if len(counts) > 10 else "tab10")
    width = (edges[1] - edges[0]) / 86400e9  # matplotlib date units are days
    bottom = np.zeros(share.shape[1])
    for c in range(len(counts)):
        ax1.bar(centres.to_pydatetime(), share[c], width=width, bottom=bottom, color=cmap(c % cmap.N),
                label=f"cluster {c}", linewidth=0)
        bottom += share[c]
    ax1.set_ylabel("share of samples")
    ax1.set_ylim(0, 1)
    ax1.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    ax1.set_title("cluster membership over time")
    ax2.bar(centres.to_pydatetime(), total, width=width, color="0.5", linewidth=0)
    ax2.set_ylabel("samples")
    ax2.set_xlabel("time (UTC)")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

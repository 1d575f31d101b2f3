"""``spacessl map``: a 2-D map of the embeddings, as a PNG and as a self-contained HTML page.

A uniform sample of up to ``sample`` embeddings is reduced by PCA to 50 dimensions and then by t-SNE
(van der Maaten & Hinton 2008; scikit-learn, PCA initialisation, cosine-normalised inputs) to 2. Points are
coloured by class label, by cluster (a cluster catalog from ``spacessl cluster`` or k-means on the sample) or by
time. The HTML page holds an inline SVG scatter and each point's thumbnail as a base64 PNG; hovering a point
shows its thumbnail, id, time, source and label. It needs no network and no external script.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spacessl.errors import SpacesslError, refuse_existing
from spacessl.evaluate.knn import l2_normalize

COLORS = ("label", "cluster", "time")


class MapError(SpacesslError):
    """The map cannot be drawn with these arguments."""


def tsne_2d(x: np.ndarray, *, seed: int = 0, perplexity: float = 30.0, pca_dim: int = 50) -> np.ndarray:
    """(N, D) → (N, 2): L2-normalise, PCA to ``pca_dim``, then t-SNE."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = l2_normalize(x)
    n = len(x)
    if n < 3:
        raise MapError(f"a map needs at least 3 embeddings, got {n}")
    dim = min(pca_dim, x.shape[1], n)
    z = PCA(n_components=dim, random_state=seed).fit_transform(x)
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    # OpenMP threads that busy-wait on a shared, oversubscribed node slow t-SNE down by an order of magnitude;
    # half the cores keeps it fast on an idle machine too
    with threadpool_limits(limits=max(1, (os.cpu_count() or 2) // 2)):
        return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed,
                    learning_rate="auto").fit_transform(z).astype(np.float32)


@dataclass
class MapReport:
    """What :func:`embedding_map` wrote."""

    png: str
    html: str | None
    n: int
    color: str
    seconds: float
    legend: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"map of {self.n} embeddings coloured by {self.color}: {self.png}"
                + (f" and {self.html}" if self.html else "") + f" ({self.seconds:.1f} s)")


def _colours(color: str, meta: dict[str, np.ndarray], names: list[str] | None, vectors: np.ndarray,
             clusters: tuple[Path, pd.DataFrame] | None, ids: np.ndarray, seed: int,
             k: int | None) -> tuple[np.ndarray, list[str], bool]:
    """(values (N,), category names, categorical?)."""
    if color == "label":
        lab = np.asarray(meta.get("label", np.full(len(ids), -1)), dtype=np.int64)
        cats = [*(names or []), "unlabelled"]
        return np.where(lab >= 0, lab, len(cats) - 1), cats, True
    if color == "cluster":
        if clusters is not None:
            cl = _catalog_clusters(*clusters, ids, meta.get("time_ns"))
        else:
            from spacessl.evaluate.clustering import kmeans

            kk = k or (len(names) if names else 12)
            cl = kmeans(vectors, min(kk, len(vectors)), seed=seed)
        kmax = int(cl.max()) + 1 if len(cl) else 0
        return cl, [f"cluster {c}" for c in range(kmax)], True
    if color == "time":
        return np.asarray(meta["time_ns"], dtype=np.int64), [], False
    raise MapError(f"Unknown colouring {color!r}. Available colourings are: {', '.join(COLORS)}.")


def _read_cluster_catalog(path: str | Path) -> tuple[Path, pd.DataFrame]:
    """(path, catalog) of the catalog that ``spacessl cluster`` wrote at ``path``, with columns id and cluster.
    Raises MapError naming the file and the fix."""
    from spacessl.evaluate.catalog import read_catalog

    path = Path(path)
    if not path.is_file():
        raise MapError(f"--clusters {path} does not exist; pass the catalog.csv or catalog.parquet that "
                       "`spacessl cluster` wrote, or leave --clusters out to cluster the sample")
    try:
        cat = read_catalog(path)
    except Exception as exc:  # noqa: BLE001 - pandas / pyarrow parse errors of many kinds
        raise MapError(f"--clusters {path} cannot be read as a catalog ({type(exc).__name__}: {exc})") from exc
    missing = {"id", "cluster"} - set(cat.columns)
    if missing:
        raise MapError(f"--clusters {path} has no column(s) {', '.join(sorted(missing))}; it is not a catalog of "
                       "`spacessl cluster`")
    return path, cat


def _catalog_clusters(path: Path, cat: pd.DataFrame, ids: np.ndarray, time_ns: np.ndarray | None = None) -> np.ndarray:
    """Cluster (N,) of each of ``ids`` (N,) in ``cat`` (read from ``path`` by :func:`_read_cluster_catalog`),
    whose times must be ``time_ns`` (N,) when given. Raises MapError when the catalog does not describe them."""
    from spacessl.evaluate.catalog import time_ns as catalog_times

    row = pd.Series(np.arange(len(cat)), index=cat["id"].to_numpy(np.int64))
    pos = row.reindex(np.asarray(ids, dtype=np.int64)).to_numpy()
    other = np.isnan(pos)
    if not other.any() and time_ns is not None and "time" in cat:
        catalog_ns = catalog_times(cat["time"])[pos.astype(np.int64)]
        other = catalog_ns != np.asarray(time_ns, dtype=np.int64)
    if other.any():
        raise MapError(f"--clusters {path} does not describe {int(other.sum())} of the {len(ids)} sampled embeddings "
                       "(id missing or at another time): it was made from another embeddings store; cluster this "
                       "one (`spacessl cluster E.zarr --out DIR`)")
    return cat["cluster"].to_numpy(np.int64)[pos.astype(np.int64)]


def _palette(i: int) -> str:
    import matplotlib

    cmap = matplotlib.colormaps["tab20" if i >= 10 else "tab10"]
    r, g, b, _ = cmap(i % cmap.N)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def embedding_map(url: str, out: str | Path, *, color: str = "label", sample: int = 5000, seed: int = 0,
                  perplexity: float = 30.0, html_page: bool = True, max_thumbnails: int = 2000,
                  clusters: str | None = None, k: int | None = None, overwrite: bool = False) -> MapReport:
    """Draw the map of the embeddings store ``url`` to ``out`` (a .png path); the HTML goes beside it.

    An existing PNG or HTML of that name is replaced only with ``overwrite`` (else refused before any work); an
    earlier HTML is removed with it when this map has none."""
    from spacessl.embed.store import open_embeddings
    from matplotlib.backend_bases import FigureCanvasBase

    from spacessl.evaluate.montage import _plt
    from spacessl.evaluate.sample import take_rows, uniform_positions

    if color not in COLORS:
        raise MapError(f"Unknown colouring {color!r}. Available colourings are: {', '.join(COLORS)}.")
    if not perplexity > 0 or max_thumbnails < 0:
        raise MapError(f"--perplexity must be > 0 and --thumbnails >= 0, got {perplexity:g} and {max_thumbnails} "
                       "(defaults 30 and 2000)")
    t0 = time.perf_counter()
    out = Path(out)
    plt = _plt()
    formats = FigureCanvasBase.get_supported_filetypes()  # what savefig writes, by suffix
    if out.suffix.lower().lstrip(".") not in formats:
        raise MapError(f"--out {out} must name the image file, e.g. map.png (formats: {', '.join(sorted(formats))}); "
                       "the HTML page is written beside it with the suffix .html")
    if not overwrite:
        refuse_existing([out, out.with_suffix(".html")] if html_page else [out], what="an embedding map",
                        error=MapError)
    catalog = _read_cluster_catalog(clusters) if color == "cluster" and clusters else None  # before the t-SNE
    emb = open_embeddings(url)
    archive = emb.archive()
    pos = uniform_positions(emb, sample, seed=seed)
    vectors, ids = take_rows(emb, pos)
    fields = [f for f in ("time_ns", "source", "label") if f in archive.meta_fields]
    meta = {key: np.asarray(v) for key, v in archive.take(ids, fields=fields).meta.items()}
    xy = tsne_2d(vectors, seed=seed, perplexity=perplexity)
    values, cats, categorical = _colours(color, meta, archive.label_names, vectors, catalog, ids, seed, k)

    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 7))
    if categorical:
        for c, name in enumerate(cats):
            sel = values == c
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=_palette(c), label=f"{name} ({int(sel.sum())})",
                           linewidths=0)
        ax.legend(markerscale=3, fontsize=7, loc="best")
    else:
        days = (values - values.min()) / 86400e9
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=4, c=days, cmap="viridis", linewidths=0)
        fig.colorbar(sc, ax=ax, label="days since the first sample")
    ax.set_title(f"t-SNE of {len(ids)} embeddings ({Path(str(url)).name}), coloured by {color}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)

    html_path = None
    if html_page:
        html_path = out.with_suffix(".html")
        _write_html(html_path, archive, ids, xy, values, cats, categorical, meta, max_thumbnails, seed, color, url)
    else:
        out.with_suffix(".html").unlink(missing_ok=True)  # an earlier map's, replaced under overwrite
    return MapReport(png=str(out), html=str(html_path) if html_path else None, n=len(ids), color=color,
                     seconds=time.perf_counter() - t0, legend={"categories": cats})


def _write_html(path: Path, archive: Any, ids: np.ndarray, xy: np.ndarray, values: np.ndarray, cats: list[str],
                categorical: bool, meta: dict[str, np.ndarray], max_thumbnails: int, seed: int, color: str,
                url: str) -> None:
    """Self-contained page: inline SVG scatter, base64 thumbnails, a few lines of inline script for hovering."""
    import matplotlib

    from spacessl.evaluate.catalog import iso_times, label_strings
    from spacessl.evaluate.montage import thumbnail_png

    n = len(ids)
    w, h, pad = 900, 800, 20
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    px = pad + (xy[:, 0] - lo[0]) / span[0] * (w - 2 * pad)
    py = pad + (1.0 - (xy[:, 1] - lo[1]) / span[1]) * (h - 2 * pad)
    if categorical:
        fills = [_palette(int(v)) for v in values]
    else:
        cmap = matplotlib.colormaps["viridis"]
        t = (values - values.min()) / max(1, values.max() - values.min())
        fills = [matplotlib.colors.to_hex(cmap(float(v))) for v in t]
    thumb_rows = np.sort(np.random.default_rng(seed).permutation(n)[:max_thumbnails])
    thumbs: dict[int, str] = {}
    for s in range(0, len(thumb_rows), 256):
        rows = thumb_rows[s:s + 256]
        batch = archive.take(ids[rows], fields=[])
        for r, sample in zip(rows, batch.samples, strict=True):
            thumbs[int(r)] = base64.b64encode(thumbnail_png(sample, archive.modality)).decode()
    times = iso_times(meta["time_ns"]) if "time_ns" in meta else np.full(n, "", dtype=object)
    labels = label_strings(meta.get("label", np.full(n, -1)), archive.label_names)
    info = [{"id": int(ids[i]), "t": str(times[i]), "s": str(meta.get("source", [""] * n)[i]),
             "l": str(labels[i]), "c": (cats[int(values[i])] if categorical and 0 <= values[i] < len(cats) else ""),
             "img": thumbs.get(i, "")} for i in range(n)]
    circles = "\n".join(f'<circle cx="{px[i]:.1f}" cy="{py[i]:.1f}" r="3" fill="{fills[i]}" data-i="{i}"/>'
                        for i in range(n))
    points_json = json.dumps(info).replace("</", "<\\/")  # never closes the script element early
    legend = ""
    if categorical:
        legend = "".join(f'<span style="color:{_palette(c)}">&#9679;</span> {html.escape(name)} &nbsp; '
                         for c, name in enumerate(cats) if (values == c).any())
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>spacessl map: {html.escape(str(url))}</title>
<style>
body {{ font-family: sans-serif; margin: 12px; }}
svg circle {{ opacity: 0.8; }} svg circle:hover {{ stroke: black; stroke-width: 1.5; opacity: 1; }}
#tip {{ position: fixed; display: none; background: white; border: 1px solid #888; padding: 6px; font-size: 12px;
        pointer-events: none; box-shadow: 2px 2px 6px rgba(0,0,0,.3); }}
#tip img {{ display: block; image-rendering: pixelated; width: auto; height: 128px; margin-bottom: 4px; }}
</style></head><body>
<h3>t-SNE map of {n} embeddings of {html.escape(str(url))}, coloured by {html.escape(color)}</h3>
<div>{legend}</div>
<svg id="map" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">
<rect width="{w}" height="{h}" fill="#fafafa"/>
{circles}
</svg>
<div id="tip"></div>
<script>
const P = {points_json};
const tip = document.getElementById("tip");
document.getElementById("map").addEventListener("mousemove", function (ev) {{
  const i = ev.target.getAttribute && ev.target.getAttribute("data-i");
  if (i === null || i === undefined) {{ tip.style.display = "none"; return; }}
  const p = P[+i];
  tip.innerHTML = (p.img ? '<img src="data:image/png;base64,' + p.img + '">' : "") +
    "id " + p.id + "<br>" + p.t + "<br>" + p.s + (p.l ? "<br>label: " + p.l : "") + (p.c ? "<br>" + p.c : "");
  tip.style.left = (ev.clientX + 14) + "px"; tip.style.top = (ev.clientY + 14) + "px"; tip.style.display = "block";
}});
document.getElementById("map").addEventListener("mouseleave", function () {{ tip.style.display = "none"; }});
</script>
</body></html>
"""
    path.write_text(page)

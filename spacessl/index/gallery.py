"""Draw a query beside its neighbours: image tiles or multi-component waveform plots, captioned with rank,
distance, time and source.

Images are shown per tile with a 1-99.5 percentile stretch (grey) or scaled by the dtype's range (RGB); waveforms
as one small panel per component, each trace scaled to its own peak, against time in seconds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def _image_tile(ax: Any, sample: np.ndarray) -> None:
    """sample (C, H, W)."""
    x = sample.astype(np.float32)
    if x.shape[0] == 3:
        info_max = float(np.iinfo(sample.dtype).max) if np.issubdtype(sample.dtype, np.integer) else max(1.0, x.max())
        ax.imshow(np.clip(x.transpose(1, 2, 0) / info_max, 0, 1))
    else:
        img = x[0]
        lo, hi = np.percentile(img, [1.0, 99.5])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
    ax.set_xticks([])
    ax.set_yticks([])


def _wave_tile(ax: Any, trace: np.ndarray, rate_hz: float) -> None:
    """One component (T,), demeaned and scaled to its peak, against time in seconds."""
    x = trace.astype(np.float64)
    x = x - x.mean()
    peak = np.abs(x).max()
    t = np.arange(len(x)) / rate_hz
    ax.plot(t, x / peak if peak > 0 else x, lw=0.6, color="k")
    ax.set_ylim(-1.2, 1.2)
    ax.set_xlim(t[0], t[-1])
    ax.set_yticks([])
    ax.tick_params(labelsize=6)


def draw(result: Any, archive: Any, path: str | Path, *, columns: int = 5) -> Path:
    """Render ``result`` (a :class:`~spacessl.index.query.QueryResult`) with samples read from ``archive`` into the
    PNG ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    ids = result.ids
    neighbours = archive.take(ids, fields=[]).samples if len(ids) else np.empty((0, *archive.sample_shape))
    tiles: list[tuple[np.ndarray | None, str]] = []
    q = result.query
    q_caption = "query" + (f" id {q['id']}" if q.get("id") is not None else "")
    if q.get("file"):
        q_caption += f"\n{Path(q['file']).name}"
    q_caption += "".join(f"\n{q[key]}" for key in ("time", "source") if q.get(key))
    if q.get("label"):
        q_caption += f"  [{q['label']}]"
    tiles.append((None if result.query_sample is None else result.query_sample[0], q_caption))
    for r, sample in zip(result.results, neighbours):
        caption = f"#{r['rank']}  d={r['distance']:.3f}\n{r['time'] or ''}\n{r['source'] or ''}"
        if r.get("label"):
            caption += f"  [{r['label']}]"
        tiles.append((sample, caption))

    waveform = archive.modality == "waveform"
    C = archive.sample_shape[0]
    cols = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    tile_w, tile_h = (3.2, 0.9 + 0.6 * C) if waveform else (2.4, 2.9)
    fig = plt.figure(figsize=(cols * tile_w, rows * tile_h), dpi=100, layout="constrained")
    rate = float(archive.attrs.get("sampling_rate_hz") or 1.0)
    outer = fig.add_gridspec(rows, cols) if waveform else None
    for i, (sample, caption) in enumerate(tiles):
        if waveform:
            sub = outer[i // cols, i % cols].subgridspec(C, 1, hspace=0.0)
            axes = [fig.add_subplot(sub[c, 0]) for c in range(C)]
            for c, ax in enumerate(axes):
                if sample is None:
                    ax.axis("off")
                    continue
                _wave_tile(ax, sample[c], rate)
                ax.set_ylabel(archive.channels[c], fontsize=6, rotation=0, labelpad=6)
                if c < C - 1:
                    ax.set_xticklabels([])
                else:
                    ax.set_xlabel("s", fontsize=6, labelpad=1)
            axes[0].set_title(caption, fontsize=6.5, color="tab:red" if i == 0 else "k")
            if sample is None:
                axes[C // 2].text(0.5, 0.5, "(vector query)", ha="center", va="center", fontsize=8,
                                  transform=axes[C // 2].transAxes)
        else:
            ax = fig.add_subplot(rows, cols, i + 1)
            if sample is None:
                ax.axis("off")
                ax.text(0.5, 0.5, "(vector query)", ha="center", va="center", fontsize=9, transform=ax.transAxes)
            else:
                _image_tile(ax, sample)
                if i == 0:
                    for spine in ax.spines.values():
                        spine.set_edgecolor("tab:red")
                        spine.set_linewidth(2.5)
            ax.set_title(caption, fontsize=7, color="tab:red" if i == 0 else "k")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path

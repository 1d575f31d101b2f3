"""Montages: a grid of samples in one PNG; all-sky frames as tiles, waveforms as small line plots.

Frames are shown with a per-tile 1st–99.5th percentile stretch (the archives span more than a decade of
exposure); multi-channel frames show their first channel. Waveforms show every component, each scaled to the
window's peak and offset vertically, against time in seconds when the sampling rate is known.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def stretch(img: np.ndarray, lo: float = 1.0, hi: float = 99.5) -> np.ndarray:
    """(H, W) any dtype → float32 in [0, 1], clipped at the ``lo``/``hi`` percentiles."""
    img = np.asarray(img, dtype=np.float32)
    a, b = np.percentile(img, [lo, hi])
    if not b > a:
        b = a + 1.0
    return np.clip((img - a) / (b - a), 0.0, 1.0)


def tile_image(sample: np.ndarray) -> np.ndarray:
    """One image sample (C, H, W) → (H, W) float32 [0, 1] for display."""
    return stretch(np.asarray(sample)[0])


def _draw(ax, sample: np.ndarray, modality: str, sampling_rate_hz: float | None) -> None:
    if modality == "image":
        ax.imshow(tile_image(sample), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    w = np.asarray(sample, dtype=np.float32)
    w = w - w.mean(axis=-1, keepdims=True)
    peak = float(np.abs(w).max()) or 1.0
    t = np.arange(w.shape[-1]) / (sampling_rate_hz or 1.0)
    for c in range(w.shape[0]):
        ax.plot(t, w[c] / peak * 0.45 - c, lw=0.5, color=f"C{c}")
    ax.set_ylim(-w.shape[0] + 0.45, 0.55)
    ax.set_yticks([])
    ax.tick_params(labelsize=5, length=2, pad=1)


def montage(samples: np.ndarray, path: str | Path, *, modality: str, titles: Sequence[str] | None = None,
            ncols: int = 8, suptitle: str = "", sampling_rate_hz: float | None = None,
            row_labels: dict[int, str] | None = None, dpi: int = 110) -> Path:
    """Write ``samples`` (n, C, H, W) or (n, C, T) as a grid PNG at ``path``; returns the path.

    Args:
        titles: one short caption per sample.
        row_labels: grid row → a label drawn at its left (e.g. {0: "nearest", 2: "random"}).
    """
    plt = _plt()
    n = len(samples)
    ncols = max(1, min(ncols, n)) if n else 1
    nrows = max(1, -(-n // ncols))
    cell = (1.3, 1.3) if modality == "image" else (2.2, 1.1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell[0] * ncols + 0.4, cell[1] * nrows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        _draw(ax, samples[i], modality, sampling_rate_hz)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=5, pad=1.5)
    for r, text in (row_labels or {}).items():
        if r < nrows:
            axes[r, 0].set_ylabel(text, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=8)
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no samples", ha="center", va="center")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def thumbnail_png(sample: np.ndarray, modality: str, size: int = 64) -> bytes:
    """A small PNG (bytes) of one sample: a ``size`` px grey tile for frames, a ``2·size``×``size`` line plot
    for waveforms."""
    from PIL import Image, ImageDraw

    if modality == "image":
        img = Image.fromarray((tile_image(sample) * 255).astype(np.uint8), mode="L")
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    else:
        w = np.asarray(sample, dtype=np.float32)
        w = w - w.mean(axis=-1, keepdims=True)
        peak = float(np.abs(w).max()) or 1.0
        width, height = 2 * size, size
        img = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(img)
        colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
        rows = w.shape[0]
        xs = np.linspace(0, width - 1, w.shape[-1])
        for c in range(rows):
            mid = (c + 0.5) * height / rows
            ys = mid - w[c] / peak * (height / rows) * 0.48
            step = max(1, w.shape[-1] // (4 * width))
            draw.line(list(zip(xs[::step].tolist(), ys[::step].tolist(), strict=True)),
                      fill=colors[c % len(colors)], width=1)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()

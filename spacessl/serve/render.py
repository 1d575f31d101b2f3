"""Draw one archive sample as a PNG: image frames as contrast-stretched grey/colour tiles, waveforms as plots."""

from __future__ import annotations

import io

import numpy as np


def image_png(sample: np.ndarray, *, size: int = 256) -> bytes:
    """(C, H, W) frame → PNG bytes, stretched between its 1st and 99.5th percentiles."""
    from PIL import Image

    x = np.asarray(sample, dtype=np.float32)
    lo, hi = np.percentile(x, [1.0, 99.5])
    x = np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)
    x = (x * 255).astype(np.uint8)
    img = Image.fromarray(x[0]) if x.shape[0] == 1 else Image.fromarray(np.moveaxis(x[:3], 0, -1))
    img = img.resize((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def waveform_png(sample: np.ndarray, *, channels: list[str], sampling_rate_hz: float,
                 width_px: int = 480, height_px: int = 240) -> bytes:
    """(C, T) window → PNG bytes with one trace per channel (each scaled to its own peak)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(sample, dtype=np.float32)
    t = np.arange(x.shape[1]) / float(sampling_rate_hz)
    fig, ax = plt.subplots(figsize=(width_px / 100, height_px / 100), dpi=100)
    for i, trace in enumerate(x):
        trace = trace - trace.mean()
        peak = float(np.abs(trace).max()) or 1.0
        ax.plot(t, trace / peak * 0.45 - i, lw=0.6, color="k")
    ax.set_yticks([-i for i in range(len(x))], channels[: len(x)])
    ax.set_xlabel("time (s)")
    ax.set_xlim(t[0], t[-1] if len(t) > 1 else 1)
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

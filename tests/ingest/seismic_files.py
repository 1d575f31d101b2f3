"""Small continuous waveform files built with ObsPy for the waveform ingest tests.

Noise is white Gaussian (std ``noise`` counts) on a DC offset; an event is a 6 Hz wavelet with a 0.2 s rise and a
2 s decay, peak amplitude ``amp`` counts, on every component (so SNR = amp / noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from obspy import Stream, Trace, UTCDateTime

T0 = UTCDateTime(2020, 1, 1)
DAY = 86400.0


def wavelet(sr: float, amp: float, seconds: float = 8.0) -> np.ndarray:
    """(n,) float64 event wavelet: 6 Hz carrier, 0.2 s rise, 2 s e-folding decay."""
    t = np.arange(int(seconds * sr)) / sr
    env = np.minimum(t / 0.2, 1.0) * np.exp(-np.maximum(t - 0.2, 0) / 2.0)
    return amp * env * np.sin(2 * np.pi * 6.0 * t)


def station_stream(sta: str = "S1", *, start: UTCDateTime = T0, seconds: float = 3600.0, sr: float = 100.0,
                   comps: str = "ZNE", events: tuple[float, ...] = (), amp: float = 2000.0, noise: float = 100.0,
                   seed: int = 0, net: str = "XX", band: str = "HH", offset: float = 1000.0,
                   dtype=np.int32) -> Stream:
    """One station's continuous record: ``events`` are seconds after ``start``."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    st = Stream()
    for k, c in enumerate(comps):
        x = rng.normal(0.0, noise, n) + offset
        for ev in events:
            i = int(round(ev * sr))
            w = wavelet(sr, amp * (1.0 if k == 0 else 0.7))
            m = min(len(w), n - i)
            if 0 <= i < n:
                x[i:i + m] += w[:m]
        data = np.round(x).astype(dtype) if np.dtype(dtype).kind == "i" else x.astype(dtype)
        st.append(Trace(data, header={"network": net, "station": sta, "location": "", "channel": band + c,
                                      "sampling_rate": sr, "starttime": start}))
    return st


def write(st: Stream, path: str | Path, fmt: str = "MSEED") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "MSEED":
        st.write(str(path), format="MSEED", reclen=512)
    else:
        st.write(str(path), format=fmt)
    return path


def write_day_files(root: Path, stations: dict[str, tuple[float, ...]], *, days: int = 1, seconds: float = 1800.0,
                    **kwargs) -> list[Path]:
    """For each station and day, ``seconds`` of data starting at midnight in ``root/STA.DAY.mseed``."""
    paths = []
    for s, (sta, events) in enumerate(sorted(stations.items())):
        for d in range(days):
            st = station_stream(sta, start=T0 + d * DAY, seconds=seconds, events=events,
                                seed=100 * s + d, **kwargs)
            paths.append(write(st, root / f"{sta}.{d}.mseed"))
    return paths

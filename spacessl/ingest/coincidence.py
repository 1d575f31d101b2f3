"""Network coincidence of single-station triggers with ObsPy's ``coincidence_trigger``.

Each station-day task keeps a table of its triggers (onset, end, peak STA/LTA). ``coincidence_trigger`` wants a
Stream of characteristic functions, so for every group of time-overlapping triggers this module rebuilds, per
station, a characteristic function that ObsPy's ``trigger_onset`` turns back into exactly those triggers (the peak
at the onset sample, the off threshold until the end, zero elsewhere) and lets ObsPy decide which groups are seen
by at least ``min_stations`` stations within ``tolerance_s`` (its ``trigger_off_extension``). The groups are found
over the whole run, so an event that straddles midnight is judged as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TriggerTable:
    """The triggers of one station-day: (m,) onsets and ends (ns since the epoch), (m,) peak STA/LTA ratios."""

    source: str  #: NET.STA.LOC
    on_ns: np.ndarray
    off_ns: np.ndarray
    peak: np.ndarray


def coincident(tables: dict[int, TriggerTable], *, thr_on: float, thr_off: float, min_stations: int,
               tolerance_s: float, sampling_rate_hz: float) -> dict[int, list[str]]:
    """Which triggers belong to a network event.

    Args:
        tables: station-day input index -> its trigger table.
        thr_on, thr_off: the STA/LTA thresholds the triggers were found with.
        min_stations: coincidence sum needed (each station counts 1).
        tolerance_s: a trigger joins an event if it starts at most this long after the event's current end.
        sampling_rate_hz: the sample rate the triggers were found at (time resolution).

    Returns:
        input index -> per trigger, the comma list of the event's stations (sorted ``NET.STA.LOC``), or "" when the
        trigger is in no event seen by ``min_stations`` stations.
    """
    out = {i: [""] * len(t.on_ns) for i, t in tables.items()}
    rows = sorted((int(t.on_ns[k]), int(t.off_ns[k]), float(t.peak[k]), t.source, i, k)
                  for i, t in tables.items() for k in range(len(t.on_ns)))
    tol_ns = int(round(tolerance_s * 1e9))
    group: list[tuple] = []
    end = None
    for row in rows:
        if group and row[0] > end + tol_ns:
            _judge(group, out, thr_on, thr_off, min_stations, tolerance_s, sampling_rate_hz)
            group, end = [], None
        group.append(row)
        end = row[1] if end is None else max(end, row[1])
    if group:
        _judge(group, out, thr_on, thr_off, min_stations, tolerance_s, sampling_rate_hz)
    return out


def _judge(group: Sequence[tuple], out: dict[int, list[str]], thr_on: float, thr_off: float, min_stations: int,
           tolerance_s: float, sr: float) -> None:
    from obspy import Stream, Trace, UTCDateTime
    from obspy.signal.trigger import coincidence_trigger

    sources = sorted({r[3] for r in group})
    if len(sources) < min_stations:
        return
    dt = 1e9 / sr
    stream = Stream()
    for src in sources:
        mine = [r for r in group if r[3] == src]
        t0 = mine[0][0] - int(round(dt))
        n = int(round((max(r[1] for r in mine) - t0) / dt)) + 2
        cf = np.zeros(n)
        for on, off, peak, *_ in mine:
            a, b = int(round((on - t0) / dt)), int(round((off - t0) / dt))
            cf[a + 1:b + 1] = np.maximum(cf[a + 1:b + 1], thr_off)
            cf[a] = max(peak, thr_on)
        net, sta, loc = src.split(".")
        stream.append(Trace(cf, header={"network": net, "station": sta, "location": loc, "channel": "CF",
                                        "sampling_rate": sr, "starttime": UTCDateTime(ns=t0)}))
    events = coincidence_trigger(None, thr_on, thr_off, stream, min_stations,
                                 trigger_off_extension=tolerance_s, details=True)
    slack = int(round(dt))
    for ev in events:
        members = sorted(tid.rsplit(".", 1)[0] for tid in ev["trace_ids"])
        names = ",".join(members)
        t_lo = ev["time"].ns - slack
        t_hi = ev["time"].ns + int(round(ev["duration"] * 1e9)) + slack
        for on, _, _, src, i, k in group:
            if src in members and t_lo <= on <= t_hi:
                out[i][k] = names

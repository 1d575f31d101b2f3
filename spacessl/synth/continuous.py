"""Synthetic continuous seismic records: miniSEED day files with events of the four classes at known times.

Layout: one file per station-day, ``OUT_DIR/NET.STA.LOC.YYYY.DOY.mseed``, holding three traces HHZ, HHN, HHE
(int32 counts, STEIM2, 4096-byte records) that start at 00:00:00 UTC and cover the whole day; beside them
``catalog.csv`` (the truth: one row per event and station that recorded it) and ``stations.csv`` (codes and local
array coordinates).

The stations form a compact array (aperture about 3 km, on an ice shelf like the Neumayer array; station codes
from :data:`spacessl.synth.seismic.STATIONS`). Ambient noise is continuous across hours and days (blocks
cross-faded with constant power): a microseism swell whose level drifts over days and cultural noise with a daily
cycle. Events (Poisson, ``events_per_hour``, at least 90 s apart, never within a minute of midnight):

- ``icequake``: a source within 2.5 km of the array centre, seen on every station with move-out (vp 3.8 km/s,
  vs 2.0 km/s in ice, S–P < 1 s) and amplitude falling with distance;
- ``earthquake``: 15–45 km away at 5–15 km depth (vp 6.0, vs 3.5 km/s, S–P 1.9–5.6 s), seen on every station;
- ``spike``: a glitch on one component of one station;
- ``noise``: an emergent cultural burst at one station (what fools a trigger).

``snr`` in the catalog is the RMS of the event's strongest 0.5 s on its strongest component divided by the expected
RMS of the ambient noise on that component at that time (a 0.5 s STA/LTA trigger sees about 1 + snr²);
``peak_snr`` is the event's peak over the same noise RMS; ``time`` is the first arrival at that station (for an
earthquake with a weak P the trigger may come at the S arrival, ``s_minus_p_s`` later).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.fft import irfft, next_fast_len, rfftfreq
from scipy.signal import resample_poly

from spacessl.errors import SpacesslError
from spacessl.synth.seismic import (CLASSES, STATIONS, Station, event_params, noise_profile, render_event,
                                    short_term_rms)

CHANNEL_CODES = ("HHZ", "HHN", "HHE")
_BLOCK_S = 3600
_OVERLAP_S = 60
_MICRO_FS = 5.0
_DAY_S = 86400
CATALOG_COLUMNS = ("event_id", "time", "time_ns", "station", "label", "snr", "peak_snr", "component", "s_minus_p_s",
                   "distance_km", "origin_time_ns")


@dataclass(frozen=True)
class _Site:
    station: Station
    x_km: float
    y_km: float
    micro_rms: float  #: microseism RMS relative to cultural noise
    horizontal: np.ndarray  #: (3,) microseism factor per component (1 for Z)
    counts_per_unit: float
    offsets: np.ndarray  #: (3,) digitiser offsets, counts
    drift: tuple[np.ndarray, np.ndarray]  #: periods (s) and phases of the microseism level drift
    profile: object


def _stations(n: int, seed: int) -> list[_Site]:
    rng = np.random.default_rng([seed, 0xC0])
    sites = []
    for i in range(n):
        sta = STATIONS[i] if i < len(STATIONS) else Station("AW", f"VN{i + 1:02d}", "", 0.0, 0.0)
        r = 0.0 if i == 0 else rng.uniform(0.8, 1.5)
        a = rng.uniform(0, 2 * np.pi)
        srng = np.random.default_rng([seed, 0xC1, i])
        sites.append(_Site(station=sta, x_km=r * math.cos(a), y_km=r * math.sin(a),
                           micro_rms=math.exp(srng.uniform(math.log(0.2), math.log(1.0))),
                           horizontal=np.array([1.0, *srng.uniform(1.0, 2.0, 2)]),
                           counts_per_unit=math.exp(srng.uniform(math.log(10), math.log(300))),
                           offsets=srng.uniform(-5000, 5000, 3),
                           drift=(srng.uniform(12, 96, 3) * 3600, srng.uniform(0, 2 * np.pi, 3)),
                           profile=noise_profile(srng)))
    return sites


def _levels(site: _Site, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Microseism and cultural noise RMS (relative units) at times ``t_s`` (s since the start epoch, UTC)."""
    periods, phases = site.drift
    drift = np.sum([np.sin(2 * np.pi * t_s / p + ph) for p, ph in zip(periods, phases)], axis=0) / math.sqrt(3)
    micro = site.micro_rms * np.exp(0.35 * drift)
    local_h = (t_s / 3600.0 - 0.55) % 24  # about 8° W: local solar time
    cultural = 1.0 + 0.7 * np.clip(np.sin(2 * np.pi * (local_h - 7) / 24) * 1.5, 0, 1)
    return micro, cultural


def _spectra(site: _Site, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude spectra of one hour block: high-frequency part at ``fs`` and microseism part at 5 Hz."""
    prof = site.profile
    n = int(round((_BLOCK_S + _OVERLAP_S) * fs))
    f = rfftfreq(next_fast_len(n, real=True), 1 / fs)
    lo, hi = prof.cultural_band_hz
    amp = prof.cultural_amp / (1 + (lo / np.maximum(f, 1e-3)) ** 4) / (1 + (f / hi) ** 4) + prof.floor_amp
    if prof.line_hz is not None and prof.line_hz < fs / 2:
        amp = amp + 3 * prof.cultural_amp * np.exp(-0.5 * ((f - prof.line_hz) / 0.05) ** 2)
    amp *= 1 / (1 + (0.5 / np.maximum(f, 1e-3)) ** 4)
    n_lo = int(round((_BLOCK_S + _OVERLAP_S) * _MICRO_FS)) + 8
    f_lo = rfftfreq(next_fast_len(n_lo, real=True), 1 / _MICRO_FS)
    lf = np.log(np.maximum(f_lo, 1e-4))
    a_lo = (prof.micro_amp * np.exp(-0.5 * ((lf - math.log(prof.micro_hz)) / 0.35) ** 2)
            + prof.primary_amp * np.exp(-0.5 * ((lf - math.log(prof.primary_hz)) / 0.25) ** 2))
    a_lo *= 1 / (1 + (0.02 / np.maximum(f_lo, 1e-4)) ** 4) / (1 + (f_lo / 1.5) ** 8)
    return amp, a_lo


def _noise_block(site: _Site, idx: int, comp: int, b: int, seed: int, fs: float,
                 spectra: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Ambient noise of hour block ``b`` (covering [b·1h − 60 s, (b+1)·1h)), (n,) float64 relative units."""
    rng = np.random.default_rng([seed, 0xB1, idx, comp, b])
    n = int(round((_BLOCK_S + _OVERLAP_S) * fs))
    amp, a_lo = spectra
    # high-frequency part (cultural band, spectral line, white floor) at the full rate
    hf = irfft((rng.standard_normal(len(amp)) + 1j * rng.standard_normal(len(amp))) * amp, 2 * (len(amp) - 1))[:n]
    hf /= hf.std()
    # microseism at a low rate, then interpolated (polyphase) to the full rate
    n_lo = int(round((_BLOCK_S + _OVERLAP_S) * _MICRO_FS)) + 8
    micro = irfft((rng.standard_normal(len(a_lo)) + 1j * rng.standard_normal(len(a_lo))) * a_lo,
                  2 * (len(a_lo) - 1))[:n_lo]
    micro /= micro.std()
    up = fs / _MICRO_FS
    if abs(up - round(up)) < 1e-9:
        micro = resample_poly(micro, int(round(up)), 1)[:n]
    else:
        micro = np.interp(np.arange(n) / fs, np.arange(n_lo) / _MICRO_FS, micro)
    # levels drift over hours: evaluated every 10 s and held (steps far below the noise)
    step = max(1, int(round(10 * fs)))
    t_s = b * _BLOCK_S - _OVERLAP_S + np.arange(0, n, step) / fs
    lv_micro, lv_cult = _levels(site, t_s)
    lv_micro = np.repeat(lv_micro * site.horizontal[comp], step)[:n]
    lv_cult = np.repeat(lv_cult, step)[:n]
    return lv_micro * micro + lv_cult * hf


def _day_noise(site: _Site, idx: int, comp: int, day: int, seed: int, fs: float) -> np.ndarray:
    """Continuous ambient noise of ``day`` (0-based from the start), (86400·fs,) float64.

    Hour block b covers [b·1h − 60 s, (b+1)·1h); the last minute of each hour cross-fades into the next block,
    so the record is seamless across hours and days (day d uses blocks 24d … 24d+24).
    """
    bs, ov = int(round(_BLOCK_S * fs)), int(round(_OVERLAP_S * fs))
    blocks_per_day = _DAY_S // _BLOCK_S
    out = np.empty(blocks_per_day * bs)
    u = (np.arange(ov) + 0.5) / ov
    fade_in, fade_out = np.sin(0.5 * np.pi * u), np.cos(0.5 * np.pi * u)
    spectra = _spectra(site, fs)
    prev = _noise_block(site, idx, comp, day * blocks_per_day, seed, fs, spectra)
    for k in range(blocks_per_day):
        nxt = _noise_block(site, idx, comp, day * blocks_per_day + k + 1, seed, fs, spectra)
        seg = prev[ov:].copy()  # [b·1h, (b+1)·1h)
        seg[-ov:] = seg[-ov:] * fade_out + nxt[:ov] * fade_in  # constant-power cross-fade into the next hour
        out[k * bs:(k + 1) * bs] = seg
        prev = nxt
    return out


@dataclass(frozen=True)
class _Pick:
    event_id: int
    kind: str
    station_index: int
    onset_s: float  #: seconds since the start epoch
    snr: float
    s_minus_p_s: float | None
    back_azimuth_deg: float | None
    distance_km: float | None
    origin_s: float
    params: dict


def _events(sites: list[_Site], days: int, seed: int, events_per_hour: float) -> list[_Pick]:
    rng = np.random.default_rng([seed, 0xEE])
    picks: list[_Pick] = []
    t, eid = 0.0, 0
    span = days * _DAY_S
    cx = np.mean([s.x_km for s in sites])
    cy = np.mean([s.y_km for s in sites])
    while True:
        t += max(90.0, rng.exponential(3600.0 / events_per_hour))
        if t >= span:
            break
        if t % _DAY_S < 60 or t % _DAY_S > _DAY_S - 120:  # keep every event inside one day file
            continue
        kind = CLASSES[int(rng.integers(len(CLASSES)))]
        params = event_params(kind, rng)
        if kind in ("icequake", "earthquake"):
            if kind == "icequake":
                r, depth, vp, vs, ref = 2.5 * math.sqrt(rng.uniform()), rng.uniform(0.05, 0.4), 3.8, 2.0, 1.0
            else:
                r, depth, vp, vs, ref = rng.uniform(15, 45), rng.uniform(5, 15), 6.0, 3.5, 20.0
            az = rng.uniform(0, 2 * np.pi)
            ex, ey = cx + r * math.sin(az), cy + r * math.cos(az)
            snr_ref = math.exp(rng.uniform(math.log(1.0), math.log(100.0)))
            for i, s in enumerate(sites):
                dx, dy = ex - s.x_km, ey - s.y_km
                dist = math.sqrt(dx * dx + dy * dy + depth * depth)
                picks.append(_Pick(eid, kind, i, t + dist / vp, snr_ref * ref / max(dist, 0.2 * ref),
                                   dist * (1 / vs - 1 / vp), math.degrees(math.atan2(dx, dy)) % 360, dist, t, params))
        else:
            lo, hi = (2.0, 60.0) if kind == "spike" else (0.5, 4.0)
            picks.append(_Pick(eid, kind, int(rng.integers(len(sites))), t,
                               math.exp(rng.uniform(math.log(lo), math.log(hi))), None, None, None, t, params))
        eid += 1
    return picks


def _render_pick(p: _Pick, site: _Site, seed: int, fs: float) -> tuple[int, np.ndarray, int, float]:
    """(first sample since the start epoch, waveform (3, n) in relative noise units, strongest component,
    peak amplitude over noise RMS)."""
    pre, dur = 1.0, {"icequake": 6.0, "earthquake": 45.0, "spike": 1.5, "noise": 30.0}[p.kind]
    rng = np.random.default_rng([seed, 0xEF, p.event_id, p.station_index])
    n = int(round((pre + dur) * fs))
    first = int(round((p.onset_s - pre) * fs))
    onset_in = p.onset_s - first / fs
    ev = render_event(p.kind, p.params, rng, fs, n, onset_in, back_azimuth_deg=p.back_azimuth_deg,
                      s_minus_p_s=p.s_minus_p_s)
    strength = short_term_rms(ev, fs)
    comp = int(np.argmax(strength))
    micro, cult = _levels(site, np.array([p.onset_s]))
    rms = math.sqrt((micro[0] * site.horizontal[comp]) ** 2 + cult[0] ** 2)
    ev *= p.snr * rms / strength[comp]
    return first, ev, comp, float(np.abs(ev[comp]).max() / rms)


def write_continuous(out_dir: str | os.PathLike, stations: int = 3, days: int = 2, seed: int = 0,
                     sampling_rate_hz: float = 100.0, *, start: str = "2019-01-01", events_per_hour: float = 6.0,
                     overwrite: bool = False, progress: bool = True) -> dict:
    """Write ``days`` of continuous 3-component records for ``stations`` stations to ``out_dir``.

    Returns ``{"files": [paths], "catalog": path, "stations": path, "n_events": int}``. Refuses to write into
    a folder that already holds miniSEED files or a catalog unless ``overwrite``.
    """
    from obspy import Stream, Trace, UTCDateTime
    from tqdm.auto import tqdm

    if stations < 1 or days < 1:
        raise SpacesslError(f"need at least one station and one day (got stations={stations}, days={days})")
    if events_per_hour <= 0:
        raise SpacesslError(f"events_per_hour must be > 0, got {events_per_hour}")
    if sampling_rate_hz <= 0 or abs(sampling_rate_hz * _DAY_S - round(sampling_rate_hz * _DAY_S)) > 1e-6:
        raise SpacesslError(f"sampling_rate_hz={sampling_rate_hz} must be positive and give whole samples per day")
    out = Path(out_dir)
    if out.exists() and not overwrite and (any(out.glob("*.mseed")) or (out / "catalog.csv").exists()):
        raise SpacesslError(f"{out} already holds continuous data; pass --overwrite to replace it "
                            "or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for old in [*out.glob("*.mseed"), out / "catalog.csv", out / "stations.csv"]:
            if old.is_file():
                old.unlink()
    try:
        t0 = np.datetime64(start, "D")
    except ValueError as exc:
        raise SpacesslError(f"start={start!r} is not a date like 2019-01-01") from exc
    epoch_ns = int(t0.astype("datetime64[ns]").astype(np.int64))
    fs = float(sampling_rate_hz)
    sites = _stations(stations, seed)
    picks = _events(sites, days, seed, events_per_hour)
    files: list[str] = []
    rows: list[dict] = []
    bar = tqdm(total=stations * days, unit="station-day", desc="synth continuous", disable=not progress)
    n_day = int(round(_DAY_S * fs))
    for i, site in enumerate(sites):
        for d in range(days):
            data = np.stack([_day_noise(site, i, c, d, seed, fs) for c in range(3)])
            for p in picks:
                if p.station_index != i or not d * _DAY_S <= p.onset_s < (d + 1) * _DAY_S:
                    continue
                first, ev, comp, peak_snr = _render_pick(p, site, seed, fs)
                a = first - d * n_day
                data[:, a:a + ev.shape[1]] += ev[:, :max(0, min(ev.shape[1], n_day - a))]
                t_ns = epoch_ns + int(round(p.onset_s * 1e9))
                iso = str(np.datetime64(t_ns, "ns").astype("datetime64[us]")) + "Z"
                rows.append({"event_id": p.event_id, "time": iso, "time_ns": t_ns, "station": site.station.nslc,
                             "label": p.kind, "snr": round(p.snr, 3), "peak_snr": round(peak_snr, 3),
                             "component": "ZNE"[comp],
                             "s_minus_p_s": "" if p.s_minus_p_s is None else round(p.s_minus_p_s, 4),
                             "distance_km": "" if p.distance_km is None else round(p.distance_km, 3),
                             "origin_time_ns": epoch_ns + int(round(p.origin_s * 1e9))})
            counts = np.rint(data * site.counts_per_unit + site.offsets[:, None]).astype(np.int32)
            day_start = UTCDateTime(str(t0 + np.timedelta64(d, "D")))
            sta = site.station
            stream = Stream([Trace(data=counts[c], header={"network": sta.network, "station": sta.station,
                                                            "location": sta.location, "channel": CHANNEL_CODES[c],
                                                            "sampling_rate": fs, "starttime": day_start})
                             for c in range(3)])
            name = f"{sta.network}.{sta.station}.{sta.location}.{day_start.year}.{day_start.julday:03d}.mseed"
            stream.write(str(out / name), format="MSEED", encoding="STEIM2", reclen=4096)
            files.append(str(out / name))
            bar.update(1)
    bar.close()
    rows.sort(key=lambda r: (r["time_ns"], r["station"]))
    with open(out / "catalog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CATALOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    with open(out / "stations.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["station", "x_km", "y_km", "channels"])
        for s in sites:
            w.writerow([s.station.nslc, round(s.x_km, 4), round(s.y_km, 4), " ".join(CHANNEL_CODES)])
    return {"files": files, "catalog": str(out / "catalog.csv"), "stations": str(out / "stations.csv"),
            "n_events": len({r["event_id"] for r in rows})}

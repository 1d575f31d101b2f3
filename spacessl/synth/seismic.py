"""Labelled synthetic 3-component seismic windows: icequake, earthquake, spike, noise (and, on request, rare).

The classes follow the hand labels of Kinzel et al. (SRL 2024) at Neumayer station plus background noise:

- ``icequake``: short, impulsive, 5–30 Hz, S–P 0.1–0.9 s, short coda (local fracture in the ice shelf);
- ``earthquake``: 0.5–5 Hz, emergent P then a stronger, lower-frequency S 1.8–5.5 s later and a long coda;
- ``spike``: an instrumental glitch on one component, one to a few samples (delta, box, doublet or step),
  sometimes with the acausal ringing of the digitiser's FIR filter;
- ``noise``: coloured ambient noise (primary and secondary microseism peaks around 0.07 and 0.1–0.3 Hz, cultural
  noise at 1–30 Hz, white instrument noise), half of the windows with an emergent cultural burst;
- ``rare`` (only with ``rare_fraction > 0``): harmonic tremor, a gliding fundamental with overtones.

Windows are (3, T) float32 instrument counts, channel order Z, N, E. Amplitude carries no class information:
every window is scaled to a peak (about its mean) drawn log-uniformly over 3.5 decades and gets its station's
digitiser offset, whatever its class. SNR, onset time and station vary; SNR is the RMS of the event's strongest
0.5 s over the RMS of the noise on the same component (:func:`short_term_rms`), the quantity a short-term-average
trigger responds to (STA/LTA ≈ 1 + SNR²).

The waveform generators (:func:`make_event`, :func:`make_noise`, :func:`noise_profile`) are reused by
:mod:`spacessl.synth.continuous` to build continuous day files.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.fft import irfft, next_fast_len, rfftfreq

from spacessl.errors import SpacesslError

CLASSES: tuple[str, ...] = ("icequake", "earthquake", "spike", "noise")
RARE = "rare"
EVENT_KINDS: tuple[str, ...] = (*CLASSES, "tremor")  #: what make_event draws; "noise" = a cultural noise burst
CHANNELS: tuple[str, ...] = ("Z", "N", "E")
_EPOCH_NS = int(np.datetime64("2019-01-01T00:00:00", "ns").astype(np.int64))


def label_names(rare_fraction: float = 0.0) -> list[str]:
    """Class names in label order; ``rare`` is appended only when rare samples are planted."""
    return [*CLASSES, RARE] if rare_fraction > 0 else list(CLASSES)


@dataclass(frozen=True)
class Station:
    """A seismic station: network, station and location codes, position (deg) and digitiser offsets (counts)."""

    network: str
    station: str
    location: str
    lat_deg: float
    lon_deg: float

    @property
    def nslc(self) -> str:
        """``NET.STA.LOC`` as used in the archive's ``source`` field."""
        return f"{self.network}.{self.station}.{self.location}"


#: Stations on and around the Ekström ice shelf (Neumayer III), approximate positions.
STATIONS: tuple[Station, ...] = (
    Station("AW", "VNA1", "", -70.65, -8.26), Station("AW", "VNA2", "", -70.92, -8.43),
    Station("AW", "VNA3", "", -71.07, -8.91), Station("GE", "SNAA", "", -71.67, -2.84),
    Station("AW", "VNA4", "00", -70.72, -8.05), Station("AW", "ATKA", "00", -70.55, -7.80),
)


# --------------------------------------------------------------------------------------------- noise


@dataclass(frozen=True)
class NoiseProfile:
    """Amplitude spectrum of a station's ambient noise (relative units; :func:`make_noise` normalises).

    Gaussian bumps in log-frequency for the primary (``primary_hz``) and secondary (``micro_hz``) microseism,
    a band of cultural noise (``cultural_band_hz``), a white floor, and the horizontal/vertical microseism
    ratio (tilt makes horizontals noisier at low frequency).
    """

    micro_hz: float
    micro_amp: float
    primary_hz: float
    primary_amp: float
    cultural_band_hz: tuple[float, float]
    cultural_amp: float
    floor_amp: float
    horizontal_ratio: float
    line_hz: float | None  #: a narrow spectral line (generator, pump), or None

    def spectrum(self, f: np.ndarray, horizontal: bool = False) -> np.ndarray:
        """Amplitude spectral density (relative) at frequencies ``f`` (Hz), shape of ``f``."""
        lf = np.log(np.maximum(f, 1e-3))
        micro = self.micro_amp * np.exp(-0.5 * ((lf - math.log(self.micro_hz)) / 0.35) ** 2)
        primary = self.primary_amp * np.exp(-0.5 * ((lf - math.log(self.primary_hz)) / 0.25) ** 2)
        lo, hi = self.cultural_band_hz
        cultural = self.cultural_amp / (1 + (lo / np.maximum(f, 1e-3)) ** 4) / (1 + (f / hi) ** 4)
        amp = (micro + primary) * (self.horizontal_ratio if horizontal else 1.0) + cultural + self.floor_amp
        if self.line_hz is not None:
            amp = amp + 3 * self.cultural_amp * np.exp(-0.5 * ((f - self.line_hz) / 0.05) ** 2)
        highpass = 1 / (1 + (0.02 / np.maximum(f, 1e-4)) ** 4)  # 60 s instrument corner
        return (amp * highpass).astype(np.float64)


def noise_profile(rng: np.random.Generator) -> NoiseProfile:
    """A random but plausible ambient-noise spectrum."""
    lo = rng.uniform(1.0, 4.0)
    return NoiseProfile(
        micro_hz=rng.uniform(0.12, 0.3), micro_amp=math.exp(rng.uniform(math.log(8), math.log(60))),
        primary_hz=rng.uniform(0.06, 0.09), primary_amp=math.exp(rng.uniform(math.log(1), math.log(10))),
        cultural_band_hz=(lo, rng.uniform(max(lo * 2, 8.0), 35.0)),
        cultural_amp=math.exp(rng.uniform(math.log(0.3), math.log(3))), floor_amp=rng.uniform(0.05, 0.3),
        horizontal_ratio=rng.uniform(1.0, 2.5), line_hz=rng.uniform(5, 40) if rng.random() < 0.25 else None)


def coloured_noise(rng: np.random.Generator, n_samples: int, sampling_rate_hz: float,
                   spectrum: np.ndarray | None = None, profile: NoiseProfile | None = None,
                   horizontal: bool = False) -> np.ndarray:
    """Gaussian noise (n_samples,) float64 with the amplitude spectrum of ``profile`` (or an explicit
    ``spectrum`` sampled on ``rfftfreq(next_fast_len(n_samples))``), periodic over its FFT length."""
    m = next_fast_len(n_samples, real=True)
    if spectrum is None:
        spectrum = profile.spectrum(rfftfreq(m, 1 / sampling_rate_hz), horizontal=horizontal)
    spec = (rng.standard_normal(len(spectrum)) + 1j * rng.standard_normal(len(spectrum))) * spectrum
    spec[0] = 0.0
    return irfft(spec, m)[:n_samples]


def make_noise(rng: np.random.Generator, n_samples: int, sampling_rate_hz: float = 100.0,
               profile: NoiseProfile | None = None) -> np.ndarray:
    """Ambient noise, (3, n_samples) float32 (Z, N, E), vertical RMS 1.

    Generated over at least 4× the window (min. 60 s) and cut from the middle, so periods longer than the
    window show up as the slow swell they are in real records.
    """
    profile = profile or noise_profile(rng)
    n_long = max(4 * n_samples, int(60 * sampling_rate_hz))
    start = (n_long - n_samples) // 2
    out = np.empty((3, n_samples), dtype=np.float64)
    for c in range(3):
        x = coloured_noise(rng, n_long, sampling_rate_hz, profile=profile, horizontal=c > 0)
        out[c] = x[start:start + n_samples]
    return (out / (out[0].std() + 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------------------------- events


def _band_noise(rng: np.random.Generator, n: int, fs: float, lo: float, hi: float) -> np.ndarray:
    """Unit-RMS Gaussian noise band-limited to [lo, hi] Hz (smooth 4th-order edges), (n,)."""
    m = next_fast_len(n, real=True)
    f = rfftfreq(m, 1 / fs)
    amp = 1 / (1 + (lo / np.maximum(f, 1e-4)) ** 4) / (1 + (f / hi) ** 4)
    x = irfft((rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))) * amp, m)[:n]
    return x / (x.std() + 1e-12)


def _envelope(t: np.ndarray, onset: float, rise: float, decay: float) -> np.ndarray:
    """Zero before ``onset``, rises over ``rise`` s, then decays exponentially with time constant ``decay`` s."""
    dt = t - onset
    env = np.where(dt > 0, (1 - np.exp(-np.maximum(dt, 0) / rise)) * np.exp(-np.maximum(dt, 0) / decay), 0.0)
    return env


def _rotate(radial: np.ndarray, transverse: np.ndarray, vertical: np.ndarray, baz_deg: float) -> np.ndarray:
    """(Z, R, T) → (Z, N, E) for a back azimuth (deg from north); R points away from the source."""
    b = math.radians(baz_deg)
    north = -radial * math.cos(b) + transverse * math.sin(b)
    east = -radial * math.sin(b) - transverse * math.cos(b)
    return np.stack([vertical, north, east])


def event_params(kind: str, rng: np.random.Generator) -> dict:
    """Source parameters of one event of ``kind`` (frequency bands in Hz, times in s); shared by every station
    that records the event. Raises SpacesslError for an unknown kind."""
    if kind == "icequake":
        lo = rng.uniform(4, 9)
        return dict(p_band=(lo, rng.uniform(18, 38)), s_band=(lo * 0.8, rng.uniform(12, 25)),
                    p_rise=rng.uniform(0.004, 0.03), p_decay=rng.uniform(0.05, 0.25), s_ratio=rng.uniform(0.8, 3.0),
                    s_rise=rng.uniform(0.01, 0.06), s_decay=rng.uniform(0.08, 0.4), coda=rng.uniform(0.2, 0.8),
                    coda_ratio=rng.uniform(0.1, 0.35), incidence_deg=rng.uniform(30, 70),
                    s_minus_p_s=rng.uniform(0.1, 0.9), pulse_hz=rng.uniform(8, 20))
    if kind == "earthquake":
        return dict(p_band=(rng.uniform(0.6, 1.5), rng.uniform(3.5, 6.0)), s_band=(rng.uniform(0.4, 0.9),
                    rng.uniform(2.0, 4.0)), p_rise=rng.uniform(0.08, 0.4), p_decay=rng.uniform(0.6, 2.0),
                    s_ratio=rng.uniform(2.0, 5.0), s_rise=rng.uniform(0.2, 0.7), s_decay=rng.uniform(1.0, 3.0),
                    coda=rng.uniform(3.0, 9.0), coda_ratio=rng.uniform(0.3, 0.6), incidence_deg=rng.uniform(10, 35),
                    s_minus_p_s=rng.uniform(1.8, 5.5), pulse_hz=rng.uniform(1.5, 4.0))
    if kind == "spike":
        return dict(component=int(rng.integers(3)), width=int(rng.choice([1, 1, 1, 2, 3, 4, 5])),
                    shape=str(rng.choice(["delta", "box", "doublet", "step"], p=[0.4, 0.25, 0.2, 0.15])),
                    sign=float(rng.choice([-1.0, 1.0])), ringing=rng.uniform(0.05, 0.25) if rng.random() < 0.5 else 0.0)
    if kind == "noise":  # emergent cultural burst: vehicle, machinery, wind gust
        lo = rng.uniform(1.0, 8.0)
        return dict(band=(lo, rng.uniform(lo * 2, 40.0)), rise=rng.uniform(1.0, 4.0),
                    plateau=rng.uniform(0.0, 6.0), fall=rng.uniform(1.0, 5.0), polar=rng.uniform(0.3, 1.0, 3))
    if kind in ("tremor", RARE):
        return dict(f0=rng.uniform(0.8, 4.0), glide=rng.uniform(-0.25, 0.25), n_harm=int(rng.integers(3, 7)),
                    decay=rng.uniform(0.4, 0.8), rise=rng.uniform(1.0, 3.0), polar=rng.uniform(0.3, 1.0, 3))
    raise SpacesslError(f"unknown event kind {kind!r}; known kinds: {list(EVENT_KINDS)}")


def render_event(kind: str, params: dict, rng: np.random.Generator, sampling_rate_hz: float, n_samples: int,
                 onset_s: float, back_azimuth_deg: float | None = None, s_minus_p_s: float | None = None) -> np.ndarray:
    """Waveform (3, n_samples) float64 (Z, N, E) of an event with ``params`` (:func:`event_params`) whose first
    arrival is at ``onset_s``; peak |amplitude| over the three components is 1 (0 if it falls outside)."""
    fs = sampling_rate_hz
    t = np.arange(n_samples) / fs
    out = np.zeros((3, n_samples))
    if kind in ("icequake", "earthquake"):
        baz = rng.uniform(0, 360) if back_azimuth_deg is None else back_azimuth_deg
        sp = params["s_minus_p_s"] if s_minus_p_s is None else s_minus_p_s
        inc = math.radians(params["incidence_deg"])
        p_env = _envelope(t, onset_s, params["p_rise"], params["p_decay"])
        p_sig = _band_noise(rng, n_samples, fs, *params["p_band"]) * p_env
        # first motion: a one-sided pulse at the onset, so the P onset is sharp and polarised
        f_p = params["pulse_hz"]
        dt = t - onset_s
        pulse = np.where((dt >= 0) & (dt < 1 / f_p), np.sin(np.pi * f_p * np.maximum(dt, 0)), 0.0)
        p_sig = p_sig + 0.8 * rng.choice([-1.0, 1.0]) * pulse
        ts = onset_s + sp
        s_env = _envelope(t, ts, params["s_rise"], params["s_decay"])
        s_r = _band_noise(rng, n_samples, fs, *params["s_band"]) * s_env
        s_t = _band_noise(rng, n_samples, fs, *params["s_band"]) * s_env
        coda_env = _envelope(t, ts, params["s_rise"] * 2, params["coda"]) * params["coda_ratio"]
        coda = [_band_noise(rng, n_samples, fs, params["s_band"][0], params["p_band"][1] * 0.7) * coda_env
                for _ in range(3)]
        a_s = params["s_ratio"]
        vertical = p_sig * math.cos(inc) + a_s * 0.35 * s_r * math.sin(inc) + coda[0]
        radial = p_sig * math.sin(inc) + a_s * s_r * math.cos(inc) + coda[1]
        transverse = a_s * s_t + coda[2]
        out = _rotate(radial, transverse, vertical, baz)
    elif kind == "spike":
        i0 = int(round(onset_s * fs))
        w, c = params["width"], params["component"]
        shape = np.zeros(n_samples)
        if 0 <= i0 < n_samples:
            if params["shape"] == "delta":
                shape[i0] = 1.0
            elif params["shape"] == "box":
                shape[i0:i0 + w] = 1.0
            elif params["shape"] == "doublet":
                shape[i0:i0 + max(1, w // 2 + 1)] = 1.0
                shape[i0 + max(1, w // 2 + 1):i0 + 2 * max(1, w // 2 + 1)] = -rng.uniform(0.5, 1.0)
            else:  # step that relaxes back within a few samples
                k = np.arange(n_samples - i0)
                shape[i0:] = np.exp(-k / max(1.0, w))
            if params["ringing"]:  # acausal FIR ringing of the digitiser's anti-alias filter
                k = np.arange(-20, 21)
                fir = np.sinc(0.8 * k) * np.hanning(43)[1:-1]
                fir[20] = 1.0 / params["ringing"]
                shape = np.convolve(shape, fir * params["ringing"], mode="same")
        out[c] = params["sign"] * shape
    elif kind == "noise":
        p = params
        dt = t - onset_s
        env = np.clip(dt / p["rise"], 0, 1) ** 2 * np.clip(1 - (dt - p["rise"] - p["plateau"]) / p["fall"], 0, 1)
        env = np.where(dt > 0, env, 0.0)
        for c in range(3):
            out[c] = p["polar"][c] * _band_noise(rng, n_samples, fs, *p["band"]) * env
    elif kind in ("tremor", RARE):
        p = params
        dt = np.maximum(t - onset_s, 0)
        f_t = p["f0"] * (1 + p["glide"] * dt / max(t[-1], 1e-6))
        phase = 2 * np.pi * np.cumsum(f_t) / fs
        env = np.where(t > onset_s, 1 - np.exp(-dt / p["rise"]), 0.0)
        sig = sum(p["decay"] ** (h - 1) * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
                  for h in range(1, p["n_harm"] + 1))
        for c in range(3):
            out[c] = p["polar"][c] * sig * env * (1 + 0.15 * _band_noise(rng, n_samples, fs, 0.05, 0.3))
    else:
        raise SpacesslError(f"unknown event kind {kind!r}; known kinds: {list(EVENT_KINDS)}")
    peak = np.abs(out).max()
    return out / peak if peak > 0 else out


def short_term_rms(x: np.ndarray, sampling_rate_hz: float, window_s: float = 0.5) -> np.ndarray:
    """Largest RMS over any ``window_s`` window, per component: (3, T) → (3,). With the noise RMS this gives the
    SNR used throughout spacessl.synth: what a short-term-average trigger with that window responds to."""
    w = max(1, int(round(window_s * sampling_rate_hz)))
    c = np.cumsum(np.pad(np.asarray(x, dtype=np.float64) ** 2, ((0, 0), (1, 0))), axis=1)
    if x.shape[1] <= w:
        return np.sqrt(c[:, -1] / w)
    return np.sqrt(np.max(c[:, w:] - c[:, :-w], axis=1) / w)


def make_event(kind: str, rng: np.random.Generator, sampling_rate_hz: float = 100.0, *, n_samples: int | None = None,
               onset_s: float = 1.0, back_azimuth_deg: float | None = None, s_minus_p_s: float | None = None,
               **overrides) -> np.ndarray:
    """One event of ``kind`` ("icequake", "earthquake", "spike", "noise" = cultural burst, "tremor"), as a
    (3, n_samples) float32 waveform (Z, N, E) with its first arrival at ``onset_s`` and peak |amplitude| 1.

    ``n_samples`` defaults to 10 s. ``overrides`` replace source parameters of :func:`event_params`
    (e.g. ``component=2`` for a spike on E).
    """
    n = int(round(10 * sampling_rate_hz)) if n_samples is None else int(n_samples)
    params = event_params(kind, rng)
    unknown = set(overrides) - set(params)
    if unknown:
        raise SpacesslError(f"unknown parameters {sorted(unknown)} for a {kind}; known: {sorted(params)}")
    params.update(overrides)
    return render_event(kind, params, rng, sampling_rate_hz, n, onset_s, back_azimuth_deg,
                        s_minus_p_s).astype(np.float32)


# --------------------------------------------------------------------------------------------- windows

#: SNR ranges (log-uniform): RMS of the event's strongest 0.5 s over the noise RMS, on its strongest component
_SNR_RANGE = {"icequake": (2.0, 100.0), "earthquake": (2.0, 100.0), "spike": (2.0, 60.0), "noise": (0.5, 3.0),
              RARE: (1.0, 30.0)}


def _station_setup(seed: int) -> list[tuple[Station, NoiseProfile, np.ndarray]]:
    """Each station's typical noise and its digitiser offsets (3,) in counts, fixed by the seed."""
    out = []
    for i, sta in enumerate(STATIONS):
        rng = np.random.default_rng([seed, 0x57, i])
        out.append((sta, noise_profile(rng), rng.uniform(-3000, 3000, 3)))
    return out


def seismic_window(i: int, label: str, seed: int, stations: list, sampling_rate_hz: float, window_s: float
                   ) -> tuple[np.ndarray, dict]:
    """Window ``i`` of a synthetic data set: (3, T) float32 counts and its metadata (time, station, SNR, onset)."""
    rng = np.random.default_rng([seed, 0x5E, i])
    fs, n = sampling_rate_hz, int(round(window_s * sampling_rate_hz))
    sta, base_profile, offset = stations[int(rng.integers(len(stations)))]
    # the station's noise, varied a little from window to window (weather, time of day)
    prof = NoiseProfile(**{**base_profile.__dict__,
                           "micro_amp": base_profile.micro_amp * math.exp(rng.normal(0, 0.5)),
                           "cultural_amp": base_profile.cultural_amp * math.exp(rng.normal(0, 0.5))})
    x = make_noise(rng, n, fs, prof).astype(np.float64)
    snr, onset = 0.0, -1.0
    kind = label
    if label == "noise" and rng.random() >= 0.5:
        kind = None  # ambient noise only
    if kind is not None:
        lo, hi = _SNR_RANGE[kind]
        snr = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        params = event_params("tremor" if kind == RARE else kind, rng)
        if kind == "earthquake":
            onset = rng.uniform(0.5, max(0.6, window_s - params["s_minus_p_s"] - 1.5))
        elif kind == "icequake":
            onset = rng.uniform(0.5, window_s - 2.0)
        elif kind == "spike":
            onset = rng.uniform(0.2, window_s - 0.2)
        elif kind == "noise":
            onset = rng.uniform(0.0, window_s * 0.5)
        else:
            onset = rng.uniform(0.0, window_s * 0.3)
        ev = render_event("tremor" if kind == RARE else kind, params, rng, fs, n, onset)
        strength = short_term_rms(ev, fs)
        comp = int(np.argmax(strength))
        x += (snr * x[comp].std() / strength[comp]) * ev
    x -= x.mean(axis=1, keepdims=True)
    peak_counts = 10 ** rng.uniform(2.5, 6.0)
    x *= peak_counts / np.abs(x).max()
    x = np.rint(x + offset[:, None])
    t_ns = _EPOCH_NS + i * 900_000_000_000 + int(rng.integers(0, 840_000_000_000))
    return x.astype(np.float32), {"time_ns": t_ns, "source": sta.nslc, "snr": snr, "onset_s": onset}


def plan_labels(n: int, seed: int, rare_fraction: float = 0.0) -> np.ndarray:
    """Balanced labels (n,) int16 in a seeded random order (``rare`` planted at ``rare_fraction``)."""
    if n < 0:
        raise SpacesslError(f"n must be >= 0, got {n}")
    if not 0.0 <= rare_fraction < 0.5:
        raise SpacesslError(f"rare_fraction must be in [0, 0.5), got {rare_fraction}")
    n_rare = 0 if rare_fraction == 0 else min(n // 2, max(1, int(round(rare_fraction * n))))
    labels = np.concatenate([np.arange(n - n_rare) % len(CLASSES), np.full(n_rare, len(CLASSES))]).astype(np.int16)
    return labels[np.random.default_rng([seed, 0x1A]).permutation(n)]


def generate_seismic(n: int, seed: int = 0, *, sampling_rate_hz: float = 100.0, window_s: float = 10.0,
                     block_size: int = 256, rare_fraction: float = 0.0, start_block: int = 0
                     ) -> Iterator[tuple[np.ndarray, dict]]:
    """Stream ``n`` labelled windows in blocks of ``block_size``.

    Yields ``(x, meta)``: x (k, 3, T) float32 counts (Z, N, E; T = window_s · sampling_rate_hz); meta has
    ``time_ns`` (k,) int64 window start (UTC), ``source`` list of ``NET.STA.LOC``, ``origin`` list
    (``synthetic``), ``label`` (k,) int16 indexing :func:`label_names`, ``snr`` (k,) float32 (RMS of the event's
    strongest 0.5 s over the noise RMS on its strongest component; 0 for pure noise), ``onset_s`` (k,) float32
    first arrival within the window (-1 if none).
    Window i depends only on (seed, i, label plan), so any block size or ``start_block`` gives the same data.
    """
    if block_size < 1:
        raise SpacesslError(f"block_size must be >= 1, got {block_size}")
    if window_s * sampling_rate_hz < 16:
        raise SpacesslError(f"window of {window_s} s at {sampling_rate_hz} Hz is shorter than 16 samples")
    labels = plan_labels(n, seed, rare_fraction)
    names = label_names(rare_fraction)
    stations = _station_setup(seed)
    for b0 in range(start_block * block_size, n, block_size):
        b1 = min(n, b0 + block_size)
        xs, times, sources, snrs, onsets = [], [], [], [], []
        for i in range(b0, b1):
            x, m = seismic_window(i, names[labels[i]], seed, stations, sampling_rate_hz, window_s)
            xs.append(x)
            times.append(m["time_ns"])
            sources.append(m["source"])
            snrs.append(m["snr"])
            onsets.append(m["onset_s"])
        yield np.stack(xs), {"time_ns": np.asarray(times, dtype=np.int64), "source": sources,
                             "origin": ["synthetic"] * (b1 - b0), "label": labels[b0:b1].copy(),
                             "snr": np.asarray(snrs, dtype=np.float32), "onset_s": np.asarray(onsets, dtype=np.float32)}


def write_seismic_archive(out: str, n: int = 5000, seed: int = 0, *, sampling_rate_hz: float = 100.0,
                          window_s: float = 10.0, chunk_size: int = 256, shard_chunks: int = 16,
                          rare_fraction: float = 0.0, overwrite: bool = False, progress: bool = True) -> str:
    """Write ``n`` synthetic labelled windows (3, T) float32 counts to a waveform archive at ``out``.

    One block (= one chunk) is one writer input, so a killed run resumes where it stopped with a result
    identical to an uninterrupted run. Refuses to replace a complete archive unless ``overwrite``.
    """
    from tqdm.auto import tqdm

    from spacessl.archive import ArchiveWriter

    t = int(round(window_s * sampling_rate_hz))
    attrs = {"sampling_rate_hz": float(sampling_rate_hz), "window_s": float(window_s), "synthetic": "seismic",
             "synthetic_seed": int(seed), "rare_fraction": float(rare_fraction)}
    with ArchiveWriter(out, modality="waveform", sample_shape=(3, t), dtype="float32", units="counts",
                       channels=list(CHANNELS), label_names=label_names(rare_fraction), chunk_size=chunk_size,
                       shard_chunks=shard_chunks, extra_meta={"snr": "float32", "onset_s": "float32"}, attrs=attrs,
                       overwrite=overwrite) as w:
        start = w.resume_from
        bar = tqdm(total=n, initial=min(n, start * chunk_size), unit="window", desc="synth seismic",
                   disable=not progress)
        blocks = generate_seismic(n, seed, sampling_rate_hz=sampling_rate_hz, window_s=window_s,
                                  block_size=chunk_size, rare_fraction=rare_fraction, start_block=start)
        for b, (x, meta) in enumerate(blocks, start=start):
            w.append(x, input_index=b, **meta)
            bar.update(len(x))
        bar.close()
    return out

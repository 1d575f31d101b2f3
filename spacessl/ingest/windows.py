"""Cut aligned multi-component windows out of one station-day of continuous data.

This is the per-task compute of waveform ingest (no Ray, no archive here), in the manner of Kinzel et al.
(Seismological Research Letters 2024), who cut their training set out of continuous records with an STA/LTA trigger:

1. read every file of the station-day for the day plus its pads (``obspy.read`` with a time selection, so a
   neighbouring day file costs only the records it contributes);
2. per channel: convert to float64 counts, resample to the target rate (``scipy.signal.resample_poly`` for rational
   ratios), merge with ``Stream.merge(method=0)`` -- identical overlaps join, gaps and *conflicting* overlaps are
   masked -- and split into contiguous segments; optionally remove the instrument response per segment;
3. detect on each trigger component (default: every component, so that a glitch or an arrival seen best on a
   horizontal is not missed): demean, band-pass, ObsPy's ``recursive_sta_lta`` or ``classic_sta_lta``, ObsPy's
   ``trigger_onset``; triggers of different components that overlap in time become one (earliest onset, highest
   peak); triggers whose onset falls inside the day belong to this station-day;
4. cut ``window_s`` starting ``pre_s`` before each onset (``trigger="none"``: one window every ``stride_s`` on a
   grid anchored at UTC midnight and snapped to the first component's samples). Components whose samples sit off
   the window's sample grid by more than 1 % of a sample are Lanczos-interpolated onto it
   (``obspy.signal.interpolation.lanczos_interpolation``), otherwise taken at the nearest sample.

A window that would span a gap, a conflicting overlap or non-finite values is not kept but listed as a reject
with its reason. A component missing for the whole station-day makes one reject for the station-day. Windows near
the end of the day read the beginning of the next day's files; triggers in the first ``3 * lta_s`` of a day see the
end of the previous day (the recursive LTA converges within that), so a day boundary neither hides nor doubles
triggers, except for an onset within a sample or two of midnight whose CF differs slightly between the two tasks.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from fractions import Fraction
from typing import Any

import numpy as np

from spacessl.errors import SpacesslError
from spacessl.ingest.stationday import StationDay

TRIGGERS = ("recursive", "classic", "none")
RESPONSE_UNITS = {"VEL": "m/s", "DISP": "m", "ACC": "m/s**2"}
#: alternative last letters of a channel code for a component (SEED: 1/2 are orthogonal horizontals)
COMPONENT_ALIASES = {"N": "1", "E": "2"}
#: components whose sample grid is off the trigger component's by more than this fraction of a sample are
#: interpolated (same threshold ObsPy's merge uses for sub-sample misalignment)
MISALIGNMENT_THRESHOLD = 0.01
LANCZOS_A = 12

# reasons written to the rejects list
GAP = "gap"
OVERLAP = "overlap conflict"
MISSING = "missing component"
NONFINITE = "non-finite"
UNREADABLE = "unreadable"
READ_WARNING = "read warning"
NO_RESPONSE = "no response"


@dataclass(frozen=True)
class CutParams:
    """How windows are cut (seconds and Hz throughout). See ``spacessl ingest waveforms --help``."""

    trigger: str = "recursive"  #: "recursive" | "classic" (ObsPy STA/LTA) | "none" (regular windows)
    sta_s: float = 0.5
    lta_s: float = 10.0
    thr_on: float = 3.5
    thr_off: float = 1.5
    pre_s: float = 2.0  #: window start before the trigger onset
    window_s: float = 10.0
    components: str = "ZNE"  #: one letter per archive channel, in order
    sampling_rate_hz: float = 100.0  #: target rate; other rates are resampled
    stride_s: float = 10.0  #: window spacing for trigger="none"
    channels: str = "*"  #: glob(s) on SEED channel codes, comma separated (e.g. "HH?,EH?")
    trigger_component: str = ""  #: components to detect on, e.g. "Z"; "" = all of ``components``
    trigger_band_hz: tuple[float, float] | None = (1.0, 20.0)  #: band-pass before STA/LTA; None = raw
    remove_response: bool = False
    response_output: str = "VEL"

    def validate(self) -> None:
        """Raise SpacesslError naming the bad value and the valid range."""
        if self.trigger not in TRIGGERS:
            raise SpacesslError(f"unknown trigger {self.trigger!r}; available: {', '.join(TRIGGERS)}")
        if not self.sampling_rate_hz > 0:
            raise SpacesslError(f"--resample must be > 0 Hz, got {self.sampling_rate_hz}")
        if not self.window_s > 0 or self.n_samples < 2:
            raise SpacesslError(f"--window must hold at least 2 samples, got {self.window_s} s")
        if not 0 <= self.pre_s < self.window_s:
            raise SpacesslError(f"--pre must be in [0, window={self.window_s}), got {self.pre_s}")
        if not self.components or len(set(self.components)) != len(self.components):
            raise SpacesslError(f"--components must be distinct letters such as ZNE, got {self.components!r}")
        tc = self.trigger_component
        if tc and (len(set(tc)) != len(tc) or any(c not in self.components for c in tc)):
            raise SpacesslError(f"trigger component(s) {tc!r} must be distinct letters of --components "
                                f"{self.components!r}")
        if self.trigger == "none":
            if not self.stride_s > 0:
                raise SpacesslError(f"--stride must be > 0 s, got {self.stride_s}")
        else:
            if not 0 < self.sta_s < self.lta_s:
                raise SpacesslError(f"need 0 < --sta < --lta, got sta={self.sta_s}, lta={self.lta_s}")
            if not 0 < self.thr_off <= self.thr_on:
                raise SpacesslError(f"need 0 < --off <= --on, got on={self.thr_on}, off={self.thr_off}")
        if self.trigger_band_hz is not None:
            lo, hi = self.trigger_band_hz
            if not 0 < lo < hi:
                raise SpacesslError(f"trigger band must be 0 < fmin < fmax, got {self.trigger_band_hz}")
            if lo >= 0.5 * self.sampling_rate_hz:
                raise SpacesslError(f"trigger band fmin={lo} Hz is not below the Nyquist frequency of --resample "
                                    f"{self.sampling_rate_hz} Hz; lower it or pass --no-trigger-filter")
        if self.remove_response and self.response_output not in RESPONSE_UNITS:
            raise SpacesslError(f"response output {self.response_output!r} is not one of {list(RESPONSE_UNITS)}")

    @property
    def n_samples(self) -> int:
        """T, samples per window."""
        return int(round(self.window_s * self.sampling_rate_hz))

    @property
    def dt_ns(self) -> float:
        return 1e9 / self.sampling_rate_hz

    @property
    def trig_comps(self) -> str:
        """Components detected on; their triggers are merged (overlapping triggers become one)."""
        return self.trigger_component or self.components

    @property
    def pad_before_ns(self) -> int:
        """Data read before midnight: trigger warm-up (3 LTA) and the pre-trigger part of a window."""
        if self.trigger == "none":
            return 0
        return int((3 * self.lta_s + self.pre_s + 1.0) * 1e9)

    @property
    def pad_after_ns(self) -> int:
        """Data read after the next midnight: the rest of a late window and the end of a late trigger."""
        return int((self.window_s + (0 if self.trigger == "none" else 60.0) + 1.0) * 1e9)

    @property
    def units(self) -> str:
        return RESPONSE_UNITS[self.response_output] if self.remove_response else "counts"


@dataclass
class StationDayResult:
    """Windows, rejects and triggers of one station-day.

    Shapes: k windows of C components and T samples; m triggers (all onsets in the day, kept or not).
    """

    index: int
    source: str
    samples: np.ndarray  #: (k, C, T) float32, counts (or physical units after response removal)
    time_ns: np.ndarray  #: (k,) int64 UTC time of the first sample
    ref_ns: np.ndarray  #: (k,) int64 trigger onset (window start + pre_s)
    trigger_ratio: np.ndarray  #: (k,) float32 peak STA/LTA of the trigger; NaN for trigger="none"
    trigger_id: np.ndarray  #: (k,) int32 row in the trigger table; -1 for trigger="none"
    channel_codes: list[str]  #: (k,) e.g. "HHZ,HHN,HHE"
    origin: list[str]  #: (k,) file of the trigger component at the window start
    rejects: list[tuple[str, str, str]] = field(default_factory=list)  #: (origin, reason, detail)
    trig_on_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  #: (m,)
    trig_off_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  #: (m,)
    trig_peak: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  #: (m,)

    @property
    def n(self) -> int:
        return int(self.samples.shape[0])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (for an .npz staging part)."""
        rej = np.asarray(self.rejects, dtype=str).reshape(-1, 3)
        return {"index": np.int64(self.index), "source": np.asarray(self.source), "samples": self.samples,
                "time_ns": self.time_ns, "ref_ns": self.ref_ns, "trigger_ratio": self.trigger_ratio,
                "trigger_id": self.trigger_id, "channel_codes": np.asarray(self.channel_codes, dtype=str),
                "origin": np.asarray(self.origin, dtype=str), "rejects": rej, "trig_on_ns": self.trig_on_ns,
                "trig_off_ns": self.trig_off_ns, "trig_peak": self.trig_peak}

    @classmethod
    def from_arrays(cls, a: Any) -> StationDayResult:
        return cls(index=int(a["index"]), source=str(a["source"]), samples=a["samples"], time_ns=a["time_ns"],
                   ref_ns=a["ref_ns"], trigger_ratio=a["trigger_ratio"], trigger_id=a["trigger_id"],
                   channel_codes=[str(s) for s in a["channel_codes"]], origin=[str(s) for s in a["origin"]],
                   rejects=[tuple(str(x) for x in r) for r in a["rejects"]], trig_on_ns=a["trig_on_ns"],
                   trig_off_ns=a["trig_off_ns"], trig_peak=a["trig_peak"])


def iso(ns: int) -> str:
    """ns since the epoch -> ISO 8601 UTC string."""
    from obspy import UTCDateTime

    return str(UTCDateTime(ns=int(ns)))


# ----------------------------------------------------------------------------------------------- components


@dataclass
class _Component:
    """The contiguous segments of one channel: start times (ns), data (float64), bad intervals."""

    letter: str
    channel: str
    starts: np.ndarray  # (S,) int64
    datas: list[np.ndarray]  # float32
    bad: list[tuple[int, int, str]]  # (start_ns, end_ns, reason) of masked runs
    sr: float

    def __post_init__(self) -> None:
        #: (S,) int64 time just after the last sample of each segment
        self.ends = self.starts + np.round(np.array([len(d) for d in self.datas], dtype=np.float64) * 1e9
                                           / self.sr).astype(np.int64)

    def overlaps(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """(k,) bool: whether [lo, hi) overlaps any segment (segments are sorted and disjoint)."""
        j = np.searchsorted(self.ends, lo, side="right")
        ok = j < len(self.starts)
        out = np.zeros(len(lo), bool)
        out[ok] = self.starts[j[ok]] < hi[ok]
        return out

    def extract(self, start_ns: int, n: int) -> np.ndarray | None:
        """(n,) samples on the grid start_ns + i/sr, or None when no segment covers it."""
        sr = self.sr
        j = int(np.searchsorted(self.starts, start_ns + int(0.5e9 / sr), side="right")) - 1
        if j < 0:
            return None
        data = self.datas[j]
        pos = (start_ns - int(self.starts[j])) * sr / 1e9
        i = int(round(pos))
        frac = pos - i
        if abs(frac) <= MISALIGNMENT_THRESHOLD:
            if i < 0 or i + n > len(data):
                return None
            return data[i:i + n]
        lo, hi = i - LANCZOS_A - 1, i + n + LANCZOS_A + 1
        if lo < 0 or hi > len(data):
            return None
        from obspy.signal.interpolation import lanczos_interpolation

        piece = np.ascontiguousarray(data[lo:hi], dtype=np.float64)
        return lanczos_interpolation(piece, 0.0, 1.0, pos - lo, 1.0, n, a=LANCZOS_A)

    def classify(self, lo: int, hi: int) -> str:
        """Why [lo, hi) is not covered: a conflicting overlap inside it, else a gap."""
        for s, e, reason in self.bad:
            if s < hi and e > lo and reason == OVERLAP:
                return OVERLAP
        return GAP


def _to_rate(tr, target: float):
    """Trace resampled to ``target`` Hz (float64 data)."""
    from scipy.signal import resample_poly

    sr = float(tr.stats.sampling_rate)
    tr.data = np.asarray(tr.data, dtype=np.float64)
    if abs(sr - target) <= 1e-7 * target:
        tr.stats.sampling_rate = target
        return tr
    ratio = Fraction(target / sr).limit_denominator(1000)
    if abs(float(ratio) - target / sr) <= 1e-9 * target / sr:
        tr.data = resample_poly(tr.data, ratio.numerator, ratio.denominator)
        tr.stats.sampling_rate = target
        return tr
    if target < sr:  # anti-alias before interpolating down
        tr.filter("lowpass", freq=0.45 * target, corners=8, zerophase=True)
    tr.interpolate(sampling_rate=target, method="lanczos", a=LANCZOS_A)
    return tr


def _segments(st, overlaps: list[tuple[int, int]],
              dt: float) -> tuple[list[tuple[int, np.ndarray]], list[tuple[int, int, str]]]:
    """Unmasked runs of merged traces (views, no copy) and their masked runs, classified gap / overlap."""
    bad: list[tuple[int, int, str]] = []
    segs: list[tuple[int, np.ndarray]] = []
    for tr in st:
        t0 = tr.stats.starttime.ns
        if not np.ma.isMaskedArray(tr.data):
            segs.append((t0, tr.data))
            continue
        mask = np.ma.getmaskarray(tr.data)
        raw = np.ma.getdata(tr.data)
        edges = np.flatnonzero(np.diff(np.r_[0, mask.view(np.int8), 0]))  # masked runs [a, b)
        for a, b in zip(edges[::2], edges[1::2]):
            s, e = t0 + int(round(a * dt)), t0 + int(round(b * dt))
            reason = OVERLAP if any(os_ <= e and oe >= s for os_, oe in overlaps) else GAP
            bad.append((s, e, reason))
        bounds = np.r_[0, edges, len(mask)]
        for a, b in zip(bounds[::2], bounds[1::2]):  # unmasked runs (views, no copy)
            if b > a:
                segs.append((t0 + int(round(a * dt)), raw[a:b]))
    segs.sort(key=lambda seg: seg[0])
    return segs, bad


def _merge_channel(traces: list, params: CutParams,
                   inventory: Any) -> tuple[list[tuple[int, np.ndarray]], list[tuple[int, int, str]]]:
    """Contiguous segments (start ns, float32 data) and masked intervals of one channel (module docstring).

    Segments are float32, the archive's sample type (exact for counts up to 2**24; the STA/LTA runs on a float64
    copy), which halves the memory a station-day task holds.

    Pieces that already follow each other sample for sample at the target rate (day files, or a day and its
    neighbours' pads) are joined directly; anything else goes through ``Stream.merge(method=0)``.
    """
    from obspy import Stream, Trace, UTCDateTime

    target = params.sampling_rate_hz
    dt = 1e9 / target
    bad: list[tuple[int, int, str]] = []
    segs: list[tuple[int, np.ndarray]] = []
    trs = sorted(traces, key=lambda tr: tr.stats.starttime.ns)
    starts = [tr.stats.starttime.ns for tr in trs]
    if (all(abs(tr.stats.sampling_rate - target) <= 1e-7 * target and not np.ma.isMaskedArray(tr.data)
            for tr in trs)
            and all(abs(b - (a + tr.stats.npts * dt)) <= MISALIGNMENT_THRESHOLD * dt
                    for a, b, tr in zip(starts, starts[1:], trs))):
        segs.append((starts[0], np.concatenate([tr.data for tr in trs], dtype=np.float32)))
    else:
        st = Stream([_to_rate(tr, target) for tr in trs])
        st.sort(keys=["starttime", "endtime"])
        overlaps = [(g[5].ns, g[4].ns) for g in st.get_gaps() if g[6] < 0]
        st.merge(method=0, fill_value=None)
        segs, bad = _segments(st, overlaps, dt)
        segs = [(t0, d.astype(np.float32)) for t0, d in segs]
    if params.remove_response:
        s0 = traces[0].stats
        out = []
        for t0, data in segs:
            tr = Trace(np.array(data), header={"network": s0.network, "station": s0.station,
                                                "location": s0.location, "channel": s0.channel,
                                                "sampling_rate": params.sampling_rate_hz,
                                                "starttime": UTCDateTime(ns=t0)})
            dur = max(tr.stats.npts / tr.stats.sampling_rate, 1e-9)
            tr.remove_response(inventory=inventory, output=params.response_output,
                               taper_fraction=min(0.05, 2 * 30.0 / dur))
            out.append((t0, tr.data.astype(np.float32)))
        segs = out
    return segs, bad


def _channel_patterns(params: CutParams) -> list[str]:
    return [p.strip() for p in params.channels.split(",") if p.strip()] or ["*"]


def _pick_channels(rates: dict[str, float], params: CutParams) -> dict[str, str]:
    """Component letter -> channel code: exact last letter first, then the alias (1 for N, 2 for E); among
    several, the highest sampling rate, then alphabetical."""
    picked = {}
    for comp in params.components:
        cands = [c for c in rates if c[-1:] == comp]
        if not cands and comp in COMPONENT_ALIASES:
            cands = [c for c in rates if c[-1:] == COMPONENT_ALIASES[comp]]
        if cands:
            picked[comp] = sorted(cands, key=lambda c: (-rates[c], c))[0]
    return picked


# ----------------------------------------------------------------------------------------------- reading


def _read(sd: StationDay, params: CutParams) -> tuple[list, list[tuple[str, int, int]], list[tuple[str, str, str]]]:
    """Traces of this source in the day plus pads, (path, start_ns, end_ns) per trace, read rejects."""
    import obspy
    from obspy import UTCDateTime

    lo, hi = sd.start_ns - params.pad_before_ns, sd.end_ns + params.pad_after_ns
    patterns = _channel_patterns(params)
    traces, spans, rejects = [], [], []
    for ref in sd.files:
        report = ref.first_day == sd.day  # one task reports a file's read problems
        kwargs: dict[str, Any] = {"starttime": UTCDateTime(ns=lo), "endtime": UTCDateTime(ns=hi)}
        if ref.format:
            kwargs["format"] = ref.format
        if ref.format == "MSEED":
            kwargs["sourcename"] = sd.source + ".*"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                st = obspy.read(ref.path, **kwargs)
            except Exception as exc:  # noqa: BLE001 -- any reader error makes the file a reject
                if report:
                    rejects.append((ref.path, UNREADABLE, f"{type(exc).__name__}: {exc}"[:500]))
                continue
        if caught and report:
            msgs = sorted({str(w.message) for w in caught})
            rejects.append((ref.path, READ_WARNING, ("readable data kept; " + "; ".join(msgs))[:500]))
        for tr in st:
            s = tr.stats
            if (f"{s.network}.{s.station}.{s.location}" != sd.source or s.npts == 0 or not s.sampling_rate > 0
                    or not any(fnmatchcase(s.channel, p) for p in patterns)):
                continue
            traces.append(tr)
            spans.append((ref.path, s.channel, s.starttime.ns, s.endtime.ns))
    return traces, spans, rejects


# ----------------------------------------------------------------------------------------------- triggers


def _triggers(comp: _Component, sd: StationDay, params: CutParams) -> list[tuple[int, int, float, int]]:
    """(on_ns, off_ns, peak ratio, segment) of every trigger with its onset in the day, in time order."""
    from obspy.signal.filter import bandpass, highpass
    from obspy.signal.trigger import classic_sta_lta, recursive_sta_lta, trigger_onset

    sr = comp.sr
    nsta, nlta = int(round(params.sta_s * sr)), int(round(params.lta_s * sr))
    out = []
    for j, data in enumerate(comp.datas):
        if len(data) <= nlta:
            continue
        x = data.astype(np.float64)
        mean = x.mean()
        if np.isfinite(mean):  # one pass instead of an isfinite mask (counts never overflow a float64 sum)
            x -= mean
        else:  # the CF copy gets the mean in place of NaN/inf; the windows that hold them are rejected later
            finite = np.isfinite(x)
            x[~finite] = x[finite].mean() if finite.any() else 0.0
            x -= x.mean()
        if params.trigger_band_hz is not None:
            fmin, fmax = params.trigger_band_hz
            if fmax < 0.5 * sr:
                x = bandpass(x, fmin, fmax, df=sr, corners=4, zerophase=False)
            else:
                x = highpass(x, fmin, df=sr, corners=4, zerophase=False)
        if params.trigger == "recursive":
            cf = recursive_sta_lta(x, nsta, nlta)
        else:
            cf = classic_sta_lta(x, nsta, nlta)
        picks = trigger_onset(cf, params.thr_on, params.thr_off)
        t0 = int(comp.starts[j])
        for on, off in picks:
            on_ns = t0 + int(round(on * 1e9 / sr))
            if sd.start_ns <= on_ns < sd.end_ns:
                off_ns = t0 + int(round(off * 1e9 / sr))
                out.append((on_ns, off_ns, float(cf[on:off + 1].max()), j))
    out.sort()
    return out


def _merge_triggers(per_comp: list[list[tuple[int, int, float, int]]]) -> list[tuple[int, int, float, int]]:
    """One trigger list from several components' lists: triggers that overlap in time become one (earliest
    onset, latest end, highest peak)."""
    merged: list[list] = []
    for on, off, peak, seg in sorted(t for ts in per_comp for t in ts):
        if merged and on <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], off)
            merged[-1][2] = max(merged[-1][2], peak)
        else:
            merged.append([on, off, peak, seg])
    return [tuple(m) for m in merged]


# ----------------------------------------------------------------------------------------------- the task


def cut_station_day(sd: StationDay, params: CutParams, inventory: Any = None) -> StationDayResult:
    """Windows, rejects and triggers of one station-day (see the module docstring). Never raises for bad data."""
    params.validate()
    traces, spans, rejects = _read(sd, params)
    C, T = len(params.components), params.n_samples
    dt = params.dt_ns
    day_files = sorted({r.path for r in sd.files})
    first_file = day_files[0] if day_files else ""

    def empty(rej):
        return StationDayResult(sd.index, sd.source, np.zeros((0, C, T), np.float32), np.zeros(0, np.int64),
                                np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int32), [], [], rej)

    rates: dict[str, float] = {}
    for tr in traces:
        ch = tr.stats.channel
        rates[ch] = max(rates.get(ch, 0.0), float(tr.stats.sampling_rate))
    picked = _pick_channels(rates, params)
    missing = [c for c in params.components if c not in picked]
    if missing:
        # reported once, by the station-day that holds the data (pads may bring in a neighbour's)
        if any(s[2] < sd.end_ns and s[3] >= sd.start_ns for s in spans):
            rejects.append((first_file, MISSING,
                            f"{sd.source} on {iso(sd.start_ns)[:10]}: no channel for component(s) "
                            f"{''.join(missing)} (have {', '.join(sorted(rates)) or 'none'}; "
                            f"--components {params.components}, --channels {params.channels})"))
        return empty(rejects)
    comps: dict[str, _Component] = {}
    for letter in params.components:
        ch = picked[letter]
        try:
            segs, bad = _merge_channel([tr for tr in traces if tr.stats.channel == ch], params, inventory)
        except Exception as exc:  # noqa: BLE001 -- e.g. no response for this channel in the inventory
            reason = NO_RESPONSE if params.remove_response else UNREADABLE
            rejects.append((first_file, reason, f"{sd.source}.{ch} on {iso(sd.start_ns)[:10]}: "
                            f"{type(exc).__name__}: {exc}"[:500]))
            return empty(rejects)
        comps[letter] = _Component(letter, ch, np.array([t0 for t0, _ in segs], np.int64),
                                   [d for _, d in segs], bad, params.sampling_rate_hz)
    del traces  # the raw (integer) traces: comps hold the data now
    codes = ",".join(picked[c] for c in params.components)
    trig = comps[params.trig_comps[0]]  # its sample grid anchors regular windows
    trig_spans = sorted((s for s in spans if s[1] == trig.channel), key=lambda s: (s[2], s[0]))

    # candidate windows: (start_ns on the trigger grid, ref_ns, ratio, trigger id)
    cands: list[tuple[int, int, float, int]] = []
    on_ns = off_ns = peak = np.zeros(0)
    n_pre = int(round(params.pre_s * params.sampling_rate_hz))
    if params.trigger == "none":
        grid = np.arange(sd.start_ns, sd.end_ns, int(round(params.stride_s * 1e9)), dtype=np.int64)
        some = np.zeros(len(grid), bool)  # windows with no data at all are not windows
        for c in comps.values():
            some |= c.overlaps(grid, grid + int(round(params.window_s * 1e9)))
        j = np.searchsorted(trig.starts, grid, side="right") - 1
        inside = (j >= 0) & (grid < trig.ends[np.maximum(j, 0)])
        for g, jj, ins in zip(grid[some], j[some], inside[some]):
            start = int(g)
            if ins:  # first sample of the trigger component at or after the grid time
                s0 = int(trig.starts[jj])
                start = s0 + int(round(math.ceil((start - s0) / dt - 1e-6) * dt))
            cands.append((start, start + int(round(n_pre * dt)), float("nan"), -1))
    else:
        trigs = _merge_triggers([_triggers(comps[c], sd, params) for c in params.trig_comps])
        on_ns = np.array([t[0] for t in trigs], np.int64)
        off_ns = np.array([t[1] for t in trigs], np.int64)
        peak = np.array([t[2] for t in trigs], np.float32)
        for k, (on, _, pk, _) in enumerate(trigs):
            cands.append((on - int(round(n_pre * dt)), on, pk, k))

    win_len_ns = int(round(T * dt))
    k = len(cands)
    starts = np.array([c[0] for c in cands], np.int64)
    samples = np.empty((k, C, T), np.float32)
    fast = _gather(comps, params.components, starts, T, samples)
    good = fast.copy()
    if fast.any():  # non-finite check, vectorised over the fast windows
        finite = np.isfinite(samples[fast]).all(axis=2)  # (kf, C)
        good[np.flatnonzero(fast)[~finite.all(axis=1)]] = False
    day_rejects: list[tuple[int, str, str]] = []  # (window, reason, detail)
    for w in np.flatnonzero(~good):
        start = int(starts[w])
        why = None
        if not fast[w]:
            parts = []
            for letter in params.components:
                comp = comps[letter]
                x = comp.extract(start, T)
                if x is None:
                    why = (comp.classify(start, start + win_len_ns),
                           f"{sd.source} {comp.channel}: no continuous data over {iso(start)} - "
                           f"{iso(start + win_len_ns)}")
                    break
                parts.append(x)
            if why is None:
                samples[w] = np.stack(parts)
        if why is None:
            bad = [comps[c].channel for c, x in zip(params.components, samples[w]) if not np.isfinite(x).all()]
            if bad:
                why = (NONFINITE, f"{sd.source} {','.join(bad)}: non-finite samples in {iso(start)} - "
                                  f"{iso(start + win_len_ns)}")
            else:
                good[w] = True
        if why is not None:
            day_rejects.append((int(w), *why))
    origin_idx = _origins(trig_spans, starts)
    names = [s[0] for s in trig_spans] + [first_file]
    rows = [(names[origin_idx[w]], reason, detail, int(starts[w])) for w, reason, detail in sorted(day_rejects)]
    rejects.extend(_merge_runs(rows) if params.trigger == "none" else [(o, r, d) for o, r, d, _ in rows])
    keep = np.flatnonzero(good)
    return StationDayResult(
        sd.index, sd.source, samples[keep] if len(keep) < k else samples, starts[keep],
        np.array([cands[w][1] for w in keep], np.int64), np.array([cands[w][2] for w in keep], np.float32),
        np.array([cands[w][3] for w in keep], np.int32), [codes] * len(keep),
        [names[origin_idx[w]] for w in keep], rejects,
        np.asarray(on_ns, np.int64), np.asarray(off_ns, np.int64), np.asarray(peak, np.float32))


def _gather(comps: dict[str, _Component], letters: str, starts: np.ndarray, T: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out[w, c]`` (k, C, T) for every window whose samples sit inside one segment of every component on
    its grid (within MISALIGNMENT_THRESHOLD); returns that (k,) mask. Other windows take the slow path."""
    k = len(starts)
    ok = np.ones(k, bool)
    where = []
    for letter in letters:
        comp = comps[letter]
        if len(comp.starts) == 0:
            return np.zeros(k, bool)
        half = int(0.5e9 / comp.sr)
        j = np.searchsorted(comp.starts, starts + half, side="right") - 1
        jj = np.maximum(j, 0)
        pos = (starts - comp.starts[jj]) * (comp.sr / 1e9)
        i = np.rint(pos).astype(np.int64)
        lens = np.array([len(d) for d in comp.datas], np.int64)[jj]
        ok &= (j >= 0) & (np.abs(pos - i) <= MISALIGNMENT_THRESHOLD) & (i >= 0) & (i + T <= lens)
        where.append((comp, jj, i))
    ar = np.arange(T)
    for c, (comp, jj, i) in enumerate(where):
        for seg in np.unique(jj[ok]):
            sel = np.flatnonzero(ok & (jj == seg))
            out[sel, c] = comp.datas[seg][i[sel, None] + ar]
    return ok


def _origins(spans: list[tuple[str, str, int, int]], times: np.ndarray) -> np.ndarray:
    """(k,) index into ``spans`` of the first span covering each time; len(spans) where none does."""
    out = np.full(len(times), len(spans), np.int64)
    for n, (_, _, s, e) in enumerate(spans):
        out[(out == len(spans)) & (times >= s) & (times <= e)] = n
    return out

def _merge_runs(rows: list[tuple[str, str, str, int]]) -> list[tuple[str, str, str]]:
    """Regular windows: consecutive rejects with the same origin and reason become one row with a count."""
    out: list[tuple[str, str, str]] = []
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1][:2] == rows[i][:2]:
            j += 1
        origin, reason, detail, t0 = rows[i]
        if j > i:
            detail = f"{j - i + 1} windows starting {iso(t0)} to {iso(rows[j][3])}; first: {detail}"
        out.append((origin, reason, detail))
        i = j + 1
    return out

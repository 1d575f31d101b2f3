"""Find the station-days in a pile of continuous waveform files: the unit of parallel, resumable ingest.

Any file ``obspy.read`` reads (miniSEED, SAC, GSE2, ...) may hold whole days, arbitrary pieces, several channels or
several stations. :func:`scan_file` reads only the headers; :func:`plan_station_days` groups the traces by station
(``NET.STA.LOC``) and UTC day and lists, for each station-day, every file with data in the day *or in its pads*
(a little of the neighbouring days, so that windows near midnight are cut from continuous data). Station-days are
ordered by (day, station), so the archive comes out in time order and the input index of a station-day is the same
on every run over the same files.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from spacessl.errors import SpacesslError

DAY_NS = 86_400 * 10**9
#: hidden files and these names are skipped when a source is a folder
_SKIP_NAMES = ("README", "readme")


@dataclass(frozen=True)
class TraceSpan:
    """One trace in a file: who, when (ns since the epoch, first and last sample), how fast."""

    source: str  #: NET.STA.LOC
    channel: str
    start_ns: int
    end_ns: int
    sampling_rate_hz: float


@dataclass(frozen=True)
class ScannedFile:
    """A readable waveform file and the traces it holds."""

    path: str
    format: str
    spans: tuple[TraceSpan, ...]


@dataclass(frozen=True)
class ScanReject:
    """A file that ObsPy cannot read."""

    path: str
    reason: str
    detail: str


@dataclass(frozen=True)
class FileRef:
    """A file a station-day task reads; ``first_day`` is the first day of this station's data in it (read problems
    are reported by that day's task only, so a file read by several tasks is listed once)."""

    path: str
    format: str
    first_day: int


@dataclass(frozen=True)
class StationDay:
    """One station (``NET.STA.LOC``) on one UTC day (days since 1970-01-01) and the files to read for it."""

    index: int
    source: str
    day: int
    files: tuple[FileRef, ...]

    @property
    def start_ns(self) -> int:
        return self.day * DAY_NS

    @property
    def end_ns(self) -> int:
        return (self.day + 1) * DAY_NS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StationDay:
        return cls(index=int(d["index"]), source=str(d["source"]), day=int(d["day"]),
                   files=tuple(FileRef(**f) for f in d["files"]))


def expand_sources(sources: Sequence[str], exclude: Sequence[str] = ()) -> list[str]:
    """Files named by ``sources`` (files, folders searched recursively, glob patterns), sorted, without duplicates.

    Folders skip hidden entries and Zarr stores (``*.zarr``); ``exclude`` lists more paths (files or folders) to
    leave out, e.g. the archive being written and its staging folder. Raises SpacesslError naming a source that
    matches nothing.
    """
    skip = [os.path.abspath(e) for e in exclude]

    def excluded(p: str) -> bool:
        p = os.path.abspath(p)
        return any(p == e or p.startswith(e + os.sep) for e in skip)

    found: set[str] = set()
    for src in sources:
        src = os.fspath(src)
        if os.path.isdir(src):
            for root, dirs, files in os.walk(src):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith(".zarr")
                                 and not excluded(os.path.join(root, d)))
                found.update(os.path.join(root, f) for f in files
                             if not f.startswith(".") and not f.startswith(_SKIP_NAMES))
        elif os.path.isfile(src):
            found.add(src)
        else:
            matches = [m for m in glob.glob(src, recursive=True) if os.path.isfile(m)]
            if not matches:
                raise SpacesslError(f"waveform source {src!r} is not a file, a folder or a glob pattern that "
                                    "matches any file; check the path")
            found.update(matches)
    return sorted(os.path.abspath(p) for p in found if not excluded(p))


def scan_file(path: str) -> ScannedFile | ScanReject:
    """Read the headers of one file. Never raises for bad content: returns a ScanReject instead."""
    import obspy

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st = obspy.read(path, headonly=True)
    except Exception as exc:  # noqa: BLE001 -- any reader error makes the file a reject
        return ScanReject(path, "unreadable", f"{type(exc).__name__}: {exc}".strip()[:500])
    spans = []
    fmt = ""
    for tr in st:
        s = tr.stats
        fmt = fmt or str(getattr(s, "_format", "") or "")
        if s.npts <= 0 or not s.sampling_rate > 0:
            continue
        spans.append(TraceSpan(f"{s.network}.{s.station}.{s.location}", s.channel, int(s.starttime.ns),
                               int(s.endtime.ns), float(s.sampling_rate)))
    if not spans:
        return ScanReject(path, "unreadable", "no traces with samples")
    return ScannedFile(path, fmt, tuple(spans))


def scan_files(paths: Iterable[str]) -> list[ScannedFile | ScanReject]:
    """:func:`scan_file` for each path, in order."""
    return [scan_file(p) for p in paths]


def plan_station_days(scanned: Sequence[ScannedFile], *, pad_before_ns: int, pad_after_ns: int) -> list[StationDay]:
    """Group file spans into station-days ordered by (day, source); see the module docstring.

    Args:
        scanned: readable files.
        pad_before_ns: data needed before midnight (trigger warm-up, pre-trigger part of a window).
        pad_after_ns: data needed after the next midnight (the rest of a window that starts late in the day).
    """
    # (source, path) -> [start, end] of the source's data in that file
    extent: dict[tuple[str, str], list[int]] = {}
    fmt: dict[str, str] = {}
    for f in scanned:
        fmt[f.path] = f.format
        for sp in f.spans:
            key = (sp.source, f.path)
            if key in extent:
                e = extent[key]
                e[0], e[1] = min(e[0], sp.start_ns), max(e[1], sp.end_ns)
            else:
                extent[key] = [sp.start_ns, sp.end_ns]
    days: set[tuple[int, str]] = set()
    by_source: dict[str, list[tuple[int, int, str]]] = {}
    for (source, path), (start, end) in extent.items():
        by_source.setdefault(source, []).append((start, end, path))
        for d in range(start // DAY_NS, end // DAY_NS + 1):
            days.add((d, source))
    plan = []
    for i, (day, source) in enumerate(sorted(days)):
        lo, hi = day * DAY_NS - pad_before_ns, (day + 1) * DAY_NS + pad_after_ns
        refs = sorted((FileRef(path, fmt[path], start // DAY_NS)
                       for start, end, path in by_source[source] if start < hi and end >= lo), key=lambda r: r.path)
        plan.append(StationDay(i, source, day, tuple(refs)))
    return plan

"""Continuous seismic records -> STA/LTA event windows (or regular windows) -> waveform archive.

The unit of work is a station-day (:mod:`spacessl.ingest.stationday`); each is cut by
:func:`spacessl.ingest.windows.cut_station_day` in a Ray task (or in-process with ``use_ray=False``), which writes
its windows, rejects and triggers to a staging part (:mod:`spacessl.ingest.staging`). The driver appends the parts
to the archive through :class:`~spacessl.archive.writer.ArchiveWriter` strictly in station-day order (input index =
station-day index) and deletes each part once the archive has committed it. Killing the run at any point and
running the same command again therefore skips the committed station-days, reuses the staged ones, recomputes the
rest and yields an archive identical, sample for sample, to an uninterrupted run.

With ``coincidence >= 2`` every station-day is cut first, then ObsPy's ``coincidence_trigger`` decides which
triggers were seen by enough stations (:mod:`spacessl.ingest.coincidence`), then the parts are appended.

Archive layout: samples (N, C, T) float32 in counts (or m/s, m, m/s**2 after response removal), channels =
component letters; meta ``time_ns`` (first sample), ``source`` (NET.STA.LOC), ``origin`` (file), ``label`` (from a
catalog, -1 otherwise), ``channel_codes`` ("HHZ,HHN,HHE"), ``trigger_ratio`` (peak STA/LTA, NaN for regular windows),
``stations`` (comma list of the stations that saw the trigger). Attributes ``sampling_rate_hz``, ``window_s``,
``pre_s`` and ``ingest`` (every setting).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from spacessl.errors import SpacesslError
from spacessl.ingest.catalog_labels import Catalog, attach_labels, load_catalog
from spacessl.ingest.coincidence import TriggerTable, coincident
from spacessl.ingest.staging import Staging, staging_url
from spacessl.ingest.stationday import (ScannedFile, ScanReject, StationDay, expand_sources, plan_station_days,
                                        scan_files)
from spacessl.ingest.windows import CutParams, StationDayResult, cut_station_day

EXTRA_META = {"channel_codes": "str", "trigger_ratio": "float32", "stations": "str"}
MANIFEST = "manifest.json"
FAILED = "failed"
_SCAN_BATCH = 32


@dataclass
class IngestSummary:
    """What an ingest did."""

    archive: str
    station_days: int
    resumed_from: int  #: station-days already committed when this run started
    windows: int
    rejects: int
    files: int
    seconds: float
    rejects_path: str = ""

    def __str__(self) -> str:
        rate = (self.station_days - self.resumed_from) / self.seconds if self.seconds > 0 else float("nan")
        out = (f"{self.archive}: {self.windows} windows from {self.station_days} station-days in {self.files} "
               f"files; {self.seconds:.1f} s, {rate:.2f} station-days/s"
               + (f" (resumed at station-day {self.resumed_from})" if self.resumed_from else ""))
        if self.rejects:
            out += f"\n  {self.rejects} rejects listed in {self.rejects_path}"
        return out


def ingest_waveforms(sources: Sequence[str], out: str, *, trigger: str = "recursive", sta_s: float = 0.5,
                     lta_s: float = 10.0, thr_on: float = 3.5, thr_off: float = 1.5, pre_s: float = 2.0,
                     window_s: float = 10.0, components: str = "ZNE", sampling_rate_hz: float = 100.0,
                     stride_s: float = 10.0, channels: str = "*", trigger_component: str = "",
                     trigger_band_hz: tuple[float, float] | None = (1.0, 20.0), coincidence: int = 1,
                     coincidence_tolerance_s: float = 2.0, inventory: str | None = None,
                     remove_response: bool = False, response_output: str = "VEL", labels: str | None = None,
                     label_tolerance_s: float = 2.0, chunk_size: int = 256, shard_chunks: int = 16,
                     overwrite: bool = False, use_ray: bool = True, ray_address: str | None = None,
                     num_cpus: int | None = None, max_in_flight: int | None = None, progress: bool = True,
                     storage_options: dict[str, Any] | None = None) -> IngestSummary:
    """Cut windows out of continuous waveform files into the archive ``out``; see the module docstring.

    Args:
        sources: files, folders (searched recursively) or glob patterns of anything ``obspy.read`` reads.
        out: archive URL (``.zarr``); an unfinished archive written with the same settings is resumed.
        trigger: "recursive" or "classic" ObsPy STA/LTA, or "none" for regular windows every ``stride_s``.
        sta_s, lta_s, thr_on, thr_off: STA/LTA lengths (s) and on/off thresholds.
        pre_s, window_s: window start before the onset and window length (s).
        components: archive channel order, by the last letter of the channel code (1/2 stand in for N/E).
        sampling_rate_hz: every channel is resampled to this rate.
        channels: comma-separated globs on channel codes to consider (e.g. "HH?,EH?").
        trigger_component: components to detect on, e.g. "Z" (default: all; overlapping triggers merge).
        trigger_band_hz: band-pass (fmin, fmax) applied before STA/LTA, or None.
        coincidence: keep only triggers seen by at least this many stations (ObsPy ``coincidence_trigger``).
        coincidence_tolerance_s: how far apart (after the end of one) triggers may start and still coincide.
        inventory, remove_response, response_output: StationXML file; convert counts to "VEL"/"DISP"/"ACC".
        labels, label_tolerance_s: catalog CSV (time, station, label) and the matching tolerance (s).
        chunk_size, shard_chunks: archive layout.
        overwrite: replace an existing archive (and its staging) instead of refusing / resuming.
        use_ray, ray_address, num_cpus: run station-days as Ray tasks on a local Ray with ``num_cpus`` CPUs
            (default: all) or on the cluster at ``ray_address``; ``use_ray=False`` runs them in this process.
        max_in_flight: station-days submitted at once (default 2 per CPU); bounds memory.
        progress: show tqdm progress bars (station-days with rate and ETA).
    """
    t_start = time.perf_counter()
    params = CutParams(trigger=trigger, sta_s=sta_s, lta_s=lta_s, thr_on=thr_on, thr_off=thr_off, pre_s=pre_s,
                       window_s=window_s, components=components, sampling_rate_hz=sampling_rate_hz,
                       stride_s=stride_s, channels=channels, trigger_component=trigger_component,
                       trigger_band_hz=tuple(trigger_band_hz) if trigger_band_hz else None,
                       remove_response=remove_response, response_output=response_output)
    params.validate()
    if coincidence < 1:
        raise SpacesslError(f"--coincidence must be >= 1 station, got {coincidence}")
    if coincidence > 1 and trigger == "none":
        raise SpacesslError("--coincidence needs a trigger; it cannot be used with --trigger none")
    if remove_response and not inventory:
        raise SpacesslError("--remove-response needs --inventory STATIONXML with the instrument responses")
    catalog = load_catalog(labels) if labels else None
    inv = _read_inventory(inventory) if inventory else None

    settings = {**_jsonable(asdict(params)), "coincidence": int(coincidence),
                "coincidence_tolerance_s": float(coincidence_tolerance_s),
                "inventory": os.path.abspath(inventory) if inventory else None,
                "labels": os.path.abspath(labels) if labels else None, "label_tolerance_s": float(label_tolerance_s)}
    attrs = {"sampling_rate_hz": float(sampling_rate_hz), "window_s": params.n_samples / sampling_rate_hz,
             "pre_s": float(pre_s), "ingest": settings}

    from spacessl.archive.writer import ArchiveWriter

    writer = ArchiveWriter(out, modality="waveform", sample_shape=(len(components), params.n_samples),
                           dtype="float32", dims="CT", units=params.units, channels=list(components),
                           label_names=catalog.label_names if catalog else None, chunk_size=chunk_size,
                           shard_chunks=shard_chunks, extra_meta=EXTRA_META, attrs=attrs, overwrite=overwrite,
                           storage_options=storage_options)
    staging = Staging(staging_url(out), storage_options)
    if overwrite:
        staging.remove()
    resumed_from = writer.resume_from
    fresh = writer.n == 0 and resumed_from == 0
    key = {"sources": [os.path.abspath(os.fspath(s)) for s in sources], "settings": settings}

    ray, started_ray = (None, False)
    if use_ray:
        ray, started_ray = _ray_session(ray_address, num_cpus)
    try:
        manifest = staging.read_json(MANIFEST)
        if manifest is not None and manifest.get("key") != key:
            if not fresh:
                raise SpacesslError(
                    f"{out} is an unfinished ingest of other sources ({len(manifest['key']['sources'])} given "
                    f"then, {len(sources)} now); rerun with the same sources to resume it, or pass --overwrite")
            staging.remove()
            manifest = None
        if manifest is None:
            exclude = [out, staging.url, writer.rejects_path] if "://" not in str(out) else []
            manifest = _make_manifest(sources, params, key, ray, progress, exclude)
            staging.write_json(MANIFEST, manifest)
        plan = [StationDay.from_dict(d) for d in manifest["plan"]]
        n = len(plan)
        for path, reason, detail in manifest["scan_rejects"]:
            writer.reject(input_index=0, origin=path, reason=reason, detail=detail)

        for i in staging.done("part"):  # committed by an earlier run that was killed before deleting them
            if i < writer.resume_from:
                staging.remove_part(i)
        staged = staging.done("part")
        need = [i for i in range(writer.resume_from, n) if i not in staged]
        if coincidence > 1:
            have_trig = staging.done("trig")
            need = sorted(set(need) | {i for i in range(writer.resume_from) if i not in have_trig})
        feeder = _Feeder(writer, staging, plan, params, catalog, label_tolerance_s, coincidence,
                         coincidence_tolerance_s)
        from tqdm.auto import tqdm

        bar = tqdm(total=n, initial=n - len([i for i in need if i >= writer.resume_from]), unit="station-day",
                   desc="ingest", disable=not progress, dynamic_ncols=True, smoothing=0.1)
        with bar:
            if coincidence <= 1:
                feeder.flush()
            runner = _run_ray if ray is not None else _run_local
            for i in runner(ray, need, plan, params, inv, staging, coincidence > 1, max_in_flight):
                if i < feeder.first:  # re-cut only for its triggers (coincidence)
                    staging.remove_part(i)
                    continue
                bar.update(1)
                feeder.ready_set.add(i)
                if coincidence <= 1:
                    feeder.flush()
            if coincidence > 1:
                feeder.judge_coincidence(range(n))
            feeder.flush()
        feeder.finish()
        writer.close()
        staging.remove()
        return IngestSummary(str(out), n, resumed_from, writer.n, writer.n_rejects, len(manifest["files"]),
                             time.perf_counter() - t_start, writer.rejects_path)
    finally:
        if started_ray:
            ray.shutdown()


# ----------------------------------------------------------------------------------------------- appending


class _Feeder:
    """Appends staged parts to the writer in input order, attaching labels and coincidence stations."""

    def __init__(self, writer, staging: Staging, plan: list[StationDay], params: CutParams,
                 catalog: Catalog | None, label_tolerance_s: float, coincidence: int, tolerance_s: float):
        self.w, self.staging, self.plan, self.params = writer, staging, plan, params
        self.catalog, self.label_tolerance_s = catalog, label_tolerance_s
        self.coincidence, self.tolerance_s = coincidence, tolerance_s
        self.first = self.next = writer.resume_from
        self.ready_set: set[int] = set(i for i in staging.done("part") if i >= self.next)
        self.stations: dict[int, list[str]] | None = None
        self.unremoved: list[int] = []

    def flush(self) -> None:
        """Append every staged part that is next in line."""
        while self.next in self.ready_set:
            self._append(self.next)
            self.ready_set.discard(self.next)
            self.next += 1

    def finish(self) -> None:
        if self.next != len(self.plan):
            missing = sorted(set(range(self.next, len(self.plan))) - self.ready_set)[:5]
            raise SpacesslError(f"internal: station-days {missing} were never staged; rerun to resume")

    def judge_coincidence(self, indices) -> None:
        tables = {}
        for i in indices:
            a = self.staging.read_part(i, "trig")
            tables[i] = TriggerTable(str(a["source"]), a["trig_on_ns"], a["trig_off_ns"], a["trig_peak"])
        self.stations = coincident(tables, thr_on=self.params.thr_on, thr_off=self.params.thr_off,
                                   min_stations=self.coincidence, tolerance_s=self.tolerance_s,
                                   sampling_rate_hz=self.params.sampling_rate_hz)

    def _append(self, i: int) -> None:
        res = StationDayResult.from_arrays(self.staging.read_part(i))
        w = self.w
        for origin, reason, detail in res.rejects:
            w.reject(input_index=i, origin=origin, reason=reason, detail=detail)
        k = res.n
        if self.stations is not None:
            names = self.stations[i]
            stations = [names[t] if t >= 0 else "" for t in res.trigger_id]
            keep = np.array([s != "" for s in stations], bool)
        else:
            stations = [res.source] * k
            keep = np.ones(k, bool)
        idx = np.flatnonzero(keep)
        label = None
        if self.catalog is not None:
            p = self.params
            window = None
            if p.trigger == "none":
                pre = int(round(p.pre_s * 1e9))
                window = (pre, int(round(p.window_s * 1e9)) - pre)
            label = attach_labels(self.catalog, res.source, res.ref_ns[idx], tolerance_s=self.label_tolerance_s,
                                  window=window)
        w.append(res.samples[idx], input_index=i, time_ns=res.time_ns[idx], source=res.source,
                 origin=[res.origin[j] for j in idx], label=label,
                 channel_codes=[res.channel_codes[j] for j in idx], trigger_ratio=res.trigger_ratio[idx],
                 stations=[stations[j] for j in idx])
        self.unremoved.append(i)
        still = []
        for j in self.unremoved:
            if j < w.resume_from:
                self.staging.remove_part(j)
            else:
                still.append(j)
        self.unremoved = still


# ----------------------------------------------------------------------------------------------- tasks


def _stage_station_day(sd: StationDay, params: CutParams, inventory: Any, staging: Staging,
                       write_triggers: bool) -> int:
    """The task: cut one station-day and stage it (triggers first, then the part that marks it done)."""
    try:
        res = cut_station_day(sd, params, inventory)
    except Exception as exc:  # noqa: BLE001 -- an unexpected failure rejects the station-day, the run goes on
        C, T = len(params.components), params.n_samples
        origin = sd.files[0].path if sd.files else ""
        res = StationDayResult(sd.index, sd.source, np.zeros((0, C, T), np.float32), np.zeros(0, np.int64),
                               np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int32), [], [],
                               [(origin, FAILED, f"{sd.source} day {sd.day}: {type(exc).__name__}: {exc}"[:500])])
    arrays = res.to_arrays()
    if write_triggers:
        staging.write_part(sd.index, {k: arrays[k] for k in ("source", "trig_on_ns", "trig_off_ns", "trig_peak")},
                           "trig")
    staging.write_part(sd.index, arrays)
    return sd.index


def _run_local(ray, need: list[int], plan: list[StationDay], params: CutParams, inventory: Any,
               staging: Staging, write_triggers: bool, max_in_flight: int | None) -> Iterator[int]:
    for i in need:
        yield _stage_station_day(plan[i], params, inventory, staging, write_triggers)


def _run_ray(ray, need: list[int], plan: list[StationDay], params: CutParams, inventory: Any, staging: Staging,
             write_triggers: bool, max_in_flight: int | None) -> Iterator[int]:
    """Submit station-days in order, at most ``max_in_flight`` at once; yield indices as they finish."""
    if not need:
        return
    task = ray.remote(num_cpus=1, max_retries=2)(_stage_station_day)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    limit = max_in_flight or 2 * cpus
    p_ref = ray.put(params)
    inv_ref = ray.put(inventory)
    st_ref = ray.put(staging)
    todo = deque(need)
    running: list = []
    while todo or running:
        while todo and len(running) < limit:
            running.append(task.remote(plan[todo.popleft()], p_ref, inv_ref, st_ref, write_triggers))
        done, running = ray.wait(running, num_returns=1)
        for ref in done:
            yield ray.get(ref)


# ----------------------------------------------------------------------------------------------- set-up


def _make_manifest(sources: Sequence[str], params: CutParams, key: dict, ray, progress: bool,
                   exclude: Sequence[str]) -> dict:
    """Scan the files (in parallel with Ray) and plan the station-days."""
    from fnmatch import fnmatchcase

    from tqdm.auto import tqdm

    files = expand_sources(sources, exclude)
    scanned: list[ScannedFile | ScanReject] = []
    with tqdm(total=len(files), unit="file", desc="scan", disable=not progress, dynamic_ncols=True) as bar:
        if ray is not None and len(files) > _SCAN_BATCH:
            task = ray.remote(num_cpus=1)(scan_files)
            batches = [files[i:i + _SCAN_BATCH] for i in range(0, len(files), _SCAN_BATCH)]
            refs = [task.remote(b) for b in batches]
            for ref, b in zip(refs, batches):
                scanned.extend(ray.get(ref))
                bar.update(len(b))
        else:
            for f in files:
                scanned.extend(scan_files([f]))
                bar.update(1)
    patterns = [p.strip() for p in params.channels.split(",") if p.strip()] or ["*"]
    good = []
    for f in scanned:
        if isinstance(f, ScannedFile):
            spans = tuple(s for s in f.spans if any(fnmatchcase(s.channel, p) for p in patterns))
            if spans:
                good.append(ScannedFile(f.path, f.format, spans))
    plan = plan_station_days(good, pad_before_ns=params.pad_before_ns, pad_after_ns=params.pad_after_ns)
    rejects = [[r.path, r.reason, r.detail] for r in scanned if isinstance(r, ScanReject)]
    return {"key": key, "files": files, "plan": [sd.to_dict() for sd in plan], "scan_rejects": rejects}


def _read_inventory(path: str):
    import obspy

    try:
        return obspy.read_inventory(path)
    except Exception as exc:  # noqa: BLE001
        raise SpacesslError(f"cannot read inventory {path} ({type(exc).__name__}: {exc}); "
                            "give a StationXML file (or another format obspy.read_inventory reads)") from exc


def _ray_session(address: str | None, num_cpus: int | None):
    """(ray, started): reuse a running Ray, else connect to ``address`` or $RAY_ADDRESS (the cluster a
    ``ray job submit`` job runs on), else start a local one."""
    import ray

    if ray.is_initialized():
        return ray, False
    address = address or os.environ.get("RAY_ADDRESS", "")
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False)
    return ray, True


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

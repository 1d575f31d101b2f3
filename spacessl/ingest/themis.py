"""THEMIS ASI level-1 CDF files → archive: ``spacessl ingest themis SRC... OUT.zarr``.

THEMIS all-sky imagers (about 20 cameras, one 256×256 frame every 3 s) are distributed as hourly CDF files
``thg_l1_asf_SITE_YYYYMMDDHH_v01.cdf`` (http://themis.ssl.berkeley.edu/data/themis/thg/l1/asi/SITE/YYYY/MM/).
Each holds (layout as read by the themisasi package, ``themisasi/io.py``):

- ``thg_asf_SITE``        (n, 256, 256) CDF_UINT2, the raw frames in counts;
- ``thg_asf_SITE_epoch``  (n,) CDF_EPOCH (ms since 0000-01-01), the frame times (UTC);
- global attribute ``Descriptor`` starting with the site code (e.g. ``GAKO>…``).

Every frame becomes one sample (1, size, size) uint16 (``channels=["gray"]``, units "counts") with its epoch
time, ``source`` = the four-letter site, ``origin`` = the CDF file name and ``frame_index`` = the frame's
record number in that file. Frames whose epoch is missing or a fill value are left out and the file is listed
in the rejects file with their count; an unreadable file is a reject (or an error with ``strict=True``).

Files are read in parallel worker processes, results come back in file order (sorted by file name, i.e. by
site then hour) and each file is one resumable input: a killed ingest resumes at the first unfinished file
when the same command is run again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from spacessl.errors import SpacesslError
from spacessl.ingest.report import IngestReport
from spacessl.ingest.parallel import default_workers, ordered_map

FILE_RE = re.compile(r"^thg_l1_as[fk]_(?P<site>[a-z0-9]{4})_(?P<hour>\d{10})_v\d+\.cdf$", re.IGNORECASE)
_VAR_RE = re.compile(r"^thg_as[fk]_(?P<site>[a-z0-9]{4})$", re.IGNORECASE)
_GLOB = "thg_l1_asf_*.cdf"
NATIVE_SIZE = 256
#: plausible frame times: 1990 .. 2100 (THEMIS ASI started in 2004), ns since the epoch
_T_MIN, _T_MAX = 631152000 * 10**9, 4102444800 * 10**9
CDF_EPOCH, CDF_EPOCH16, CDF_TIME_TT2000 = 31, 32, 33


class ThemisFileError(SpacesslError):
    """A THEMIS CDF file cannot be read (``strict=True``) or the sources name no files."""


@dataclass
class ThemisFrames:
    """The usable frames of one file."""

    index: int
    site: str = ""
    frames: np.ndarray | None = None          # (n, 1, size, size) uint16
    time_ns: np.ndarray | None = None         # (n,) int64 UTC ns since the epoch
    frame_index: np.ndarray | None = None     # (n,) int32 record numbers in the file
    n_bad_time: int = 0
    reason: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)


def find_themis_files(sources: Sequence[str]) -> list[str]:
    """CDF files named by ``sources`` (files, or folders searched recursively for ``thg_l1_asf_*.cdf``), sorted
    by file name then path, duplicates removed."""
    found: set[str] = set()
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found.update(str(f) for f in p.rglob(_GLOB) if f.is_file())
        elif p.is_file():
            found.add(str(p))
        else:
            raise ThemisFileError(f"{src} is neither a CDF file nor a folder; pass THEMIS ASI level-1 files "
                                  "thg_l1_asf_SITE_YYYYMMDDHH_v01.cdf or folders that hold them")
    return sorted(found, key=lambda f: (os.path.basename(f), f))


def epoch_to_ns(values: np.ndarray, data_type: int) -> tuple[np.ndarray, np.ndarray]:
    """CDF time values → (UTC ns since 1970 (int64), valid mask); fill values and implausible times are invalid."""
    import cdflib

    values = np.asarray(values)
    if data_type == CDF_EPOCH:
        unix_ms = values.astype(np.float64).reshape(-1) - 62167219200000.0   # 0000-01-01 → 1970-01-01 in ms
        ok = np.isfinite(unix_ms) & (np.abs(unix_ms) < 9e12)          # int64 ns holds ±292 years
        ns = np.zeros(unix_ms.shape, dtype=np.int64)
        ns[ok] = np.rint(unix_ms[ok] * 1e6).astype(np.int64)
    else:
        flat = values.reshape(-1, 2) if data_type == CDF_EPOCH16 else values.reshape(-1)
        dt64 = np.asarray(cdflib.cdfepoch.to_datetime(flat)).astype("datetime64[ns]")
        ok = ~np.isnat(dt64)
        ns = np.where(ok, dt64.astype(np.int64), 0)
    ok &= (ns >= _T_MIN) & (ns < _T_MAX)
    return ns, ok


def read_themis_cdf(path: str, size: int = NATIVE_SIZE, index: int = 0) -> ThemisFrames:
    """Read one THEMIS ASI level-1 CDF: frames resized to ``size`` (when not native), times, site.

    Raises whatever cdflib raises for a corrupt file and ThemisFileError for a CDF without ASI variables.
    """
    import cdflib

    cdf = cdflib.CDF(path)
    info = cdf.cdf_info()
    names = list(info.zVariables) + list(info.rVariables)
    image_vars = [v for v in names if _VAR_RE.match(v)]
    if not image_vars:
        raise ThemisFileError(f"{path} has no THEMIS ASI image variable thg_asf_SITE (variables: {names[:8]})")
    var = image_vars[0]
    site = _VAR_RE.match(var)["site"].lower()
    epoch_var = f"{var}_epoch"
    if epoch_var not in names:
        raise ThemisFileError(f"{path} has image variable {var} but no time variable {epoch_var}")
    frames = np.asarray(cdf.varget(var))
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3:
        raise ThemisFileError(f"{path}: {var} has shape {frames.shape}; expected (n, 256, 256)")
    epochs = np.asarray(cdf.varget(epoch_var))
    ns, ok = epoch_to_ns(epochs, int(cdf.varinq(epoch_var).Data_Type))
    if len(ns) != len(frames):
        raise ThemisFileError(f"{path}: {len(frames)} frames but {len(ns)} times in {epoch_var}")
    keep = np.flatnonzero(ok)
    frames = frames[keep]
    if frames.dtype != np.uint16:
        frames = np.clip(frames, 0, 65535).astype(np.uint16)
    if frames.shape[1:] != (size, size):
        frames = _resize_frames(frames, size)
    return ThemisFrames(index=index, site=site, frames=frames[:, None], time_ns=ns[keep],
                        frame_index=keep.astype(np.int32), n_bad_time=int(len(ok) - len(keep)))


def _resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(frames), size, size), dtype=np.uint16)
    for k, f in enumerate(frames):
        img = Image.fromarray(f.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BILINEAR)
        out[k] = np.clip(np.rint(np.asarray(img)), 0, 65535).astype(np.uint16)
    return out


def read_one(task: tuple[int, str], size: int) -> ThemisFrames:
    """Worker entry point: never raises for a bad file, returns ``ThemisFrames`` with ``error`` set."""
    index, path = task
    try:
        return read_themis_cdf(path, size=size, index=index)
    except FileNotFoundError as exc:
        return ThemisFrames(index=index, reason="missing", error=str(exc))
    except ThemisFileError as exc:
        return ThemisFrames(index=index, reason="not a THEMIS ASI file", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any reader failure is a reject with cdflib's message
        return ThemisFrames(index=index, reason="corrupt", error=f"{type(exc).__name__}: {exc}")


def ingest_themis(sources: Sequence[str] | str, out: str, *, size: int = NATIVE_SIZE, strict: bool = False,
                  workers: int | None = None, chunk_size: int = 256, shard_chunks: int = 16,
                  overwrite: bool = False, progress: bool = True) -> IngestReport:
    """Ingest THEMIS ASI level-1 CDF files (see module docstring) into the image archive ``out``.

    Args:
        sources: CDF files and/or folders holding them.
        out: archive URL.
        size: frame height and width in the archive (native 256: no resampling).
        strict: raise on the first unreadable file instead of listing it in the rejects file.
        workers: reader processes (default: all CPUs; 0 = read in this process).
        chunk_size, shard_chunks: archive chunking.
        overwrite: replace an existing archive.
        progress: progress bar (files and frames) with rate and ETA.
    """
    from spacessl.archive.writer import ArchiveWriter
    from spacessl.ingest.images import COMPRESSION_LEVEL, inputs_fingerprint

    files = find_themis_files([sources] if isinstance(sources, str) else list(sources))
    if not files:
        raise ThemisFileError(f"no THEMIS ASI files ({_GLOB}) in {sources}")
    t0 = time.perf_counter()
    writer = ArchiveWriter(out, modality="image", sample_shape=(1, size, size), dtype="uint16", units="counts",
                           channels=["gray"], chunk_size=chunk_size, shard_chunks=shard_chunks,
                           extra_meta={"frame_index": "int32"},
                           attrs={"ingest": "themis", "image_size_px": int(size), "instrument": "THEMIS ASI",
                                  **inputs_fingerprint([os.path.basename(f) for f in files])},
                           overwrite=overwrite, compression_level=COMPRESSION_LEVEL)
    start = writer.resume_from
    n_workers = default_workers() if workers is None else int(workers)
    if len(files) - start <= 1:
        n_workers = 0
    tasks: Iterator[tuple[int, str]] = ((i, files[i]) for i in range(start, len(files)))
    bar = tqdm(total=len(files), initial=start, unit="file", desc="ingest THEMIS", disable=not progress)
    n_frames = 0
    try:
        results = ordered_map(read_one, tasks, workers=n_workers, window=max(2, n_workers + 1),
                              preload=["spacessl.ingest.themis"], size=int(size))
        try:
            for r in results:
                n_frames += _store(writer, files[r.index], r, strict)
                bar.update(1)
                bar.set_postfix(frames=n_frames, rejects=writer.n_rejects, refresh=False)
        finally:
            results.close()
        writer.close()
    finally:
        bar.close()
    return IngestReport(url=writer.url, n_inputs=len(files), n_samples=writer.n, n_rejects=writer.n_rejects,
                        resumed_from=start, rejects_path=writer.rejects_path, seconds=time.perf_counter() - t0,
                        layout={"channels": "gray", "dtype": "uint16", "size": size})


def _store(writer, path: str, r: ThemisFrames, strict: bool) -> int:
    name = os.path.basename(path)
    if r.frames is None:
        if strict:
            raise ThemisFileError(f"{path}: {r.reason} ({r.error}). Replace or remove the file and rerun the same "
                                  "command (it resumes), or run without --strict to list bad files in the rejects file")
        writer.reject(input_index=r.index, origin=name, reason=r.reason, detail=r.error)
        return 0
    m = FILE_RE.match(name)
    if m and m["site"].lower() != r.site:
        writer.reject(input_index=r.index, origin=name, reason="site mismatch",
                      detail=f"file name says {m['site'].lower()!r}, variables say {r.site!r}; used {r.site!r}")
    if r.n_bad_time:
        writer.reject(input_index=r.index, origin=name, reason="frames without valid time",
                      detail=f"{r.n_bad_time} frames have a missing or fill epoch and were left out")
    k = len(r.frames)
    writer.append(r.frames, input_index=r.index, time_ns=r.time_ns, source=[r.site] * k, origin=[name] * k,
                  frame_index=r.frame_index)
    return k

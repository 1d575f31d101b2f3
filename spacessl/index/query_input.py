"""A loose query file → one raw sample exactly as ingest would have put it into the archive.

- Image files (PNG, JPEG, TIFF, PGM, ...): :func:`spacessl.ingest.decode.decode_image` with the archive's size,
  channels, bit depth and fit, i.e. the decoding of ``spacessl ingest images``; the time comes from the file name,
  EXIF or modification time as in ingest.
- Waveform files (anything ``obspy.read`` reads): the archive's cut settings (attribute ``ingest``) rebuild the
  :class:`~spacessl.ingest.windows.CutParams`; the file's station-days are cut with
  :func:`~spacessl.ingest.windows.cut_station_day` (same channel choice, resampling, STA/LTA trigger, window) and
  the first window is the query. When the trigger finds nothing (e.g. a short snippet around one event), the
  first ``window_s`` of the file, resampled the same way, is taken instead.

The result then goes through the same Preprocess and encoder as the archive (:class:`spacessl.embed.Embedder`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from spacessl.errors import SpacesslError


class QueryFileError(SpacesslError):
    """A query file cannot be read or does not fit the archive."""


@dataclass
class QuerySample:
    """One raw sample and what is known about it.

    Attributes:
        sample: (1, *sample_shape) in the archive's dtype.
        time_ns: UTC start time in ns, or None.
        source: camera/station id when the file says so (waveform headers), else None.
        origin: the file.
        how: how the sample was cut ("image", "trigger", "file start").
    """

    sample: np.ndarray
    time_ns: int | None
    source: str | None
    origin: str
    how: str


def load_query_file(path: str, archive: Any) -> QuerySample:
    """Decode ``path`` as ingest would for ``archive`` (see the module docstring)."""
    if not os.path.isfile(path):
        raise QueryFileError(f"query file {path} does not exist; pass an image or waveform file")
    if archive.modality == "image":
        return _image(path, archive)
    return _waveform(path, archive)


# ------------------------------------------------------------------------------------------------- images


def image_spec(archive: Any) -> Any:
    """The :class:`~spacessl.ingest.decode.DecodeSpec` that made ``archive``'s samples."""
    from spacessl.ingest.decode import DecodeSpec

    c, h, w = archive.sample_shape
    if h != w:
        raise QueryFileError(f"{archive.url} holds {h}×{w} frames; image queries need square archive frames")
    if c not in (1, 3):
        raise QueryFileError(f"{archive.url} frames have {c} channels; image queries support 1 (grey) or 3 (RGB)")
    if archive.dtype.name not in ("uint8", "uint16"):
        raise QueryFileError(f"{archive.url} stores {archive.dtype.name} frames; image files decode to uint8 or "
                             "uint16 only: query with --id or --vector instead")
    fit = archive.attrs.get("fit", "crop")
    return DecodeSpec(size=int(h), channels="gray" if c == 1 else "rgb", dtype=archive.dtype.name,
                      fit=fit if fit in ("crop", "stretch") else "crop")


def _image(path: str, archive: Any) -> QuerySample:
    from spacessl.ingest.decode import decode_image, image_time, is_image_file

    if not is_image_file(path):
        raise QueryFileError(f"{path} is not an image file (PNG, JPEG, TIFF, PGM/PPM, BMP) but {archive.url} is "
                             "an image archive")
    try:
        sample, _ = decode_image(path, image_spec(archive))
    except QueryFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad query file
        raise QueryFileError(f"cannot decode image {path}: {type(exc).__name__}: {exc}") from exc
    t, _ = image_time(path)
    return QuerySample(sample[None], int(t), None, path, "image")


# ------------------------------------------------------------------------------------------------- waveforms


def cut_params(archive: Any) -> Any:
    """The :class:`~spacessl.ingest.windows.CutParams` recorded by waveform ingest in ``archive``'s attributes
    (defaults plus the archive's channels, rate and window when it was written otherwise, e.g. synthetic)."""
    from spacessl.ingest.windows import CutParams

    names = {f.name for f in dataclasses.fields(CutParams)}
    settings = dict(archive.attrs.get("ingest") or {}) if isinstance(archive.attrs.get("ingest"), dict) else {}
    kwargs = {k: v for k, v in settings.items() if k in names}
    if kwargs.get("trigger_band_hz") is not None:
        kwargs["trigger_band_hz"] = tuple(kwargs["trigger_band_hz"])
    kwargs.setdefault("components", "".join(ch[-1] for ch in archive.channels))
    rate = archive.attrs.get("sampling_rate_hz")
    if rate:
        kwargs.setdefault("sampling_rate_hz", float(rate))
        kwargs.setdefault("window_s", archive.sample_shape[-1] / float(rate))
    params = CutParams(**kwargs)
    if len(params.components) != archive.sample_shape[0] or params.n_samples != archive.sample_shape[-1]:
        raise QueryFileError(f"{archive.url}: cut settings give {len(params.components)}×{params.n_samples} windows "
                             f"but the archive holds {archive.sample_shape}; its attributes are inconsistent")
    return params


def _waveform(path: str, archive: Any) -> QuerySample:
    from spacessl.ingest.stationday import ScanReject, plan_station_days, scan_file
    from spacessl.ingest.windows import cut_station_day

    params = cut_params(archive)
    scanned = scan_file(path)
    if isinstance(scanned, ScanReject):
        raise QueryFileError(f"cannot read waveform file {path}: {scanned.detail}")
    inventory = None
    settings = archive.attrs.get("ingest") or {}
    if params.remove_response and isinstance(settings, dict) and settings.get("inventory"):
        import obspy

        inventory = obspy.read_inventory(settings["inventory"])
    days = plan_station_days([scanned], pad_before_ns=params.pad_before_ns, pad_after_ns=params.pad_after_ns)
    if params.trigger != "none":
        for sd in days:
            res = cut_station_day(sd, params, inventory)
            if res.n:
                return QuerySample(res.samples[:1].astype(archive.dtype), int(res.time_ns[0]), res.source,
                                   path, "trigger")
    return _file_start(path, params, archive)


def _file_start(path: str, params: Any, archive: Any) -> QuerySample:
    """The first ``window_s`` of the file: components picked and resampled as ingest does, aligned at the
    latest component start."""
    import warnings

    import obspy

    from spacessl.ingest.windows import _pick_channels, _to_rate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = obspy.read(path)
    st.merge(method=0, fill_value=None)
    rates = {tr.stats.channel: float(tr.stats.sampling_rate) for tr in st}
    picked = _pick_channels(rates, params)
    missing = [c for c in params.components if c not in picked]
    if missing:
        raise QueryFileError(f"{path} has no channel for component(s) {''.join(missing)} (channels: "
                             f"{', '.join(sorted(rates)) or 'none'}); the archive needs {params.components}")
    traces = []
    for letter in params.components:
        tr = next(t for t in st if t.stats.channel == picked[letter]).copy()
        if np.ma.isMaskedArray(tr.data):
            tr = tr.split()[0]
        traces.append(_to_rate(tr, params.sampling_rate_hz))
    start = max(tr.stats.starttime for tr in traces)
    T = params.n_samples
    rows = []
    for tr in traces:
        i0 = int(round((start - tr.stats.starttime) * params.sampling_rate_hz))
        x = np.asarray(tr.data[i0:i0 + T], dtype=np.float64)
        rows.append(np.pad(x, (0, T - len(x))))  # short files: zero-padded at the end, as Preprocess does
    w = np.stack(rows).astype(archive.dtype)[None]
    return QuerySample(w, int(start.ns), f"{traces[0].stats.network}.{traces[0].stats.station}."
                                         f"{traces[0].stats.location}", path, "file start")

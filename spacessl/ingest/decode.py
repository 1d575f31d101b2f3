"""Decode one image file into an archive sample: (C, size, size) uint8 or uint16, plus its time.

This module is what the ingest worker processes import, so it stays light (numpy and Pillow only).

Conversion rules (the archive holds one channel layout and one bit depth, see :func:`choose_layout`):

- grey archive: colour files are converted to luminance with Pillow's ``convert("L")`` (ITU-R 601-2),
  alpha is dropped;
- colour archive (``["R", "G", "B"]``): grey files are replicated into three channels; Pillow decodes colour as
  8 bit per channel, so colour archives are uint8 unless a 16-bit depth is forced (then values are scaled by 257);
- uint16 archive: 16-bit files (PNG/TIFF ``I;16``, 16-bit PGM) keep their values; 8-bit files are scaled by 257
  (0..255 → 0..65535); 32-bit integer or float files are rounded and clipped to 0..65535;
- uint8 archive: 16-bit files are scaled down by 256 (``v >> 8``).

Every such conversion is reported (``converted=True``) so the ingest can count it.

Geometry: ``fit="crop"`` (default) cuts the central square of a non-square image, ``fit="stretch"`` resizes the
whole image; both then resize to ``size``×``size`` with Pillow's antialiased bilinear filter (16-bit data are
resized in float32 and rounded). Square images of the right size are not resampled.

Time (:func:`image_time`): a full timestamp in the file name (``YYYYMMDD_HHMM[SS]``, ``YYYY-MM-DDTHH:MM:SS``, ...,
read as UTC), else the EXIF ``DateTimeOriginal``/``DateTime`` tag (read as UTC), else the file's modification time.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

#: File name suffixes the folder ingest picks up (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".ppm", ".pnm", ".pbm", ".bmp")
CHANNEL_CHOICES = ("auto", "gray", "rgb")
FIT_CHOICES = ("crop", "stretch")
CHANNEL_NAMES = {"gray": ["gray"], "rgb": ["R", "G", "B"]}

_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA")
_TIME_RE = re.compile(
    r"(?<!\d)(?P<Y>(?:19|20)\d{2})[-_]?(?P<m>\d{2})[-_]?(?P<d>\d{2})[T_\- ]?(?P<H>\d{2})[:\-_]?(?P<M>\d{2})"
    r"(?:[:\-_]?(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?(?!\d)")
_EXIF_IFD = 0x8769
_EXIF_DATETIME_ORIGINAL = 36867
_EXIF_SUBSEC_ORIGINAL = 37521
_TIFF_DATETIME = 306


@dataclass(frozen=True)
class DecodeSpec:
    """What every decoded sample must look like.

    Attributes:
        size: output height and width in pixels.
        channels: "gray" (C=1) or "rgb" (C=3).
        dtype: "uint8" or "uint16".
        fit: "crop" (central square, then resize) or "stretch" (resize the whole image).
    """

    size: int
    channels: str
    dtype: str
    fit: str = "crop"

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (1 if self.channels == "gray" else 3, self.size, self.size)


@dataclass
class Decoded:
    """Result of decoding one file; ``error`` is set (and ``sample`` None) when the file is unusable."""

    index: int
    sample: np.ndarray | None = None          # (C, size, size)
    time_ns: int = 0                          # UTC, ns since the epoch
    time_from: str = ""                       # "filename" | "exif" | "mtime" | "given"
    converted: bool = False                   # colour/depth changed to fit the archive
    reason: str = ""                          # short reject reason
    error: str = ""                           # the decoder's message


def is_image_file(name: str) -> bool:
    """Whether ``name`` has one of :data:`IMAGE_SUFFIXES`."""
    return name.lower().endswith(IMAGE_SUFFIXES)


# ------------------------------------------------------------------------------------------------ probing

def probe_file(path: str) -> tuple[bool, int] | None:
    """(is_colour, bit_depth) of one file, or None if it cannot be read.

    A colour-mode file whose three channels are identical counts as grey (many grey frames are saved as RGB).
    """
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in _HIGH_DEPTH_MODES:
                return False, 16
            if mode not in _COLOUR_MODES:
                return False, 8
            if max(img.size) > 1024:
                img.thumbnail((256, 256))
            else:
                img.load()
            rgb = np.asarray(img.convert("RGB"))
            grey = bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))
            return (not grey), 8
    except Exception:  # noqa: BLE001 - unreadable files are skipped by the probe and rejected later
        return None


def choose_layout(paths: list[str], channels: str = "auto", bit_depth: int | str = "auto",
                  max_probe: int = 32) -> tuple[str, str]:
    """Decide the archive's (channels, dtype) from the data.

    ``channels="auto"`` probes up to ``max_probe`` files spread evenly over ``paths`` (a deterministic choice, so a
    rerun decides the same): "rgb" if any probed file has genuinely different colour channels, else "gray".
    ``bit_depth="auto"`` gives "uint16" if any probed grey file is 16 bit (and the archive is grey), else "uint8".
    """
    if channels not in CHANNEL_CHOICES:
        raise ValueError(f"channels {channels!r} is not one of {list(CHANNEL_CHOICES)}")
    if bit_depth not in ("auto", 8, 16):
        raise ValueError(f"bit_depth {bit_depth!r} is not one of ['auto', 8, 16]")
    colour, deep = False, False
    if channels == "auto" or bit_depth == "auto":
        if paths:
            picks = sorted(set(np.linspace(0, len(paths) - 1, num=min(max_probe, len(paths))).round().astype(int)))
            for i in picks:
                info = probe_file(paths[i])
                if info is not None:
                    colour |= info[0]
                    deep |= info[1] == 16
    ch = ("rgb" if colour else "gray") if channels == "auto" else channels
    if bit_depth == "auto":
        dtype = "uint16" if (deep and ch == "gray") else "uint8"
    else:
        dtype = "uint16" if bit_depth == 16 else "uint8"
    return ch, dtype


# ------------------------------------------------------------------------------------------------ decoding

def _crop_box(w: int, h: int) -> tuple[int, int, int, int]:
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return left, top, left + s, top + s


def _geometry(img: Image.Image, spec: DecodeSpec) -> Image.Image:
    if spec.fit == "crop" and img.size[0] != img.size[1]:
        img = img.crop(_crop_box(*img.size))
    if img.size != (spec.size, spec.size):
        img = img.resize((spec.size, spec.size), Image.Resampling.BILINEAR)
    return img


def _high_depth(img: Image.Image, spec: DecodeSpec) -> tuple[np.ndarray, bool]:
    """16-bit grey (``I;16*``), 32-bit integer (``I``) or float (``F``) image → (H, W) uint16; converted?"""
    data = np.asarray(img)
    converted = False
    if data.dtype.kind == "f" or data.dtype.itemsize > 2:
        converted = img.mode == "F" or bool(data.min(initial=0) < 0 or data.max(initial=0) > 65535)
    if img.size == (spec.size, spec.size) and data.dtype.kind == "u":
        return data.astype(np.uint16, copy=False), converted         # native size: no resampling
    work = _geometry(Image.fromarray(data.astype(np.float32), mode="F"), spec)   # resample in float
    return np.clip(np.rint(np.asarray(work)), 0, 65535).astype(np.uint16), converted


def _decode_open(img: Image.Image, spec: DecodeSpec) -> tuple[np.ndarray, bool]:
    if img.format == "JPEG" and min(img.size) >= 2 * spec.size:
        img.draft(img.mode, (spec.size, spec.size))  # DCT scaling only; colour is converted below
    img.load()
    mode = img.mode
    converted = False
    if mode in _HIGH_DEPTH_MODES:
        arr, converted = _high_depth(img, spec)
        if spec.dtype == "uint8":
            arr = (arr >> 8).astype(np.uint8)
            converted = True
        if spec.channels == "rgb":
            return np.repeat(arr[None], 3, axis=0), True
        return np.ascontiguousarray(arr[None]), converted
    if spec.channels == "gray":
        if mode != "L":
            converted = mode in _COLOUR_MODES and not _is_grey(img)
            img = img.convert("L")
        arr = np.asarray(_geometry(img, spec))[None]                       # (1, H, W)
    else:
        if mode != "RGB":
            converted = mode not in _COLOUR_MODES
            img = img.convert("RGB")
        arr = np.asarray(_geometry(img, spec)).transpose(2, 0, 1)          # (3, H, W)
    if spec.dtype == "uint16":
        arr = arr.astype(np.uint16) * np.uint16(257)
        converted = True
    return np.ascontiguousarray(arr), converted


def decode_image(path: str, spec: DecodeSpec) -> tuple[np.ndarray, bool]:
    """Decode ``path`` to a (C, size, size) array of ``spec.dtype``; returns (sample, converted).

    Raises whatever Pillow raises for an unreadable, corrupt or truncated file.
    """
    with Image.open(path) as img:
        return _decode_open(img, spec)


def _is_grey(img: Image.Image) -> bool:
    rgb = np.asarray(img.convert("RGB"))
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


# ------------------------------------------------------------------------------------------------ time

def time_from_name(name: str) -> int | None:
    """UTC ns of a full timestamp (date, hour and minute at least) in a file name, or None."""
    for m in _TIME_RE.finditer(os.path.basename(name)):
        try:
            frac = (m["f"] or "0")[:9].ljust(9, "0")
            t = dt.datetime(int(m["Y"]), int(m["m"]), int(m["d"]), int(m["H"]), int(m["M"]), int(m["S"] or 0),
                            tzinfo=dt.timezone.utc)
        except ValueError:
            continue
        return int(t.timestamp()) * 1_000_000_000 + int(frac)
    return None


def _exif_time(img: Image.Image) -> int | None:
    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF just means no EXIF time
        return None
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001
        sub = {}
    for value, subsec in ((sub.get(_EXIF_DATETIME_ORIGINAL), sub.get(_EXIF_SUBSEC_ORIGINAL)),
                          (exif.get(_TIFF_DATETIME), None)):
        if not isinstance(value, str):
            continue
        try:
            t = dt.datetime.strptime(value.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
        ns = int(t.timestamp()) * 1_000_000_000
        if isinstance(subsec, str) and subsec.strip().isdigit():
            ns += int(subsec.strip()[:9].ljust(9, "0"))
        return ns
    return None


def image_time(path: str, img: Image.Image | None = None) -> tuple[int, str]:
    """(UTC ns since the epoch, how it was found): "filename", "exif" or "mtime".

    ``img``: the file already open (saves opening it again for EXIF).
    """
    t = time_from_name(path)
    if t is not None:
        return t, "filename"
    if img is not None:
        t = _exif_time(img)
    else:
        try:
            with Image.open(path) as opened:
                t = _exif_time(opened)
        except Exception:  # noqa: BLE001 - the decode step reports unreadable files
            t = None
    if t is not None:
        return t, "exif"
    return os.stat(path).st_mtime_ns, "mtime"


def decode_one(index: int, path: str, spec: DecodeSpec, time_ns: int | None = None) -> Decoded:
    """Decode one file for the ingest: never raises for a bad file, returns ``Decoded`` with ``error`` set."""
    try:
        with Image.open(path) as img:
            sample, converted = _decode_open(img, spec)
            t, how = (int(time_ns), "given") if time_ns is not None else image_time(path, img)
    except FileNotFoundError as exc:
        return Decoded(index, reason="missing", error=str(exc))
    except Image.UnidentifiedImageError as exc:
        return Decoded(index, reason="unidentified image", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a reject with Pillow's message
        msg = str(exc) or type(exc).__name__
        reason = "truncated" if "truncated" in msg else "corrupt"
        return Decoded(index, reason=reason, error=f"{type(exc).__name__}: {msg}")
    return Decoded(index, sample=sample, time_ns=t, time_from=how, converted=converted)


def decode_batch(tasks: list[tuple[int, str, int | None]], spec: DecodeSpec) -> list[Decoded]:
    """Worker entry point: decode ``(index, path, known_time_ns)`` tasks in order."""
    return [decode_one(i, p, spec, t) for i, p, t in tasks]


def decode_only_batch(tasks: list[tuple[int, str, int | None]], spec: DecodeSpec) -> int:
    """Decode and drop (the benchmark's decode-only baseline); returns the number of good files."""
    return sum(1 for d in decode_batch(tasks, spec) if d.sample is not None)

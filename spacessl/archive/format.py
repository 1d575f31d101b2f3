"""Archive format version 1: layout, attributes, string tables and validation.

An archive is a Zarr v3 group readable by any Zarr client (see docs/archive-format.md)::

    ARCHIVE.zarr/                 attrs: spacessl_format=1, modality, complete, n, sample_shape, dtype, dims,
                                  units, channels, chunk_size, shard_chunks, meta_fields, [label_names],
                                  [sampling_rate_hz, window_s], ...
      samples                     (N, C, H, W) or (N, C, T), chunked along N only
      meta/time_ns                (N,) int64, UTC start time in ns since the epoch
      meta/source                 (N,) int32 code into tables/source (camera / station id)
      meta/origin                 (N,) int32 code into tables/origin (file the sample came from)
      meta/label                  (N,) int16, -1 = unlabelled; names in attrs label_names
      meta/<extra>                (N,) numeric, or int32 codes into tables/<extra> for string fields
      tables/<field>/utf8         (B,) uint8: the UTF-8 bytes of every distinct string, concatenated
      tables/<field>/offsets      (M + 1,) int64: string i is utf8[offsets[i]:offsets[i + 1]]

Strings are stored as integer codes into such append-only tables because Zarr v3 has no standard string type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spacessl.errors import SpacesslError

FORMAT_VERSION = 1
MODALITIES = ("image", "waveform")
DIMS = {"image": "CHW", "waveform": "CT"}
STR = "str"
#: meta fields every archive has: name -> dtype ("str" = string-table codes)
BASE_META: dict[str, str] = {"time_ns": "int64", "source": STR, "origin": STR, "label": "int16"}
REQUIRED_ATTRS = ("spacessl_format", "modality", "complete", "n", "sample_shape", "dtype", "dims", "units",
                  "channels", "chunk_size", "shard_chunks", "meta_fields")


class ArchiveFormatError(SpacesslError):
    """The path is not a valid spacessl archive of a version this code reads."""


class ArchiveExistsError(SpacesslError):
    """An archive already exists where a new one would be written."""


def code_dtype(dtype: str) -> np.dtype:
    """Storage dtype of a meta field: string fields are int32 codes."""
    return np.dtype("int32") if dtype == STR else np.dtype(dtype)


def validate_attrs(attrs: dict[str, Any], url: str) -> None:
    """Raise ArchiveFormatError naming the archive and the fix if ``attrs`` do not describe a v1 archive."""
    if "spacessl_format" not in attrs:
        raise ArchiveFormatError(
            f"{url} is a Zarr group but not a spacessl archive (no 'spacessl_format' attribute); "
            "create archives with `spacessl ingest ...` or `spacessl synth ...`")
    version = attrs["spacessl_format"]
    if version != FORMAT_VERSION:
        raise ArchiveFormatError(
            f"{url} has archive format version {version!r}; this spacessl reads version {FORMAT_VERSION}. "
            "Re-ingest the source data with this version of spacessl")
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise ArchiveFormatError(f"{url} lacks required attributes {missing}; the archive is damaged, re-ingest it")
    if attrs["modality"] not in MODALITIES:
        raise ArchiveFormatError(f"{url} has modality {attrs['modality']!r}; expected one of {list(MODALITIES)}")
    expected_dims = DIMS[attrs["modality"]]
    if attrs["dims"] != expected_dims:
        raise ArchiveFormatError(
            f"{url} declares dims {attrs['dims']!r} for modality {attrs['modality']!r}; expected {expected_dims!r}")
    if len(attrs["sample_shape"]) != len(expected_dims):
        raise ArchiveFormatError(
            f"{url} sample_shape {attrs['sample_shape']} does not match dims {expected_dims!r}")
    if len(attrs["channels"]) != attrs["sample_shape"][0]:
        raise ArchiveFormatError(
            f"{url} names {len(attrs['channels'])} channels {attrs['channels']} but samples have "
            f"{attrs['sample_shape'][0]}")
    if attrs["modality"] == "waveform":
        for key in ("sampling_rate_hz", "window_s"):
            if key not in attrs:
                raise ArchiveFormatError(f"{url} is a waveform archive without attribute {key!r}")


def encode_strings(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings → (utf8 bytes (B,) uint8, lengths (M,) int64)."""
    encoded = [s.encode("utf-8") for s in strings]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    return data, lengths


def decode_strings(utf8: np.ndarray, offsets: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Codes (K,) → object array of str, decoding only the distinct codes present."""
    codes = np.asarray(codes)
    out = np.empty(codes.shape, dtype=object)
    if codes.size == 0:
        return out
    uniq, inverse = np.unique(codes, return_inverse=True)
    raw = utf8.tobytes()
    names = []
    for c in uniq:
        if c < 0 or c + 1 >= len(offsets):
            names.append("")
        else:
            names.append(raw[offsets[c]:offsets[c + 1]].decode("utf-8"))
    out[...] = np.asarray(names, dtype=object)[inverse.reshape(codes.shape)]
    return out

"""Image folders → archive: ``spacessl ingest images SRC_DIR OUT.zarr``.

Every file under ``SRC_DIR`` (recursively) with an image suffix (PNG, JPEG, TIFF, PGM/PPM/PNM, BMP; 8 or 16 bit,
grey or colour) becomes one sample of shape (C, size, size):

- order: files sorted by their path relative to ``SRC_DIR``; input index = position in that order, so the
  archive is deterministic and a killed ingest resumes by running the same command again;
- channels and bit depth: decided from the data (``channels="auto"``, ``bit_depth="auto"``, see
  :func:`spacessl.ingest.decode.choose_layout`) or forced; files that do not match are converted and counted;
- metadata: ``origin`` = path relative to ``SRC_DIR``; ``source`` = the file's parent folder name (the camera, in
  the usual ``CAMERA/…`` layout) or the ``source`` argument; ``time_ns`` from a timestamp in the file name, else
  EXIF, else the file's modification time (UTC; meta field ``time_from`` says which); ``label`` from the labels
  CSV (see :mod:`spacessl.ingest.labels`) or -1;
- decoding runs in a process pool (``workers``), results come back in order and one writer appends whole chunks;
- a corrupt, truncated or unreadable file is listed in ``NAME.rejects.csv`` beside the archive with the decoder's
  message, and every good file still lands; ``strict=True`` stops at the first bad file instead.

:func:`write_image_archive` is the engine, also used by the OATH reader (:mod:`spacessl.ingest.oath`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from spacessl.archive.writer import ArchiveWriter
from spacessl.errors import SpacesslError
from spacessl.ingest.decode import (CHANNEL_CHOICES, CHANNEL_NAMES, FIT_CHOICES, IMAGE_SUFFIXES, DecodeSpec,
                                    Decoded, choose_layout, decode_batch, is_image_file)
from spacessl.ingest.labels import read_labels_csv
from spacessl.ingest.parallel import default_workers, ordered_map
from spacessl.ingest.report import IngestReport

#: files per worker task: amortises inter-process overhead, small enough to keep every worker busy.
BATCH_FILES = 16
#: zstd level of the archive chunks: on sky frames level 1 is within a few % of level 3's size at half the CPU,
#: and the single writer's CPU is what an ingest adds to decoding (benchmarks/ingest_images.py).
COMPRESSION_LEVEL = 1


class ImageDecodeError(SpacesslError):
    """A file could not be decoded and the ingest runs with ``strict=True``."""


@dataclass
class ImageInput:
    """One file to ingest and the metadata it gets.

    Attributes:
        path: file to decode.
        origin: what the archive records as the sample's origin (usually the path relative to the source folder).
        source: camera / site id.
        label: class index, -1 = unlabelled.
        time_ns: known UTC time in ns; None = from the file name, EXIF or modification time.
        extra: values of extra meta fields declared by the caller.
    """

    path: str
    origin: str
    source: str
    label: int = -1
    time_ns: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def list_image_files(src_dir: str) -> list[str]:
    """Paths (relative to ``src_dir``, posix, sorted) of every image file under it; hidden entries skipped."""
    root = Path(src_dir)
    if not root.is_dir():
        raise SpacesslError(f"image folder {src_dir} does not exist or is not a folder")
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.endswith(".zarr")]
        rel_dir = Path(dirpath).relative_to(root)
        found += [(rel_dir / f).as_posix() for f in filenames if not f.startswith(".") and is_image_file(f)]
    return sorted(found)


def ingest_images(src_dir: str, out: str, *, labels_csv: str | None = None, size: int = 256,
                  channels: str = "auto", bit_depth: int | str = "auto", fit: str = "crop",
                  source: str | None = None, strict: bool = False, workers: int | None = None,
                  chunk_size: int = 256, shard_chunks: int = 16, overwrite: bool = False,
                  progress: bool = True) -> IngestReport:
    """Ingest every image under ``src_dir`` into the archive ``out`` (see module docstring).

    Args:
        src_dir: folder of images (searched recursively).
        out: archive URL (local path or fsspec URL).
        labels_csv: optional CSV ``filename,label``.
        size: output height and width in pixels.
        channels: "auto" (decide from the data), "gray" or "rgb".
        bit_depth: "auto", 8 or 16.
        fit: "crop" (central square) or "stretch" for non-square images.
        source: camera id for every sample; default: each file's parent folder name.
        strict: raise on the first unreadable file instead of listing it in the rejects file.
        workers: decoding processes (default: all CPUs; 0 = decode in this process).
        chunk_size, shard_chunks: archive chunking (samples per chunk, chunks per shard).
        overwrite: replace an existing archive.
        progress: show a progress bar with rate and ETA.
    """
    rel_paths = list_image_files(src_dir)
    if not rel_paths:
        raise SpacesslError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {src_dir}; "
                            "point SRC_DIR at the folder that holds the images")
    table = read_labels_csv(labels_csv) if labels_csv else None
    top = Path(src_dir).resolve().name
    inputs = []
    for rel in rel_paths:
        parent = Path(rel).parent.name
        inputs.append(ImageInput(path=os.path.join(src_dir, rel), origin=rel, source=source or parent or top,
                                 label=table.lookup(rel) if table else -1))
    report = write_image_archive(inputs, out, size=size, channels=channels, bit_depth=bit_depth, fit=fit,
                                 label_names=table.label_names if table else None, attrs={"ingest": "folder"},
                                 strict=strict, workers=workers, chunk_size=chunk_size, shard_chunks=shard_chunks,
                                 overwrite=overwrite, progress=progress)
    if table is not None:
        n_labelled = sum(1 for inp in inputs if inp.label >= 0)
        report.notes.append(f"{n_labelled} of {len(inputs)} files labelled from {labels_csv}")
        unused = table.unused()
        if unused:
            report.notes.append(f"{len(unused)} rows of {labels_csv} match no image file, e.g. {unused[:3]}")
    return report


def inputs_fingerprint(names: Sequence[str]) -> dict[str, Any]:
    """Attributes that pin the input list: resuming over a folder whose files changed is refused by the writer
    (it compares them) instead of silently mixing two lists."""
    digest = hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()
    return {"n_inputs": len(names), "inputs_sha256": digest}


def _batches(inputs: Sequence[ImageInput], start: int, n: int) -> Iterator[list[tuple[int, str, int | None]]]:
    for b in range(start, len(inputs), n):
        yield [(i, inputs[i].path, inputs[i].time_ns) for i in range(b, min(b + n, len(inputs)))]


def write_image_archive(inputs: Sequence[ImageInput], out: str, *, size: int = 256, channels: str = "auto",
                        bit_depth: int | str = "auto", fit: str = "crop", label_names: Sequence[str] | None = None,
                        extra_meta: dict[str, str] | None = None, attrs: dict[str, Any] | None = None,
                        strict: bool = False, workers: int | None = None, chunk_size: int = 256,
                        shard_chunks: int = 16, overwrite: bool = False, progress: bool = True,
                        desc: str = "ingest images") -> IngestReport:
    """Decode ``inputs`` in parallel and write them, in order, to the image archive ``out``.

    Input i gets input index i: rerunning with the same inputs resumes an interrupted archive and gives the same
    result, sample for sample, as an uninterrupted run. Extra meta fields (``extra_meta``: name → dtype or "str")
    take their values from each input's ``extra``; the field ``time_from`` is always added.
    """
    if size < 1:
        raise SpacesslError(f"size must be a positive number of pixels, got {size}")
    if channels not in CHANNEL_CHOICES:
        raise SpacesslError(f"channels {channels!r} is not one of {list(CHANNEL_CHOICES)}")
    if fit not in FIT_CHOICES:
        raise SpacesslError(f"fit {fit!r} is not one of {list(FIT_CHOICES)}")
    if bit_depth not in ("auto", 8, 16):
        raise SpacesslError(f"bit_depth {bit_depth!r} is not one of ['auto', 8, 16]")
    t0 = time.perf_counter()
    ch, dtype = choose_layout([inp.path for inp in inputs], channels, bit_depth)
    spec = DecodeSpec(size=int(size), channels=ch, dtype=dtype, fit=fit)
    fields = {"time_from": "str", **(extra_meta or {})}
    all_attrs = {"image_size_px": int(size), "fit": fit, "resample": "bilinear",
                 "bit_depth": 16 if dtype == "uint16" else 8, **(attrs or {}),
                 **inputs_fingerprint([inp.origin for inp in inputs])}
    writer = ArchiveWriter(out, modality="image", sample_shape=spec.sample_shape, dtype=dtype, units="DN",
                           channels=CHANNEL_NAMES[ch], label_names=list(label_names) if label_names else None,
                           chunk_size=chunk_size, shard_chunks=shard_chunks, extra_meta=fields, attrs=all_attrs,
                           overwrite=overwrite, compression_level=COMPRESSION_LEVEL)
    start = writer.resume_from
    n_workers = default_workers() if workers is None else int(workers)
    if len(inputs) - start <= BATCH_FILES:
        n_workers = 0  # not worth starting a pool
    converted = 0
    bar = tqdm(total=len(inputs), initial=start, unit="img", desc=desc, disable=not progress, smoothing=0.05)
    try:
        # in flight: enough decoded files to cover two chunks, so workers keep going while a chunk is committed
        window = max(4 * n_workers, -(-2 * chunk_size // BATCH_FILES))
        results = ordered_map(decode_batch, _batches(inputs, start, BATCH_FILES), workers=n_workers,
                              window=window, preload=["spacessl.ingest.decode"], spec=spec)
        try:
            for batch in results:
                for d in batch:
                    converted += _store(writer, inputs[d.index], d, strict)
                bar.update(len(batch))
                if writer.n_rejects:
                    bar.set_postfix(rejects=writer.n_rejects, refresh=False)
        finally:
            results.close()
        writer.close()
    finally:
        bar.close()
    return IngestReport(url=writer.url, n_inputs=len(inputs), n_samples=writer.n, n_rejects=writer.n_rejects,
                        resumed_from=start, rejects_path=writer.rejects_path, seconds=time.perf_counter() - t0,
                        layout={"channels": ch, "dtype": dtype, "size": size, "fit": fit}, n_converted=converted)


def _store(writer: ArchiveWriter, inp: ImageInput, d: Decoded, strict: bool) -> int:
    if d.sample is None:
        if strict:
            raise ImageDecodeError(
                f"{inp.path}: {d.reason} ({d.error}). Replace or remove the file and rerun the same command "
                "(it resumes), or run without --strict to list bad files in the rejects file")
        writer.reject(input_index=d.index, origin=inp.origin, reason=d.reason, detail=d.error)
        return 0
    writer.append(d.sample[None], input_index=d.index, time_ns=d.time_ns, source=inp.source, origin=inp.origin,
                  label=inp.label, time_from=d.time_from, **inp.extra)
    return int(d.converted)

"""The OATH data set → archive: ``spacessl ingest images OATH_DIR OUT.zarr --format oath``.

OATH (Oslo Auroral THEMIS training set; Clausen & Nickisch 2018, "Automatic classification of auroral images
from the Oslo Auroral THEMIS (OATH) data set using machine learning", JGR Space Physics 123,
doi:10.1029/2018JA025274; data and README at http://tid.uio.no/plasma/oath/) holds 5,824 labelled THEMIS ASI
frames. The published archive unpacks to::

    oath/
      00_README
      classification/classification.csv     license header lines, then columns class2,class6,picNum,picType,rotAng
      classification/train_test_split.csv
      images/cropped_scaled/00001.png … 05824.png
      images/files_origin.csv

``classification.csv`` is also accepted as ``classifications.csv`` and directly in the OATH folder. Any lines
before the header row (the license text) are skipped; the header is the first line naming ``picNum`` and
``class6``; columns may come in any order, separated by commas or white space.

Labels (from the OATH web page's table, which gives each label with its class6 and class2 number):
class6 0 arc, 1 diffuse, 2 discrete, 3 cloudy, 4 moon, 5 clear (clear / no aurora); class2 0 aurora (arc,
diffuse, discrete), 1 no aurora (cloudy, moon, clear). The archive's ``label`` is class6 with those
``label_names``; extra meta fields keep ``class2`` (int16), ``pic_num`` (int32), ``pic_type`` (string, as
written) and ``rot_ang_deg`` (float32, the rotation angle column).

Time and camera: where ``images/files_origin.csv`` names a THEMIS file with a full timestamp for a picture
(e.g. ``20080105_0600_gill_…`` or ``…_2008-01-05T06:00:03…``) and a four-letter site after ``thg_l1_asf_`` or
before ``_themis``, that gives the sample's time (``time_from`` = "given") and ``source``; otherwise the
source is "oath" and the time comes from the PNG's name/EXIF/modification time like any image ingest.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spacessl.errors import SpacesslError
from spacessl.ingest.decode import time_from_name
from spacessl.ingest.images import ImageInput, write_image_archive
from spacessl.ingest.report import IngestReport

#: class6 integer → name, in order (OATH web page, Clausen & Nickisch 2018).
OATH_CLASS6 = ("arc", "diffuse", "discrete", "cloudy", "moon", "clear")
#: class2 integer → name.
OATH_CLASS2 = ("aurora", "no aurora")
OATH_COLUMNS = ("class2", "class6", "picNum", "picType", "rotAng")
_CSV_CANDIDATES = ("classification/classification.csv", "classification/classifications.csv",
                   "classification.csv", "classifications.csv")
_IMAGE_DIR = "images/cropped_scaled"
_SITE_RE = re.compile(r"thg_l\d_as[fk]_(?P<a>[a-z]{4})_|(?<![a-z])(?P<b>[a-z]{4})_themis", re.IGNORECASE)


class OathFormatError(SpacesslError):
    """The folder or its classification file does not follow the published OATH layout."""


@dataclass(frozen=True)
class OathRow:
    """One row of classification.csv."""

    pic_num: int
    class6: int
    class2: int
    pic_type: str
    rot_ang_deg: float


def find_classification_csv(oath_dir: str) -> str:
    """Path of the OATH classification file under ``oath_dir``."""
    for rel in _CSV_CANDIDATES:
        path = os.path.join(oath_dir, rel)
        if os.path.isfile(path):
            return path
    raise OathFormatError(f"{oath_dir} has no OATH classification file (looked for {', '.join(_CSV_CANDIDATES)}); "
                          "point SRC_DIR at the unpacked OATH folder, or use --format folder with --labels")


def _split(line: str) -> list[str]:
    if "," in line:
        return [c.strip() for c in next(csv.reader(io.StringIO(line)))]
    return line.split()


def read_classification_csv(path: str) -> list[OathRow]:
    """Parse an OATH classification file, skipping the license header; rows sorted by picNum."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        lines = f.read().splitlines()
    header_at = None
    for n, line in enumerate(lines):
        cells = _split(line.lstrip("#").strip())
        if "picNum" in cells and "class6" in cells:
            header_at, header = n, cells
            break
    if header_at is None:
        raise OathFormatError(f"{path}: no header line naming the OATH columns {','.join(OATH_COLUMNS)}; "
                              "is this the OATH classification.csv?")
    col = {name: header.index(name) for name in OATH_COLUMNS if name in header}
    rows: dict[int, OathRow] = {}
    for n in range(header_at + 1, len(lines)):
        line = lines[n].strip()
        if not line or line.startswith("#"):
            continue
        cells = _split(line)
        lineno = n + 1
        try:
            pic = int(cells[col["picNum"]])
            c6 = int(float(cells[col["class6"]]))
            c2 = int(float(cells[col["class2"]])) if "class2" in col else int(c6 >= 3)
            pic_type = cells[col["picType"]] if "picType" in col else ""
            rot = float(cells[col["rotAng"]]) if "rotAng" in col else 0.0
        except (IndexError, ValueError) as exc:
            raise OathFormatError(f"{path} line {lineno}: cannot parse {line!r} ({exc})") from exc
        if not 0 <= c6 < len(OATH_CLASS6):
            raise OathFormatError(f"{path} line {lineno}: class6 {c6} is not one of 0..{len(OATH_CLASS6) - 1} "
                                  f"({', '.join(OATH_CLASS6)})")
        if not 0 <= c2 < len(OATH_CLASS2):
            raise OathFormatError(f"{path} line {lineno}: class2 {c2} is not 0 (aurora) or 1 (no aurora)")
        if pic in rows:
            raise OathFormatError(f"{path} line {lineno}: picNum {pic} appears twice")
        rows[pic] = OathRow(pic, c6, c2, pic_type, rot)
    if not rows:
        raise OathFormatError(f"{path} has a header but no rows")
    return [rows[k] for k in sorted(rows)]


def read_files_origin(path: str) -> dict[int, tuple[str | None, int | None]]:
    """picNum → (site, time_ns) from OATH's images/files_origin.csv, where a line names them (best effort)."""
    out: dict[int, tuple[str | None, int | None]] = {}
    if not os.path.isfile(path):
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            cells = [c for c in re.split(r"[,\s;]+", line.strip()) if c]
            nums = [c for c in cells if c.isdigit() and len(c) <= 6]
            if not nums:
                continue
            pic = int(nums[0])
            text = " ".join(c for c in cells if c != nums[0])
            m = _SITE_RE.search(text)
            site = (m["a"] or m["b"]).lower() if m else None
            t = None
            for c in cells:
                if c != nums[0]:
                    t = time_from_name(c)
                    if t is not None:
                        break
            if site or t is not None:
                out[pic] = (site, t)
    return out


def oath_inputs(oath_dir: str, rows: Sequence[OathRow]) -> list[ImageInput]:
    """One :class:`ImageInput` per classified picture, in picNum order."""
    origins = read_files_origin(os.path.join(oath_dir, "images", "files_origin.csv"))
    inputs = []
    for r in rows:
        rel = f"{_IMAGE_DIR}/{r.pic_num:05d}.png"
        site, t = origins.get(r.pic_num, (None, None))
        inputs.append(ImageInput(
            path=os.path.join(oath_dir, rel), origin=rel, source=site or "oath", label=r.class6, time_ns=t,
            extra={"class2": r.class2, "pic_num": r.pic_num, "pic_type": r.pic_type, "rot_ang_deg": r.rot_ang_deg}))
    return inputs


def ingest_oath(oath_dir: str, out: str, *, size: int = 256, channels: str = "auto", bit_depth: int | str = "auto",
                strict: bool = False, workers: int | None = None, chunk_size: int = 256, shard_chunks: int = 16,
                overwrite: bool = False, progress: bool = True) -> IngestReport:
    """Ingest the OATH folder ``oath_dir`` (see module docstring) into the image archive ``out``.

    A picture listed in the classification file but missing or unreadable is a reject (or an error with
    ``strict=True``); the other arguments are those of :func:`spacessl.ingest.images.ingest_images`.
    """
    if not Path(oath_dir).is_dir():
        raise OathFormatError(f"OATH folder {oath_dir} does not exist")
    csv_path = find_classification_csv(oath_dir)
    rows = read_classification_csv(csv_path)
    if not Path(oath_dir, _IMAGE_DIR).is_dir():
        raise OathFormatError(f"{oath_dir} has no {_IMAGE_DIR}/ folder of NNNNN.png pictures; "
                              "point SRC_DIR at the unpacked OATH folder")
    inputs = oath_inputs(oath_dir, rows)
    report = write_image_archive(
        inputs, out, size=size, channels=channels, bit_depth=bit_depth, fit="crop", label_names=list(OATH_CLASS6),
        extra_meta={"class2": "int16", "pic_num": "int32", "pic_type": "str", "rot_ang_deg": "float32"},
        attrs={"ingest": "oath", "class2_names": list(OATH_CLASS2)}, strict=strict, workers=workers,
        chunk_size=chunk_size, shard_chunks=shard_chunks, overwrite=overwrite, progress=progress,
        desc="ingest OATH")
    report.notes.append(f"labels: class6 from {csv_path} ({len(rows)} rows)")
    return report

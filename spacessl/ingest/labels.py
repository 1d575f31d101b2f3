"""Labels CSV for image ingest: columns ``filename,label``.

- A header row naming the columns (``filename,label``, any order, more columns allowed) is optional; without it the
  first two columns are filename and label. Blank lines and lines starting with ``#`` are skipped.
- ``filename`` is a path relative to the image folder (``night1/img_0001.png``) or a bare file name when those are
  unique in the folder.
- ``label`` is either a class name in every row (the archive's ``label_names`` are the sorted distinct names and
  label i names ``label_names[i]``) or an integer in every row (stored as is, no names; -1 = unlabelled). An empty
  label means unlabelled. Mixing names and integers is an error.
- Files the CSV does not list are stored unlabelled (-1).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from spacessl.errors import SpacesslError

_INT_RE = re.compile(r"^[+-]?\d+$")
_INT16 = (-1, 32767)


class LabelsError(SpacesslError):
    """The labels CSV cannot be used as written."""


@dataclass
class LabelTable:
    """Labels looked up by relative path (or by bare file name)."""

    label_names: list[str] | None
    by_path: dict[str, int] = field(default_factory=dict)
    source: str = ""
    _by_name: dict[str, int | None] = field(default_factory=dict, repr=False)
    used: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        for path, label in self.by_path.items():
            name = PurePosixPath(path).name
            self._by_name[name] = label if name not in self._by_name else None  # None: ambiguous

    def lookup(self, rel_path: str) -> int:
        """Label of the file at ``rel_path`` (relative, posix), -1 when the CSV does not list it."""
        key = _normalise(rel_path)
        if key in self.by_path:
            self.used.add(key)
            return self.by_path[key]
        name = PurePosixPath(key).name
        if name in self.by_path:  # CSV lists a bare name
            self.used.add(name)
            return self.by_path[name]
        return -1

    def unused(self) -> list[str]:
        """CSV entries that matched no file (after every lookup)."""
        return sorted(set(self.by_path) - self.used)


def _normalise(path: str) -> str:
    p = str(path).strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p


def read_labels_csv(path: str) -> LabelTable:
    """Parse a labels CSV (see module docstring); raises LabelsError naming the file, line and fix."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(n, r) for n, r in enumerate(csv.reader(f), start=1)
                    if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    except OSError as exc:
        raise LabelsError(f"cannot read labels CSV {path}: {exc}") from exc
    if not rows:
        raise LabelsError(f"labels CSV {path} has no rows; expected columns filename,label")
    header = [c.strip().lower() for c in rows[0][1]]
    if "filename" in header and "label" in header:
        fi, li = header.index("filename"), header.index("label")
        rows = rows[1:]
    else:
        fi, li = 0, 1
    raw: dict[str, str] = {}
    for lineno, row in rows:
        if len(row) <= max(fi, li):
            raise LabelsError(f"{path} line {lineno}: expected columns filename,label, got {row!r}")
        name, label = _normalise(row[fi]), row[li].strip()
        if not name:
            raise LabelsError(f"{path} line {lineno}: empty filename")
        if name in raw and raw[name] != label:
            raise LabelsError(f"{path} line {lineno}: {name!r} is labelled both {raw[name]!r} and {label!r}; "
                              "keep one row per file")
        raw[name] = label
    given = {k: v for k, v in raw.items() if v != ""}
    ints = [v for v in given.values() if _INT_RE.match(v)]
    if ints and len(ints) != len(given):
        example = next(k for k, v in given.items() if not _INT_RE.match(v))
        raise LabelsError(f"{path} mixes integer labels and class names (e.g. {example!r}: {given[example]!r}); "
                          "use class names in every row or integers in every row")
    if ints:
        by_path = {k: (int(v) if v != "" else -1) for k, v in raw.items()}
        bad = [(k, v) for k, v in by_path.items() if not _INT16[0] <= v <= _INT16[1]]
        if bad:
            raise LabelsError(f"{path}: integer label {bad[0][1]} of {bad[0][0]!r} is outside "
                              f"{_INT16[0]}..{_INT16[1]} (-1 = unlabelled)")
        return LabelTable(label_names=None, by_path=by_path, source=str(path))
    names = sorted(set(given.values()))
    if len(names) > _INT16[1]:
        raise LabelsError(f"{path} has {len(names)} class names; at most {_INT16[1]} are supported")
    code = {n: i for i, n in enumerate(names)}
    by_path = {k: (code[v] if v != "" else -1) for k, v in raw.items()}
    return LabelTable(label_names=names or None, by_path=by_path, source=str(path))

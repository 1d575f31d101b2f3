"""Staging area of a parallel ingest: one part file per finished input, committed atomically.

A worker writes the result of input ``i`` to ``STAGING/part-0000000i.npz`` (local: a temporary name then
``os.replace``; object stores: a single PUT, which is atomic), so a part either exists whole or not at all. The
driver appends parts to the archive in input order and deletes a part once the archive has committed it; a rerun
after a kill reuses the parts that exist. The staging folder sits beside the archive
(``/data/w.zarr`` -> ``/data/w.staging``) and is removed when the archive is complete.
"""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import fsspec
import numpy as np

from spacessl.archive.store import write_whole


def staging_url(archive_url: str) -> str:
    """``/data/w.zarr`` -> ``/data/w.staging``."""
    base = str(archive_url).rstrip("/")
    if base.endswith(".zarr"):
        base = base[: -len(".zarr")]
    return base + ".staging"


class Staging:
    """Part files and a JSON manifest under ``url`` (local path or fsspec URL)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.url = str(url).rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.url, **(storage_options or {}))

    # ------------------------------------------------------------------------------------------- files

    def _p(self, name: str) -> str:
        return f"{self.path}/{name}"

    def _put(self, name: str, data: bytes) -> None:
        self.fs.makedirs(self.path, exist_ok=True)
        write_whole(self.fs, self._p(name), data, tmp_suffix=f".tmp-{uuid.uuid4().hex}")

    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def remove(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)

    # ------------------------------------------------------------------------------------------- parts

    @staticmethod
    def part_name(index: int, kind: str = "part") -> str:
        return f"{kind}-{index:08d}.npz"

    def write_part(self, index: int, arrays: dict[str, np.ndarray], kind: str = "part") -> None:
        """Write ``arrays`` as part ``index`` atomically (uncompressed .npz, no pickles)."""
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self._put(self.part_name(index, kind), buf.getvalue())

    def read_part(self, index: int, kind: str = "part") -> dict[str, np.ndarray]:
        with self.fs.open(self._p(self.part_name(index, kind)), "rb") as f:
            data = f.read()
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def done(self, kind: str = "part") -> set[int]:
        """Indices of the parts of this kind that exist."""
        if not self.fs.exists(self.path):
            return set()
        out = set()
        for p in self.fs.ls(self.path, detail=False):
            name = p.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith(kind + "-") and name.endswith(".npz"):
                out.add(int(name[len(kind) + 1:-4]))
        return out

    def remove_part(self, index: int, kind: str = "part") -> None:
        p = self._p(self.part_name(index, kind))
        if self.fs.exists(p):
            self.fs.rm(p)

    # ------------------------------------------------------------------------------------------- manifest

    def write_json(self, name: str, obj: Any) -> None:
        self._put(name, json.dumps(obj, sort_keys=True).encode())

    def read_json(self, name: str) -> Any | None:
        p = self._p(name)
        if not self.fs.exists(p):
            return None
        with self.fs.open(p, "rb") as f:
            return json.loads(f.read().decode())

"""The on-disk layout of an index folder (manifest version 2) and how its FAISS files are written and read.

    IDX/
      manifest.json                 written last: format, version, metric, dim, kind, factory, plan, shard entries,
                                    model URI, embeddings / archive URLs, tuned search parameters, recall@10, latency
      trained.faiss                 the trained, empty base index (OPQ rotation, coarse quantizer, PQ codebooks)
      trained-refine.faiss          the trained, empty SQ8 re-ranking index (ivf-pq with refine only)
      shards/shard-00000.faiss      one base index per embeddings shard; IVF kinds hold an empty IndexFlatIP(d) in
                                    place of the coarse quantizer, which is shared and attached from trained.faiss
      shards/shard-00000.refine.faiss   that shard's SQ8 codes (ivf-pq with refine only)
      shards/shard-00000.ids.npy    local → global id map, only when the shard's ids are not one contiguous range
      meta/time_ns.npy              (N,) int64   per-id metadata for filters, memory-mapped at search time
      meta/source.npy               (N,) int32   codes into meta/sources.json
      meta/label.npy                (N,) int16
      meta/sources.json

Every shard index stores its vectors under local ids 0..count-1 (the add order); the global (archive row) id of local
id ``j`` is ``id_start + j``, or ``ids[j]`` from the shard's ``ids_file``. Manifest shard entry::

    {"shard": 3, "file": "shards/shard-00003.faiss", "refine_file": null | "shards/shard-00003.refine.faiss",
     "store_shards": [lo, hi], "rows": [start, stop], "count": stop - start,
     "id_start": first id, "id_stop": last id + 1, "ids_file": null}

Index shard j holds embeddings-store shards ``[j·g, (j+1)·g)``, g = ``store_shards_per_index_shard`` in the manifest
(fixed at build, so ``index add`` regroups a grown store the same way).

Files are memory-mapped on open where FAISS allows it (faiss ≥ 1.11: ``IO_FLAG_MMAP_IFC`` maps flat codes, HNSW
storage and graph, and IVF lists; ``IO_FLAG_MMAP`` maps IVF lists only), so opening costs page cache, not RAM.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from spacessl.errors import SpacesslError

FORMAT = "spacessl-index"
VERSION = 2
MANIFEST = "manifest.json"
TRAINED = "trained.faiss"
TRAINED_REFINE = "trained-refine.faiss"

#: read flags tried in order when memory-mapping (the first one the file's type accepts wins)
_MMAP_FLAGS = (("mmap-ifc", getattr(faiss, "IO_FLAG_MMAP_IFC", None)),
               ("mmap-ivf", faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY))


class IndexFormatError(SpacesslError):
    """An index folder is missing, unfinished, of another version, or damaged."""


def shard_file(s: int) -> str:
    return f"shards/shard-{s:05d}.faiss"


def refine_file(s: int) -> str:
    return f"shards/shard-{s:05d}.refine.faiss"


def ids_file(s: int) -> str:
    return f"shards/shard-{s:05d}.ids.npy"


def atomic_write_index(index: faiss.Index, path: Path) -> None:
    """Write ``index`` to a temporary name beside ``path``, then rename (readers never see a partial file)."""
    tmp = path.with_name(path.name + f".{os.getpid()}.partial")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.partial.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def read_index(path: Path, mmap: bool = True) -> tuple[faiss.Index, str]:
    """Read a FAISS file, memory-mapped where its type allows; returns (index, how: "mmap-ifc" | "mmap-ivf" | "ram")."""
    if not path.exists():
        raise IndexFormatError(f"index file {path} is missing; rebuild the index (`spacessl index build ... "
                               "--overwrite`) or rerun the interrupted build to finish it")
    if mmap:
        for how, flag in _MMAP_FLAGS:
            if flag is None:
                continue
            try:
                return faiss.read_index(str(path), flag), how
            except RuntimeError:
                continue  # this type cannot be mapped with this flag
    return faiss.read_index(str(path)), "ram"


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    """The IVF index inside ``index`` (through a pre-transform), downcast; None for non-IVF kinds."""
    try:
        return faiss.downcast_index(faiss.extract_index_ivf(index))
    except RuntimeError:
        return None


def pretransforms(index: faiss.Index) -> list[faiss.VectorTransform]:
    """The vector transforms (e.g. the OPQ rotation) applied before the IVF index, in order."""
    index = faiss.downcast_index(index)
    if not isinstance(index, faiss.IndexPreTransform):
        return []
    return [faiss.downcast_VectorTransform(index.chain.at(i)) for i in range(index.chain.size())]


class SharedQuantizer:
    """Swaps the coarse quantizer of an IVF index for another one, and back.

    FAISS frees an IVF index's quantizer only when ``own_fields`` is set; taking ownership of a quantizer through
    its SWIG proxy (``this.acquire()``) corrupts SWIG's type table, so the swap is undone instead: :meth:`restore`
    puts the original quantizer back with its original ownership, and FAISS frees it with the index as usual.
    """

    def __init__(self, index: faiss.Index, quantizer: faiss.Index):
        self.ivf = ivf_of(index)
        self.original = self.ivf.quantizer
        self.own = bool(self.ivf.own_fields)
        self.quantizer = quantizer  # kept alive while swapped in
        self.ivf.own_fields = False
        self.ivf.quantizer = quantizer

    def restore(self) -> None:
        if self.quantizer is not None:
            self.ivf.quantizer = self.original
            self.ivf.own_fields = self.own
            self.quantizer = None


def detach_quantizer(index: faiss.Index) -> SharedQuantizer | None:
    """Swap an empty IndexFlatIP(d) in for the coarse quantizer (to write a shard file without it); call
    ``.restore()`` on the result once written. None for non-IVF kinds."""
    ivf = ivf_of(index)
    if ivf is None:
        return None
    return SharedQuantizer(index, faiss.IndexFlatIP(ivf.d))


def attach_quantizer(index: faiss.Index, quantizer: faiss.Index) -> SharedQuantizer | None:
    """Swap the shared quantizer in for the placeholder of a loaded shard; call ``.restore()`` before the index is
    freed (the placeholder then goes with it). None for non-IVF kinds."""
    ivf = ivf_of(index)
    if ivf is None:
        return None
    if quantizer.ntotal != ivf.nlist or quantizer.d != ivf.d:
        raise IndexFormatError(f"the shared quantizer holds {quantizer.ntotal} centroids of dimension {quantizer.d}; "
                               f"the shard expects {ivf.nlist} of dimension {ivf.d}: the index folder is mixed up")
    return SharedQuantizer(index, quantizer)


def load_manifest(index_dir: Path) -> dict[str, Any]:
    """The manifest of ``index_dir``, checked for format and version."""
    path = index_dir / MANIFEST
    if not path.exists():
        hint = (" (an unfinished build: rerun the same `spacessl index build` command to finish it)"
                if (index_dir / TRAINED).exists() else "")
        raise IndexFormatError(f"{index_dir} holds no index (no {MANIFEST}){hint}; build one with "
                               "`spacessl index build EMBEDDINGS --out DIR`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise IndexFormatError(f"{path} is not valid JSON ({exc}); rebuild the index with --overwrite") from None
    if manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path} is not a spacessl index manifest (format {manifest.get('format')!r})")
    if manifest.get("version") != VERSION:
        raise IndexFormatError(f"{path} is a version-{manifest.get('version')} index; this spacessl reads version "
                               f"{VERSION}: rebuild it with `spacessl index build ... --overwrite`")
    return manifest

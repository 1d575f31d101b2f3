"""Opening Zarr groups at fsspec URLs (local path, file://, s3://, gs://, memory://) and small file helpers."""

from __future__ import annotations

import os
from typing import Any

import fsspec
import zarr
from fsspec.implementations.local import LocalFileSystem
from zarr.storage import FsspecStore, LocalStore


def is_local(url: str) -> bool:
    """True for plain paths and file:// URLs."""
    return "://" not in str(url) or str(url).startswith("file://")


def local_path(url: str) -> str:
    """A plain path for a local URL."""
    url = str(url)
    return url[len("file://"):] if url.startswith("file://") else url


def make_store(url: str, *, read_only: bool, storage_options: dict[str, Any] | None = None):
    """A Zarr store for ``url``: LocalStore for local paths, FsspecStore otherwise."""
    if is_local(url):
        path = local_path(url)
        if not read_only:
            os.makedirs(path, exist_ok=True)
        return LocalStore(path, read_only=read_only)
    return FsspecStore.from_url(url, read_only=read_only, storage_options=storage_options or {})


def exists(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether a Zarr group (zarr.json) exists at ``url``."""
    fs, path = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    return fs.exists(f"{path.rstrip('/')}/zarr.json")


def holds_other_files(url: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether ``url``, where :func:`exists` found no Zarr group, is a file or a non-empty folder (or prefix): what a
    new store there would delete or fail on, so writers refuse it without --overwrite."""
    fs, path = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    try:
        kind = fs.info(path)["type"]
    except FileNotFoundError:
        return False
    return kind != "directory" or bool(fs.ls(path, detail=False))


def remove(url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Delete everything at ``url`` (used only with --overwrite)."""
    fs, path = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    if fs.exists(path):
        fs.rm(path, recursive=True)


def size_on_disk(url: str, storage_options: dict[str, Any] | None = None) -> int:
    """Total bytes under ``url``."""
    fs, path = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    return int(fs.du(path, total=True)) if fs.exists(path) else 0


def open_group(url: str, *, mode: str, storage_options: dict[str, Any] | None = None) -> zarr.Group:
    """Open a Zarr v3 group (mode "r" or "r+")."""
    store = make_store(url, read_only=(mode == "r"), storage_options=storage_options)
    return zarr.open_group(store=store, mode=mode, zarr_format=3)


def write_whole(fs: fsspec.AbstractFileSystem, path: str, data: bytes, *, tmp_suffix: str = ".partial") -> None:
    """Write ``data`` to ``path`` on ``fs`` whole or not at all, so a kill leaves the old file or the new one.

    On a local disk the bytes go to ``path + tmp_suffix`` (fsynced), renamed over ``path``; on an object store one
    PUT, which replaces the whole object.
    """
    if isinstance(fs, LocalFileSystem):
        tmp = f"{path}{tmp_suffix}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    else:
        fs.pipe(path, data)

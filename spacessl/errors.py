"""Errors that spacessl raises for bad input: each names the file or value and the fix."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


class SpacesslError(ValueError):
    """Base class of every user-facing spacessl error (bad input, bad config, bad archive)."""


class ConfigError(SpacesslError):
    """A configuration key or value is invalid."""


def refuse_existing(paths: Iterable[str | Path], *, what: str, error: type[SpacesslError] = SpacesslError) -> None:
    """Raise ``error`` naming the first of ``paths`` that exists: outputs are replaced only with ``--overwrite``.

    ``what`` says what the files are (e.g. "a propagated catalog"); the message gives both ways out."""
    found = [Path(p) for p in paths if Path(p).exists()]
    if found:
        more = f" (and {len(found) - 1} more of its files)" if len(found) > 1 else ""
        raise error(f"{found[0]} already exists{more}: {what}; pass --overwrite to replace it or choose another "
                    "output")

"""Small image files of every supported kind, written with Pillow, for the ingest tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def grey8(seed: int, shape=(32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def grey16(seed: int, shape=(32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)


def colour8(seed: int, shape=(32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def save(path: str | Path, array: np.ndarray, **kwargs) -> Path:
    """Write ``array`` (H, W) or (H, W, 3) to ``path`` (format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def truncate(src: str | Path, dst: str | Path, keep: float = 0.5) -> Path:
    """A copy of ``src`` cut to ``keep`` of its bytes."""
    data = Path(src).read_bytes()
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def set_mtime(path: str | Path, seconds: float) -> None:
    os.utime(path, (seconds, seconds))

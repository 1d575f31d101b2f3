"""A tiny labelled image archive and a matching small training config for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spacessl.config import Config, load_config


def write_tiny_images(path: Path, n: int = 192, size: int = 32, chunk_size: int = 32, seed: int = 0) -> str:
    """``n`` frames (1, size, size) uint8 of 3 classes (horizontal bars, vertical bars, a blob) with random
    brightness and position, in chunks of ``chunk_size``; labels 0..2."""
    from spacessl.archive import ArchiveWriter

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    labels = rng.integers(0, 3, n)
    frames = np.empty((n, 1, size, size), np.uint8)
    for i, c in enumerate(labels):
        phase, gain = rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 1.0)
        if c == 0:
            img = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * yy + phase)
        elif c == 1:
            img = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * xx + phase)
        else:
            cy, cx = rng.uniform(0.3, 0.7, 2)
            img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.02)
        img = gain * img + rng.normal(0, 0.05, img.shape)
        frames[i, 0] = np.clip(img * 255, 0, 255).astype(np.uint8)
    url = str(path)
    with ArchiveWriter(url, modality="image", sample_shape=(1, size, size), dtype="uint8", units="DN",
                       channels=["gray"], label_names=["hbars", "vbars", "blob"], chunk_size=chunk_size,
                       shard_chunks=2) as w:
        t0 = 1_600_000_000 * 10**9
        w.append(frames, input_index=0, time_ns=t0 + np.arange(n, dtype=np.int64) * 3 * 10**9, source="tiny",
                 origin="synthetic", label=labels.astype(np.int16))
    return url


def tiny_config(archive: str, tmp: Path, *overrides: str) -> Config:
    """SimCLR on the tiny archive: 32 px, global batch 16, 2 epochs of at most 3 steps, small heads."""
    return load_config(None, [
        "name=tiny", f"data.archive={archive}", "data.input_size=32", "data.holdout_fraction=0.2",
        "model.method=simclr", "model.proj_hidden_dim=64", "model.proj_out_dim=32", "augment.preset=allsky",
        "train.batch_size=16", "train.epochs=2", "train.max_steps_per_epoch=3", "train.lr=0.3",
        "train.warmup_epochs=0.5", "train.log_every_steps=1", "train.knn_max_bank=96", "train.knn_max_query=64",
        "train.knn_k=5", "runtime.num_workers=1", "runtime.cpus_per_worker=1", "runtime.max_failures=0",
        f"runtime.storage_path={tmp / 'runs'}", f"runtime.output_dir={tmp / 'out'}",
        "tracking.experiment=tests", "tracking.model_name=tiny-encoder", *overrides])

"""Small synthetic archives and a tiny randomly initialised encoder saved as a checkpoint directory.

Frames: a few cameras, one frame every 3 s; each camera shows a bright arc whose position and width drift slowly,
so consecutive frames of one camera are near-duplicates and distinct cameras/times differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from spacessl.archive import ArchiveWriter

T0_NS = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
CAMERAS = ("gill", "fsmi", "rank", "inuv")
LABELS = ["arc", "diffuse", "clear"]


def frames(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(samples (n, 1, size, size) uint16, time_ns (n,), source (n,), label (n,)) of the synthetic cameras."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    cams = [CAMERAS[i % len(CAMERAS)] for i in range(n)]
    step = np.arange(n) // len(CAMERAS)                    # frame index within its camera
    time_ns = T0_NS + step.astype(np.int64) * 3 * 10**9
    phase = 0.02 * step + np.array([CAMERAS.index(c) for c in cams]) * 1.7
    pos = 0.5 + 0.35 * np.sin(phase)                       # arc position drifts slowly with time
    width = 0.04 + 0.03 * (1 + np.cos(1.3 * phase))
    out = np.empty((n, 1, size, size), np.uint16)
    for i in range(n):
        arc = np.exp(-((yy - pos[i] - 0.1 * np.sin(6 * xx)) ** 2) / (2 * width[i] ** 2))
        img = 1500 + 9000 * arc + rng.normal(0, 150, (size, size))
        out[i, 0] = img.clip(0, 16383).astype(np.uint16)
    label = (np.floor(pos * 3).astype(np.int16) % 3)
    return out, time_ns, cams, label


def make_image_archive(url: str | Path, n: int = 320, size: int = 64, chunk_size: int = 32,
                       shard_chunks: int = 1, seed: int = 0) -> str:
    """Write the synthetic frames as an image archive; returns its URL."""
    samples, time_ns, cams, label = frames(n, size, seed)
    url = str(url)
    with ArchiveWriter(url, modality="image", sample_shape=(1, size, size), dtype="uint16", units="DN",
                       channels=["gray"], label_names=LABELS, chunk_size=chunk_size, shard_chunks=shard_chunks,
                       attrs={"image_size_px": size, "fit": "crop", "bit_depth": 16}) as w:
        for i in range(n):
            w.append(samples[i:i + 1], input_index=i, time_ns=time_ns[i:i + 1], source=[cams[i]],
                     origin=[f"{cams[i]}/frame_{i:05d}.png"], label=label[i:i + 1])
    return url


def save_tiny_encoder(path: str | Path, *, in_channels: int = 1, embed_dim: int = 32, modality: str = "image",
                      seed: int = 0) -> str:
    """A randomly initialised encoder saved as a spacessl checkpoint directory (model.json + encoder.pt)."""
    from spacessl.models.encoders import build_encoder
    from spacessl.train.checkpoint import ENCODER_FILE, INFO_FILE

    torch.manual_seed(seed)
    enc = build_encoder("auto", modality=modality, in_channels=in_channels, embed_dim=embed_dim).eval()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.save(enc.state_dict(), path / ENCODER_FILE)
    info = {"encoder": "auto", "method": "simclr", "modality": modality, "in_channels": in_channels,
            "embed_dim": embed_dim, "input_size": None, "window_samples": None, "epoch": 0,
            "mlflow_run_id": "0123456789abcdef"}
    (path / INFO_FILE).write_text(json.dumps(info))
    return str(path)


def make_exact_index(root: Path, *, n: int, chunk_size: int, size: int = 32,
                     shard_chunks: int = 2, views: int = 1) -> tuple[Path, str, str]:
    """Synthetic frames → tiny encoder → the Ray embedding job → an exact sharded index under ``root``.

    Returns (index folder, archive URL, model checkpoint). Needs a running Ray (the ``ray_cluster`` fixture).
    """
    from spacessl.embed.job import embed_archive
    from spacessl.index.build import build_index

    archive = make_image_archive(root / "a.zarr", n=n, size=size, chunk_size=chunk_size, shard_chunks=shard_chunks)
    model = save_tiny_encoder(root / "ckpt")
    embed_archive(model, archive, str(root / "e.zarr"), batch_size=32, progress=False, views=views)
    build_index(str(root / "e.zarr"), root / "idx", kind="flat", progress=False)
    return root / "idx", archive, model

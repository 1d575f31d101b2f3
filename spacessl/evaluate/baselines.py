"""The two baselines every evaluation reports beside the trained encoder, computed on the same rows.

- ``raw``: the input itself, through the same :class:`~spacessl.augment.preprocess.Preprocess` as the encoder
  sees (so the scaling and per-window normalisation are identical), then downsampled: images average-pooled to
  ``raw_side`` × ``raw_side`` px (16 × 16 by default), waveforms average-pooled (a box anti-alias filter then
  decimation) to at most ``raw_length`` samples per component; flattened.
- ``random_init``: the same encoder architecture (from the model's recorded info) freshly initialised with
  ``seed``, in eval mode, on the same preprocessed input; L2-normalised like the stored embeddings.

Samples are read from the archive in batches (``Archive.take``), never all at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from spacessl.evaluate.knn import l2_normalize


def raw_features(x: torch.Tensor, *, raw_side: int = 16, raw_length: int = 256) -> torch.Tensor:
    """Preprocessed batch (B, C, H, W) or (B, C, T) → (B, F) downsampled flattened input."""
    if x.dim() == 4:
        h, w = x.shape[-2:]
        x = F.adaptive_avg_pool2d(x, (min(raw_side, h), min(raw_side, w)))
    elif x.dim() == 3 and x.shape[-1] > raw_length:
        x = F.adaptive_avg_pool1d(x, raw_length)
    return x.flatten(1)


def random_encoder(info: dict[str, Any], *, modality: str, in_channels: int, embed_dim: int,
                   seed: int = 0) -> torch.nn.Module:
    """A freshly initialised encoder of the architecture recorded in ``info`` (``encoder``, ``in_channels``,
    ``embed_dim``, ``widths``; ResNet-18's where a model predates them), seeded, in eval mode."""
    from spacessl.models.encoders import build_encoder

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        enc = build_encoder(str(info.get("encoder") or "auto"), modality=modality,
                            in_channels=int(info.get("in_channels") or in_channels),
                            embed_dim=int(info.get("embed_dim") or embed_dim),
                            widths=info.get("widths"))
    finally:
        torch.random.set_rng_state(state)
    return enc.eval()


def _batches(ids: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for s in range(0, len(ids), batch_size):
        yield ids[s:s + batch_size]


@torch.inference_mode()
def baseline_features(archive: Any, ids: np.ndarray, info: dict[str, Any], *, embed_dim: int, seed: int = 0,
                      batch_size: int = 128, raw_side: int = 16, raw_length: int = 256,
                      random_init: bool = True, device: str = "cpu", views: int = 1) -> dict[str, np.ndarray]:
    """Raw-input features (n, F) and random-init embeddings (n, D) of archive rows ``ids`` (n,).

    Args:
        archive: the embeddings' archive.
        info: the model's recorded info (``input_size``, ``window_samples``, ``encoder``, ...), as stored in the
            embeddings' ``model_info`` attribute.
        embed_dim: D of the trained encoder (used when ``info`` does not record it).
        views: symmetric copies averaged per sample, as the embeddings were (:mod:`spacessl.embed.views`).
    Returns:
        {"raw": (n, F) float32, "random_init": (n, D) float32 (unit rows)}; "random_init" only when asked.
    """
    from spacessl.embed.embedder import build_preprocess, embed_views

    preprocess = build_preprocess(archive, info)
    enc = None
    if random_init:
        enc = random_encoder(info, modality=archive.modality, in_channels=archive.sample_shape[0],
                             embed_dim=embed_dim, seed=seed).to(device)
    raw, rnd = [], []
    for chunk in _batches(np.asarray(ids, dtype=np.int64), batch_size):
        x = preprocess(archive.take(chunk, fields=[]).samples)
        raw.append(raw_features(x, raw_side=raw_side, raw_length=raw_length).numpy())
        if enc is not None:
            rnd.append(embed_views(enc, x.to(device), views=views, modality=archive.modality).cpu().numpy())
    out = {"raw": np.concatenate(raw).astype(np.float32) if raw else np.empty((0, 0), np.float32)}
    if enc is not None:
        out["random_init"] = l2_normalize(np.concatenate(rnd)) if rnd else np.empty((0, embed_dim), np.float32)
    return out

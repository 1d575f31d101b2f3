"""Small synthetic archives with embeddings of known quality, shared by the evaluation tests.

The embeddings are cheap stand-ins for a trained encoder, written through the real embeddings store: log band
spectra for the seismic windows (kNN ≈ 0.8 on this data) and 8 × 8 pixel thumbnails for the all-sky frames.
"""

from __future__ import annotations

import numpy as np
import pytest

from spacessl.embed.store import EmbeddingsWriter
from spacessl.evaluate.knn import l2_normalize


def log_spectrum(x: np.ndarray, bands: int = 48) -> np.ndarray:
    """(N, C, T) waveforms → (N, C·bands) demeaned log band amplitudes (log-spaced bands)."""
    x = x - x.mean(-1, keepdims=True)
    x = x / np.maximum(np.abs(x).max(axis=(1, 2), keepdims=True), 1e-12)
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), axis=-1))
    edges = np.unique(np.geomspace(1, spec.shape[-1], bands + 1).astype(int))
    f = np.log(np.stack([spec[..., a:b].mean(-1) for a, b in zip(edges[:-1], edges[1:], strict=True)], -1) + 1e-6)
    return (f - f.mean(-1, keepdims=True)).reshape(len(x), -1)


def thumbnails(x: np.ndarray, side: int = 8) -> np.ndarray:
    """(N, 1, H, W) frames → (N, side²) block means, each row standardised."""
    n, _, h, w = x.shape
    f = x[:, 0].astype(np.float32).reshape(n, side, h // side, side, w // side).mean(axis=(2, 4)).reshape(n, -1)
    return (f - f.mean(1, keepdims=True)) / (f.std(1, keepdims=True) + 1e-6)


def write_embeddings(archive, url: str, features=None, *, vectors: np.ndarray | None = None,
                     attrs: dict | None = None) -> str:
    """Embed every row of ``archive`` with ``features`` (raw batch → (B, D), rows L2-normalised) into a store at
    ``url``; or, with ``vectors`` (N, D), store row i of them for archive row i as it is. ``attrs`` add to (or
    replace) the store attributes an embedding job writes (model_uri and run_id empty)."""
    if vectors is not None:
        def rows(start: int, stop: int) -> np.ndarray:
            return vectors[start:stop]
    else:
        def rows(start: int, stop: int) -> np.ndarray:
            return l2_normalize(features(archive.read(start, stop).samples))
    dim = rows(0, 1).shape[1]
    info = {"encoder": "auto", "in_channels": archive.sample_shape[0], "embed_dim": 512,
            "modality": archive.modality}
    w = EmbeddingsWriter(url, n=archive.n, dim=dim, dtype="float32", chunk_size=archive.chunk_size,
                         shard_chunks=archive.shard_chunks,
                         attrs={"model_uri": "", "run_id": "", "archive_url": archive.url,
                                "archive_fingerprint": archive.fingerprint(), "model_info": info, **(attrs or {})})
    for s in range(archive.num_shards):
        start, stop = archive.shard_range(s)
        w.write_shard(s, np.arange(start, stop), rows(start, stop))
    w.close()
    return url


@pytest.fixture(scope="session")
def seismic_set(tmp_path_factory):
    """(archive URL, embeddings URL): 480 synthetic 3-component windows with 7 planted tremors."""
    from spacessl.archive import open_archive
    from spacessl.synth.seismic import write_seismic_archive

    root = tmp_path_factory.mktemp("seismic")
    url = write_seismic_archive(str(root / "seismic.zarr"), n=480, seed=0, chunk_size=64, shard_chunks=2,
                                rare_fraction=0.015, progress=False)
    return url, write_embeddings(open_archive(url), str(root / "seismic.emb.zarr"), log_spectrum)


@pytest.fixture(scope="session")
def aurora_set(tmp_path_factory):
    """(archive URL, embeddings URL): 256 synthetic 32 px all-sky frames."""
    from spacessl.archive import open_archive
    from spacessl.synth.aurora import write_aurora_archive

    root = tmp_path_factory.mktemp("aurora")
    url = write_aurora_archive(str(root / "aurora.zarr"), n=256, size=32, seed=0, chunk_size=64, shard_chunks=2,
                               progress=False)
    return url, write_embeddings(open_archive(url), str(root / "aurora.emb.zarr"), thumbnails)

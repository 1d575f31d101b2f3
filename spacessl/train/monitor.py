"""kNN monitoring of training: how well the encoder's embeddings separate labelled held-out chunks.

(Embedding spread and the collapse level are in spacessl.models.collapse.)

- kNN accuracy (Wu et al. 2018, as in SimCLR/DINO monitoring): L2-normalised encoder embeddings of held-out rows
  are classified by a majority vote of their k nearest (cosine) embeddings of labelled training rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor


def knn_accuracy(bank: np.ndarray, bank_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray,
                 k: int = 20) -> float:
    """Accuracy of a k-nearest-neighbour majority vote (cosine similarity).

    Args:
        bank: (Nb, D) reference embeddings; bank_labels: (Nb,) int class ids.
        query: (Nq, D) embeddings to classify; query_labels: (Nq,) int true class ids.
        k: neighbours (capped at Nb). Ties go to the nearer neighbours' class (votes are weighted by 1 + 1e-6·sim).
    Returns:
        Fraction of queries classified correctly; NaN when either set is empty.
    """
    if len(bank) == 0 or len(query) == 0:
        return float("nan")
    b = torch.nn.functional.normalize(torch.as_tensor(bank, dtype=torch.float32), dim=1)
    q = torch.nn.functional.normalize(torch.as_tensor(query, dtype=torch.float32), dim=1)
    bl = torch.as_tensor(np.asarray(bank_labels, dtype=np.int64))
    ql = torch.as_tensor(np.asarray(query_labels, dtype=np.int64))
    k = min(k, len(b))
    n_classes = int(max(bl.max(), ql.max())) + 1
    correct = 0
    for start in range(0, len(q), 1024):
        sims = q[start:start + 1024] @ b.T  # (nq, Nb)
        top_sim, top_idx = sims.topk(k, dim=1)  # (nq, k)
        votes = torch.zeros(len(top_idx), n_classes)
        votes.scatter_add_(1, bl[top_idx], 1.0 + 1e-6 * top_sim)
        correct += int((votes.argmax(dim=1) == ql[start:start + 1024]).sum())
    return correct / len(q)


@torch.no_grad()
def embed_batches(encoder: torch.nn.Module, samples: np.ndarray, preprocess: Callable[[np.ndarray], Tensor],
                  device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Encoder embeddings (N, D) float32 of raw archive samples (N, *sample_shape), in eval mode."""
    was_training = encoder.training
    encoder.eval()
    out = []
    try:
        for start in range(0, len(samples), batch_size):
            x = preprocess(samples[start:start + batch_size]).to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out.append(encoder(x).float().cpu())
    finally:
        encoder.train(was_training)
    if not out:
        return np.empty((0, 0), np.float32)
    return torch.cat(out).numpy()


def pixel_features(samples: np.ndarray, preprocess: Callable[[np.ndarray], Tensor], batch_size: int = 256,
                   max_side: int = 32, max_length: int = 1024) -> np.ndarray:
    """Preprocessed samples average-pooled to at most ``max_side``² px (images) or ``max_length`` samples
    (waveforms) and flattened, (N, F): the raw-input baseline for kNN."""
    out = []
    for start in range(0, len(samples), batch_size):
        x = preprocess(samples[start:start + batch_size]).float().cpu()
        if x.dim() == 4 and max(x.shape[-2:]) > max_side:
            x = torch.nn.functional.adaptive_avg_pool2d(x, (min(max_side, x.shape[-2]), min(max_side, x.shape[-1])))
        elif x.dim() == 3 and x.shape[-1] > max_length:
            x = torch.nn.functional.adaptive_avg_pool1d(x, max_length)
        out.append(x.flatten(1))
    return torch.cat(out).numpy() if out else np.empty((0, 0), np.float32)

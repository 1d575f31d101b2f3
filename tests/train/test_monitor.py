"""kNN accuracy against a hand-written reference (scikit-learn's cosine kNN majority vote)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

from spacessl.train.monitor import embed_batches, knn_accuracy, pixel_features


def test_knn_matches_sklearn_cosine_majority_vote():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    yb, yq = rng.integers(0, 4, 300), rng.integers(0, 4, 120)
    bank = centres[yb] + rng.normal(scale=1.5, size=(300, 16))
    query = centres[yq] + rng.normal(scale=1.5, size=(120, 16))
    ref = KNeighborsClassifier(n_neighbors=7, metric="cosine").fit(bank, yb).score(query, yq)
    assert abs(knn_accuracy(bank, yb, query, yq, k=7) - ref) <= 2 / 120  # ties may break differently
    assert 0.5 < ref < 1.0
    assert np.isnan(knn_accuracy(bank[:0], yb[:0], query, yq))


def test_embed_batches_restores_mode_and_pixel_features_pool():
    enc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5), torch.nn.BatchNorm1d(5))
    enc.train()
    pre = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    out = embed_batches(enc, np.ones((7, 1, 8, 8), np.float32), pre, torch.device("cpu"), batch_size=3)
    assert out.shape == (7, 5) and enc.training
    assert pixel_features(np.ones((3, 1, 64, 64)), pre, max_side=16).shape == (3, 256)
    assert pixel_features(np.ones((3, 3, 5000)), pre, max_length=100).shape == (3, 300)

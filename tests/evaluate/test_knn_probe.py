import numpy as np
import pytest

from spacessl.evaluate.knn import knn_accuracy, knn_predict
from spacessl.evaluate.linear_probe import linear_probe
from spacessl.evaluate.metrics import feature_metrics
from spacessl.evaluate.splits import random_split


def test_temperature_weighting_beats_majority():
    # one very close neighbour of class 0, two far ones of class 1: exp(cos/T) votes pick class 0
    bank = np.array([[1.0, 0.0], [0.0, 1.0], [0.05, 1.0]], dtype=np.float32)
    labels = np.array([0, 1, 1])
    query = np.array([[1.0, 0.02]], dtype=np.float32)
    pred, scores = knn_predict(bank, labels, query, k=3, temperature=0.07)
    assert pred[0] == 0 and scores[0, 0] > 0.99
    pred_flat, _ = knn_predict(bank, labels, query, k=3, temperature=1e3)  # ~uniform weights = majority vote
    assert pred_flat[0] == 1


def _structured(n=2000, c=5, d=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    return (rng.normal(size=(c, d)) * 5)[y] + rng.normal(size=(n, d)), y


def test_knn_and_probe_on_known_structure():
    x, y = _structured()
    tr, te = random_split(y, test_fraction=0.3)
    assert knn_accuracy(x[tr], y[tr], x[te], y[te])[0] == 1.0
    assert linear_probe(x[tr], y[tr], x[te], y[te])[0] == 1.0
    noise = np.random.default_rng(3).normal(size=x.shape)
    assert knn_accuracy(noise[tr], y[tr], noise[te], y[te])[0] < 0.35
    assert linear_probe(noise[tr], y[tr], noise[te], y[te])[0] < 0.35


def test_feature_metrics_separated_vs_random():
    x, y = _structured(n=1500)
    tr, te = random_split(y)
    good = feature_metrics(x, y, tr, te)
    assert good.scores() == pytest.approx({"knn_acc": 1.0, "linear_acc": 1.0, "kmeans_acc": 1.0, "nmi": 1.0,
                                           "ari": 1.0})
    assert good.confusion["knn"].shape == (5, 5) and good.confusion["knn"].sum() == len(te)
    bad = feature_metrics(np.random.default_rng(5).normal(size=x.shape), y, tr, te).scores()
    for key in ("knn_acc", "linear_acc", "kmeans_acc"):
        assert bad[key] < 0.35, (key, bad)  # chance is 0.2
    assert bad["nmi"] < 0.05 and abs(bad["ari"]) < 0.05

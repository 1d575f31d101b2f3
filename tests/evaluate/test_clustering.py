import numpy as np
import pytest

from spacessl.evaluate.clustering import (choose_k, confusion_matrix, hungarian_accuracy, hungarian_match,
                                          kmeans_scores, relabel)


def _from_confusion(m):
    """(y_true, y_pred) realising the class × cluster count matrix m."""
    y_true, y_pred = [], []
    for t, row in enumerate(m):
        for p, count in enumerate(row):
            y_true += [t] * count
            y_pred += [p] * count
    return np.array(y_true), np.array(y_pred)


def test_hungarian_accuracy_hand_computed():
    # class × cluster counts. One-to-one: c0→1 (4), c2→2 (5), c1→0 (0) = 9 of 14; a many-to-one majority vote
    # would claim c0→1, c1→2, c2→2 = 11 of 14.
    m = [[3, 0, 0],
         [4, 0, 0],
         [0, 2, 5]]
    y_true, y_pred = _from_confusion(m)
    assert hungarian_accuracy(y_true, y_pred) == pytest.approx(9 / 14)
    assert hungarian_match(y_true, y_pred) == {0: 1, 1: 0, 2: 2}
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), m)


def test_hungarian_accuracy_permutation_and_extra_clusters():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert hungarian_accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    # 4 clusters for 3 classes: the unmatched cluster counts as wrong
    assert hungarian_accuracy(y, np.array([2, 3, 0, 0, 1, 1])) == pytest.approx(5 / 6)
    assert list(relabel(np.array([2, 3, 0, 0, 1, 1]), hungarian_match(y, np.array([2, 3, 0, 0, 1, 1])))) in (
        [0, -1, 1, 1, 2, 2], [-1, 0, 1, 1, 2, 2])


def _blobs(n=1200, c=4, d=32, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, d))
    y = rng.integers(0, c, n)
    return (centres[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y


def test_kmeans_scores_separated_and_random():
    x, y = _blobs()
    s = kmeans_scores(x, y)
    assert s.accuracy == 1.0 and s.nmi == pytest.approx(1.0) and s.ari == pytest.approx(1.0)
    assert np.trace(s.confusion) == len(y)
    noise = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    r = kmeans_scores(noise, y)
    assert r.accuracy < 0.4 and r.nmi < 0.05 and abs(r.ari) < 0.05


def test_choose_k_finds_the_blobs():
    x, _ = _blobs(n=800, c=5)
    choice = choose_k(x, range(2, 9))
    assert choice.k == 5
    assert "silhouette" in choice.reason and set(choice.scores) == set(range(2, 9))

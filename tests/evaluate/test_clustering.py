import numpy as np
import pytest

from spacessl.evaluate.clustering import (EVAL_RESTARTS, assign, choose_k, confusion_matrix, fit_kmeans,
                                          hungarian_accuracy, hungarian_match, kmeans_scores, relabel)


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


def test_pca_whiten_matches_sklearn_up_to_sign():
    import numpy as np
    from sklearn.decomposition import PCA

    from spacessl.evaluate.clustering import pca_whiten

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)) @ rng.normal(size=(20, 20))  # correlated columns
    ours = pca_whiten(x, 5)
    ref = PCA(5, whiten=True, svd_solver="full").fit_transform(x)
    signs = np.sign((ours * ref).sum(0))
    np.testing.assert_allclose(ours * signs, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.cov(ours.T), np.eye(5), atol=1e-4)  # unit variance, uncorrelated
    assert pca_whiten(x[:3], 32).shape == (3, 2)  # at most N - 1 axes
    # other powers: the axes' variances become variance ** (1 + 2 power); power 0 is PCA's projection
    projected = PCA(5, svd_solver="full").fit(x)
    half = pca_whiten(x, 5, power=-0.25)
    np.testing.assert_allclose(half.var(0, ddof=1), np.sqrt(projected.explained_variance_), rtol=1e-4)
    np.testing.assert_allclose(np.abs(pca_whiten(x, 5, power=0.0)), np.abs(projected.transform(x)), rtol=1e-4,
                               atol=1e-4)


def test_a_fitted_whitening_applies_to_new_rows_as_sklearn_transforms_them(tmp_path):
    import numpy as np
    from sklearn.decomposition import PCA

    from spacessl.evaluate.clustering import PcaWhitening, pca_whiten

    rng = np.random.default_rng(1)
    mix = rng.normal(size=(16, 16))
    fit_rows, new_rows = rng.normal(size=(400, 16)) @ mix + 3.0, rng.normal(size=(50, 16)) @ mix + 3.0
    w = PcaWhitening.fit(fit_rows, 6)
    assert w.dim == 6 and np.array_equal(w.apply(fit_rows), pca_whiten(fit_rows, 6))
    ref = PCA(6, whiten=True, svd_solver="full").fit(fit_rows)
    ours = w.apply(new_rows)
    signs = np.sign((w.apply(fit_rows) * ref.transform(fit_rows)).sum(0))
    np.testing.assert_allclose(ours * signs, ref.transform(new_rows), rtol=1e-4, atol=1e-4)
    w.save(tmp_path / "w.npz")
    assert np.array_equal(PcaWhitening.load(tmp_path / "w.npz").apply(new_rows), ours)


def test_whitening_recovers_classes_hidden_behind_a_loud_nuisance_direction():
    """Two classes apart along a quiet axis, a loud class-free Gaussian axis on top: plain k-means cuts the loud
    axis, k-means on whitened features (both axes of unit variance) cuts where the data has its gap."""
    import numpy as np

    from spacessl.evaluate.clustering import kmeans_scores

    rng = np.random.default_rng(1)
    n = 400
    y = np.repeat([0, 1], n // 2)
    x = np.zeros((n, 3))
    x[:, 0] = rng.normal(0, 30.0, n)  # loud, class-free
    x[:, 1] = np.where(y == 0, -1.0, 1.0) + rng.normal(0, 0.1, n)  # the classes
    x[:, 2] = rng.normal(0, 0.1, n)
    plain = kmeans_scores(x, y, spherical=False)
    white = kmeans_scores(x, y, spherical=False, whiten_dim=2)
    assert plain.accuracy < 0.7 and white.accuracy == 1.0


def test_restarts_keep_the_best_objective_and_find_the_partition_one_seeding_misses():
    # 12 clusters of 3 sizes in 8-D: single k-means++ seedings often split a big cluster and merge two small ones
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, 8)) * 3.0
    sizes = np.repeat([400, 60, 20], 4)
    y = np.repeat(np.arange(12), sizes)
    x = (centres[y] + rng.normal(size=(len(y), 8))).astype(np.float32)
    single = [fit_kmeans(x, 12, seed=s, nredo=1, spherical=False) for s in range(EVAL_RESTARTS)]
    best_single = min(obj for _, obj in single)
    _, obj = fit_kmeans(x, 12, seed=0, nredo=EVAL_RESTARTS, spherical=False)
    assert obj == pytest.approx(best_single, rel=1e-6)  # the restarts are those seedings; the best is kept
    accs = [hungarian_accuracy(y, assign(x, c, spherical=False)[0]) for c, _ in single]
    kept = kmeans_scores(x, y, spherical=False)  # the evaluation's default: EVAL_RESTARTS restarts
    assert kept.accuracy >= max(accs) - 0.01
    assert kept.accuracy > min(accs) + 0.05  # some single seedings end in a worse partition

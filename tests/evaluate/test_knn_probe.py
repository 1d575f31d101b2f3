import numpy as np
import pytest

from spacessl.evaluate.knn import knn_accuracy, knn_predict
from spacessl.evaluate.linear_probe import C_GRID, DEFAULT_C, linear_probe, select_c, validation_folds
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


def test_select_c_matches_a_plain_grid_search_on_the_same_folds():
    """Reference: a fresh fit per C and fold (no warm start), scored on the same validation rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 240)
    x = np.concatenate([(np.eye(3)[y] * 0.8)[:, :3] + rng.normal(size=(240, 3)), rng.normal(size=(240, 60))], 1)
    groups = np.arange(240) // 12
    c, scores = select_c(x, y, groups=groups, cs=(1e-3, 1e-2, 1e-1, 1.0, 10.0), folds=3)
    reference = {}
    for cc in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
        accs = []
        for fit, val in validation_folds(y, groups, 3):
            m = make_pipeline(StandardScaler(), LogisticRegression(C=cc, max_iter=5000)).fit(x[fit], y[fit])
            accs.append(np.mean(m.predict(x[val]) == y[val]))
        reference[cc] = np.mean(accs)
    assert scores == pytest.approx(reference, abs=1.5 / 80)  # at most one validation row in a fold may flip
    best = max(reference.values())
    assert reference[c] >= best - 1.5 / 80
    assert c < 10.0  # 60 noise dimensions on 160 fitting rows: some regularisation wins


def test_validation_folds_keep_groups_whole_and_fallbacks():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    groups = rng.integers(0, 25, 300)
    folds = validation_folds(y, groups, 3)
    assert len(folds) == 3
    for fit, val in folds:
        assert not set(groups[fit]) & set(groups[val])
        assert len(fit) + len(val) == 300
    assert np.sort(np.concatenate([v for _, v in folds])).tolist() == list(range(300))
    x = rng.normal(size=(300, 4))
    assert select_c(x, np.zeros(300, int)) == (DEFAULT_C, {})  # one class
    assert select_c(x, y, groups=np.zeros(300, int)) == (DEFAULT_C, {})  # one group: nothing to validate on


def test_feature_metrics_reports_the_chosen_c():
    x, y = _structured(n=600)
    tr, te = random_split(y)
    m = feature_metrics(x, y, tr, te, groups=np.arange(len(y)) // 20)
    assert m.linear_c in C_GRID and m.linear_acc == 1.0
    assert feature_metrics(x, y, tr, te, linear_c=0.5).linear_c == 0.5
    assert np.isnan(feature_metrics(x, y, tr, te, linear=False).linear_c)

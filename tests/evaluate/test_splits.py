import numpy as np
import pytest

from spacessl.evaluate.splits import (NS_PER_HOUR, SplitError, _day_boundary_hour, group_ids, grouped_split,
                                      make_split, random_split)

H = NS_PER_HOUR


def _camera_nights(seed=0, nights=30, cameras=("gill", "fsmi", "rank", "snkq")):
    """Frames every 10 min from 02 to 14 UTC (a North-American night straddling 00 local), several cameras."""
    rng = np.random.default_rng(seed)
    src, t, y = [], [], []
    for cam in cameras:
        for night in range(nights):
            if rng.random() < 0.3:
                continue
            times = 86400 * 10**9 * night + np.arange(2 * H, 14 * H, H // 6)
            src += [cam] * len(times)
            t += times.tolist()
            y += [int(rng.integers(0, 4))] * len(times)
    return np.array(src), np.array(t, dtype=np.int64), np.array(y)


def test_grouped_split_never_splits_a_group():
    src, t, y = _camera_nights()
    groups = group_ids(src, t)
    for seed in range(5):
        tr, te = grouped_split(y, groups, test_fraction=0.3, seed=seed)
        assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(y)
        assert not set(groups[tr]) & set(groups[te])
        assert 0.15 < len(te) / len(y) < 0.45
        assert set(y[te]) == set(y)  # stratified as far as groups allow


def test_groups_are_source_nights():
    # one camera recording 20:00-06:00 UTC: a night straddles UTC midnight but is one group
    t = np.array([20 * H, 23 * H, 25 * H, 29 * H, 44 * H, 50 * H], dtype=np.int64)
    src = np.array(["a"] * 6)
    g = group_ids(src, t)
    assert g[0] == g[1] == g[2] == g[3] and g[4] == g[5] and g[0] != g[4]
    assert 6 < _day_boundary_hour(t) < 20
    # a second camera at the same times is a different group
    g2 = group_ids(np.array(["a", "b"]), np.array([20 * H, 20 * H]))
    assert g2[0] != g2[1]
    # continuous recording: UTC days
    cont = np.arange(0, 48 * H, H // 4)
    assert _day_boundary_hour(cont) == 0.0
    gc = group_ids(np.array(["s"] * len(cont)), cont)
    assert len(np.unique(gc)) == 2 and gc[0] != gc[-1]


def test_random_split_is_stratified_and_errors():
    y = np.repeat(np.arange(3), [100, 50, 10])
    tr, te = random_split(y, test_fraction=0.3, seed=0)
    assert np.bincount(y[te]).tolist() == [30, 15, 3]
    with pytest.raises(SplitError, match="groups"):
        grouped_split(y, np.zeros(len(y)), test_fraction=0.3)
    with pytest.raises(SplitError, match="Available splits are: random, grouped"):
        make_split("leave-one-out", y)
    # one row of each of six classes in six groups: no class can be spread over the three folds
    with pytest.raises(SplitError, match="needs a class with at least 3 rows, .* at most 1 of a class"):
        grouped_split(np.arange(6), np.arange(6), test_fraction=0.3)

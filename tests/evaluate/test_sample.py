import numpy as np

from spacessl.evaluate.sample import StratifiedReservoir, quotas, row_keys


def test_quotas_proportional_with_floor():
    q = quotas(np.array([9000, 900, 90, 5]), 1000, min_per_class=10)
    assert q.sum() == 1000 and q[3] == 5 and q[2] >= 10
    assert q[0] > 8 * q[1]
    np.testing.assert_array_equal(quotas(np.array([3, 4]), 100), [3, 4])


def test_reservoir_is_order_independent_and_skips_unlabelled():
    rng = np.random.default_rng(0)
    ids = np.arange(10_000)
    labels = rng.integers(-1, 3, len(ids))
    a = StratifiedReservoir(500, seed=1)
    for s in range(0, len(ids), 777):
        a.add(ids[s:s + 777], ids[s:s + 777], labels[s:s + 777])
    b = StratifiedReservoir(500, seed=1)
    perm = rng.permutation(len(ids))
    for s in range(0, len(ids), 1000):
        p = perm[s:s + 1000]
        b.add(ids[p], ids[p], labels[p])
    pa, pb = a.positions(), b.positions()
    np.testing.assert_array_equal(pa, pb)
    assert len(pa) == 500 and (labels[pa] >= 0).all()
    assert not np.array_equal(row_keys(ids[:10], 0), row_keys(ids[:10], 1))

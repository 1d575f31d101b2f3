import numpy as np

from spacessl.evaluate.outliers import context_similarity, fold_near_duplicates, rank_outliers


def _episodes(seed=0, d=32, episodes=300, rare=10, frames=8):
    """Ordinary episodes (5 classes) and a few rare ones, each `frames` near-duplicate samples 3 s apart at one
    source: a rare event's own frames are near each other, but nothing else is."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, d)) * 3
    vec, src, t, lab = [], [], [], []
    clock = 0
    for e in range(episodes + rare):
        is_rare = e >= episodes
        base = rng.normal(size=d) * 3 if is_rare else centres[rng.integers(5)] + rng.normal(size=d)
        s = int(rng.integers(4))
        for j in range(frames):
            vec.append(base + 0.1 * rng.normal(size=d))
            src.append(s)
            t.append(clock + j * 3 * 10**9)
            lab.append(int(is_rare))
        clock += 10**12
    order = rng.permutation(len(vec))
    return (np.array(vec, np.float32)[order], np.array(src)[order], np.array(t, np.int64)[order],
            np.array(lab)[order])


def test_planted_rare_points_rank_at_the_top():
    vec, src, t, rare = _episodes()
    ids = np.arange(len(vec)) + 1000
    n_rare = int(rare.sum())
    top, scores = rank_outliers(vec, ids, src, t, k=5, dedup_s=60.0, top=n_rare)
    assert rare[top - 1000].all()  # every planted frame outranks every ordinary one
    assert (np.diff(scores) <= 0).all()
    # without skipping near-duplicates, each rare frame's own episode hides it
    top0, _ = rank_outliers(vec, ids, src, t, k=5, dedup_s=0.0, top=n_rare)
    assert rare[top0 - 1000].mean() < 0.5


def _context_reference(vec, src, t, window_s):
    """Brute force: max cos of each row to any other same-source row less than window_s apart (NaN: none)."""
    v = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    sim = v @ v.T
    near = (src[:, None] == src[None]) & (np.abs(t[:, None] - t[None]) < window_s * 1e9)
    np.fill_diagonal(near, False)
    return np.where(near.any(1), np.where(near, sim, -np.inf).max(1), np.nan)


def test_context_similarity_matches_brute_force_across_blocks():
    rng = np.random.default_rng(3)
    n = 700
    vec = rng.normal(size=(n, 8)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    src = rng.integers(0, 5, n)
    t = rng.integers(0, 2000, n).astype(np.int64) * 10**9  # ~1.75 rows per second and source: gaps and crowds
    calls = []

    def vectors_of(rows):
        calls.append(len(rows))
        assert (np.diff(rows) > 0).all()  # asked for ascending, distinct rows
        return vec[rows]

    got = context_similarity(vectors_of, src, t, window_s=4.0, context_max=n, block=64)
    want = _context_reference(vec, src, t, 4.0)
    assert np.isnan(got).sum() > 10 and (~np.isnan(got)).sum() > 100  # both cases occur
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=1e-6)
    assert len(calls) == -(-n // 64)  # one read per block
    # at most context_max rows on each side: with 1, only the adjacent rows in time count
    one = context_similarity(lambda r: vec[r], src, t, window_s=4.0, context_max=1)
    assert (one[~np.isnan(one)] <= got[~np.isnan(one)] + 1e-6).all() and (one < got - 1e-3).any()


def _sequences(seed=0, d=32, classes=5, sources=4, episodes=240, frames=10, transients=8):
    """Camera-like sequences: at each source, episodes of `frames` near-duplicate samples 3 s apart follow each other
    with no gap (scene changes), and in `transients` episodes one frame is replaced by a sample that looks like
    another class (a meteor streak that resembles an arc): ordinary elsewhere in the archive, unlike its own
    neighbours in time."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 3
    clock = np.zeros(sources, np.int64)
    vec, src, t, lab = [], [], [], []
    hosts = set(rng.choice(episodes, transients, replace=False).tolist())
    for e in range(episodes):
        c, s = int(rng.integers(classes)), int(rng.integers(sources))
        base = centres[c] + rng.normal(size=d)
        odd = int(rng.integers(1, frames - 1)) if e in hosts else -1
        for j in range(frames):
            if j == odd:
                other = centres[(c + 1 + int(rng.integers(classes - 1))) % classes]
                vec.append(other + rng.normal(size=d))
            else:
                vec.append(base + 0.1 * rng.normal(size=d))
            src.append(s)
            t.append(clock[s])
            lab.append(int(j == odd))
            clock[s] += 3 * 10**9
    return np.array(vec, np.float32), np.array(src), np.array(t, np.int64), np.array(lab)


def test_transients_rank_at_the_top_only_with_the_context_term():
    vec, src, t, transient = _sequences()
    ids = np.arange(len(vec))
    n = int(transient.sum())
    top, _ = rank_outliers(vec, ids, src, t, k=5, dedup_s=60.0, top=n)
    assert transient[top].all()  # every transient outranks every ordinary frame, scene changes included
    alone, _ = rank_outliers(vec, ids, src, t, k=5, dedup_s=60.0, top=n, context=False)
    assert transient[alone].mean() < 0.5  # the archive term alone: each looks like an ordinary sample elsewhere


def test_fold_near_duplicates_by_hand():
    """Listed rows in rank order; a row folds into the first listed row of its source that is < window away in
    time and at least min_cos similar, otherwise it is listed."""
    e = np.eye(4, dtype=np.float32)
    vec = np.stack([e[0], e[0] + 0.05 * e[1], e[1], e[0], e[0], e[0] + 0.02 * e[2], e[2]])
    src = np.array([0, 0, 0, 1, 0, 0, 0])
    t = np.array([0, 3, 6, 0, 100, 9, 12], np.int64) * 10**9
    # row: 0 first; 1 near-identical, 3 s later → folded; 2 same time span, other form → listed; 3 other source →
    # listed; 4 same form 100 s later → listed; 5 near 0 → folded; 6 → listed but beyond top
    rows, folded = fold_near_duplicates(np.arange(7), lambda r: vec[r], src, t, window_s=60.0, min_cos=0.9,
                                        top=4, chunk=3)
    assert rows.tolist() == [0, 2, 3, 4] and folded.tolist() == [2, 0, 0, 0]
    everything, _ = fold_near_duplicates(np.arange(7), lambda r: vec[r], src, t, window_s=60.0, min_cos=0.9, top=10)
    assert everything.tolist() == [0, 2, 3, 4, 6]
    # order matters: walking from row 5 first, row 0 folds into it
    rows, folded = fold_near_duplicates(np.array([5, 0, 1]), lambda r: vec[r], src, t, window_s=60.0, min_cos=0.9,
                                        top=3)
    assert rows.tolist() == [5] and folded.tolist() == [2]

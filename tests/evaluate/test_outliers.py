import numpy as np

from spacessl.evaluate.outliers import rank_outliers


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

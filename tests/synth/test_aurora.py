"""Synthetic all-sky frames: shapes, determinism, balance, sequences, hardness, archive glue."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from spacessl.errors import SpacesslError
from spacessl.synth import aurora
from spacessl.synth.allsky import SITES, FULL_SCALE_DN
from spacessl.synth.aurora import CLASSES, generate_aurora, label_names, plan_aurora, write_aurora_archive


def collect(n, size=32, seed=0, **kw):
    frames, meta = [], {}
    for f, m in generate_aurora(n, size, seed, **kw):
        frames.append(f)
        for k, v in m.items():
            meta.setdefault(k, []).extend(list(v))
    return np.concatenate(frames), {k: np.asarray(v) for k, v in meta.items()}


@pytest.fixture(scope="module")
def small():
    """360 frames of 32 px: 60 per class."""
    return collect(360, size=32, seed=5, block_size=100)


def test_shapes_dtypes_and_metadata(small):
    frames, meta = small
    assert frames.shape == (360, 1, 32, 32) and frames.dtype == np.uint16
    assert frames.max() <= FULL_SCALE_DN
    assert meta["time_ns"].dtype == np.int64 and meta["label"].dtype == np.int16
    assert set(meta["source"]) <= {s.code for s in SITES}
    assert set(meta["origin"]) == {"synthetic"}
    # consecutive frames of one episode are 3 s apart at one camera
    same = meta["episode"][1:] == meta["episode"][:-1]
    assert same.sum() > 200
    assert np.all(np.diff(meta["time_ns"])[same] == 3_000_000_000)
    assert np.all(meta["source"][1:][same] == meta["source"][:-1][same])
    assert np.all(meta["night"][1:][same] == meta["night"][:-1][same])


def test_fish_eye_corners_are_dark(small):
    frames, _ = small
    f = frames[:, 0].astype(float)
    corners = np.concatenate([f[:, :3, :3], f[:, :3, -3:], f[:, -3:, :3], f[:, -3:, -3:]], axis=1).reshape(len(f), -1)
    centre = f[:, 12:20, 12:20].reshape(len(f), -1)
    assert np.mean(np.median(corners, 1) < np.median(centre, 1)) > 0.97


def test_deterministic_for_any_block_size_and_start():
    a, ma = collect(50, seed=3, block_size=7, rare_fraction=0.06)
    b, mb = collect(50, seed=3, block_size=50, rare_fraction=0.06)
    c, mc = collect(50, seed=3, block_size=10, rare_fraction=0.06, start_block=2)
    assert np.array_equal(a, b) and np.array_equal(a[20:], c)
    for k in ma:
        assert np.array_equal(ma[k], mb[k]) and np.array_equal(ma[k][20:], mc[k])
    d, _ = collect(50, seed=4, block_size=50, rare_fraction=0.06)
    assert not np.array_equal(a, d)


def test_classes_are_balanced_and_rare_is_planted_on_request():
    eps = plan_aurora(6001, seed=1)
    counts = {c: sum(e.n_frames for e in eps if e.kind == c) for c in CLASSES}
    assert max(counts.values()) - min(counts.values()) <= 1 and sum(counts.values()) == 6001
    assert label_names(0.0) == list(CLASSES) and label_names(0.01)[-1] == "rare"
    eps = plan_aurora(2000, seed=1, rare_fraction=0.01)
    rare = [(e, p) for e in eps for p in e.rare_at]
    assert len(rare) == 20 and sum(e.n_frames for e in eps) == 2000
    assert all(e.kind in ("arc", "diffuse", "clear") and 0 < p < e.n_frames for e, p in rare)
    _, meta = collect(60, seed=2, rare_fraction=0.05)
    assert np.sum(meta["label"] == 6) == 3


def test_bad_arguments_are_named():
    with pytest.raises(SpacesslError, match="rare_fraction"):
        plan_aurora(10, rare_fraction=0.7)
    with pytest.raises(SpacesslError, match="size"):
        next(generate_aurora(10, size=8))


def test_neighbouring_frames_are_near_duplicates(small):
    frames, meta = small
    x = frames[:, 0].astype(float)
    x = (x - x.mean((1, 2), keepdims=True)) / (x.std((1, 2), keepdims=True) + 1e-9)
    same = np.flatnonzero(meta["episode"][1:] == meta["episode"][:-1])
    corr_next = np.mean(x[same] * x[same + 1], axis=(1, 2))
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(x), 400), rng.integers(0, len(x), 400)
    other = meta["night"][i] != meta["night"][j]
    corr_rand = np.mean(x[i[other]] * x[j[other]], axis=(1, 2))
    assert np.median(corr_next) > 0.95
    assert np.median(corr_next) > np.median(corr_rand) + 0.1


def test_brightness_and_raw_pixels_do_not_separate_classes(small):
    """The hardness the benchmark relies on: per-frame mean or peak alone stays near chance (1/6), raw pixels
    with a split by camera-night are far from perfect."""
    frames, meta = small
    y, groups = meta["label"], meta["night"]
    flat = frames.reshape(len(frames), -1).astype(float)
    cv = GroupKFold(4)
    for feature, limit in ((flat.mean(1), 0.35), (flat.max(1), 0.4)):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        acc = cross_val_score(clf, np.log1p(feature)[:, None], y, cv=cv, groups=groups).mean()
        assert acc < limit, acc
    knn = KNeighborsClassifier(10, metric="cosine")
    acc = cross_val_score(knn, flat, y, cv=cv, groups=groups).mean()
    assert acc < 0.7, acc


def test_archive_is_written_and_resumes_identically(tmp_path, monkeypatch):
    from spacessl.archive import ArchiveExistsError, open_archive

    ref = write_aurora_archive(str(tmp_path / "ref.zarr"), n=70, size=32, seed=1, chunk_size=16,
                               shard_chunks=2, rare_fraction=0.05, progress=False)
    a = open_archive(ref)
    assert a.n == 70 and a.sample_shape == (1, 32, 32) and a.label_names == label_names(0.05)
    assert a.attrs["max_value"] == FULL_SCALE_DN and a.attrs["fov_radius"] == 1.0  # read by Preprocess
    b = a.read(0, 70)
    assert set(b.meta) >= {"time_ns", "label", "source", "origin", "night", "episode"}
    assert np.bincount(b.meta["label"], minlength=7).tolist() == [11, 11, 11, 11, 11, 11, 4]
    with pytest.raises(ArchiveExistsError):
        write_aurora_archive(ref, n=70, size=32, seed=1, chunk_size=16, rare_fraction=0.05, progress=False)

    real = aurora.generate_aurora

    def dying(*args, **kw):  # the process "dies" after three blocks
        for k, block in enumerate(real(*args, **kw)):
            if k == 3:
                raise KeyboardInterrupt
            yield block

    out = str(tmp_path / "resumed.zarr")
    monkeypatch.setattr(aurora, "generate_aurora", dying)
    with pytest.raises(KeyboardInterrupt):
        write_aurora_archive(out, n=70, size=32, seed=1, chunk_size=16, shard_chunks=2, rare_fraction=0.05,
                             progress=False)
    monkeypatch.setattr(aurora, "generate_aurora", real)
    partial = open_archive(out, require_complete=False)
    assert partial.n == 48 and not partial.attrs["complete"]
    write_aurora_archive(out, n=70, size=32, seed=1, chunk_size=16, shard_chunks=2, rare_fraction=0.05,
                         progress=False)
    r = open_archive(out).read(0, 70)
    assert np.array_equal(r.samples, b.samples)
    for k in b.meta:
        assert np.array_equal(r.meta[k], b.meta[k]), k

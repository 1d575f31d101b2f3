"""Synthetic seismic windows: event and noise generators, determinism, balance, hardness, archive glue."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from spacessl.errors import SpacesslError
from spacessl.synth.seismic import (CLASSES, STATIONS, generate_seismic, label_names, make_event, make_noise,
                                    plan_labels, short_term_rms, write_seismic_archive)

FS = 100.0


def collect(n, seed=0, **kw):
    xs, meta = [], {}
    for x, m in generate_seismic(n, seed, **kw):
        xs.append(x)
        for k, v in m.items():
            meta.setdefault(k, []).extend(list(v))
    return np.concatenate(xs), {k: np.asarray(v) for k, v in meta.items()}


@pytest.fixture(scope="module")
def windows():
    return collect(400, seed=7, block_size=128)


def centroid_hz(x: np.ndarray) -> float:
    f, p = welch(x, fs=FS, nperseg=256)
    return float(np.sum(f * p) / np.sum(p))


def test_event_generators():
    rng = np.random.default_rng(0)
    for kind in ("icequake", "earthquake", "spike", "noise", "tremor"):
        ev = make_event(kind, rng, FS, n_samples=1000, onset_s=2.0)
        assert ev.shape == (3, 1000) and ev.dtype == np.float32
        assert np.isclose(np.abs(ev).max(), 1.0)
        if kind != "spike":  # causal: nothing before the first arrival
            assert np.abs(ev[:, :199]).max() < 1e-6
    ice = [centroid_hz(make_event("icequake", rng, FS, onset_s=1.0)[0]) for _ in range(20)]
    quake = [centroid_hz(make_event("earthquake", rng, FS, onset_s=1.0)[0]) for _ in range(20)]
    assert 5 < np.median(ice) < 30 and 0.5 < np.median(quake) < 5
    spike = make_event("spike", rng, FS, onset_s=5.0, component=2, ringing=0.0, width=3, shape="box")
    assert np.count_nonzero(spike[:2]) == 0 and np.count_nonzero(spike[2]) == 3
    with pytest.raises(SpacesslError, match="unknown event kind"):
        make_event("landslide", rng)
    with pytest.raises(SpacesslError, match="unknown parameters"):
        make_event("spike", rng, colour="red")


def test_s_minus_p_and_move_out_parameters():
    rng = np.random.default_rng(1)
    ev = make_event("icequake", rng, FS, onset_s=1.0, s_minus_p_s=0.6, back_azimuth_deg=90.0)
    assert np.abs(ev[:, :100]).max() == 0 and np.abs(ev[:, 100:110]).max() > 0


def test_noise_has_a_microseism_peak():
    x = make_noise(np.random.default_rng(2), 60_000, FS)
    assert x.shape == (3, 60_000) and np.isclose(x[0].std(), 1.0, rtol=1e-3)
    f, p = welch(x[0], fs=FS, nperseg=8192)
    assert 0.05 < f[np.argmax(p)] < 0.4


def test_windows_shapes_metadata_balance(windows):
    x, meta = windows
    assert x.shape == (400, 3, 1000) and x.dtype == np.float32
    assert np.all(np.isfinite(x)) and np.array_equal(x, np.rint(x))
    assert np.bincount(meta["label"]).tolist() == [100, 100, 100, 100]
    assert set(meta["source"]) <= {s.nslc for s in STATIONS} and len(set(meta["source"])) > 3
    assert np.all(np.diff(meta["time_ns"]) > 0)
    events = meta["label"] != CLASSES.index("noise")
    assert np.all(meta["snr"][events] > 1.9) and np.all(meta["onset_s"][events] >= 0)


def test_deterministic_for_any_block_size():
    a, ma = collect(30, seed=3, block_size=4, rare_fraction=0.1)
    b, mb = collect(30, seed=3, block_size=30, rare_fraction=0.1)
    c, _ = collect(30, seed=3, block_size=8, start_block=2, rare_fraction=0.1)
    assert np.array_equal(a, b) and np.array_equal(a[16:], c)
    assert all(np.array_equal(ma[k], mb[k]) for k in ma)
    assert np.sum(ma["label"] == 4) == 3 and label_names(0.1)[-1] == "rare"
    assert not np.array_equal(a, collect(30, seed=4)[0])


def test_plan_labels_is_balanced():
    lab = plan_labels(1001, seed=0, rare_fraction=0.01)
    assert np.bincount(lab).tolist() == [248, 248, 248, 247, 10]
    with pytest.raises(SpacesslError, match="rare_fraction"):
        plan_labels(10, 0, rare_fraction=-0.1)


def test_amplitude_does_not_separate_classes(windows):
    """Peak amplitude alone is at chance (1/4); raw waveforms are far from perfect."""
    x, meta = windows
    y = meta["label"]
    groups = np.unique([f"{s}{t // 86_400_000_000_000}" for s, t in zip(meta["source"], meta["time_ns"])],
                       return_inverse=True)[1]
    d = x - x.mean(axis=2, keepdims=True)
    cv = GroupKFold(4)
    for feature in (np.abs(d).max(axis=(1, 2)), np.abs(x).max(axis=(1, 2))):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        acc = cross_val_score(clf, np.log(feature)[:, None], y, cv=cv, groups=groups).mean()
        assert acc < 0.4, acc
    raw = (d / np.abs(d).max(axis=(1, 2), keepdims=True))[:, :, ::4].reshape(len(x), -1)
    acc = cross_val_score(KNeighborsClassifier(10), raw, y, cv=cv, groups=groups).mean()
    assert acc < 0.75, acc


def test_snr_is_the_short_term_rms_ratio():
    x = np.zeros((3, 1000))
    x[1, 500:550] = 2.0
    assert np.allclose(short_term_rms(x, FS), [0.0, 2.0, 0.0])


def test_archive(tmp_path):
    from spacessl.archive import open_archive

    out = write_seismic_archive(str(tmp_path / "s.zarr"), n=40, seed=2, chunk_size=16, window_s=5.0,
                                rare_fraction=0.05, progress=False)
    a = open_archive(out)
    assert a.n == 40 and a.sample_shape == (3, 500) and a.channels == ["Z", "N", "E"]
    assert a.attrs["sampling_rate_hz"] == 100.0 and a.attrs["window_s"] == 5.0
    assert a.label_names == ["icequake", "earthquake", "spike", "noise", "rare"]
    b = a.read(0, 40)
    ref, meta = collect(40, seed=2, window_s=5.0, rare_fraction=0.05)
    assert np.array_equal(b.samples, ref) and np.array_equal(b.meta["snr"], meta["snr"])
    assert list(b.meta["source"]) == list(meta["source"])

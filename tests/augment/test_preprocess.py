"""Preprocess: the deterministic evaluation path for images and waveforms."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spacessl.augment.preprocess import Preprocess
from spacessl.errors import SpacesslError


def test_image_uint16_to_unit_range_and_resize():
    raw = np.random.default_rng(0).integers(0, 65536, size=(4, 1, 32, 32), dtype=np.uint16)
    pre = Preprocess(modality="image", input_size=16)
    x = pre(raw)
    assert x.dtype == torch.float32 and x.shape == (4, 1, 16, 16)
    assert 0 <= x.min() and x.max() <= 1
    full = Preprocess(modality="image")(raw)
    torch.testing.assert_close(full, torch.from_numpy(raw.astype(np.float32) / 65535))


def test_declared_max_value_and_dtypes():
    raw = np.array([0, 2047, 4095, 8000], dtype=np.uint16).reshape(1, 1, 2, 2)
    x = Preprocess(modality="image", max_value=4095)(raw).flatten().tolist()
    assert x == pytest.approx([0.0, 2047 / 4095, 1.0, 1.0])  # clipped above the declared maximum
    u8 = np.full((1, 3, 2, 2), 255, dtype=np.uint8)
    assert Preprocess(modality="image")(u8).max() == 1.0
    f = torch.full((1, 1, 2, 2), 0.25)
    out = Preprocess(modality="image")(f)
    assert torch.all(out == 0.25)
    f2 = torch.full((1, 1, 2, 2), 2.0)
    Preprocess(modality="image")(f2)
    assert torch.all(f2 == 2.0)  # the caller's tensor is never modified


def test_image_determinism_numpy_and_tensor():
    raw = np.random.default_rng(1).integers(0, 65536, size=(3, 1, 40, 40), dtype=np.uint16)
    pre = Preprocess(modality="image", input_size=24, fov_radius=1.0)
    a, b = pre(raw), pre(raw)
    assert torch.equal(a, b)
    torch.testing.assert_close(pre(torch.from_numpy(raw)), a)  # a uint16 tensor gives the same
    assert torch.all(a[..., 0, 0] == 0)  # outside the field of view


def test_waveform_demean_normalise_crop_pad():
    rng = np.random.default_rng(2)
    raw = (rng.normal(size=(4, 3, 1200)) * 1e4 + 500).astype(np.float32)
    pre = Preprocess(modality="waveform", window_samples=1000)
    x = pre(raw)
    assert x.shape == (4, 3, 1000)
    torch.testing.assert_close(x.mean(-1), torch.zeros(4, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.abs().amax(dim=(1, 2)), torch.ones(4))
    assert torch.equal(pre(raw), x)
    short = Preprocess(modality="waveform", window_samples=1500)(raw)
    assert short.shape == (4, 3, 1500) and torch.all(short[..., 1200:] == 0)
    dead = Preprocess(modality="waveform")(np.zeros((2, 3, 100), dtype=np.int32))
    assert torch.all(dead == 0)  # guarded: no division by zero
    std = Preprocess(modality="waveform", normalize="std")(raw)
    torch.testing.assert_close(std.std(dim=(1, 2)), torch.ones(4), atol=1e-4, rtol=0)


def test_for_archive_and_str():
    image_archive = SimpleNamespace(modality="image", sample_shape=(1, 64, 64), attrs={"max_value": 4095})
    pre = Preprocess.for_archive(image_archive, input_size=32)
    assert pre.max_value == 4095 and pre.input_size == 32 and pre.in_channels == 1
    text = str(pre)
    assert text == "Preprocess(modality='image', input_size=32, max_value=4095.0, fov_radius=None, in_channels=1)"
    # a query file is preprocessed identically from the printed keyword arguments
    same = Preprocess(modality="image", input_size=32, max_value=4095.0, in_channels=1)
    raw = np.random.default_rng(3).integers(0, 4096, size=(2, 1, 64, 64), dtype=np.uint16)
    assert torch.equal(pre(raw), same(raw))

    wave_archive = SimpleNamespace(modality="waveform", sample_shape=(3, 1000), attrs={"sampling_rate_hz": 100.0})
    wpre = Preprocess.for_archive(wave_archive)
    assert wpre.window_samples is None and wpre.in_channels == 3
    assert "normalize='peak'" in str(wpre)
    assert Preprocess.for_archive(wave_archive, input_size=800).window_samples == 800


def test_for_real_archive(tmp_path):
    from spacessl.archive import ArchiveWriter, open_archive

    url = str(tmp_path / "a.zarr")
    raw = np.random.default_rng(4).integers(0, 4096, size=(5, 1, 16, 16), dtype=np.uint16)
    with ArchiveWriter(url, modality="image", sample_shape=(1, 16, 16), dtype="uint16", units="DN",
                       channels=["gray"], chunk_size=4, attrs={"max_value": 4095}) as w:
        w.append(raw, input_index=0, time_ns=np.arange(5), source="cam", origin="f.png")
    archive = open_archive(url)
    x = Preprocess.for_archive(archive, input_size=8)(archive.read(0, 5).samples)
    assert x.shape == (5, 1, 8, 8) and x.max() <= 1
    torch.testing.assert_close(Preprocess.for_archive(archive)(raw), torch.from_numpy(raw / 4095).float())


def test_errors():
    with pytest.raises(SpacesslError, match=r"x\[None\]"):
        Preprocess(modality="image")(np.zeros((1, 8, 8)))
    with pytest.raises(SpacesslError, match="Expected 3 channel"):
        Preprocess(modality="waveform", in_channels=3)(np.zeros((1, 1, 8)))
    with pytest.raises(SpacesslError, match="Available types"):
        Preprocess(modality="waveform", normalize="max")
    with pytest.raises(SpacesslError, match="Available modalities"):
        Preprocess(modality="video")


def test_percentile_stretch_matches_numpy_inside_the_field_of_view():
    from spacessl.augment.images import fov_mask

    rng = np.random.default_rng(4)
    raw = rng.gamma(2.0, 300.0, size=(3, 2, 20, 20)).astype(np.float32)
    pre = Preprocess(modality="image", max_value=4000.0, fov_radius=1.0, stretch="percentile",
                     stretch_percentiles=(2.0, 98.0))
    x = pre(raw).numpy()
    inside = fov_mask(20, 20, 1.0).numpy() > 0
    scaled = np.clip(raw / 4000.0, 0, 1)
    for b in range(3):
        for c in range(2):
            lo, hi = np.percentile(scaled[b, c][inside], [2.0, 98.0])
            want = np.clip((scaled[b, c] - lo) / (hi - lo), 0, 1) * inside
            np.testing.assert_allclose(x[b, c], want, atol=1e-5)
    assert np.all(x[..., ~inside] == 0)


@pytest.mark.parametrize("n", [1, 2, 7, 3217])
def test_order_statistics_match_a_full_sort(n):
    from spacessl.augment.preprocess import order_statistics

    rng = np.random.default_rng(n)
    # integer values: many ties, as uint16 frames have
    x = torch.from_numpy(rng.integers(0, 50, size=(5, n)).astype(np.float32))
    ordered = x.sort(dim=1).values
    ranks = sorted({0, n - 1, n // 2, (n - 1) // 2, n // 100, n - 1 - n // 200, min(n - 1, 1)})
    ranks = ranks + ranks[::-1]  # any order, repeats allowed
    torch.testing.assert_close(order_statistics(x, ranks), ordered[:, ranks], rtol=0, atol=0)
    with pytest.raises(ValueError, match="ranks must lie in"):
        order_statistics(x, [n])


def test_percentile_stretch_removes_exposure_and_keeps_flat_frames_dark():
    rng = np.random.default_rng(5)
    sky = rng.gamma(2.0, 100.0, size=(1, 1, 32, 32))
    frames = np.concatenate([sky, 7.5 * sky]).astype(np.uint16)  # the same sky at two exposures, no saturation
    pre = Preprocess(modality="image", input_size=16, max_value=16383, fov_radius=1.0, stretch="percentile")
    x = pre(frames)
    torch.testing.assert_close(x[0], x[1], atol=2e-3, rtol=0)
    plain = Preprocess(modality="image", input_size=16, max_value=16383, fov_radius=1.0)(frames)
    assert plain[1].mean() > 5 * plain[0].mean()  # without the stretch the level follows the exposure
    flat = Preprocess(modality="image", stretch="percentile")(np.full((1, 1, 8, 8), 900, np.uint16))
    assert torch.all(flat == 0)


def test_stretch_settings_are_checked_and_printed():
    with pytest.raises(SpacesslError, match="Unknown image stretch 'log'"):
        Preprocess(modality="image", stretch="log")
    with pytest.raises(SpacesslError, match="stretch_percentiles"):
        Preprocess(modality="image", stretch="percentile", stretch_percentiles=(99.0, 1.0))
    waves = SimpleNamespace(modality="waveform", sample_shape=(3, 1000), attrs={}, url="w.zarr")
    with pytest.raises(SpacesslError, match="image archives only.*w.zarr"):
        Preprocess.for_archive(waves, stretch="percentile")
    frames = SimpleNamespace(modality="image", sample_shape=(1, 64, 64), attrs={"max_value": 16383, "fov_radius": 1.0})
    pre = Preprocess.for_archive(frames, input_size=32, stretch="percentile")
    assert str(pre) == ("Preprocess(modality='image', input_size=32, max_value=16383.0, fov_radius=1.0, "
                        "stretch='percentile', stretch_percentiles=(1.0, 99.5), in_channels=1)")

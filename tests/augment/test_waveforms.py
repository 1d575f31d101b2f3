"""Waveform augmentations: filtering measured by FFT, amplitude, shift, noise, polarity, component dropout."""

from __future__ import annotations

import pytest
import torch

from spacessl.augment import build_augment
from spacessl.augment.waveforms import (
    RandomAmplitudeScale,
    RandomChannelDropout,
    RandomColouredNoise,
    RandomFilter,
    RandomPolarityFlip,
    RandomTimeShift,
    butterworth_response,
)
from spacessl.errors import SpacesslError

FS = 100.0
T = 1000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noise(b: int = 16, c: int = 3, t: int = T, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, t, generator=gen(seed))


def power(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(freqs (F,), power (B, C, F)) of the windows."""
    return torch.fft.rfftfreq(x.shape[-1], 1 / FS), torch.fft.rfft(x, dim=-1).abs() ** 2


def fraction(p: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
    return p[..., sel].sum(-1) / p.sum(-1)


def test_butterworth_corners():
    f = torch.tensor([0.0, 5.0, 10.0, 20.0])
    lp = butterworth_response(f, None, torch.tensor([10.0]))
    assert lp[0, 0] == 1 and lp[0, 2] == pytest.approx(0.5) and lp[0, 3] < 0.01
    hp = butterworth_response(f, torch.tensor([10.0]), None)
    assert hp[0, 0] == 0 and hp[0, 2] == pytest.approx(0.5) and hp[0, 1] < 0.01


def test_bandpass_removes_energy_outside_band():
    x = noise()
    bandpass = RandomFilter(sampling_rate_hz=FS, freq_range_hz=(5.0, 10.0), kinds=("bandpass",), p=1.0, min_octaves=0)
    y = bandpass(x, gen())
    f, p = power(y)
    outside = (f < 5.0 / 2) | (f > 10.0 * 2)  # an octave beyond the widest possible corners
    assert fraction(p, outside).max() < 0.01


def test_bandpass_passes_the_band():
    x = noise()
    y = RandomFilter(sampling_rate_hz=FS, freq_range_hz=(8.0, 8.0), kinds=("bandpass",), p=1.0)(x, gen())  # 8-16 Hz
    f, p = power(y)
    assert fraction(p, (f < 4.0) | (f > 32.0)).max() < 0.01
    _, p_in = power(x)
    inside = (f > 10.0) & (f < 13.0)
    assert (p[..., inside].sum(-1) / p_in[..., inside].sum(-1)).min() > 0.5  # gain ~0.85 mid-band


@pytest.mark.parametrize(("kind", "sel"), [("lowpass", lambda f: f > 20.0), ("highpass", lambda f: f < 2.5)])
def test_lowpass_highpass(kind, sel):
    y = RandomFilter(sampling_rate_hz=FS, freq_range_hz=(5.0, 10.0), kinds=(kind,), p=1.0)(noise(), gen())
    f, p = power(y)
    assert fraction(p, sel(f)).max() < 0.01


def test_filter_probability_zero_is_identity():
    x = noise()
    torch.testing.assert_close(RandomFilter(p=0.0)(x, gen()), x, atol=1e-5, rtol=0)
    with pytest.raises(SpacesslError, match="Nyquist"):
        RandomFilter(sampling_rate_hz=20.0, freq_range_hz=(1.0, 15.0))


def test_amplitude_scaling_keeps_shape():
    x = noise()
    y = RandomAmplitudeScale(log10_range=(-2, 2), channel_log10_range=(-0.5, 0.5))(x, gen())
    corr = torch.nn.functional.cosine_similarity(x, y, dim=-1)  # per component: a pure gain
    assert corr.min() > 0.9999
    gain = torch.log10(y.abs().amax(-1) / x.abs().amax(-1))  # (B, C)
    assert gain.min() >= -2.5 - 1e-4 and gain.max() <= 2.5 + 1e-4
    assert gain.mean(1).std() > 0.5  # orders of magnitude between windows
    assert (gain - gain.mean(1, keepdim=True)).abs().max() > 0.05  # and per component


def test_polarity_flip():
    x = noise()
    torch.testing.assert_close(RandomPolarityFlip(p=1.0)(x), -x)
    torch.testing.assert_close(RandomPolarityFlip(p=0.0)(x), x)
    y = RandomPolarityFlip(p=0.5)(x, gen())
    sign = (y * x).sum(dim=(1, 2)).sign()
    assert set(sign.tolist()) == {-1.0, 1.0}


def test_time_shift_zero_fill():
    x = torch.zeros(32, 3, T)
    x[:, :, 500] = 1.0
    y = RandomTimeShift(max_shift=0.1)(x, gen())
    pos = y[:, 0].argmax(-1)
    assert torch.all((pos - 500).abs() <= 100) and len(set(pos.tolist())) > 1
    assert torch.all(y.sum(-1) == 1)  # the impulse moves, nothing else appears
    assert torch.all(y[:, 0] == y[:, 1])  # components move together
    ramp = torch.arange(1.0, T + 1).expand(4, 1, T)
    z = RandomTimeShift(max_shift=0.2, mode="zero")(ramp, gen(1))
    shifted = (z == 0).sum(-1)
    assert torch.all(shifted <= 200)


def test_time_shift_roll():
    x = noise()
    y = RandomTimeShift(max_shift=0.5, mode="roll")(x, gen())
    torch.testing.assert_close(torch.sort(y, dim=-1).values, torch.sort(x, dim=-1).values)


def test_coloured_noise_snr_and_colour():
    x = noise(seed=1)
    y = RandomColouredNoise(snr_db=(10.0, 10.0), exponent=(2.0, 2.0), p=1.0)(x, gen())
    n = y - x
    snr = 10 * torch.log10(x.pow(2).mean((1, 2)) / n.pow(2).mean((1, 2)))
    torch.testing.assert_close(snr, torch.full_like(snr, 10.0), atol=1e-3, rtol=0)
    f, p = power(n)
    assert fraction(p, f < 5.0).min() > 0.5  # brown noise: most power at low frequencies
    assert torch.all(RandomColouredNoise(p=0.0)(x, gen()) == x)


def test_channel_dropout():
    x = noise() + 10.0
    y = RandomChannelDropout(p=1.0)(x, gen())
    dead = (y == 0).all(-1)  # (B, C)
    assert torch.all(dead.sum(1) == 1)
    torch.testing.assert_close(y[~dead], x[~dead])
    one = noise(c=1)
    assert torch.equal(RandomChannelDropout(p=1.0)(one, gen()), one)


def test_default_pipeline():
    aug = build_augment("waveform", sampling_rate_hz=FS)
    text = str(aug)
    for name in ("RandomTimeShift", "RandomColouredNoise", "RandomFilter", "RandomAmplitudeScale",
                 "RandomPolarityFlip", "RandomChannelDropout", "PeakNormalize", "sampling_rate_hz=100.0"):
        assert name in text
    x = noise()
    y = aug(x, gen())
    assert y.shape == x.shape and torch.isfinite(y).all()
    # views end peak-normalised, as the evaluation input: every window's peak is 1 (or the window is all zero)
    peak = y.abs().amax(dim=(1, 2))
    torch.testing.assert_close(peak, torch.ones_like(peak))
    torch.testing.assert_close(aug(x, gen(3)), aug(x, gen(3)))
    assert "PeakNormalize" not in str(build_augment("waveform", sampling_rate_hz=FS, renormalize=False))
    with pytest.raises(SpacesslError, match="sampling_rate_hz"):
        build_augment("waveform", sample_rate=100.0)


@pytest.mark.gpu
def test_cuda():
    x = noise().cuda()
    aug = build_augment("waveform", sampling_rate_hz=FS)
    assert aug(x, torch.Generator(device="cuda").manual_seed(0)).is_cuda
    assert aug(x, gen()).is_cuda and aug(x).is_cuda

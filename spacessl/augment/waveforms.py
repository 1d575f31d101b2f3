"""Waveform view augmentations, batch-level on (B, C, T) float32 tensors (C components, T samples).

Kinzel et al. (SRL 2024) learn icequake/earthquake/spike features with SimCLR views that vary amplitude and
frequency content. Here every nuisance of a seismic window is randomised: absolute amplitude (per window and per
component), frequency content (random band-, low- or high-pass, zero-phase, in the frequency domain), onset position
(time shift), noise level and colour (additive coloured noise at a random SNR), polarity and dead components.
Every transform is vectorised over the batch (``torch.fft`` for filtering and noise) and runs on CPU or CUDA.

Preset :func:`default`: shift -> coloured noise -> filter -> amplitude -> polarity -> component dropout -> peak
normalisation (views keep the scale of the evaluation input).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from spacessl.augment.base import (
    Augment,
    Compose,
    applied,
    bernoulli,
    check_batch,
    check_probability,
    check_range,
    log_uniform,
    rand,
    randn,
    uniform,
)
from spacessl.errors import SpacesslError

FILTER_KINDS = ("bandpass", "lowpass", "highpass")


def butterworth_response(
    freqs_hz: Tensor, low_hz: Tensor | None, high_hz: Tensor | None, order: int = 4
) -> Tensor:
    """Zero-phase Butterworth power response, as ObsPy's ``filter(..., zerophase=True)`` (order applied twice).

    Args:
        freqs_hz: (F,) frequencies.
        low_hz: (B,) high-pass corners, or None for no high-pass (a corner of 0: none for that window).
        high_hz: (B,) low-pass corners, or None for no low-pass (a corner of inf: none for that window).
        order: filter order n; the response is 1 / (1 + (f/fc)^(2n)) per side.

    Returns:
        (B, F) real gains in [0, 1] (or (1, F) when both corners are None).
    """
    resp = torch.ones(1, freqs_hz.shape[0], device=freqs_hz.device, dtype=freqs_hz.dtype)
    f = freqs_hz[None, :]
    if high_hz is not None:
        resp = resp / (1.0 + (f / high_hz[:, None]) ** (2 * order))
    if low_hz is not None:
        ratio = low_hz[:, None] / f.clamp_min(torch.finfo(f.dtype).tiny)
        resp = resp / (1.0 + ratio.clamp_max(1e6) ** (2 * order))
        resp = torch.where((f > 0) | (low_hz[:, None] <= 0), resp, torch.zeros_like(resp))  # high-pass removes DC
    return resp


class RandomFilter(Augment):
    """Random zero-phase band-pass, low-pass or high-pass filter, applied by multiplication in the frequency domain.

    Per window: with probability ``p`` a kind is drawn uniformly from ``kinds`` and corners log-uniformly from
    ``freq_range_hz`` (a band-pass spans at least ``min_octaves``, widened upwards when needed); the gain is
    :func:`butterworth_response`. The window is zero-padded to 2T before the FFT, so the filter acts as a linear
    (not circular) convolution.

    Args:
        sampling_rate_hz: sampling rate of the windows.
        freq_range_hz: (min, max) corner frequencies; None = (fs / 200, 0.45 fs).
        kinds: subset of ("bandpass", "lowpass", "highpass").
        p: probability that a window is filtered.
        order: Butterworth order.
        min_octaves: smallest band-pass width in octaves.

    Shape: (B, C, T) -> (B, C, T).
    """

    def __init__(
        self,
        sampling_rate_hz: float = 100.0,
        freq_range_hz: Sequence[float] | None = None,
        kinds: Sequence[str] = FILTER_KINDS,
        p: float = 0.8,
        order: int = 4,
        min_octaves: float = 1.0,
    ) -> None:
        if sampling_rate_hz <= 0:
            raise SpacesslError(f"sampling_rate_hz must be > 0, got {sampling_rate_hz}.")
        nyquist = sampling_rate_hz / 2.0
        if freq_range_hz is None:
            freq_range_hz = (sampling_rate_hz / 200.0, 0.9 * nyquist)
        lo, hi = check_range("freq_range_hz", freq_range_hz, positive=True)
        if hi >= nyquist:
            raise SpacesslError(
                f"freq_range_hz {freq_range_hz} reaches the Nyquist frequency {nyquist:g} Hz of "
                f"sampling_rate_hz={sampling_rate_hz:g}; keep corners below it."
            )
        bad = [k for k in kinds if k not in FILTER_KINDS]
        if bad or not kinds:
            raise SpacesslError(f"Unknown filter kind(s) {bad or list(kinds)}. Available kinds are: {FILTER_KINDS}.")
        if order < 1:
            raise SpacesslError(f"order must be >= 1, got {order}.")
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.freq_range_hz = (lo, hi)
        self.kinds = tuple(kinds)
        self.p = check_probability("p", p)
        self.order = int(order)
        self.min_octaves = float(min_octaves)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 3, "Waveform")
        b, c, t = x.shape
        dev = x.device
        n_fft = 2 * t
        c1 = log_uniform((b,), *self.freq_range_hz, generator, dev)
        c2 = log_uniform((b,), *self.freq_range_hz, generator, dev)
        low, high = torch.minimum(c1, c2), torch.maximum(c1, c2)
        width = 2.0**self.min_octaves  # a band narrower than min_octaves is widened, up to 0.95 x Nyquist
        high = torch.maximum(high, low * width).clamp(max=0.475 * self.sampling_rate_hz)
        low = torch.minimum(low, high / width)
        kind = (rand((b,), generator, dev) * len(self.kinds)).long().clamp_(max=len(self.kinds) - 1)  # (B,)
        apply = bernoulli(b, self.p, generator, dev)

        # one response for every window: a low-pass is a band-pass with its high-pass corner at 0 Hz, a high-pass one
        # with its low-pass corner at infinity, and both make a factor of exactly 1 (an unfiltered window: both)
        corners = {"bandpass": (low, high), "lowpass": (None, c1), "highpass": (c1, None)}
        hp = torch.zeros(b, device=dev)  # (B,) high-pass corner, 0 = none
        lp = torch.full((b,), math.inf, device=dev)  # (B,) low-pass corner, inf = none
        for i, name in enumerate(self.kinds):
            chosen = (kind == i) & apply
            lo_c, hi_c = corners[name]
            if lo_c is not None:
                hp = torch.where(chosen, lo_c, hp)
            if hi_c is not None:
                lp = torch.where(chosen, hi_c, lp)
        freqs = torch.fft.rfftfreq(n_fft, d=1.0 / self.sampling_rate_hz, device=dev)  # (F,)
        resp = butterworth_response(freqs, hp, lp, self.order)  # (B, F)
        spec = torch.fft.rfft(x, n=n_fft, dim=-1)  # (B, C, F) complex
        return torch.fft.irfft(spec * resp[:, None, :], n=n_fft, dim=-1)[..., :t].contiguous()


class RandomAmplitudeScale(Augment):
    """Scale amplitudes by 10^u, u uniform in ``log10_range`` per window, times 10^v per component.

    Absolute amplitude (magnitude, distance, instrument gain) and the relative gain of the components are
    nuisances: scaling log-uniformly over orders of magnitude makes the embedding invariant to them.

    Args:
        log10_range: per-window exponent range (-1, 1) = two orders of magnitude.
        channel_log10_range: extra per-component exponent range.
        p: probability that a window is scaled.

    Shape: (B, C, T) -> (B, C, T).
    """

    def __init__(
        self,
        log10_range: Sequence[float] = (-1.0, 1.0),
        channel_log10_range: Sequence[float] = (-0.3, 0.3),
        p: float = 1.0,
    ) -> None:
        self.log10_range = check_range("log10_range", log10_range)
        self.channel_log10_range = check_range("channel_log10_range", channel_log10_range)
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 3, "Waveform")
        b, c, _ = x.shape
        dev = x.device
        u = uniform((b, 1), *self.log10_range, generator, dev)  # (B, 1)
        v = uniform((b, c), *self.channel_log10_range, generator, dev)  # (B, C)
        e = applied(u + v, self.p, generator)
        return x * torch.pow(10.0, e)[:, :, None]


class RandomTimeShift(Augment):
    """Shift each window in time by up to ``max_shift`` x T samples, either way.

    Args:
        max_shift: largest shift as a fraction of the window length.
        mode: "zero" fills the vacated samples with zeros, "roll" wraps the window around.
        p: probability that a window is shifted.

    Shape: (B, C, T) -> (B, C, T).
    """

    def __init__(self, max_shift: float = 0.1, mode: str = "zero", p: float = 1.0) -> None:
        if not 0.0 <= max_shift <= 1.0:
            raise SpacesslError(f"max_shift is a fraction of the window and must be in [0, 1], got {max_shift}.")
        if mode not in ("zero", "roll"):
            raise SpacesslError(f"Unknown time-shift mode {mode!r}. Available modes are: 'zero', 'roll'.")
        self.max_shift = float(max_shift)
        self.mode = mode
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 3, "Waveform")
        b, c, t = x.shape
        dev = x.device
        m = self.max_shift * t
        shift = torch.round(uniform((b,), -m, m, generator, dev)).long()  # (B,) samples, > 0 = later
        shift = applied(shift, self.p, generator)
        src = torch.arange(t, device=dev)[None, :] - shift[:, None]  # (B, T) source index of each output sample
        if self.mode == "roll":
            return torch.gather(x, 2, (src % t)[:, None, :].expand(b, c, t))
        valid = (src >= 0) & (src < t)
        out = torch.gather(x, 2, src.clamp(0, t - 1)[:, None, :].expand(b, c, t))
        return out * valid[:, None, :].to(x.dtype)


class RandomColouredNoise(Augment):
    """Add noise with power spectrum ~ f^-beta at a random signal-to-noise ratio.

    beta uniform in ``exponent`` (0 white, 1 pink, 2 brown); SNR in dB uniform in ``snr_db``, relative to the
    window's RMS over all components; each component gets independent noise of the same RMS.

    Args:
        snr_db: (min, max) SNR in dB.
        exponent: (min, max) spectral exponent beta.
        p: probability that a window gets noise.

    Shape: (B, C, T) -> (B, C, T).
    """

    def __init__(
        self, snr_db: Sequence[float] = (5.0, 30.0), exponent: Sequence[float] = (0.0, 2.0), p: float = 0.5
    ) -> None:
        self.snr_db = check_range("snr_db", snr_db)
        self.exponent = check_range("exponent", exponent)
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 3, "Waveform")
        b, c, t = x.shape
        dev = x.device
        apply = bernoulli(b, self.p, generator, dev)
        beta = uniform((b,), *self.exponent, generator, dev)
        snr = uniform((b,), *self.snr_db, generator, dev)
        white = randn((b, c, t), generator, dev)
        freqs = torch.fft.rfftfreq(t, device=dev)  # (F,) cycles/sample
        freqs = freqs.clamp_min(freqs[1] if freqs.shape[0] > 1 else 1.0)
        shape = freqs[None, :] ** (-0.5 * beta[:, None])  # (B, F) amplitude ~ f^(-beta/2)
        shape[:, 0] = 0.0  # no DC offset
        noise = torch.fft.irfft(torch.fft.rfft(white, dim=-1) * shape[:, None, :], n=t, dim=-1)
        noise = noise / noise.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-12)  # unit RMS per component
        signal_rms = x.pow(2).mean(dim=(1, 2)).sqrt()  # (B,)
        scale = signal_rms * torch.pow(10.0, -snr / 20.0) * apply.to(x.dtype)  # (B,)
        return x + noise * scale[:, None, None]


class RandomPolarityFlip(Augment):
    """Multiply the whole window (every component) by -1 with probability ``p``. Shape: (B, C, T) -> (B, C, T)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 3, "Waveform")
        flip = bernoulli(x.shape[0], self.p, generator, x.device)
        return x * (1.0 - 2.0 * flip.to(x.dtype))[:, None, None]


class RandomChannelDropout(Augment):
    """Zero one randomly chosen component with probability ``p`` (a dead or missing channel).

    Never removes the only component of single-channel data. Shape: (B, C, T) -> (B, C, T).
    """

    def __init__(self, p: float = 0.1) -> None:
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 3, "Waveform")
        b, c, _ = x.shape
        if c < 2:
            return x
        dev = x.device
        drop = bernoulli(b, self.p, generator, dev)
        which = (rand((b,), generator, dev) * c).long().clamp_(max=c - 1)  # (B,)
        keep = ~(torch.nn.functional.one_hot(which, c).bool() & drop[:, None])  # (B, C)
        return x * keep[:, :, None].to(x.dtype)


# --------------------------------------------------------------------------------------------------- presets


class PeakNormalize(Augment):
    """Divide each window by its peak absolute value over components and time (all-zero windows stay zero).

    Not random: the last step of a view pipeline, so that a view has the scale :class:`Preprocess` gives the
    embedding path (``normalize="peak"``). The per-window gain of :class:`RandomAmplitudeScale` then cancels while
    the per-component gains, the noise level and the filtering survive: without it a view's overall scale spans two
    orders of magnitude that the evaluation input never has, and a contrastive loss spends its capacity on scale.
    Shape: (B, C, T) -> (B, C, T).
    """

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 3, "Waveform")
        peak = x.abs().amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
        return x / torch.where(peak > 0, peak, torch.ones_like(peak))


def default(
    sampling_rate_hz: float = 100.0,
    max_shift: float = 0.1,
    noise_p: float = 0.5,
    snr_db: Sequence[float] = (5.0, 30.0),
    noise_exponent: Sequence[float] = (0.0, 2.0),
    filter_p: float = 0.8,
    freq_range_hz: Sequence[float] | None = None,
    filter_kinds: Sequence[str] = FILTER_KINDS,
    amplitude_log10: Sequence[float] = (-1.0, 1.0),
    channel_log10: Sequence[float] = (-0.3, 0.3),
    polarity_p: float = 0.5,
    channel_dropout_p: float = 0.1,
    renormalize: bool = True,
) -> Compose:
    """Kinzel-style views: amplitude and frequency variation, plus shift, noise, polarity and dead components.

    Args:
        sampling_rate_hz: the archive's ``sampling_rate_hz`` attribute (the filter corners are in Hz).
        max_shift: largest time shift as a fraction of the window.
        noise_p, snr_db, noise_exponent: coloured-noise probability, SNR range (dB) and spectral exponent range.
        filter_p, freq_range_hz, filter_kinds: filter probability, corner range (None = fs/200 to 0.45 fs), kinds.
        amplitude_log10, channel_log10: per-window and per-component log10 gain ranges.
        polarity_p: polarity flip probability.
        channel_dropout_p: probability of zeroing one component.
        renormalize: end with :class:`PeakNormalize`, so views have the evaluation input's scale (default).
    """
    return Compose(
        [
            RandomTimeShift(max_shift=max_shift),
            RandomColouredNoise(snr_db=snr_db, exponent=noise_exponent, p=noise_p),
            RandomFilter(
                sampling_rate_hz=sampling_rate_hz, freq_range_hz=freq_range_hz, kinds=filter_kinds, p=filter_p
            ),
            RandomAmplitudeScale(log10_range=amplitude_log10, channel_log10_range=channel_log10),
            RandomPolarityFlip(p=polarity_p),
            RandomChannelDropout(p=channel_dropout_p),
            *([PeakNormalize()] if renormalize else []),
        ]
    )


__all__ = [
    "FILTER_KINDS",
    "PeakNormalize",
    "RandomAmplitudeScale",
    "RandomChannelDropout",
    "RandomColouredNoise",
    "RandomFilter",
    "RandomPolarityFlip",
    "RandomTimeShift",
    "butterworth_response",
    "default",
]

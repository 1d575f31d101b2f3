"""The deterministic evaluation path: raw archive samples -> the tensors the encoder sees.

The same :class:`Preprocess` runs before the augmentations in training, alone in the bulk embedding job, and on a
query sample, so that a query file is embedded exactly as the archive was. Build it from an archive
(:meth:`Preprocess.for_archive`) or, for a loose file, with the same keyword arguments (its ``str`` prints them).

Images (B, C, H, W), any integer or float dtype:
    float32 = raw / max_value (the archive's ``max_value`` attribute, else the integer dtype's maximum, else 1 for
    floats), clipped to [0, 1]; resized (bilinear, antialiased) to ``input_size`` x ``input_size``; optionally
    stretched per frame ("percentile": ``(x - p_lo) / (p_hi - p_lo)`` clipped to [0, 1], the percentiles of each
    frame and channel taken over its field of view, as all-sky quick-looks are scaled, so that exposure and gain
    no longer set the level); optionally the all-sky field of view outside ``fov_radius`` set to 0.
Waveforms (B, C, T), counts or physical units:
    cropped (from the start) or zero-padded (at the end) to ``window_samples``; each component demeaned; each
    window divided by its peak |x| over all components ("peak", guarded for dead windows) or by its standard
    deviation ("std"), or left in its units ("none").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from spacessl.augment.images import fov_mask
from spacessl.errors import SpacesslError

MODALITIES = ("image", "waveform")
NORMALIZATIONS = ("peak", "std", "none")
STRETCHES = ("none", "percentile")


class Preprocess:
    """Deterministic conversion of raw samples to encoder input.

    Args:
        modality: "image" or "waveform".
        input_size: images: output side in px (None keeps H, W).
        max_value: images: the value that maps to 1.0; None = the integer dtype's max (255, 65535, ...), or 1.0
            for float data.
        fov_radius: images: zero everything outside this field-of-view circle (fraction of half the shorter side);
            None keeps the whole frame.
        window_samples: waveforms: output length T (None keeps the input's).
        stretch: images: "none", or "percentile" (per frame and channel, ``stretch_percentiles`` of the pixels
            inside the field of view map to 0 and 1).
        stretch_percentiles: images: (low, high) percentiles in [0, 100] for the "percentile" stretch.
        normalize: waveforms: "peak" (max |x| over components and time -> 1), "std" (unit std), "none".
        demean: waveforms: subtract each component's mean.
        in_channels: expected C; None accepts any.

    Shape: images (B, C, H, W) -> (B, C, input_size, input_size) float32; waveforms (B, C, T) ->
    (B, C, window_samples) float32. A tensor input stays on its device; a numpy input becomes a CPU tensor.
    """

    def __init__(
        self,
        *,
        modality: str,
        input_size: int | None = None,
        max_value: float | None = None,
        fov_radius: float | None = None,
        stretch: str = "none",
        stretch_percentiles: tuple[float, float] | list[float] = (1.0, 99.5),
        window_samples: int | None = None,
        normalize: str = "peak",
        demean: bool = True,
        in_channels: int | None = None,
    ) -> None:
        if modality not in MODALITIES:
            raise SpacesslError(f"Unknown modality {modality!r}. Available modalities are: {', '.join(MODALITIES)}.")
        if normalize not in NORMALIZATIONS:
            raise SpacesslError(
                f"Unknown waveform normalisation {normalize!r}. Available types are: {', '.join(NORMALIZATIONS)}."
            )
        if stretch not in STRETCHES:
            raise SpacesslError(f"Unknown image stretch {stretch!r}. Available stretches are: {', '.join(STRETCHES)}.")
        lo_p, hi_p = (float(v) for v in stretch_percentiles)
        if not 0.0 <= lo_p < hi_p <= 100.0:
            raise SpacesslError(f"stretch_percentiles must be (low, high) with 0 <= low < high <= 100, "
                                f"got {tuple(stretch_percentiles)}.")
        for name, value in (("input_size", input_size), ("window_samples", window_samples)):
            if value is not None and value < 1:
                raise SpacesslError(f"{name} must be a positive integer or None, got {value}.")
        if max_value is not None and not max_value > 0:
            raise SpacesslError(f"max_value must be > 0, got {max_value}; fix the archive's max_value attribute.")
        if fov_radius is not None and not fov_radius > 0:
            raise SpacesslError(f"fov_radius must be > 0 or None, got {fov_radius}.")
        self.modality = modality
        self.input_size = input_size
        self.max_value = None if max_value is None else float(max_value)
        self.fov_radius = None if fov_radius is None else float(fov_radius)
        self.stretch = stretch
        self.stretch_percentiles = (lo_p, hi_p)
        self.window_samples = window_samples
        self.normalize = normalize
        self.demean = demean
        self.in_channels = in_channels

    @classmethod
    def for_archive(
        cls, archive: Any, input_size: int | None = None, window_samples: int | None = None, *,
        stretch: str = "none", stretch_percentiles: tuple[float, float] | list[float] | None = None,
        **overrides: Any
    ) -> Preprocess:
        """The preprocessing of ``archive`` (an :class:`~spacessl.archive.Archive`).

        Reads modality, channel count and the optional ``max_value`` and ``fov_radius`` attributes. For waveforms,
        ``window_samples`` falls back to ``input_size`` (so one ``data.input_size`` setting serves both); a
        ``stretch`` other than "none" is refused for them (it is an image option). ``stretch_percentiles`` None
        keeps the class default.
        """
        attrs = dict(getattr(archive, "attrs", {}) or {})
        modality = archive.modality
        kwargs: dict[str, Any] = {"modality": modality, "in_channels": int(archive.sample_shape[0])}
        if modality == "image":
            kwargs["input_size"] = input_size
            kwargs["max_value"] = attrs.get("max_value")
            kwargs["fov_radius"] = attrs.get("fov_radius")
            kwargs["stretch"] = stretch
            if stretch_percentiles is not None:
                kwargs["stretch_percentiles"] = tuple(stretch_percentiles)
        else:
            if stretch != "none":
                raise SpacesslError(f"stretch={stretch!r} applies to image archives only, and "
                                    f"{getattr(archive, 'url', 'this archive')} holds waveforms; set data.stretch "
                                    "to none")
            kwargs["window_samples"] = window_samples if window_samples is not None else input_size
        kwargs.update(overrides)
        return cls(**kwargs)

    # ------------------------------------------------------------------------------------------------- call

    def __call__(self, x: np.ndarray | Tensor) -> Tensor:
        """Preprocess a batch; see the class docstring for shapes."""
        ndim = 4 if self.modality == "image" else 3
        if x.ndim != ndim:
            dims = "(B, C, H, W)" if ndim == 4 else "(B, C, T)"
            raise SpacesslError(
                f"Preprocess({self.modality}) takes a batch {dims}, got shape {tuple(x.shape)}; "
                f"add a batch axis with x[None] for a single sample."
            )
        if self.in_channels is not None and x.shape[1] != self.in_channels:
            raise SpacesslError(
                f"Expected {self.in_channels} channel(s), got {x.shape[1]} (shape {tuple(x.shape)}); the sample "
                f"does not match the archive the model was trained on."
            )
        if self.modality == "image":
            return self._image(x)
        return self._waveform(x)

    def _scale(self, x: np.ndarray | Tensor) -> float | None:
        if self.max_value is not None:
            return self.max_value
        dtype = x.dtype
        if isinstance(x, Tensor):
            if dtype == torch.bool:
                return 1.0
            if not dtype.is_floating_point:
                return float(torch.iinfo(dtype).max)
            return None
        if np.issubdtype(dtype, np.integer):
            return float(np.iinfo(dtype).max)
        if dtype == np.bool_:
            return 1.0
        return None

    def _image(self, x: np.ndarray | Tensor) -> Tensor:
        scale = self._scale(x)
        t = _to_float_tensor(x)
        if scale is not None:
            t = t * (1.0 / scale)
        t = t.clamp(0.0, 1.0)  # out of place: a float32 input tensor is never modified
        h, w = t.shape[-2:]
        if self.input_size is not None and (h, w) != (self.input_size, self.input_size):
            t = F.interpolate(t, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                              align_corners=False).clamp_(0.0, 1.0)
        mask = None if self.fov_radius is None else fov_mask(t.shape[-2], t.shape[-1], self.fov_radius, t.device)
        if self.stretch == "percentile":
            t = percentile_stretch(t, self.stretch_percentiles, mask)
        if mask is not None:
            t = t * mask
        return t.contiguous()

    def _waveform(self, x: np.ndarray | Tensor) -> Tensor:
        t = _to_float_tensor(x)
        n = self.window_samples
        length = t.shape[-1]
        if n is not None and length > n:
            t = t[..., :n]
        if self.demean:
            t = t - t.mean(dim=-1, keepdim=True)
        if self.normalize == "peak":
            peak = t.abs().amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
            t = t / torch.where(peak > 0, peak, torch.ones_like(peak))
        elif self.normalize == "std":
            std = t.std(dim=(1, 2), keepdim=True)
            t = t / torch.where(std > 0, std, torch.ones_like(std))
        if n is not None and length < n:
            t = F.pad(t, (0, n - length))
        return t.contiguous()

    def __str__(self) -> str:
        if self.modality == "image":
            keys = ("input_size", "max_value", "fov_radius", "in_channels")
            if self.stretch != "none":
                keys = (*keys[:3], "stretch", "stretch_percentiles", keys[3])
        else:
            keys = ("window_samples", "demean", "normalize", "in_channels")
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in keys)
        return f"Preprocess(modality={self.modality!r}, {args})"

    __repr__ = __str__


def percentile_stretch(x: Tensor, percentiles: tuple[float, float], mask: Tensor | None = None) -> Tensor:
    """Per frame and channel: ``(x - p_lo) / (p_hi - p_lo)`` clipped to [0, 1].

    Args:
        x: (B, C, H, W) float.
        percentiles: (low, high) in [0, 100], linearly interpolated between order statistics (numpy's default).
        mask: (H, W), nonzero where the percentiles are taken (the field of view); None = every pixel.

    Returns:
        (B, C, H, W) float32; a flat frame (p_hi == p_lo) becomes 0.
    """
    b, c, h, w = x.shape
    flat = x.reshape(b * c, h * w)
    if mask is not None:
        flat = flat[:, mask.reshape(-1) > 0]
    n = flat.shape[1]
    if n == 0:
        raise SpacesslError("the field of view holds no pixel; check fov_radius")
    ranks, fracs = [], []
    for p in percentiles:
        pos = p / 100.0 * (n - 1)
        i0 = int(math.floor(pos))
        ranks += [i0, min(i0 + 1, n - 1)]
        fracs.append(pos - i0)
    stats = order_statistics(flat, ranks)
    bounds = [stats[:, 2 * j] * (1.0 - f) + stats[:, 2 * j + 1] * f for j, f in enumerate(fracs)]
    lo = bounds[0].view(b, c, 1, 1)
    span = (bounds[1] - bounds[0]).view(b, c, 1, 1)
    y = (x - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, y, torch.zeros_like(y)).clamp_(0.0, 1.0)


def order_statistics(x: Tensor, ranks: Sequence[int]) -> Tensor:
    """The ``ranks``-th smallest values of each row, as ``x.sort(dim=1).values[:, ranks]`` gives them.

    Each rank is taken from the nearer end of the row with one ``topk`` per end, so percentiles near 0 and 100
    (a stretch's 1st and 99.5th) cost a partial selection instead of a full sort; the whole stretch of 64 frames of
    64 px takes 3.7 x less time on one CPU thread (benchmarks/percentile_stretch.py).

    Args:
        x: (R, N) float.
        ranks: 0-based ranks, each in [0, N).

    Returns:
        (R, len(ranks)), x's dtype.
    """
    n = x.shape[1]
    if any(not 0 <= r < n for r in ranks):
        raise ValueError(f"ranks must lie in [0, {n}), got {list(ranks)}")
    low = [r for r in ranks if r < n - 1 - r]
    high = [r for r in ranks if r >= n - 1 - r]
    columns: dict[int, Tensor] = {}
    if low:  # smallest first: column j is rank j
        smallest = x.topk(max(low) + 1, dim=1, largest=False, sorted=True).values
        columns.update({r: smallest[:, r] for r in low})
    if high:  # largest first: column j is rank n - 1 - j
        largest = x.topk(n - min(high), dim=1, largest=True, sorted=True).values
        columns.update({r: largest[:, n - 1 - r] for r in high})
    return torch.stack([columns[r] for r in ranks], dim=1)


def _to_float_tensor(x: np.ndarray | Tensor) -> Tensor:
    """float32 tensor of ``x``: numpy is converted on the CPU (fast for uint16), tensors keep their device."""
    if isinstance(x, Tensor):
        return x.to(torch.float32)
    if not isinstance(x, np.ndarray):
        raise SpacesslError(f"Preprocess takes numpy arrays or torch tensors, got {type(x).__name__}.")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


__all__ = ["MODALITIES", "NORMALIZATIONS", "STRETCHES", "Preprocess", "order_statistics", "percentile_stretch"]

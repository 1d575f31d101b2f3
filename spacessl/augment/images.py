"""Image view augmentations, batch-level on (B, C, H, W) float32 tensors with intensities in [0, 1].

Geometric transforms resample every sample of the batch in one ``affine_grid`` + ``grid_sample`` call; intensity
transforms broadcast per-sample factors; the blur is one grouped separable convolution with per-sample kernels.
All work on CPU and CUDA tensors alike.

Presets:
    :func:`oath`    SpaceSSL (Smith et al. 2024) exactly: random resized crop (min scale 0.3), Gaussian blur
                    p 0.7 with kernel 0.025 of the size, vertical and horizontal flips p 0.7, no colour jitter,
                    no normalisation.
    :func:`allsky`  all-sky frames: every nuisance of the camera randomised (zenith rotation, which turns the
                    airglow gradient; overall brightness, contrast and gamma), a mild crop that keeps most of the
                    sky, flips and blur; the field of view outside the circle stays dark. Sensor grain
                    (:class:`RandomNoise`) is an option, off by default (``noise_p``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
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


def fov_mask(height: int, width: int, radius: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    """Circular field-of-view mask of an all-sky frame centred on the zenith (the image centre).

    Args:
        height, width: frame size in pixels.
        radius: circle radius as a fraction of half the shorter side (1.0 = the inscribed circle).
        device: where to build the mask.

    Returns:
        (height, width) float32, 1 inside the circle (pixel centre at distance <= radius), 0 outside.
    """
    ys = torch.arange(height, device=device, dtype=torch.float32) - (height - 1) / 2.0
    xs = torch.arange(width, device=device, dtype=torch.float32) - (width - 1) / 2.0
    r_px = radius * min(height, width) / 2.0
    dist2 = ys[:, None] ** 2 + xs[None, :] ** 2
    return (dist2 <= r_px**2).to(torch.float32)


def pixel_centres(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(n,) normalised coordinates in (-1, 1) of the centres of n pixels along one axis (``align_corners=False``)."""
    return (torch.arange(n, device=device, dtype=dtype) * 2 + 1) / n - 1


def affine_grid(theta: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """``F.affine_grid(theta, ..., align_corners=False)`` as separate x and y planes, by broadcasting.

    Args:
        theta: (B, 2, 3) maps from output to input normalised coordinates.
        height, width: output size.

    Returns:
        (gx, gy), each (B, height, width): input coordinates in [-1, 1] of every output pixel centre.
        ``torch.stack([gx, gy], -1)`` is the grid ``F.grid_sample`` takes (cheaper on the CPU than affine_grid).
    """
    xs = pixel_centres(width, theta.device, theta.dtype)  # (W,)
    ys = pixel_centres(height, theta.device, theta.dtype)  # (H,)
    t = theta[:, :, :, None, None]  # (B, 2, 3, 1, 1)
    gx = t[:, 0, 0] * xs + t[:, 0, 1] * ys[:, None] + t[:, 0, 2]
    gy = t[:, 1, 0] * xs + t[:, 1, 1] * ys[:, None] + t[:, 1, 2]
    return gx, gy


def _sample(x: Tensor, gx: Tensor, gy: Tensor, padding_mode: str) -> Tensor:
    grid = torch.stack([gx, gy], dim=-1)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


class RandomResizedCrop(Augment):
    """Crop a random box of area fraction ``scale`` and aspect ratio ``ratio``, resize it to ``size``.

    As torchvision's RandomResizedCrop (bilinear), except that a box that would not fit is shrunk to the frame
    instead of redrawn. Interpolation is bilinear without antialiasing: resize frames to the training size in
    :class:`~spacessl.augment.preprocess.Preprocess` and keep ``size`` at that size (or None).

    Args:
        size: output side in px; None keeps the input's (H, W).
        scale: (min, max) area of the box as a fraction of the frame.
        ratio: (min, max) width/height of the box, drawn log-uniformly.

    Shape: (B, C, H, W) -> (B, C, size, size).
    """

    def __init__(
        self,
        size: int | None = None,
        scale: Sequence[float] = (0.3, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
    ) -> None:
        if size is not None and size < 1:
            raise SpacesslError(f"crop size must be a positive number of pixels or None, got {size}.")
        self.size = size
        self.scale = check_range("scale", scale, positive=True)
        self.ratio = check_range("ratio", ratio, positive=True)
        if self.scale[1] > 1.0:
            raise SpacesslError(f"scale is a fraction of the frame area and must be <= 1, got {self.scale}.")

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """(out_h, out_w) for an (h, w) input."""
        return (self.size, self.size) if self.size is not None else (h, w)

    def theta(self, b: int, h: int, w: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """(B, 2, 3) affine maps from output to input coordinates (``affine_grid`` convention)."""
        area = uniform((b,), *self.scale, generator, device)  # (B,) fraction of H*W
        r = log_uniform((b,), *self.ratio, generator, device)  # (B,) box width / height in px
        fw = torch.sqrt(area * r * h / w).clamp(max=1.0)  # (B,) box width as a fraction of W
        fh = torch.sqrt(area / r * w / h).clamp(max=1.0)  # (B,) box height as a fraction of H
        centre = 2.0 * rand((2, b), generator, device) - 1.0  # (2, B) in [-1, 1)
        zero = torch.zeros_like(fw)
        return torch.stack([fw, zero, (1.0 - fw) * centre[0], zero, fh, (1.0 - fh) * centre[1]], dim=1).view(b, 2, 3)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        b, c, h, w = x.shape
        oh, ow = self.output_size(h, w)
        gx, gy = affine_grid(self.theta(b, h, w, generator, x.device).to(x.dtype), oh, ow)
        return _sample(x, gx, gy, "border")


class RandomZenithRotation(Augment):
    """Rotate each frame about its centre (the zenith of an all-sky camera) by a random angle.

    Pixels that come from outside the frame are zero, and with ``fov_radius`` set everything outside the
    field-of-view circle is zero after the rotation (the mask stays dark whatever the angle).

    Args:
        degrees: (min, max) angle, drawn uniformly; (0, 360) = any orientation.
        fov_radius: field-of-view radius as a fraction of half the shorter side, None = no mask.
        p: probability that a frame is rotated (the mask applies to every frame).

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(
        self, degrees: Sequence[float] = (0.0, 360.0), fov_radius: float | None = 1.0, p: float = 1.0
    ) -> None:
        self.degrees = check_range("degrees", degrees)
        if fov_radius is not None and fov_radius <= 0:
            raise SpacesslError(f"fov_radius must be > 0 (fraction of half the frame) or None, got {fov_radius}.")
        self.fov_radius = fov_radius
        self.p = check_probability("p", p)

    def theta(self, b: int, h: int, w: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """(B, 2, 3) affine maps from output to input coordinates (``affine_grid`` convention)."""
        angle = torch.deg2rad(uniform((b,), *self.degrees, generator, device))  # (B,) rad
        angle = applied(angle, self.p, generator)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(cos)
        # normalised coordinates differ in scale when H != W
        return torch.stack([cos, -sin * h / w, zero, sin * w / h, cos, zero], dim=1).view(b, 2, 3)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        b, c, h, w = x.shape
        gx, gy = affine_grid(self.theta(b, h, w, generator, x.device).to(x.dtype), h, w)
        out = _sample(x, gx, gy, "zeros")
        if self.fov_radius is not None:
            out = out * fov_mask(h, w, self.fov_radius, x.device).to(out.dtype)
        return out


class RandomRotatedCrop(Augment):
    """:class:`RandomZenithRotation` then :class:`RandomResizedCrop`, fused into one resampling.

    Same distribution of views as the two in sequence, at half the cost and with one interpolation instead of
    two. The field-of-view mask is evaluated exactly at each output pixel's position in the rotated frame, so
    every pixel whose source lies outside the circle is 0.

    Args:
        size, scale, ratio: as :class:`RandomResizedCrop`.
        degrees, fov_radius: as :class:`RandomZenithRotation` (every frame is rotated).

    Shape: (B, C, H, W) -> (B, C, size, size).
    """

    def __init__(
        self,
        size: int | None = None,
        scale: Sequence[float] = (0.6, 1.0),
        ratio: Sequence[float] = (0.9, 1.1),
        degrees: Sequence[float] = (0.0, 360.0),
        fov_radius: float | None = 1.0,
    ) -> None:
        self._crop = RandomResizedCrop(size=size, scale=scale, ratio=ratio)
        self._rotation = RandomZenithRotation(degrees=degrees, fov_radius=fov_radius)
        self.size = size
        self.scale = self._crop.scale
        self.ratio = self._crop.ratio
        self.degrees = self._rotation.degrees
        self.fov_radius = fov_radius

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        b, c, h, w = x.shape
        dev = x.device
        oh, ow = self._crop.output_size(h, w)
        rot = self._rotation.theta(b, h, w, generator, dev)  # rotated frame -> input
        crop = self._crop.theta(b, h, w, generator, dev)  # output -> rotated frame
        theta = rot[:, :, :2] @ crop  # (B, 2, 3): output -> input, x_in = R (C p + c) + r
        theta[:, :, 2] += rot[:, :, 2]
        gx, gy = affine_grid(theta.to(x.dtype), oh, ow)
        out = _sample(x, gx, gy, "zeros")
        if self.fov_radius is not None:
            # output pixel centres in the rotated frame: the crop is axis-aligned, so x depends on the column alone
            # and y on the row alone (affine_grid of ``crop``, without its (B, H, W) planes)
            c = crop.to(x.dtype)
            xs, ys = pixel_centres(ow, dev, x.dtype), pixel_centres(oh, dev, x.dtype)  # (W,), (H,)
            dx = (c[:, 0, 0, None] * xs + c[:, 0, 2, None]) * (w / 2.0)  # (B, W) px from the zenith, as in fov_mask
            dy = (c[:, 1, 1, None] * ys + c[:, 1, 2, None]) * (h / 2.0)  # (B, H)
            r_px = self.fov_radius * min(h, w) / 2.0
            inside = (dx * dx)[:, None, :] + (dy * dy)[:, :, None] <= r_px**2  # (B, H, W)
            out = out * inside[:, None].to(out.dtype)
        return out


class RandomHorizontalFlip(Augment):
    """Mirror left-right with probability ``p``. Shape: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        flip = bernoulli(x.shape[0], self.p, generator, x.device)
        return torch.where(flip[:, None, None, None], x.flip(-1), x)


class RandomVerticalFlip(Augment):
    """Mirror top-bottom with probability ``p``. Shape: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        flip = bernoulli(x.shape[0], self.p, generator, x.device)
        return torch.where(flip[:, None, None, None], x.flip(-2), x)


class RandomGaussianBlur(Augment):
    """Gaussian blur with probability ``p``; the kernel scales with the frame size.

    Follows lightly's ``ImageCollateFunction(kernel_size=k)`` used by SpaceSSL: the kernel is ``k`` x the frame
    side, drawn within +-``scale`` of it, and its half-width is the Gaussian's sigma (PIL's radius), i.e.
    sigma = 0.5 * kernel_frac * size * U(1 - scale, 1 + scale) pixels (256 px, k = 0.025: sigma 2.6 to 3.8 px).

    Args:
        p: probability that a frame is blurred.
        kernel_frac: kernel size as a fraction of the frame side.
        scale: relative spread of the kernel size.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, p: float = 0.5, kernel_frac: float = 0.025, scale: float = 0.2) -> None:
        self.p = check_probability("p", p)
        if kernel_frac < 0:
            raise SpacesslError(f"kernel_frac must be >= 0, got {kernel_frac}.")
        if not 0.0 <= scale < 1.0:
            raise SpacesslError(f"scale must be in [0, 1), got {scale}.")
        self.kernel_frac = float(kernel_frac)
        self.scale = float(scale)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        b, c, h, w = x.shape
        dev = x.device
        sigma0 = 0.5 * self.kernel_frac * max(h, w)  # px
        sigma = sigma0 * uniform((b,), 1.0 - self.scale, 1.0 + self.scale, generator, dev)  # (B,)
        apply = bernoulli(b, self.p, generator, dev)  # (B,)
        radius = min(max(1, math.ceil(3.0 * sigma0 * (1.0 + self.scale))), h - 1, w - 1)
        if sigma0 < 1e-3 or radius < 1 or not bool(apply.any()):
            return x
        t = torch.arange(-radius, radius + 1, device=dev, dtype=x.dtype)  # (K,)
        kernel = torch.exp(-0.5 * (t[None, :] / sigma[:, None].to(x.dtype)) ** 2)  # (B, K)
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        delta = (t == 0).to(x.dtype).expand(b, -1)
        kernel = torch.where(apply[:, None], kernel, delta)  # identity kernel where not applied
        weight = kernel.repeat_interleave(c, dim=0)  # (B*C, K): one kernel per (sample, channel)
        y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
        y = F.conv2d(y, weight[:, None, None, :], groups=b * c)  # along W: (1, B*C, H+2r, W)
        y = F.conv2d(y, weight[:, None, :, None], groups=b * c)  # along H: (1, B*C, H, W)
        return y.reshape(b, c, h, w)


class RandomBrightness(Augment):
    """Multiply each frame by a gain drawn log-uniformly from ``gain``, then clip to [0, 1].

    The overall brightness of an all-sky frame (exposure, moon, airglow level) is a nuisance for similarity.
    Zero stays zero, so a dark field-of-view border stays dark. Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, gain: Sequence[float] = (0.5, 2.0), p: float = 1.0) -> None:
        self.gain = check_range("gain", gain, positive=True)
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        b = x.shape[0]
        g = log_uniform((b,), *self.gain, generator, x.device)
        g = applied(g, self.p, generator, 1.0)
        return (x * g[:, None, None, None]).clamp_(0.0, 1.0)


class RandomContrast(Augment):
    """Scale each frame's deviations from its mean by a factor drawn uniformly from ``factor``; clip to [0, 1].

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, factor: Sequence[float] = (0.7, 1.3), p: float = 1.0) -> None:
        self.factor = check_range("factor", factor)
        if self.factor[0] < 0:
            raise SpacesslError(f"contrast factor must be >= 0, got {self.factor}.")
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        b = x.shape[0]
        f = uniform((b,), *self.factor, generator, x.device)
        f = applied(f, self.p, generator, 1.0)[:, None, None, None]
        mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        return (mean + f * (x - mean)).clamp_(0.0, 1.0)


class RandomGamma(Augment):
    """Raise intensities (clipped to [0, 1]) to a power drawn log-uniformly from ``gamma``.

    For 16-bit frames scaled to [0, 1] a gamma < 1 lifts faint aurora, > 1 suppresses it; 0 and 1 are fixed points.
    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, gamma: Sequence[float] = (0.7, 1.4), p: float = 1.0) -> None:
        self.gamma = check_range("gamma", gamma, positive=True)
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        b = x.shape[0]
        g = log_uniform((b,), *self.gamma, generator, x.device)
        g = applied(g, self.p, generator, 1.0)
        return x.clamp(0.0, 1.0).pow(g[:, None, None, None])


class RandomNoise(Augment):
    """Add sensor noise: the Gaussian approximation of shot noise (variance proportional to the signal) plus read
    noise, of a level drawn per sample.

    A pixel of intensity v in [0, 1] gets N(0, (s · sqrt((1 - read) · v + read))²) with s uniform in ``sigma``: at
    full scale its standard deviation is s, in the dark sqrt(read) · s. A short exposure stretched to [0, 1] is
    grainier than a long one; these views teach that the grain is not the scene. The result is clipped to [0, 1] as
    the other intensity transforms are. Shape: (B, C, H, W) -> (B, C, H, W).

    Args:
        sigma: range of the noise standard deviation at full scale (in [0, 1] intensity units).
        read: share of the variance at full scale that does not depend on the signal (read noise), in [0, 1].
        p: probability that a sample gets noise.
    """

    def __init__(self, sigma: Sequence[float] = (0.0, 0.05), read: float = 0.1, p: float = 1.0) -> None:
        self.sigma = check_range("sigma", sigma)
        if not 0.0 <= read <= 1.0:
            raise SpacesslError(f"read must be a variance share in [0, 1], got {read}.")
        self.read = float(read)
        self.p = check_probability("p", p)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        check_batch(x, 4, "Image")
        b = x.shape[0]
        s = uniform((b,), *self.sigma, generator, x.device)
        s = applied(s, self.p, generator)[:, None, None, None]
        std = s * ((1.0 - self.read) * x.clamp(0.0, 1.0) + self.read).sqrt()
        return (x + std * randn(x.shape, generator, x.device).to(x.dtype)).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------------------- presets


def oath(
    size: int | None = None,
    min_scale: float = 0.3,
    blur_p: float = 0.7,
    blur_kernel_frac: float = 0.025,
    hflip_p: float = 0.7,
    vflip_p: float = 0.7,
) -> Compose:
    """SpaceSSL's view pipeline (Smith et al. 2024) for OATH frames, in lightly's order.

    Args:
        size: crop output side; None keeps the input size (256 for OATH frames, as in SpaceSSL).
        min_scale: smallest crop area fraction.
        blur_p, blur_kernel_frac: Gaussian blur probability and kernel size as a fraction of the side.
        hflip_p, vflip_p: flip probabilities.
    """
    return Compose(
        [
            RandomResizedCrop(size=size, scale=(min_scale, 1.0)),
            RandomHorizontalFlip(p=hflip_p),
            RandomVerticalFlip(p=vflip_p),
            RandomGaussianBlur(p=blur_p, kernel_frac=blur_kernel_frac),
        ]
    )


def allsky(
    size: int | None = None,
    min_scale: float = 0.6,
    max_scale: float = 1.0,
    ratio: Sequence[float] = (0.9, 1.1),
    rotation_degrees: Sequence[float] = (0.0, 360.0),
    fov_radius: float | None = 1.0,
    brightness: Sequence[float] = (0.5, 2.0),
    contrast: Sequence[float] = (0.7, 1.3),
    gamma: Sequence[float] = (0.7, 1.4),
    blur_p: float = 0.5,
    blur_kernel_frac: float = 0.04,
    hflip_p: float = 0.5,
    vflip_p: float = 0.5,
    noise_p: float = 0.0,
    noise_sigma: Sequence[float] = (0.0, 0.05),
) -> Compose:
    """All-sky frame views: intensity jitter, zenith rotation with the field of view kept dark, mild crop, flips, blur.

    Intensity jitter comes first so that the rotation's mask cleans whatever it lifted outside the field of view;
    rotation and crop share one resampling (:class:`RandomRotatedCrop`).

    Args:
        size: output side; None keeps the input size (demos: 64 px frames).
        min_scale: smallest crop area fraction (0.6 keeps at least ~77 % of each side).
        max_scale: largest crop area fraction; with ``size`` below the frame's side, crops of about
            ``(size / side)²`` of the area keep the frame's own resolution.
        ratio: crop aspect-ratio range.
        rotation_degrees: rotation angle range about the zenith.
        fov_radius: field-of-view radius as a fraction of half the frame, None = no mask.
        brightness: multiplicative gain range (log-uniform).
        contrast: contrast factor range.
        gamma: gamma range (log-uniform).
        blur_p, blur_kernel_frac: Gaussian blur probability and kernel size as a fraction of the side.
        hflip_p, vflip_p: flip probabilities.
        noise_p, noise_sigma: probability and level range of :class:`RandomNoise` (sensor grain), added after the
            intensity jitter; 0 (the default) leaves it out of the pipeline.
    """
    noise = [RandomNoise(sigma=noise_sigma, p=noise_p)] if noise_p > 0 else []
    return Compose(
        [
            RandomBrightness(gain=brightness),
            RandomContrast(factor=contrast),
            RandomGamma(gamma=gamma),
            *noise,
            RandomRotatedCrop(
                size=size, scale=(min_scale, max_scale), ratio=ratio, degrees=rotation_degrees, fov_radius=fov_radius
            ),
            RandomHorizontalFlip(p=hflip_p),
            RandomVerticalFlip(p=vflip_p),
            RandomGaussianBlur(p=blur_p, kernel_frac=blur_kernel_frac),
        ]
    )


__all__ = [
    "RandomBrightness",
    "RandomContrast",
    "RandomGamma",
    "RandomGaussianBlur",
    "RandomHorizontalFlip",
    "RandomNoise",
    "RandomResizedCrop",
    "RandomRotatedCrop",
    "RandomVerticalFlip",
    "RandomZenithRotation",
    "affine_grid",
    "allsky",
    "fov_mask",
    "oath",
]

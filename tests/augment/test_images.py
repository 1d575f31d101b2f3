"""Image augmentations: field-of-view mask under rotation, flips, crops, blur, intensity jitter, noise, presets."""

from __future__ import annotations

import pytest
import torch

from spacessl.augment import build_augment
from spacessl.augment.images import (
    RandomBrightness,
    RandomContrast,
    RandomGamma,
    RandomGaussianBlur,
    RandomHorizontalFlip,
    RandomNoise,
    RandomResizedCrop,
    RandomRotatedCrop,
    RandomVerticalFlip,
    RandomZenithRotation,
    fov_mask,
)
from spacessl.errors import SpacesslError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def allsky_batch(b: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Random frames, bright inside the inscribed field-of-view circle, zero outside."""
    x = 0.2 + 0.8 * torch.rand(b, 1, size, size, generator=gen(seed))
    return x * fov_mask(size, size)


def test_fov_mask_geometry():
    m = fov_mask(32, 32)
    assert m[16, 16] == 1 and m[0, 0] == 0 and m[0, 31] == 0 and m[16, 0] == 1
    assert m.sum() == pytest.approx(torch.pi * 16**2, rel=0.03)
    assert torch.equal(m, m.flip(0)) and torch.equal(m, m.T)


@pytest.mark.parametrize("x_outside", [0.0, 1.0])
def test_rotation_keeps_field_of_view_dark(x_outside):
    x = allsky_batch()
    outside = fov_mask(32, 32) == 0
    x[:, :, outside] = x_outside  # also when the input is not dark outside the circle
    y = RandomZenithRotation()(x, gen(1))
    assert y.shape == x.shape
    assert torch.all(y[:, :, outside] == 0)
    inside = fov_mask(32, 32, 0.9) == 1
    assert torch.all(y[:, :, inside] > 0.1)  # the sky itself is kept
    assert not torch.allclose(y, x * fov_mask(32, 32))  # and really rotated


def test_rotation_by_90_degrees_is_exact():
    x = torch.rand(3, 2, 16, 16, generator=gen())
    y = RandomZenithRotation(degrees=(90, 90), fov_radius=None)(x, gen())
    torch.testing.assert_close(y, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)


def test_rotation_angles_differ_per_sample():
    x = allsky_batch(b=1).repeat(8, 1, 1, 1)
    y = RandomZenithRotation()(x, gen(2))
    assert all(not torch.allclose(y[0], y[i]) for i in range(1, 8))


def test_allsky_pipeline_keeps_field_of_view_dark():
    x = allsky_batch()
    aug = build_augment("image", "allsky", min_scale=1.0, ratio=(1.0, 1.0), blur_p=0.0)  # no zoom, no blur
    y = aug(x, gen(3))
    assert torch.all(y[:, :, fov_mask(32, 32) == 0] == 0)
    assert y.min() >= 0 and y.max() <= 1


def test_allsky_max_scale_bounds_the_crop():
    """Crops of at most a quarter of the area, output at half the side: a bright quadrant's edge stays sharp (no
    zoom beyond the frame's own resolution) and never the whole frame fits in a view."""
    aug = build_augment("image", "allsky", size=16, min_scale=0.2, max_scale=0.25, ratio=(1.0, 1.0),
                        rotation_degrees=(0.0, 0.0), fov_radius=None, blur_p=0.0, hflip_p=0.0, vflip_p=0.0,
                        brightness=(1.0, 1.0), contrast=(1.0, 1.0), gamma=(1.0, 1.0))
    assert "scale=(0.2, 0.25)" in str(aug)
    x = torch.zeros(32, 1, 32, 32)
    x[:, :, :2, :2] = 1.0  # marks in opposite corners: no crop of <= 1/4 of the area holds both
    x[:, :, -2:, -2:] = 1.0
    y = aug(x, gen(5))
    assert y.shape == (32, 1, 16, 16)
    both = (y[:, :, :8, :8].amax(dim=(1, 2, 3)) > 0.5) & (y[:, :, 8:, 8:].amax(dim=(1, 2, 3)) > 0.5)
    assert not both.any()
    with pytest.raises(SpacesslError, match="scale"):
        build_augment("image", "allsky", max_scale=1.5)


def test_flips():
    x = torch.rand(4, 1, 8, 8, generator=gen())
    torch.testing.assert_close(RandomHorizontalFlip(p=1.0)(x), x.flip(-1))
    torch.testing.assert_close(RandomVerticalFlip(p=1.0)(x), x.flip(-2))
    torch.testing.assert_close(RandomHorizontalFlip(p=0.0)(x), x)
    y = RandomHorizontalFlip(p=0.5)(torch.rand(64, 1, 8, 8), gen())
    assert y.shape == (64, 1, 8, 8)


def test_resized_crop_shapes_and_identity():
    x = torch.rand(4, 3, 32, 32, generator=gen())
    assert RandomResizedCrop(size=16)(x, gen()).shape == (4, 3, 16, 16)
    assert RandomResizedCrop()(x, gen()).shape == (4, 3, 32, 32)
    assert RandomResizedCrop(size=48)(torch.rand(2, 1, 32, 40), gen()).shape == (2, 1, 48, 48)
    full = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, gen())
    torch.testing.assert_close(full, x, atol=1e-5, rtol=0)
    with pytest.raises(SpacesslError, match="scale"):
        RandomResizedCrop(scale=(0.3, 1.5))


def test_crop_zooms_in():
    # a small crop of a frame that is 0 on the left half and 1 on the right is mostly one value
    x = torch.zeros(64, 1, 32, 32)
    x[..., 16:] = 1.0
    y = RandomResizedCrop(scale=(0.05, 0.05))(x, gen())
    frac = y.mean(dim=(1, 2, 3))
    assert ((frac < 0.2) | (frac > 0.8)).float().mean() > 0.5


def test_blur():
    x = torch.rand(8, 1, 64, 64, generator=gen())
    y = RandomGaussianBlur(p=1.0, kernel_frac=0.05)(x, gen())
    assert y.shape == x.shape
    assert y.std() < 0.5 * x.std()  # white noise is smoothed
    torch.testing.assert_close(y.mean(), x.mean(), atol=1e-2, rtol=0)
    torch.testing.assert_close(RandomGaussianBlur(p=0.0)(x, gen()), x)
    const = torch.full((2, 1, 16, 16), 0.3)
    torch.testing.assert_close(RandomGaussianBlur(p=1.0, kernel_frac=0.2)(const, gen()), const)


def test_intensity_jitter():
    x = allsky_batch(b=32)
    for t in (RandomBrightness(), RandomContrast(), RandomGamma()):
        y = t(x, gen())
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    y = RandomBrightness(gain=(0.25, 0.5))(x, gen())
    ratio = y.sum(dim=(1, 2, 3)) / x.sum(dim=(1, 2, 3))
    assert ratio.min() >= 0.25 - 1e-5 and ratio.max() <= 0.5 + 1e-5 and ratio.std() > 0.01  # one gain per frame
    g = RandomGamma(gamma=(0.5, 2.0))(torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).repeat(4, 1, 1, 1), gen())
    assert torch.all(g[..., 0] == 0) and torch.all(g[..., 1] == 1)


def test_noise_level_follows_shot_and_read_model():
    # flat frames at 0.2 and 0.7: the noise std is s * sqrt((1 - read) v + read), one level per frame
    v = torch.tensor([0.2, 0.7]).view(2, 1, 1, 1).expand(2, 1, 128, 128).contiguous()
    y = RandomNoise(sigma=(0.04, 0.04), read=0.1)(v, gen())
    expected = 0.04 * torch.sqrt(0.9 * torch.tensor([0.2, 0.7]) + 0.1)
    torch.testing.assert_close(y.std(dim=(1, 2, 3)), expected, rtol=0.03, atol=0)
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.tensor([0.2, 0.7]), atol=1e-3, rtol=0)
    levels = RandomNoise(sigma=(0.0, 0.1))(torch.full((32, 1, 32, 32), 0.5), gen()).std(dim=(1, 2, 3))
    assert levels.min() < 0.02 and levels.max() > 0.06  # drawn per frame over the range
    x = allsky_batch()
    assert torch.equal(RandomNoise(p=0.0)(x, gen()), x)
    y = RandomNoise(sigma=(0.2, 0.2))(x, gen())
    assert y.min() >= 0 and y.max() <= 1
    with pytest.raises(SpacesslError, match="read"):
        RandomNoise(read=1.5)


def test_allsky_noise_is_optional_and_keeps_field_of_view_dark():
    assert "RandomNoise" not in str(build_augment("image", "allsky"))
    aug = build_augment("image", "allsky", noise_p=1.0, noise_sigma=(0.05, 0.1), min_scale=1.0, ratio=(1.0, 1.0),
                        blur_p=0.0)
    assert "RandomNoise(sigma=(0.05, 0.1), read=0.1, p=1.0)" in str(aug)
    y = aug(allsky_batch(), gen(3))
    assert torch.all(y[:, :, fov_mask(32, 32) == 0] == 0)


def test_presets_and_str():
    oath = build_augment("image", "oath")
    text = str(oath)
    assert "RandomResizedCrop(size=None, scale=(0.3, 1.0)" in text
    assert "RandomHorizontalFlip(p=0.7)" in text and "RandomVerticalFlip(p=0.7)" in text
    assert "RandomGaussianBlur(p=0.7, kernel_frac=0.025" in text
    assert "Contrast" not in text and "Brightness" not in text  # no colour jitter, no normalisation
    assert build_augment("image", "oath", size=256)(torch.rand(2, 1, 256, 256), gen()).shape == (2, 1, 256, 256)
    allsky = str(build_augment("image", "allsky", size=64))
    for name in ("RandomBrightness", "RandomContrast", "RandomGamma", "RandomRotatedCrop", "degrees=(0.0, 360.0)",
                 "fov_radius=1.0", "size=64"):
        assert name in allsky
    assert str(build_augment("image")) == str(build_augment("image", "allsky"))


def test_build_errors():
    with pytest.raises(SpacesslError, match="Available presets are: allsky, default, none, oath"):
        build_augment("image", "imagenet")
    with pytest.raises(SpacesslError, match="min_scale"):
        build_augment("image", "oath", minscale=0.2)
    with pytest.raises(SpacesslError, match="Available modalities"):
        build_augment("audio")
    with pytest.raises(SpacesslError, match=r"x\[None\]"):
        build_augment("image", "oath")(torch.rand(1, 32, 32))


def test_generator_reproducible():
    x = allsky_batch()
    aug = build_augment("image", "allsky")
    torch.testing.assert_close(aug(x, gen(5)), aug(x, gen(5)))
    assert not torch.allclose(aug(x, gen(5)), aug(x, gen(6)))


@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["oath", "allsky"])
def test_cuda(preset):
    x = allsky_batch().cuda()
    aug = build_augment("image", preset)
    y = aug(x, torch.Generator(device="cuda").manual_seed(0))
    assert y.is_cuda and y.shape == x.shape
    y_cpu_gen = aug(x, gen(0))  # parameters drawn on the CPU, applied on the GPU
    assert y_cpu_gen.is_cuda
    assert aug(x).is_cuda


def test_rotated_crop_equals_rotation_then_crop():
    x = allsky_batch(b=8, size=32)
    fused = RandomRotatedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0), degrees=(90, 90))(x, gen())
    torch.testing.assert_close(fused, RandomZenithRotation(degrees=(90, 90))(x, gen()), atol=1e-5, rtol=0)
    # with a zoom: the same views as the two transforms in sequence, up to the second interpolation
    fused = RandomRotatedCrop(scale=(0.5, 0.5), ratio=(1.0, 1.0), degrees=(30, 30), fov_radius=None)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 8, 8, generator=gen()), 1)
    smooth = torch.nn.functional.interpolate(smooth, size=64, mode="bilinear", align_corners=False)
    g1, g2 = gen(7), gen(7)
    a = fused(smooth, g1)
    rot = RandomZenithRotation(degrees=(30, 30), fov_radius=None)
    crop = RandomResizedCrop(scale=(0.5, 0.5), ratio=(1.0, 1.0))
    rot.theta(4, 64, 64, g2, smooth.device)  # draw in the fused order: rotation first, then the crop
    crop_theta = crop.theta(4, 64, 64, g2, smooth.device)
    rotated = RandomZenithRotation(degrees=(30, 30), fov_radius=None)(smooth, gen())
    grid = torch.nn.functional.affine_grid(crop_theta, [4, 1, 64, 64], align_corners=False)
    b = torch.nn.functional.grid_sample(rotated, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inner = fov_mask(64, 64, 0.5) == 1  # away from the frame edge, where padding differs
    diff = (a - b)[..., inner].abs()
    assert diff.max() < 0.05 and diff.mean() < 0.005  # the sequential path interpolates twice


def test_rotated_crop_keeps_field_of_view_dark():
    x = allsky_batch()
    x[:, :, fov_mask(32, 32) == 0] = 1.0
    y = RandomRotatedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0))(x, gen(4))
    assert torch.all(y[:, :, fov_mask(32, 32) == 0] == 0)
    # zoomed: every output pixel whose position in the rotated frame lies outside the circle is 0
    fused = RandomRotatedCrop(size=16, scale=(0.3, 0.6))
    z = fused(x, gen(4))
    g = gen(4)
    RandomZenithRotation().theta(16, 32, 32, g, x.device)
    crop_theta = RandomResizedCrop(size=16, scale=(0.3, 0.6), ratio=(0.9, 1.1)).theta(16, 32, 32, g, x.device)
    q = torch.nn.functional.affine_grid(crop_theta, [16, 1, 16, 16], align_corners=False) * 16  # px from zenith
    outside = q.pow(2).sum(-1) > 16**2  # (B, 16, 16)
    assert outside.any() and torch.all(z[:, 0][outside] == 0)
    assert torch.all(z[:, 0][q.pow(2).sum(-1) < 14**2] > 0.1)


def test_affine_grid_matches_torch():
    from spacessl.augment.images import affine_grid

    theta = torch.randn(3, 2, 3, generator=gen())
    gx, gy = affine_grid(theta, 5, 7)
    ref = torch.nn.functional.affine_grid(theta, [3, 1, 5, 7], align_corners=False)
    torch.testing.assert_close(torch.stack([gx, gy], -1), ref)

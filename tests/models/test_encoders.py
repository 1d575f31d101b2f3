"""Encoder output shapes and choice by modality."""

from __future__ import annotations

import pytest
import torch

from spacessl.errors import SpacesslError
from spacessl.models.encoders import ResNet1d, ResNet18Encoder, build_encoder


@pytest.mark.parametrize("channels", [1, 3])
def test_resnet18_shapes(channels):
    enc = build_encoder(modality="image", in_channels=channels).eval()
    assert isinstance(enc, ResNet18Encoder)
    with torch.no_grad():
        out = enc(torch.rand(2, channels, 64, 64))
    assert out.shape == (2, 512)
    assert enc.embed_dim == 512


@pytest.mark.parametrize("channels", [1, 3])
def test_resnet1d_shapes(channels):
    enc = build_encoder(modality="waveform", in_channels=channels).eval()
    assert isinstance(enc, ResNet1d)
    with torch.no_grad():
        assert enc(torch.randn(2, channels, 1000)).shape == (2, 512)
        assert enc(torch.randn(2, channels, 400)).shape == (2, 512)  # any length


def test_embed_dim_other_than_512():
    image = build_encoder(modality="image", in_channels=1, embed_dim=128).eval()
    wave = build_encoder(modality="waveform", in_channels=3, embed_dim=64).eval()
    with torch.no_grad():
        assert image(torch.rand(2, 1, 32, 32)).shape == (2, 128)
        assert wave(torch.randn(2, 3, 200)).shape == (2, 64)


def test_resnet1d_is_residual_and_trains():
    enc = build_encoder("resnet1d", modality="waveform", in_channels=3)
    assert sum(m.downsample is not None for m in enc.modules() if hasattr(m, "downsample")) == 3
    out = enc(torch.randn(4, 3, 300))
    out.pow(2).mean().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_auto_and_errors():
    assert isinstance(build_encoder("auto", modality="image", in_channels=1), ResNet18Encoder)
    assert isinstance(build_encoder("auto", modality="waveform", in_channels=3), ResNet1d)
    with pytest.raises(SpacesslError, match="Available encoders"):
        build_encoder("resnet50", modality="image", in_channels=1)
    with pytest.raises(SpacesslError, match="does not take waveform"):
        build_encoder("resnet18", modality="waveform", in_channels=3)
    with pytest.raises(SpacesslError, match="Available modalities"):
        build_encoder(modality="audio", in_channels=1)

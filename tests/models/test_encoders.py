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


def _unshuffle_reference(x: torch.Tensor, f: int) -> torch.Tensor:
    """Space-to-depth by explicit indexing: channel c·f² + i·f + j holds pixel (f·y + i, f·x + j) of channel c."""
    b, c, h, w = x.shape
    out = torch.empty(b, c * f * f, h // f, w // f)
    for ch in range(c):
        for i in range(f):
            for j in range(f):
                out[:, ch * f * f + i * f + j] = x[:, ch, i::f, j::f]
    return out


@pytest.mark.parametrize("channels", [1, 3])
def test_space_to_depth_stem(channels):
    torch.manual_seed(0)
    enc = build_encoder("resnet18_s2d", modality="image", in_channels=channels).eval()
    assert enc.backbone.conv1.in_channels == 4 * channels
    x = torch.rand(2, channels, 64, 64)
    with torch.no_grad():
        out = enc(x)
        ref = enc.backbone(_unshuffle_reference(x, 2))
    assert out.shape == (2, 512)
    torch.testing.assert_close(out, ref)
    # every pixel reaches the network: one pixel in any of the four phases changes the output
    for i, j in [(10, 10), (10, 11), (11, 10), (11, 11)]:
        y = x.clone()
        y[0, 0, i, j] += 1.0
        with torch.no_grad():
            assert (enc(y)[0] - out[0]).abs().max() > 1e-6


def test_space_to_depth_errors_and_checkpoint_round_trip():
    enc = build_encoder("resnet18_s2d", modality="image", in_channels=1).eval()
    with pytest.raises(SpacesslError, match="divisible by 2"):
        enc(torch.rand(1, 1, 63, 63))
    with pytest.raises(SpacesslError, match="'resnet1d'"):
        build_encoder("resnet18_s2d", modality="waveform", in_channels=3)
    again = build_encoder("resnet18_s2d", modality="image", in_channels=1).eval()
    again.load_state_dict(enc.state_dict())  # what a checkpoint reload does: the same keys and shapes
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), enc(x))
    # a plain ResNet-18 has no stem module with state: its checkpoints keep their keys
    assert set(build_encoder("resnet18", modality="image", in_channels=1).state_dict()) == set(enc.state_dict())

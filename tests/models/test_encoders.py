"""Encoder output shapes and choice by modality."""

from __future__ import annotations

import pytest
import torch

from spacessl.errors import SpacesslError
from spacessl.models.encoders import (
    RESNET18_WIDTHS,
    ResNet1d,
    ResNet18Encoder,
    build_encoder,
    count_parameters,
)


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


def _conv_channels(module: torch.nn.Module) -> dict[str, tuple[int, int]]:
    return {n: (m.in_channels, m.out_channels) for n, m in module.named_modules() if isinstance(m, torch.nn.Conv2d)}


def _stage(name: str) -> int | None:
    """Stage (0-3) of a convolution of ResNet-18 by its name; None for the stem."""
    return int(name.split("layer")[1][0]) - 1 if "layer" in name else None


@pytest.mark.parametrize("encoder", ["resnet18", "resnet18_s2d"])
@pytest.mark.parametrize("widths", [(32, 64, 128, 256), (32, 64, 128, 512)])
def test_widths_set_every_stage_of_resnet18(encoder, widths):
    """Other widths: the same layers and parameter names as ResNet-18, each convolution with its stage's channels
    (a stage's first block takes the previous stage's), the last width as output; torchvision's ResNet-18 as the
    reference for the layers and ResNet-18's own channels."""
    import torchvision

    full = build_encoder(encoder, modality="image", in_channels=1).eval()
    narrow = build_encoder(encoder, modality="image", in_channels=1, embed_dim=widths[-1], widths=widths).eval()
    assert list(narrow.state_dict()) == list(full.state_dict())
    ref, got = _conv_channels(full), _conv_channels(narrow)
    assert {f"backbone.{n}" for n in _conv_channels(torchvision.models.resnet18(weights=None))} == set(ref)
    assert got.keys() == ref.keys() and len(ref) == 20
    scale = {64: widths[0], 128: widths[1], 256: widths[2], 512: widths[3]}
    for name, (c_in, c_out) in ref.items():
        stage = _stage(name)
        want_out = widths[0] if stage is None else widths[stage]
        assert c_out == RESNET18_WIDTHS[0 if stage is None else stage]
        want_in = c_in if stage is None else scale[c_in]
        assert got[name] == (want_in, want_out), name
    with torch.no_grad():
        assert narrow(torch.rand(2, 1, 64, 64)).shape == (2, widths[-1])
    assert isinstance(narrow.head, torch.nn.Identity) and narrow.widths == widths
    # initialised as torchvision initialises ResNet-18: BatchNorm at (1, 0), convolutions at He (fan out) scale
    bn = narrow.backbone.layer3[0].bn1
    assert bool((bn.weight == 1).all()) and bool((bn.bias == 0).all())
    w = narrow.backbone.layer2[1].conv2.weight.detach()
    he = (2 / (w.shape[0] * 9)) ** 0.5
    assert abs(float(w.std()) - he) < 0.1 * he


def test_narrow_early_stages_keep_most_parameters():
    """(32, 64, 128, 512): most of ResNet-18's parameters sit in the last stage, which keeps its width."""
    full = count_parameters(build_encoder("resnet18_s2d", modality="image", in_channels=1))
    narrow = count_parameters(build_encoder("resnet18_s2d", modality="image", in_channels=1,
                                            widths=(32, 64, 128, 512)))
    half = count_parameters(build_encoder("resnet18_s2d", modality="image", in_channels=1, embed_dim=256,
                                          widths=(32, 64, 128, 256)))
    assert 0.70 < narrow / full < 0.80 and 0.24 < half / full < 0.28


def test_widths_other_outputs_and_errors():
    torch.manual_seed(0)
    linear = build_encoder("resnet18_s2d", modality="image", in_channels=1, widths=(32, 64, 128, 256)).eval()
    assert isinstance(linear.head, torch.nn.Linear) and linear.head.in_features == 256  # embed_dim 512
    wave = build_encoder(modality="waveform", in_channels=3, embed_dim=128, widths=(16, 32, 64, 128)).eval()
    assert [s[0].conv1.out_channels for s in wave.stages] == [16, 32, 64, 128]
    with torch.no_grad():
        assert linear(torch.rand(2, 1, 64, 64)).shape == (2, 512)
        assert wave(torch.randn(2, 3, 400)).shape == (2, 128)
    for bad in [(32, 64, 128), (0, 64, 128, 512)]:
        with pytest.raises(SpacesslError, match="model.widths"):
            build_encoder(modality="image", in_channels=1, widths=bad)

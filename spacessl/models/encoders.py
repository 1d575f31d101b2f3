"""Encoders (backbones): a 2-D ResNet-18 for images and a 1-D ResNet for multi-component waveforms.

Both are trained from scratch and map one sample to one ``embed_dim``-vector (512 by default, the width of
ResNet-18's last stage, as in SpaceSSL). ``widths`` sets the channels of the four stages, (64, 128, 256, 512) in
ResNet-18 as published; the last is the natural output width. Narrower early stages, which do most of the
operations on their larger maps, make a cheaper network: (32, 64, 128, 512) costs less than half of ResNet-18's
training step on 64 px frames behind the space-to-depth stem and keeps 75 % of its parameters. The embeddings that
spacessl stores and indexes are these encoder outputs; projection and prediction heads exist only for training
(:mod:`spacessl.models.simclr`, ...).

Shapes:
    ``resnet18``:  (B, C, H, W) float32 -> (B, embed_dim). Any H, W >= 32 (global average pool);
                   SpaceSSL used 256 px, the demos 64 px.
    ``resnet18_s2d``: the same ResNet-18 behind a space-to-depth stem: each 2 x 2 block of pixels becomes 4
                   channels, (B, C, H, W) -> (B, 4C, H/2, W/2), then ResNet-18. H, W even and >= 64. It costs what
                   ResNet-18 costs at half the side but keeps every pixel: point sources (stars) and thin rays that
                   an antialiased downsampling averages away stay in the input. For small frames on a small budget.
    ``resnet1d``:  (B, C, T) float32 -> (B, embed_dim). Any T >= 32; tuned for windows of ~1000 samples
                   (10 s at 100 Hz).

- ResNet: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, conv1x1

from spacessl.errors import SpacesslError
from spacessl.models.max_pool import use_channels_last_max_pool
from spacessl.models.pixel_conv import use_small_map_convs

ENCODERS = ("auto", "resnet18", "resnet18_s2d", "resnet1d")
_AUTO = {"image": "resnet18", "waveform": "resnet1d"}
_MODALITY = {"resnet18": "image", "resnet18_s2d": "image", "resnet1d": "waveform"}
#: channels of the four stages of ResNet-18 (and of ``resnet1d`` unless told otherwise)
RESNET18_WIDTHS = (64, 128, 256, 512)


def build_encoder(name: str = "auto", *, modality: str, in_channels: int, embed_dim: int = 512,
                  widths: Sequence[int] | None = None) -> nn.Module:
    """Build an encoder from scratch.

    Args:
        name: "auto" (``resnet18`` for images, ``resnet1d`` for waveforms), "resnet18", "resnet18_s2d" (images,
            space-to-depth stem) or "resnet1d".
        modality: the archive's modality, "image" or "waveform".
        in_channels: channels C of one sample (1 for all-sky frames, 3 for Z/N/E seismograms).
        embed_dim: output width; the last stage's width (512) is the natural width of both networks, any other
            value adds a final linear layer.
        widths: channels of the four stages; None (models recorded before the option too) gives ResNet-18's,
            (64, 128, 256, 512).

    Returns:
        A module mapping (B, C, H, W) (images) or (B, C, T) (waveforms) to (B, embed_dim). The module has an
        ``embed_dim`` attribute.
    """
    if modality not in _AUTO:
        raise SpacesslError(f"Unknown modality {modality!r}. Available modalities are: {', '.join(_AUTO)}.")
    if name not in ENCODERS:
        raise SpacesslError(
            f"Unknown encoder {name!r}. Available encoders are: {', '.join(ENCODERS)} (set model.encoder)."
        )
    if in_channels < 1:
        raise SpacesslError(f"in_channels must be >= 1, got {in_channels}.")
    if embed_dim < 1:
        raise SpacesslError(f"embed_dim must be >= 1, got {embed_dim}.")
    widths = RESNET18_WIDTHS if widths is None else tuple(int(w) for w in widths)
    if len(widths) != 4 or min(widths) < 1:
        raise SpacesslError(f"widths must be four channel counts >= 1, one per stage, got {list(widths)} "
                            f"(model.widths; ResNet-18 has {list(RESNET18_WIDTHS)}).")
    resolved = _AUTO[modality] if name == "auto" else name
    if _MODALITY[resolved] != modality:
        usable = ", ".join(repr(e) for e, m in _MODALITY.items() if m == modality)
        raise SpacesslError(
            f"Encoder {resolved!r} does not take {modality} samples; use {usable} or 'auto' for {modality} archives."
        )
    if resolved == "resnet18":
        return ResNet18Encoder(in_channels=in_channels, embed_dim=embed_dim, widths=widths)
    if resolved == "resnet18_s2d":
        return ResNet18Encoder(in_channels=in_channels, embed_dim=embed_dim, space_to_depth=2, widths=widths)
    return ResNet1d(in_channels=in_channels, embed_dim=embed_dim, widths=widths)


class ResNet18Encoder(nn.Module):
    """torchvision ResNet-18, randomly initialised, with ``in_channels`` inputs and the classifier removed.

    ``widths`` other than ResNet-18's rebuild the stem and the four stages from torchvision's own ``BasicBlock``
    with those channels (:func:`_resnet18`); the layers and their parameter names stay those of ResNet-18.

    With ``space_to_depth=f`` > 1 the input first goes through ``nn.PixelUnshuffle(f)`` (each f x f block of pixels
    becomes f² channels, as in TResNet's space-to-depth stem), and ``conv1`` takes ``in_channels·f²`` channels.
    With ``small_map_convs`` (the default) every convolution whose output is 1 x 1 (the last stage at 32 px
    input, or at 64 px behind the stem), and every 3 x 3 convolution at stride 1 over a 2 x 2 map (the third stage
    at 32 px, or at 64 px behind the stem; the last stage at 64 px), runs as one matrix product, with the same
    result and gradients (:mod:`spacessl.models.pixel_conv`). With ``channels_last_max_pool`` (the default) the
    stem's max pooling runs its CPU forward pass in the channels-last layout, 2-3 x faster with the same output
    (:mod:`spacessl.models.max_pool`). Neither adds parameters: checkpoints load with or without them.

    Shape: (B, in_channels, H, W) -> (B, embed_dim); H and W divisible by ``space_to_depth``.
    """

    def __init__(self, in_channels: int = 1, embed_dim: int = 512, *, space_to_depth: int = 1,
                 widths: Sequence[int] = RESNET18_WIDTHS, small_map_convs: bool = True,
                 channels_last_max_pool: bool = True) -> None:
        super().__init__()
        if space_to_depth < 1:
            raise SpacesslError(f"space_to_depth must be >= 1, got {space_to_depth}.")
        widths = tuple(int(w) for w in widths)
        net = _resnet18(widths)
        stem_channels = in_channels * space_to_depth ** 2
        if stem_channels != 3:
            net.conv1 = nn.Conv2d(stem_channels, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        if small_map_convs:
            use_small_map_convs(net)
        if channels_last_max_pool:
            use_channels_last_max_pool(net)
        self.space_to_depth: nn.Module = nn.PixelUnshuffle(space_to_depth) if space_to_depth > 1 else nn.Identity()
        self.backbone = net
        features = widths[-1]
        self.head: nn.Module = nn.Identity() if embed_dim == features else nn.Linear(features, embed_dim)
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.widths = widths
        self.factor = space_to_depth

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        if h % self.factor or w % self.factor:
            raise SpacesslError(f"this encoder's space-to-depth stem needs H and W divisible by {self.factor}, "
                                f"got {h} x {w}; set data.input_size to a multiple of {self.factor}")
        # (B, C, H, W) -> (B, C·f², H/f, W/f) -> (B, widths[-1]) -> (B, embed_dim)
        return self.head(self.backbone(self.space_to_depth(x)))


def _resnet18(widths: tuple[int, ...]) -> torchvision.models.ResNet:
    """torchvision's ResNet-18 (3 input channels) without its classifier, with stages of ``widths`` channels,
    initialised as torchvision initialises it; ResNet-18's widths give ``torchvision.models.resnet18`` itself."""
    net = torchvision.models.resnet18(weights=None)
    net.fc = nn.Identity()
    if widths == RESNET18_WIDTHS:
        return net
    net.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(widths[0])
    in_ch = widths[0]
    for i, (name, out_ch) in enumerate(zip(("layer1", "layer2", "layer3", "layer4"), widths, strict=True)):
        stride = 1 if i == 0 else 2
        down = None if stride == 1 and in_ch == out_ch else nn.Sequential(conv1x1(in_ch, out_ch, stride),
                                                                         nn.BatchNorm2d(out_ch))
        setattr(net, name, nn.Sequential(BasicBlock(in_ch, out_ch, stride, down), BasicBlock(out_ch, out_ch)))
        in_ch = out_ch
    for m in net.modules():  # torchvision's initialisation (ResNet.__init__)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return net


class BasicBlock1d(nn.Module):
    """Residual block of two Conv1d-BatchNorm1d layers, the 1-D twin of torchvision's ``BasicBlock``.

    Shape: (B, in_ch, T) -> (B, out_ch, ceil(T / stride)).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel_size, stride=1, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv1d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm1d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet1d(nn.Module):
    """A ResNet-18-like 1-D network for (C, T) waveforms.

    Stem: Conv1d(kernel ``stem_kernel``, stride 2) + BN + ReLU + MaxPool(3, stride 2), i.e. T/4; then four stages
    of ``blocks`` BasicBlock1d with widths ``widths`` and strides 1, 2, 2, 2 (total stride 32), global average pool
    over time. For T = 1000 the last stage sees 32 steps, each with a receptive field of 443 samples (4.4 s at
    100 Hz), and the pool covers the window. Kernel 3 keeps the cost near ResNet-18 on 64 px frames (about 0.2 GMAC
    per 3 x 1000 window); ``kernel_size=7`` widens the receptive field at about twice the cost.

    Shape: (B, in_channels, T) -> (B, embed_dim).
    """

    def __init__(
        self,
        in_channels: int = 3,
        embed_dim: int = 512,
        *,
        widths: Sequence[int] = (64, 128, 256, 512),
        blocks: Sequence[int] = (2, 2, 2, 2),
        kernel_size: int = 3,
        stem_kernel: int = 15,
    ) -> None:
        super().__init__()
        if len(widths) != len(blocks):
            raise SpacesslError(f"widths {tuple(widths)} and blocks {tuple(blocks)} must have the same length.")
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, widths[0], stem_kernel, stride=2, padding=stem_kernel // 2, bias=False),
            nn.BatchNorm1d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(kernel_size=3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        in_ch = widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            stride = 1 if i == 0 else 2
            layers = [BasicBlock1d(in_ch, width, stride, kernel_size)]
            layers += [BasicBlock1d(width, width, 1, kernel_size) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head: nn.Module = nn.Identity() if embed_dim == in_ch else nn.Linear(in_ch, embed_dim)
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # (B, 64, T/4)
        x = self.stages(x)  # (B, 512, T/32)
        x = self.pool(x).flatten(1)  # (B, 512)
        return self.head(x)  # (B, embed_dim)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = ["ENCODERS", "RESNET18_WIDTHS", "BasicBlock1d", "ResNet1d", "ResNet18Encoder", "build_encoder",
           "count_parameters"]

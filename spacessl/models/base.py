"""The interface every self-supervised method implements (SimCLR, SimSiam, ...).

A method owns an encoder (the backbone whose outputs are stored as embeddings) plus training-only heads and its
loss. The training loop only calls ``forward(x0, x1)`` on two augmented views of the same batch and reads
``out["loss"]`` (to optimise) and ``out["z"]`` (to monitor collapse, :mod:`spacessl.models.collapse`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn


class SSLMethod(nn.Module):
    """Base class of the self-supervised methods.

    Attributes:
        name: the registry name ("simclr", "simsiam").
        encoder: the backbone, (B, *sample_shape) -> (B, embed_dim).
        embed_dim: width of the encoder output.
    """

    name: ClassVar[str] = ""

    def __init__(self, encoder: nn.Module, embed_dim: int = 512) -> None:
        super().__init__()
        self.encoder = encoder
        self.embed_dim = embed_dim

    def forward(self, x0: Tensor, x1: Tensor) -> dict[str, Tensor]:
        """Loss of one batch of view pairs.

        Args:
            x0: first views, (B, *sample_shape) float32.
            x1: second views of the same samples, same shape.

        Returns:
            ``{"loss": scalar tensor, "z": (B, P) detached projection of x0}``.
        """
        raise NotImplementedError

    def embed(self, x: Tensor) -> Tensor:
        """Encoder embeddings, (B, *sample_shape) -> (B, embed_dim); the vectors spacessl stores and indexes."""
        return self.encoder(x)


class ProjectedPairMethod(SSLMethod):
    """A method whose loss compares the projections of the two views and nothing else (VICReg, Barlow Twins):
    subclasses set ``projection_head`` ((B, embed_dim) -> (B, P)) and ``criterion`` ((B, P), (B, P) -> ()).

    The loss is computed in float32 with autocast off, whatever the precision of the forward: under bf16 autocast
    the D x D products of VICReg's covariance and Barlow Twins' cross-correlation would otherwise run in bf16.

    Shape: x0, x1 (B, *sample_shape) -> loss (), z (B, P).
    """

    projection_head: nn.Module
    criterion: nn.Module

    def project(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, P)."""
        return self.projection_head(self.encoder(x))  # type: ignore[no-any-return]

    def forward(self, x0: Tensor, x1: Tensor) -> dict[str, Tensor]:
        z0 = self.project(x0)  # (B, P)
        z1 = self.project(x1)  # (B, P)
        with torch.autocast(z0.device.type, enabled=False):
            loss = self.criterion(z0.float(), z1.float())
        return {"loss": loss, "z": z0.detach()}

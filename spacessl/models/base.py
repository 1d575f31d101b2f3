"""The interface every self-supervised method implements (SimCLR, SimSiam, ...).

A method owns an encoder (the backbone whose outputs are stored as embeddings) plus training-only heads and its
loss. The training loop only calls ``forward(x0, x1)`` on two augmented views of the same batch and reads
``out["loss"]`` (to optimise) and ``out["z"]`` (to monitor collapse, :mod:`spacessl.models.collapse`).
"""

from __future__ import annotations

from typing import ClassVar

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

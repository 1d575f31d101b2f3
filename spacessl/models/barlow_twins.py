"""Barlow Twins: the cross-correlation of the two views' projections driven to the identity, from lightly's parts.

- Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021,
  https://arxiv.org/abs/2103.03230

No negatives and no momentum encoder: each projection dimension is standardised over the batch, and the D x D
cross-correlation between the two views is pushed towards the identity: diagonal terms to 1 (the views agree),
off-diagonal terms to 0 weighted by ``redundancy_lambda`` (the dimensions carry different information).

The loss is lightly's. Under DDP it is computed on the projections of every worker gathered, as the authors' code
computes it (its standardisation is a BatchNorm made synchronous across GPUs, so the matrix is that of the global
batch); lightly's own distributed form standardises each worker's batch alone and averages the matrices.
"""

from __future__ import annotations

import torch
from lightly.loss import BarlowTwinsLoss
from lightly.models.modules.heads import BarlowTwinsProjectionHead
from lightly.utils import dist as lightly_dist
from torch import Tensor, nn
from torch import distributed as torch_dist

from spacessl.errors import SpacesslError
from spacessl.models.base import ProjectedPairMethod


class GlobalBarlowTwinsLoss(BarlowTwinsLoss):
    """lightly's ``BarlowTwinsLoss`` over the projections of every worker: each worker gathers all of them (with
    their gradients) and computes the loss of the global batch; DDP's average of the workers' gradients is then the
    gradient of that loss.

    Shape: z_a, z_b (N, D) per worker -> ().
    """

    def __init__(self, lambda_param: float = 0.0051, gather_distributed: bool = False) -> None:
        super().__init__(lambda_param=lambda_param, gather_distributed=False)
        self.gather_all = gather_distributed

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        if self.gather_all and lightly_dist.world_size() > 1:
            z_a, z_b = torch.cat(lightly_dist.gather(z_a)), torch.cat(lightly_dist.gather(z_b))
        return super().forward(z_a, z_b)  # type: ignore[no-any-return]


class BarlowTwins(ProjectedPairMethod):
    """Barlow Twins: encoder -> 3-layer projector -> sum (1 - C_ii)^2 + ``redundancy_lambda`` · sum_{i!=j} C_ij^2.

    Under DDP the loss is that of the global batch (:class:`GlobalBarlowTwinsLoss`) whenever a process group of
    more than one worker exists at forward time.

    Args:
        encoder: backbone, (B, *sample_shape) -> (B, embed_dim).
        embed_dim: encoder output width.
        proj_hidden_dim: width of the projector's two hidden layers (the paper: 8192).
        proj_out_dim: projector output width D (the paper: 8192).
        redundancy_lambda: weight of the off-diagonal terms (the paper: 0.0051 at D = 8192).
        gather_distributed: None = decide from ``torch.distributed.is_available()``.

    Shape: x0, x1 (B, *sample_shape) -> loss (), z (B, proj_out_dim).
    """

    name = "barlow_twins"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int = 512,
        *,
        proj_hidden_dim: int = 2048,
        proj_out_dim: int = 2048,
        redundancy_lambda: float = 0.0051,
        gather_distributed: bool | None = None,
    ) -> None:
        super().__init__(encoder, embed_dim)
        if redundancy_lambda < 0:
            raise SpacesslError(f"Barlow Twins' redundancy_lambda must be >= 0, got {redundancy_lambda} "
                                "(set model.redundancy_lambda; the paper: 0.0051).")
        if gather_distributed is None:
            gather_distributed = torch_dist.is_available()
        self.projection_head = BarlowTwinsProjectionHead(embed_dim, proj_hidden_dim, proj_out_dim)
        self.criterion = GlobalBarlowTwinsLoss(redundancy_lambda, gather_distributed=gather_distributed)

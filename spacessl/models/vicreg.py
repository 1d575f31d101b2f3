"""VICReg: variance, invariance and covariance regularisation between two views, from lightly's parts.

- Bardes, Ponce and LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
  ICLR 2022, https://arxiv.org/abs/2105.04906

No negatives and no momentum encoder: the two views' projections are pulled together (invariance, mean squared
error), while each projection dimension is kept spread over the batch (variance, a hinge on its standard deviation
at 1) and the dimensions are kept uncorrelated (covariance, the squared off-diagonal covariances). So the loss does
not depend on how many samples of the anchor's own kind a batch holds, which bounds contrastive losses on archives
of a few kinds of scene.

The expander and the invariance and variance terms are lightly's. The covariance term is written out here as the
authors' code has it (``x.T @ x`` and a strided view of the off-diagonal entries): lightly's generalised form
(an einsum and a boolean mask over the D x D matrix) gives the same value, but with it the whole loss's forward
and backward take 420 ms at D = 2048 and batch 64 on two CPU cores, against 110 ms with this one; the training
step of ResNet-18 at 64 px takes about 400 ms.
"""

from __future__ import annotations

import torch
from lightly.loss.vicreg_loss import invariance_loss, variance_loss
from lightly.models.modules.heads import VICRegProjectionHead
from lightly.utils import dist as lightly_dist
from torch import Tensor, nn
from torch import distributed as torch_dist

from spacessl.errors import SpacesslError
from spacessl.models.base import ProjectedPairMethod


def off_diagonal(m: Tensor) -> Tensor:
    """The off-diagonal entries of a square matrix as a flat view, (D, D) -> (D * (D - 1),)."""
    d = m.shape[0]
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def covariance_loss(x: Tensor) -> Tensor:
    """Sum of the squared off-diagonal covariances of the columns of ``x``, over D: (N, D) -> ()."""
    n, d = x.shape
    x = x - x.mean(dim=0)
    cov = (x.T @ x) / (n - 1)  # (D, D)
    return off_diagonal(cov).pow(2).sum() / d


class VICRegLoss(nn.Module):
    """``sim_coeff`` · MSE(z_a, z_b) + ``std_coeff`` · mean hinge(1 - std) + ``cov_coeff`` · covariance, the
    variance and covariance terms of each view on its own and, under DDP, over every worker's projections
    (lightly's ``VICRegLoss``, with the covariance term above).

    Shape: z_a, z_b (N, D) -> ().
    """

    def __init__(self, sim_coeff: float = 25.0, std_coeff: float = 25.0, cov_coeff: float = 1.0,
                 gather_distributed: bool = False, eps: float = 1e-4) -> None:
        super().__init__()
        self.sim_coeff, self.std_coeff, self.cov_coeff = sim_coeff, std_coeff, cov_coeff
        self.gather_distributed, self.eps = gather_distributed, eps

    def forward(self, z_a: Tensor, z_b: Tensor) -> Tensor:
        if z_a.shape != z_b.shape or z_a.ndim != 2 or len(z_a) < 2:
            raise SpacesslError(f"VICReg needs two (N >= 2, D) batches of one shape, got {tuple(z_a.shape)} "
                                f"and {tuple(z_b.shape)}.")
        inv = invariance_loss(z_a, z_b)
        if self.gather_distributed and lightly_dist.world_size() > 1:
            z_a, z_b = torch.cat(lightly_dist.gather(z_a)), torch.cat(lightly_dist.gather(z_b))
        var = 0.5 * (variance_loss(z_a, eps=self.eps) + variance_loss(z_b, eps=self.eps))
        cov = covariance_loss(z_a) + covariance_loss(z_b)
        return self.sim_coeff * inv + self.std_coeff * var + self.cov_coeff * cov


class VICReg(ProjectedPairMethod):
    """VICReg: encoder -> 3-layer expander -> ``sim_coeff`` · invariance + ``std_coeff`` · variance +
    ``cov_coeff`` · covariance.

    Under DDP the variance and covariance terms are taken over the projections of every worker (gathered with their
    gradients by lightly's ``dist.gather`` when a process group of more than one worker exists at forward time), so
    they see the global batch; the invariance term is each worker's own mean and DDP averages it.

    Args:
        encoder: backbone, (B, *sample_shape) -> (B, embed_dim).
        embed_dim: encoder output width.
        proj_hidden_dim: width of the expander's two hidden layers (the paper: 8192).
        proj_out_dim: expander output width P (the paper: 8192).
        sim_coeff, std_coeff, cov_coeff: weights of the invariance, variance and covariance terms (the paper:
            25, 25, 1).
        gather_distributed: None = decide from ``torch.distributed.is_available()``.

    Shape: x0, x1 (B, *sample_shape) -> loss (), z (B, proj_out_dim).
    """

    name = "vicreg"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int = 512,
        *,
        proj_hidden_dim: int = 2048,
        proj_out_dim: int = 2048,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        gather_distributed: bool | None = None,
    ) -> None:
        super().__init__(encoder, embed_dim)
        for key, value in (("sim_coeff", sim_coeff), ("std_coeff", std_coeff), ("cov_coeff", cov_coeff)):
            if value < 0:
                raise SpacesslError(f"VICReg's {key} must be >= 0, got {value} (set model.{key}; the paper: 25, 25, 1).")
        if gather_distributed is None:
            gather_distributed = torch_dist.is_available()
        self.projection_head = VICRegProjectionHead(embed_dim, proj_hidden_dim, proj_out_dim, num_layers=3)
        self.criterion = VICRegLoss(sim_coeff, std_coeff, cov_coeff, gather_distributed=gather_distributed)


__all__ = ["VICReg", "VICRegLoss", "covariance_loss", "off_diagonal"]

"""SimCLR: contrastive learning with in-batch negatives, from lightly's parts.

- Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020,
  https://arxiv.org/abs/2002.05709
- Yeh et al., "Decoupled Contrastive Learning", ECCV 2022, https://arxiv.org/abs/2110.06848 (``loss="dcl"``,
  ``"dclw"``): the positive pair is taken out of the softmax denominator, which removes NT-Xent's dependence on a
  large batch (its gradient is damped by the positive's own share of the denominator).
- Chuang et al., "Debiased Contrastive Learning", NeurIPS 2020, and Robinson et al., "Contrastive Learning with Hard
  Negative Samples", ICLR 2021 (``loss="debiased"``, :mod:`spacessl.models.debiased`): the sum over negatives
  corrected for the share of same-kind samples among them, optionally weighted towards the hardest.
"""

from __future__ import annotations

from typing import Literal

import torch
from lightly.loss import DCLLoss, DCLWLoss, NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import Tensor, nn
from torch import distributed as torch_dist

from spacessl.errors import SpacesslError
from spacessl.models.base import SSLMethod
from spacessl.models.debiased import DebiasedContrastiveLoss

#: contrastive losses SimCLR can use, by config name
LOSSES = {"ntxent": NTXentLoss, "dcl": DCLLoss, "dclw": DCLWLoss, "debiased": DebiasedContrastiveLoss}


class SimCLR(SSLMethod):
    """SimCLR: encoder -> SimCLRProjectionHead -> NT-Xent (or a decoupled variant) between the two views.

    Under DDP the negatives come from every worker: the loss is built with ``gather_distributed=True`` whenever
    ``torch.distributed`` is available, and lightly gathers the projections only when a process group with world
    size > 1 is initialised at forward time (so a method built before ``init_process_group``, or in a single
    process, behaves as plain in-batch SimCLR). With a global batch N split over W workers the loss equals the
    single-process loss on the whole batch, and each view has 2N - 2 negatives.

    Args:
        encoder: backbone, (B, *sample_shape) -> (B, embed_dim).
        embed_dim: encoder output width.
        proj_hidden_dim: hidden width of the projection MLP.
        proj_out_dim: projection width P (the space where NT-Xent is computed).
        proj_layers: linear layers of the projection head: 2 as SimCLR, 3 as SimCLR v2 (Chen et al., "Big
            Self-Supervised Models are Strong Semi-Supervised Learners", NeurIPS 2020).
        temperature: temperature tau of the contrastive loss.
        loss: "ntxent" (SimCLR's NT-Xent), "dcl" (decoupled: the positive left out of the denominator) or "dclw"
            (decoupled, positives weighted by how hard they are, sigma 0.5), all three from lightly; or "debiased"
            (negatives corrected for the share ``tau_plus`` of same-kind samples among them, weighted towards the
            hardest by ``hard_negative_beta``).
        tau_plus, hard_negative_beta: the debiased loss's class prior and hardness (ignored by the others).
        gather_distributed: None = decide from ``torch.distributed.is_available()``.
        joint_views: pass both views through the encoder and head as one batch of 2B, as SimCLR's own
            implementation does, so BatchNorm normalises over both views together; False: one pass per view, as
            lightly's examples do.

    Shape: x0, x1 (B, *sample_shape) -> loss (), z (B, proj_out_dim).
    """

    name = "simclr"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int = 512,
        *,
        proj_hidden_dim: int = 512,
        proj_out_dim: int = 128,
        proj_layers: int = 2,
        temperature: float = 0.5,
        loss: Literal["ntxent", "dcl", "dclw", "debiased"] = "ntxent",
        tau_plus: float = 0.1,
        hard_negative_beta: float = 0.0,
        gather_distributed: bool | None = None,
        joint_views: bool = False,
    ) -> None:
        super().__init__(encoder, embed_dim)
        if loss not in LOSSES:
            raise SpacesslError(f"Unknown SimCLR loss {loss!r}; choose one of {', '.join(LOSSES)} (set model.loss).")
        if gather_distributed is None:
            gather_distributed = torch_dist.is_available()
        if proj_layers < 2:
            raise SpacesslError(f"SimCLR's projection head needs at least 2 layers, got {proj_layers} "
                                "(set model.proj_layers: 2, or 3 as SimCLR v2).")
        self.projection_head = SimCLRProjectionHead(embed_dim, proj_hidden_dim, proj_out_dim, num_layers=proj_layers)
        extra = {"tau_plus": tau_plus, "beta": hard_negative_beta} if loss == "debiased" else {}
        self.criterion = LOSSES[loss](temperature=temperature, gather_distributed=gather_distributed, **extra)
        self.temperature = temperature
        self.loss = loss
        self.joint_views = joint_views

    def project(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, proj_out_dim)."""
        return self.projection_head(self.encoder(x))

    def forward(self, x0: Tensor, x1: Tensor) -> dict[str, Tensor]:
        if self.joint_views:
            z0, z1 = self.project(torch.cat([x0, x1])).chunk(2)  # (B, P) each
        else:
            z0 = self.project(x0)  # (B, P)
            z1 = self.project(x1)  # (B, P)
        loss = self.criterion(z0, z1)
        return {"loss": loss, "z": z0.detach()}

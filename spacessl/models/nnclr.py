"""NNCLR: contrastive learning with nearest neighbours from a support set as positives, from lightly's parts.

- Dwibedi et al., "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning of Visual
  Representations", ICCV 2021, https://arxiv.org/abs/2104.14548

SimCLR's positive is another view of the same sample, so it learns what the views leave unchanged and nothing
about which other samples are alike. NNCLR replaces the positive by the nearest neighbour of one view's projection
among the projections of earlier batches (the support set), so samples that already look alike are pulled
together: a step towards the neighbourhoods that similarity search and kNN read.

The heads and loss are lightly's (``NNCLRProjectionHead``, ``NNCLRPredictionHead``, ``NTXentLoss``). The support set
is kept here rather than in lightly's ``NNMemoryBankModule`` because it adds two things that module lacks: under
DDP every worker's projections enter every worker's support set, and ``nn_delay_steps`` holds each batch back for
that many steps before it may serve as a neighbour. An archive stream draws each batch from a few chunks at a time,
so frames of the same sequence (seconds apart, nearly identical) arrive in consecutive batches; held back until
the stream has moved on, they cannot be one another's neighbours, and the neighbours come from other sequences.
"""

from __future__ import annotations

from collections import deque

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import NNCLRPredictionHead, NNCLRProjectionHead
from lightly.utils import dist as lightly_dist
from torch import Tensor, nn
from torch import distributed as torch_dist
from torch.nn import functional as F

from spacessl.errors import SpacesslError
from spacessl.models.base import SSLMethod


class SupportSet(nn.Module):
    """The last ``size`` unit-norm projections, each usable as a neighbour ``delay`` updates after it arrived.

    Not checkpointed (like MoCo's queue): a resumed run refills it within ``(size / batch) + delay`` steps, and
    until it holds any entry the neighbour of a projection is the projection itself.

    Shape: vectors (N, P).
    """

    def __init__(self, size: int, dim: int, delay: int = 0) -> None:
        super().__init__()
        if size < 1:
            raise SpacesslError(f"the support set needs room: memory_bank_size {size} must be >= 1 "
                                "(set model.memory_bank_size, e.g. 4096).")
        if delay < 0:
            raise SpacesslError(f"nn_delay_steps must be >= 0, got {delay} (set model.nn_delay_steps).")
        self.register_buffer("bank", torch.zeros(size, dim), persistent=False)
        self.size, self.delay = size, delay
        self.filled = 0  #: entries of ``bank`` that hold projections
        self.ptr = 0  #: where the next entry goes
        self.pending: deque[Tensor] = deque()  #: batches held back, oldest first

    @torch.no_grad()
    def nearest(self, z: Tensor) -> Tensor:
        """The nearest entry (cosine) of each row, (B, P) -> (B, P) unit norm, detached; ``z`` itself (normalised)
        while the set is empty."""
        z = F.normalize(z.detach().float(), dim=1)
        if self.filled == 0:
            return z
        bank = self.bank[: self.filled].to(z.device)
        return bank[(z @ bank.T).argmax(dim=1)]

    @torch.no_grad()
    def add(self, z: Tensor) -> None:
        """Enter a batch (N, P); the batch held back ``delay`` updates ago becomes searchable."""
        self.pending.append(F.normalize(z.detach().float(), dim=1))
        while len(self.pending) > self.delay:
            batch = self.pending.popleft()[-self.size:]
            n = batch.shape[0]
            self.bank[(self.ptr + torch.arange(n, device=self.bank.device)) % self.size] = batch  # around the ring
            self.ptr = (self.ptr + n) % self.size
            self.filled = min(self.size, self.filled + n)


class NNCLR(SSLMethod):
    """NNCLR: z = projection(encoder(x)), p = prediction(z); NT-Xent between NN(z0) and p1 and between NN(z1) and p0.

    NN(z) is the nearest neighbour of z in the support set of earlier projections (without gradient). After the loss
    the batch's second-view projections enter the support set (gathered from every worker under DDP, so the set is
    the same everywhere). Under DDP the loss gathers its negatives from every worker, as SimCLR's.

    Args:
        encoder: backbone, (B, *sample_shape) -> (B, embed_dim).
        embed_dim: encoder output width.
        proj_hidden_dim: hidden width of the 3-layer projection MLP (NNCLR: 2048).
        proj_out_dim: projection width P (NNCLR: 256).
        pred_hidden_dim: hidden width of the prediction MLP (NNCLR: 4096).
        temperature: NT-Xent temperature (NNCLR: 0.1).
        memory_bank_size: projections in the support set (NNCLR: 98,304 on ImageNet; thousands for an archive).
        nn_delay_steps: steps each batch waits before it may serve as a neighbour (0: at once, as NNCLR).
        gather_distributed: None = decide from ``torch.distributed.is_available()``.

    Shape: x0, x1 (B, *sample_shape) -> loss (), z (B, proj_out_dim).
    """

    name = "nnclr"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int = 512,
        *,
        proj_hidden_dim: int = 512,
        proj_out_dim: int = 128,
        pred_hidden_dim: int = 512,
        temperature: float = 0.1,
        memory_bank_size: int = 4096,
        nn_delay_steps: int = 0,
        gather_distributed: bool | None = None,
    ) -> None:
        super().__init__(encoder, embed_dim)
        if gather_distributed is None:
            gather_distributed = torch_dist.is_available()
        self.projection_head = NNCLRProjectionHead(embed_dim, proj_hidden_dim, proj_out_dim)
        self.prediction_head = NNCLRPredictionHead(proj_out_dim, pred_hidden_dim, proj_out_dim)
        self.support = SupportSet(memory_bank_size, proj_out_dim, nn_delay_steps)
        self.criterion = NTXentLoss(temperature=temperature, gather_distributed=gather_distributed)
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def project(self, x: Tensor) -> Tensor:
        """(B, *sample_shape) -> (B, proj_out_dim)."""
        return self.projection_head(self.encoder(x))

    def forward(self, x0: Tensor, x1: Tensor) -> dict[str, Tensor]:
        z0, z1 = self.project(x0), self.project(x1)  # (B, P) each
        p0, p1 = self.prediction_head(z0), self.prediction_head(z1)
        n0, n1 = self.support.nearest(z0), self.support.nearest(z1)
        loss = 0.5 * (self.criterion(n0, p1) + self.criterion(n1, p0))
        if self.training and torch.is_grad_enabled():
            z = z1.detach()
            self.support.add(torch.cat(lightly_dist.gather(z)) if self.gather_distributed
                             and lightly_dist.world_size() > 1 else z)
        return {"loss": loss, "z": z0.detach()}

"""MoCo v2: contrastive learning against a queue of keys from a momentum encoder, from lightly's parts.

- He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020,
  https://arxiv.org/abs/1911.05722
- Chen et al., "Improved Baselines with Momentum Contrastive Learning" (MoCo v2), 2020, https://arxiv.org/abs/2003.04297

The negatives come from a queue of the last ``memory_bank_size`` keys instead of the batch, so a small batch (64 on
a CPU, a few per GPU) still contrasts each view against thousands of negatives. The keys are computed by a copy of
encoder and head whose weights follow the trained ones as an exponential moving average, which keeps the queue
consistent over the steps it spans.
"""

from __future__ import annotations

import copy

import torch
from lightly.models.modules import MoCoProjectionHead
from lightly.models.modules.memory_bank import MemoryBankModule
from lightly.models.utils import batch_shuffle, batch_unshuffle, update_momentum
from lightly.utils import dist as lightly_dist
from torch import Tensor, nn
from torch import distributed as torch_dist
from torch.nn import functional as F

from spacessl.errors import SpacesslError
from spacessl.models.base import SSLMethod


class SplitBatchNorm(nn.Module):
    """Training-mode batch normalisation over ``splits`` disjoint sub-batches, for the key encoder.

    A query and its own key come from the same batch; if the key encoder normalised over that whole batch, the
    batch statistics would carry a signature that the query could match without learning anything ("cheating"
    through BatchNorm, MoCo section 3.3). MoCo shuffles the key batch across GPUs; on one device the shuffled
    batch is normalised in ``splits`` groups instead (as lightly's ``SplitBatchNorm`` and the MoCo CIFAR demo do),
    for BatchNorm over any number of trailing dimensions (1-D waveforms and 2-D images).

    It holds the affine weights of the BatchNorm it replaces (same names and order, so the momentum update pairs
    them) and no running statistics: the key encoder is only ever run in training mode.

    Shape: (N, C, *) -> (N, C, *); N not divisible by ``splits`` (or under 2 per group) is normalised whole.
    """

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, splits: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(bn.weight.detach().clone(), requires_grad=False) if bn.affine else None
        self.bias = nn.Parameter(bn.bias.detach().clone(), requires_grad=False) if bn.affine else None
        self.eps = bn.eps
        self.splits = splits

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        s = self.splits if n % self.splits == 0 and n // self.splits > 1 else 1
        # row r of the reshaped batch holds samples r*s .. r*s+s-1 side by side along the channels, so channel
        # j*c + k is channel k of sample r*s+j: its statistics run over samples j, s+j, 2s+j, ...
        y = x.reshape(n // s, c * s, *x.shape[2:])
        w = None if self.weight is None else self.weight.repeat(s)
        b = None if self.bias is None else self.bias.repeat(s)
        return F.batch_norm(y, None, None, w, b, training=True, eps=self.eps).reshape(x.shape)


def split_batchnorm(module: nn.Module, splits: int) -> nn.Module:
    """Replace every BatchNorm of ``module`` (in place) by a :class:`SplitBatchNorm` with its weights; returns it."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, SplitBatchNorm(child, splits))
        else:
            split_batchnorm(child, splits)
    return module


class MoCo(SSLMethod):
    """MoCo v2: query = head(encoder(x0)), key = momentum copy of both applied to x1; InfoNCE against a key queue.

    Each training forward first moves the momentum copy towards the trained weights (``m · key + (1 - m) ·
    query``), then computes the keys without gradient on the shuffled batch with split BatchNorm (and, under DDP,
    shuffled across workers), and scores each query against its own key (the positive) and every key in the queue
    (the negatives): cross-entropy over ``[q·k+, q·queue] / temperature``. The batch's keys then enter the queue,
    gathered from every worker under DDP, so the queue is the same everywhere. ``symmetric`` adds the loss with the
    views swapped (both views through the query encoder, as MoCo v3), at twice the backward cost.

    The queue is not part of the checkpoint: after ``--resume`` it starts as random unit vectors again, as at the
    start of training, and is refilled by new keys within ``memory_bank_size / batch`` steps.

    Args:
        encoder: backbone, (B, *sample_shape) -> (B, embed_dim).
        embed_dim: encoder output width.
        proj_hidden_dim: hidden width of the 2-layer projection MLP (MoCo v2: 2048).
        proj_out_dim: projection width P (MoCo v2: 128).
        temperature: temperature of the InfoNCE loss (MoCo v2: 0.2).
        memory_bank_size: number of keys in the queue (MoCo: 65,536 on ImageNet; 4,096 for archives of thousands).
        key_momentum: m of the momentum update per step (MoCo: 0.999 over ~10^6 steps; 0.99 for a few thousand).
        bn_splits: sub-batches of the key encoder's BatchNorm (1: plain BatchNorm).
        symmetric: also score the second view's queries against the first view's keys.
        gather_distributed: None = decide from ``torch.distributed.is_available()``; gathers the keys of every
            worker into the queue when a process group of more than one worker exists.

    Shape: x0, x1 (B, *sample_shape) -> loss (), z (B, proj_out_dim).
    """

    name = "moco"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int = 512,
        *,
        proj_hidden_dim: int = 512,
        proj_out_dim: int = 128,
        temperature: float = 0.2,
        memory_bank_size: int = 4096,
        key_momentum: float = 0.99,
        bn_splits: int = 8,
        symmetric: bool = False,
        gather_distributed: bool | None = None,
    ) -> None:
        super().__init__(encoder, embed_dim)
        if not 0.0 <= key_momentum < 1.0:
            raise SpacesslError(f"MoCo's key_momentum must lie in [0, 1), got {key_momentum} "
                                "(set model.key_momentum, e.g. 0.99).")
        if memory_bank_size < 1:
            raise SpacesslError(f"MoCo needs a queue of keys: memory_bank_size {memory_bank_size} must be >= 1 "
                                "(set model.memory_bank_size, e.g. 4096).")
        if bn_splits < 1:
            raise SpacesslError(f"bn_splits must be >= 1, got {bn_splits} (set model.bn_splits, e.g. 8).")
        if gather_distributed is None:
            gather_distributed = torch_dist.is_available()
        self.projection_head = MoCoProjectionHead(embed_dim, proj_hidden_dim, proj_out_dim)
        self.key_encoder = split_batchnorm(copy.deepcopy(encoder), bn_splits)
        self.key_projection_head = copy.deepcopy(self.projection_head)
        for p in (*self.key_encoder.parameters(), *self.key_projection_head.parameters()):
            p.requires_grad = False
        self.queue = MemoryBankModule((memory_bank_size, proj_out_dim), gather_distributed=gather_distributed,
                                      feature_dim_first=False)
        self.temperature = temperature
        self.key_momentum = key_momentum
        self.symmetric = symmetric

    def project(self, x: Tensor) -> Tensor:
        """Queries, (B, *sample_shape) -> (B, proj_out_dim), not normalised."""
        return self.projection_head(self.encoder(x))

    @torch.no_grad()
    def keys(self, x: Tensor) -> Tensor:
        """Unit-norm keys of the momentum encoder, (B, *sample_shape) -> (B, proj_out_dim), in the input's order."""
        distributed = lightly_dist.world_size() > 1
        xs, order = batch_shuffle(x, distributed=distributed)
        k = self.key_projection_head(self.key_encoder(xs))
        return F.normalize(batch_unshuffle(k, order, distributed=distributed).float(), dim=1)

    def _info_nce(self, q: Tensor, k: Tensor, queue: Tensor) -> Tensor:
        """Cross-entropy of each query over [its key, every queued key] / temperature; q (B, P), k (B, P) unit
        norm, queue (K, P) unit norm -> scalar. The same loss as lightly's NTXentLoss with a memory bank, written
        out because that loss enqueues its keys as it scores: the symmetric form scores both directions against
        the queue as it was before this batch, so that neither sees the other view's keys of its own samples."""
        q = F.normalize(q.float(), dim=1)  # (B, P)
        pos = (q * k).sum(dim=1, keepdim=True)  # (B, 1)
        neg = q @ queue.T.to(q.device)  # (B, K)
        logits = torch.cat([pos, neg], dim=1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))

    def forward(self, x0: Tensor, x1: Tensor) -> dict[str, Tensor]:
        training = self.training and torch.is_grad_enabled()
        if training:
            update_momentum(self.encoder, self.key_encoder, self.key_momentum)
            update_momentum(self.projection_head, self.key_projection_head, self.key_momentum)
        q0 = self.project(x0)  # (B, P)
        k1 = self.keys(x1)  # (B, P)
        if self.symmetric:
            q1, k0 = self.project(x1), self.keys(x0)
            _, queue = self.queue(torch.cat([k1, k0]), update=training)  # (K, P), before this batch's keys
            loss = 0.5 * (self._info_nce(q0, k1, queue) + self._info_nce(q1, k0, queue))
        else:
            _, queue = self.queue(k1, update=training)
            loss = self._info_nce(q0, k1, queue)
        return {"loss": loss, "z": q0.detach()}

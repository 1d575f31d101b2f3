"""Debiased contrastive loss, with optional hard-negative weighting, for archives of few kinds of sample.

- Chuang et al., "Debiased Contrastive Learning", NeurIPS 2020, https://arxiv.org/abs/2007.00224
- Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021, https://arxiv.org/abs/2010.04592

NT-Xent treats every other sample of the batch as a negative. When an archive holds a handful of kinds of scene
(six sky conditions, three kinds of seismic event), a good share of those "negatives" are of the anchor's own kind,
and the loss pushes them away. The debiased loss corrects the sum over negatives for a class prior ``tau_plus``
(the chance that a random other sample is of the anchor's kind): the negatives' mean is replaced by an estimate of
the mean over true negatives, ``(mean_neg - tau_plus * exp(s_pos / t)) / (1 - tau_plus)``, bounded below by its
theoretical minimum ``exp(-1 / t)``. With ``beta > 0`` the negatives are also weighted by ``exp(beta * s / t)``
(normalised to mean 1), so the loss concentrates on the hardest negatives. ``tau_plus = 0`` and ``beta = 0`` give
NT-Xent exactly.

Written here because lightly (1.6) has no such loss; it follows the authors' reference code (the estimator of
both papers' ``criterion``), computed with a per-row shift of the exponents so that low temperatures and large
gathered batches cannot overflow float32.
"""

from __future__ import annotations

import math

import torch
from lightly.utils import dist
from torch import Tensor, nn
from torch import distributed as torch_dist

from spacessl.errors import SpacesslError


class DebiasedContrastiveLoss(nn.Module):
    """Debiased (and optionally hard-negative weighted) contrastive loss between two views, both ways.

    Every sample of both views is an anchor; its positive is the other view of the same sample; its M = 2N - 2
    negatives are both views of the other N - 1 samples (N the batch size, gathered across workers under DDP with
    ``gather_distributed``, as lightly's NT-Xent). With logits ``p = s_pos / t`` and ``n_j = s_j / t`` (cosine
    similarities over temperature t), per anchor::

        w_j  = exp(beta * n_j) / mean_k exp(beta * n_k)
        N_g  = max(M * (mean_j w_j exp(n_j) - tau_plus * exp(p)) / (1 - tau_plus), M * exp(-1 / t))
        loss = log(exp(p) + N_g) - p

    averaged over the 2N anchors.

    Args:
        temperature: t > 0.
        tau_plus: class prior in [0, 1): the expected share of same-kind samples among the negatives.
        beta: hardness >= 0; 0 weights every negative alike.
        gather_distributed: gather the projections of every worker (needs torch.distributed).

    Shape: out0, out1 (B, P) -> loss ().
    """

    def __init__(self, temperature: float = 0.2, *, tau_plus: float = 0.1, beta: float = 0.0,
                 gather_distributed: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise SpacesslError(f"temperature must be > 0, got {temperature} (set model.temperature).")
        if not 0.0 <= tau_plus < 1.0:
            raise SpacesslError(f"tau_plus must be in [0, 1), got {tau_plus}: the expected share of negatives of the "
                                "anchor's own kind, e.g. 0.1 (set model.tau_plus).")
        if beta < 0:
            raise SpacesslError(f"beta must be >= 0, got {beta} (set model.hard_negative_beta; 0 turns it off).")
        if gather_distributed and not torch_dist.is_available():
            raise SpacesslError("gather_distributed needs torch.distributed, which this torch build lacks.")
        self.temperature = temperature
        self.tau_plus = tau_plus
        self.beta = beta
        self.gather_distributed = gather_distributed

    def forward(self, out0: Tensor, out1: Tensor) -> Tensor:
        out0 = nn.functional.normalize(out0.float(), dim=1)
        out1 = nn.functional.normalize(out1.float(), dim=1)
        if self.gather_distributed and dist.world_size() > 1:
            all0, all1 = torch.cat(dist.gather(out0)), torch.cat(dist.gather(out1))
        else:
            all0, all1 = out0, out1
        n_local, n = out0.shape[0], all0.shape[0]
        if n < 2:
            raise SpacesslError("the debiased contrastive loss needs at least 2 samples per batch (set "
                                "train.batch_size).")
        own = dist.eye_rank(n_local, device=out0.device).bool()  # (B, N): each local anchor's column
        anchors = torch.cat([out0, out1])  # (2B, P)
        keys = torch.cat([all0, all1])  # (2N, P)
        logits = anchors @ keys.T / self.temperature  # (2B, 2N)
        none = torch.zeros_like(own)
        self_mask = torch.cat([torch.cat([own, none], 1), torch.cat([none, own], 1)])  # (2B, 2N)
        # the positive of view 0's anchor i is view 1's column of i, and the other way round: the halves swapped
        pos_mask = self_mask.roll(n, dims=1)
        pos = logits[pos_mask]  # (2B,)
        neg = logits[~(pos_mask | self_mask)].view(2 * n_local, 2 * n - 2)  # (2B, M)
        m = neg.shape[1]
        shift = torch.maximum(pos, neg.max(dim=1).values).detach()  # (2B,): exponents <= 0 below
        e_neg = (neg - shift[:, None]).exp()
        if self.beta > 0:
            w = torch.softmax(self.beta * neg, dim=1) * m  # weights of mean 1 over the negatives
            mean_neg = (w * e_neg).mean(dim=1)
        else:
            mean_neg = e_neg.mean(dim=1)
        e_pos = (pos - shift).exp()
        ng = m * (mean_neg - self.tau_plus * e_pos) / (1.0 - self.tau_plus)
        ng = torch.maximum(ng, m * (-1.0 / self.temperature - shift).exp())  # the bound, shifted like the rest
        return ((e_pos + ng).log() - (pos - shift)).mean()

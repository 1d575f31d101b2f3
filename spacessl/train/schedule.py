"""Learning-rate rules: the linear batch-size scaling rule and a per-step cosine schedule with linear warm-up.

Linear scaling (Goyal et al. 2017, "Accurate, Large Minibatch SGD"; used by SimCLR and SimSiam):
the configured ``lr`` is the rate for a global batch of 256, and the rate actually used is

    lr_eff = lr · global_batch / 256

so SpaceSSL's "SGD lr 0.05·batch/256" is ``lr: 0.05`` with any batch size, and splitting the same global batch
over more workers leaves the rate unchanged.
"""

from __future__ import annotations

import math

import torch

from spacessl.errors import ConfigError

#: Reference batch size of the linear scaling rule.
REFERENCE_BATCH = 256


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """``base_lr · global_batch / 256`` (the linear scaling rule)."""
    if global_batch < 1:
        raise ConfigError(f"global batch size must be >= 1, got {global_batch}")
    return base_lr * global_batch / REFERENCE_BATCH


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str = "cosine") -> float:
    """Multiplier of the peak rate at optimiser step ``step`` (0-based).

    Linear warm-up from ``1/warmup_steps`` to 1 over ``warmup_steps`` steps, then either constant or a half cosine
    from 1 down to 0 at ``total_steps``.
    """
    if schedule not in ("cosine", "constant"):
        raise ConfigError(f"unknown schedule '{schedule}'; available: 'cosine', 'constant'")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, schedule: str = "cosine"
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` stepped once per optimiser step that follows :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule),
    )

"""Learning-rate rules: the linear batch-size scaling rule and a per-step cosine schedule with linear warm-up.

Linear scaling (Goyal et al. 2017, "Accurate, Large Minibatch SGD"; used by SimCLR and SimSiam):
the configured ``lr`` is the rate for a global batch of 256, and the rate actually used is

    lr_eff = lr · global_batch / 256

so SpaceSSL's "SGD lr 0.05·batch/256" is ``lr: 0.05`` with any batch size, and splitting the same global batch
over more workers leaves the rate unchanged.

With a time budget (``train.time_budget_min``) the schedule's progress is the larger of the share of the planned
steps taken and the share of the budget spent, so the rate reaches 0 when either runs out; the loop stops there.
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


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str = "cosine",
              time_progress: float = 0.0) -> float:
    """Multiplier of the peak rate at optimiser step ``step`` (0-based).

    Linear warm-up from ``1/warmup_steps`` to 1 over ``warmup_steps`` steps, then either constant or a half cosine
    from 1 down to 0 at ``total_steps``; with ``time_progress`` (the share of a time budget spent, 0-1) the cosine
    is at whichever of the two progresses is further.
    """
    if schedule not in ("cosine", "constant"):
        raise ConfigError(f"unknown schedule '{schedule}'; available: 'cosine', 'constant'")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, max((step - warmup_steps) / decay_steps, time_progress))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class StepSchedule(torch.optim.lr_scheduler.LRScheduler):
    """The rate of :func:`lr_factor`, stepped once per optimiser step; ``elapsed_s`` (seconds of training, which the
    loop sets before it steps the schedule) counts against ``budget_s`` when there is one. Both are saved with the
    state, and a ``LambdaLR`` state of an earlier checkpoint loads too (as no time spent)."""

    def __init__(self, optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int,
                 schedule: str = "cosine", budget_s: float | None = None) -> None:
        self.warmup_steps, self.total_steps, self.schedule = warmup_steps, total_steps, schedule
        self.budget_s, self.elapsed_s = budget_s, 0.0
        lr_factor(0, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule)  # refuse a bad name now
        super().__init__(optimizer)

    @property
    def time_progress(self) -> float:
        """Share of the time budget spent (0 without a budget)."""
        return min(1.0, self.elapsed_s / self.budget_s) if self.budget_s else 0.0

    def get_lr(self) -> list[float]:
        f = lr_factor(self.last_epoch, warmup_steps=self.warmup_steps, total_steps=self.total_steps,
                      schedule=self.schedule, time_progress=self.time_progress)
        return [base * f for base in self.base_lrs]


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, schedule: str = "cosine",
    budget_s: float | None = None,
) -> StepSchedule:
    """A :class:`StepSchedule`: warm-up and cosine per optimiser step, over ``budget_s`` seconds too if given."""
    return StepSchedule(optimizer, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule,
                        budget_s=budget_s)

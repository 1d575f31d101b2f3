"""Batch-level augmentation building blocks: the :class:`Augment` interface, :class:`Compose`, random draws.

Every augmentation takes a whole batch (B, ...) of float32 tensors on any device and draws one set of random
parameters per sample, vectorised across the batch (no Python loop over samples). Random numbers come from the
``generator`` argument when one is given (reproducible views), else from torch's default generator of the batch's
device. Each class prints itself with its parameters, so ``str(pipeline)`` is the full recipe logged with a run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from spacessl.errors import SpacesslError


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return repr(round(value, 4))
    if isinstance(value, tuple | list):
        inner = ", ".join(_fmt(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    return repr(value)


class Augment:
    """A random transform of a batch; subclasses implement :meth:`__call__` and list their parameters.

    Shape: (B, ...) float32 -> (B, ...) float32 (the spatial size may change, e.g. a resized crop).
    """

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def params(self) -> dict[str, object]:
        """The parameters printed by ``str``; by default the public attributes."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __str__(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    __repr__ = __str__


class Compose(Augment):
    """Apply ``transforms`` in order, all with the same generator.

    ``str`` prints one transform per line, the whole pipeline.
    """

    def __init__(self, transforms: Iterable[Augment]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not isinstance(t, Augment):
                raise SpacesslError(f"Compose takes Augment instances, got {type(t).__name__}: {t!r}.")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for t in self.transforms:
            x = t(x, generator)
        return x

    def __str__(self) -> str:
        if not self.transforms:
            return "Compose()"
        return "Compose(\n" + "".join(f"  {t},\n" for t in self.transforms) + ")"

    __repr__ = __str__

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, i: int) -> Augment:
        return self.transforms[i]


# ------------------------------------------------------------------------------------------------ random draws


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def rand(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform [0, 1) float32 of ``shape`` on ``device``, drawn from ``generator`` (on its own device)."""
    r = torch.rand(tuple(shape), generator=generator, device=_draw_device(generator, device))
    return r.to(device, non_blocking=True)


def randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard normal float32 of ``shape`` on ``device``, drawn from ``generator`` (on its own device)."""
    r = torch.randn(tuple(shape), generator=generator, device=_draw_device(generator, device))
    return r.to(device, non_blocking=True)


def uniform(
    shape: Sequence[int], low: float, high: float, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Uniform [low, high) of ``shape``."""
    return low + (high - low) * rand(shape, generator, device)


def log_uniform(
    shape: Sequence[int], low: float, high: float, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Log-uniform in [low, high) (both > 0): uniform in log space."""
    if low <= 0 or high <= 0:
        raise SpacesslError(f"log-uniform range must be positive, got ({low}, {high}).")
    return torch.exp(uniform(shape, math.log(low), math.log(high), generator, device))


def bernoulli(batch: int, p: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """(batch,) bool, True with probability p."""
    if p >= 1.0:
        return torch.ones(batch, dtype=torch.bool, device=device)
    if p <= 0.0:
        return torch.zeros(batch, dtype=torch.bool, device=device)
    return rand((batch,), generator, device) < p


def applied(values: Tensor, p: float, generator: torch.Generator | None, identity: float = 0.0) -> Tensor:
    """Per-sample parameters ``values`` (B, ...) where the sample is transformed (probability ``p``, one draw per
    sample after the values were drawn), else ``identity``, the value that leaves the sample as it is."""
    keep = bernoulli(values.shape[0], p, generator, values.device).view(-1, *[1] * (values.dim() - 1))
    return torch.where(keep, values, torch.full_like(values, identity))


def check_probability(name: str, p: float) -> float:
    """Validate a probability argument."""
    if not 0.0 <= p <= 1.0:
        raise SpacesslError(f"{name} must be a probability in [0, 1], got {p}.")
    return float(p)


def check_range(name: str, value: Sequence[float], *, positive: bool = False) -> tuple[float, float]:
    """Validate a (low, high) range argument."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SpacesslError(f"{name} must be a (low, high) pair of numbers, got {value!r}.") from None
    if low > high:
        raise SpacesslError(f"{name} must have low <= high, got ({low}, {high}).")
    if positive and low <= 0:
        raise SpacesslError(f"{name} must be positive, got ({low}, {high}).")
    return (low, high)


def check_batch(x: Tensor, ndim: int, what: str) -> None:
    """Raise a clear error when ``x`` is not a float batch with ``ndim`` dimensions."""
    if not isinstance(x, Tensor):
        raise SpacesslError(f"{what} augmentations take torch tensors, got {type(x).__name__}; apply Preprocess first.")
    if x.ndim != ndim:
        dims = "(B, C, H, W)" if ndim == 4 else "(B, C, T)"
        raise SpacesslError(
            f"{what} augmentations take a batch {dims}, got shape {tuple(x.shape)}; add a batch axis with x[None]."
        )
    if not x.is_floating_point():
        raise SpacesslError(f"{what} augmentations take float tensors, got {x.dtype}; apply Preprocess first.")

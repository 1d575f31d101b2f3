"""Collapse monitoring: the spread of l2-normalised outputs, as tracked by SpaceSSL and the SimSiam paper.

For d-dimensional outputs spread as an isotropic Gaussian the per-dimension std of the l2-normalised vectors is
about 1/sqrt(d); a collapsed model (every output the same vector) gives 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from spacessl.errors import SpacesslError


def embedding_std(z: Tensor) -> float:
    """Mean over dimensions of the std over the batch of the l2-normalised rows of ``z``.

    Args:
        z: (B, d) outputs, B >= 2.

    Returns:
        A float in [0, 1/sqrt(d)] for healthy outputs, 0 for complete collapse.
    """
    return float(embedding_std_tensor(z))


def embedding_std_tensor(z: Tensor) -> Tensor:
    """:func:`embedding_std` as a 0-d float32 tensor on ``z``'s device, without waiting for the device."""
    if z.ndim != 2 or z.shape[0] < 2:
        raise SpacesslError(f"embedding_std needs a (B, d) tensor with B >= 2, got shape {tuple(z.shape)}.")
    zn = torch.nn.functional.normalize(z.detach().float(), dim=1)
    return zn.std(dim=0).mean()


def collapse_level(z: Tensor) -> float:
    """SpaceSSL's collapse level, max(0, 1 - std * sqrt(d)) with std = :func:`embedding_std`.

    Args:
        z: (B, d) outputs, B >= 2.

    Returns:
        0 for well-spread outputs, 1 for complete collapse.
    """
    return max(0.0, 1.0 - embedding_std(z) * math.sqrt(z.shape[1]))

"""Collapse level (SpaceSSL / SimSiam paper): 1 for constant outputs, ~0 for well spread ones."""

from __future__ import annotations

import math

import pytest
import torch

from spacessl.errors import SpacesslError
from spacessl.models.collapse import collapse_level, embedding_std


def test_collapsed_outputs():
    z = torch.ones(16, 32) * 3.0
    assert embedding_std(z) == pytest.approx(0.0, abs=1e-6)
    assert collapse_level(z) == pytest.approx(1.0)


def test_spread_outputs():
    z = torch.randn(4096, 64, generator=torch.Generator().manual_seed(0))
    assert embedding_std(z) == pytest.approx(1 / math.sqrt(64), rel=0.02)
    assert collapse_level(z) < 0.02


def test_bad_shape():
    with pytest.raises(SpacesslError):
        embedding_std(torch.ones(1, 8))

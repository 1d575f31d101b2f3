"""The two views of a training step: one pipeline call on both halves (on a GPU) or two, views independent."""

from __future__ import annotations

import pytest
import torch

from spacessl.augment import build_augment
from spacessl.augment.base import Augment, Compose
from spacessl.augment.waveforms import RandomPolarityFlip
from spacessl.train.loop import views


class _Counting(Augment):
    """Records the batch shapes it is called with; returns its input."""

    def __init__(self) -> None:
        self._calls: list[tuple[int, ...]] = []

    def __call__(self, x, generator=None):
        self._calls.append(tuple(x.shape))
        return x


@pytest.mark.parametrize("joint, calls", [(True, [(12, 3, 50)]), (False, [(6, 3, 50), (6, 3, 50)]),
                                          (None, [(6, 3, 50), (6, 3, 50)])])  # None: by device, on the CPU two calls
def test_one_call_on_both_halves_or_two_and_the_pair_makes_the_second_view(joint, calls):
    x, pair = torch.randn(6, 3, 50), torch.randn(6, 3, 50)
    counting = _Counting()
    v0, v1 = views(x, counting, None, pair, joint=joint)
    assert counting._calls == calls
    assert torch.equal(v0, x) and torch.equal(v1, pair)
    v0, v1 = views(x, Compose([]), None, joint=joint)
    assert torch.equal(v0, x) and torch.equal(v1, x)


@pytest.mark.parametrize("joint", [True, False])
def test_the_two_views_draw_independent_parameters(joint):
    # a flip with p = 0.5 per sample: views that shared their draws would always agree; independent ones agree on
    # about half of the samples, and both flip about a quarter of them
    n = 4000
    g = torch.Generator().manual_seed(3)
    v0, v1 = views(torch.ones(n, 1, 8), RandomPolarityFlip(p=0.5), g, joint=joint)
    f0, f1 = v0[:, 0, 0] < 0, v1[:, 0, 0] < 0
    assert abs(f0.float().mean().item() - 0.5) < 0.04 and abs(f1.float().mean().item() - 0.5) < 0.04
    assert abs((f0 == f1).float().mean().item() - 0.5) < 0.04
    assert abs((f0 & f1).float().mean().item() - 0.25) < 0.03


@pytest.mark.parametrize("joint", [True, False])
def test_views_of_the_waveform_pipeline_keep_shape_and_differ(joint):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, 1000)
    v0, v1 = views(x, build_augment("waveform", "default", sampling_rate_hz=100.0), g, joint=joint)
    assert v0.shape == v1.shape == x.shape
    # peak-normalised views, each window its own draw: no window is the same in both views
    assert torch.allclose(v0.abs().amax(dim=(1, 2)), torch.ones(32))
    assert (v0 - v1).abs().amax(dim=(1, 2)).min() > 1e-3

"""The linear lr rule and the per-step warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch

from spacessl.errors import ConfigError
from spacessl.train.schedule import build_scheduler, lr_factor, scaled_lr


def test_linear_rule_matches_spacessl():
    assert scaled_lr(0.05, 64) == pytest.approx(0.0125)  # SpaceSSL: 0.05 · 64 / 256
    assert scaled_lr(0.05, 256) == pytest.approx(0.05)
    with pytest.raises(ConfigError):
        scaled_lr(0.05, 0)


def test_warmup_then_cosine_to_zero():
    f = [lr_factor(s, warmup_steps=4, total_steps=20) for s in range(21)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert f[4] == pytest.approx(1.0)
    assert f[12] == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert f[20] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(f[4:], f[5:], strict=False))
    assert lr_factor(10, warmup_steps=0, total_steps=20, schedule="constant") == 1.0
    with pytest.raises(ConfigError, match="cosine"):
        lr_factor(0, warmup_steps=0, total_steps=1, schedule="linear")


def test_scheduler_steps_per_step_and_round_trips():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = build_scheduler(opt, warmup_steps=2, total_steps=10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    for _ in range(5):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2 = torch.optim.SGD([p], lr=0.1)
    sched2 = build_scheduler(opt2, warmup_steps=2, total_steps=10)
    sched2.load_state_dict(state)
    opt2.step()
    sched2.step()
    opt.step()
    sched.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])

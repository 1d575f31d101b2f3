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


def test_time_budget_drives_the_cosine_and_survives_a_restore():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = build_scheduler(opt, warmup_steps=2, total_steps=1000, budget_s=60.0)
    for elapsed, want in ((0.0, 0.1), (0.0, 0.1), (15.0, 0.05 * (1 + math.cos(math.pi / 4))), (30.0, 0.05),
                          (90.0, 0.0)):
        opt.step()
        sched.elapsed_s = elapsed
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(want, abs=1e-12)
    assert sched.time_progress == 1.0
    # the time spent is part of the state: a restored schedule carries on from it
    opt2 = torch.optim.SGD([p], lr=0.1)
    sched2 = build_scheduler(opt2, warmup_steps=2, total_steps=1000, budget_s=120.0)
    sched2.load_state_dict({**sched.state_dict(), "budget_s": 120.0})
    assert sched2.elapsed_s == 90.0 and sched2.time_progress == pytest.approx(0.75)
    # without a budget the steps alone set the progress, as before
    assert lr_factor(500, warmup_steps=0, total_steps=1000, time_progress=0.0) == pytest.approx(0.5)
    assert lr_factor(250, warmup_steps=0, total_steps=1000, time_progress=0.5) == pytest.approx(0.5)

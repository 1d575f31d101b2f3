"""StepLog: step metrics logged in order from a background thread, never blocking or failing the training thread."""

from __future__ import annotations

import logging
import threading

import pytest
import torch

from spacessl.train.step_log import StepLog


def test_entries_are_logged_in_order_as_floats():
    got: list[tuple[int, dict[str, float]]] = []
    lines: list[str] = []
    with StepLog(lambda values, step: got.append((step, values)), say=lines.append) as steplog:
        for step in range(1, 41):
            line = (lambda v: f"loss {v['loss']:.2f}") if step % 10 == 0 else None
            steplog.submit(step, {"loss": torch.tensor(step / 4), "lr": 0.5 * step, "n": torch.tensor(step)}, line)
        steplog.drain()
        assert [s for s, _ in got] == list(range(1, 41))
    for step, values in got:
        assert values == {"loss": step / 4, "lr": 0.5 * step, "n": float(step)}
        assert all(type(v) is float for v in values.values())
    assert lines == ["loss 2.50", "loss 5.00", "loss 7.50", "loss 10.00"]


def test_the_training_thread_does_not_wait_for_the_store():
    release, got = threading.Event(), []

    def slow_store(values, step):
        release.wait(timeout=30)
        got.append(step)

    steplog = StepLog(slow_store, say=lambda _: None)
    for step in range(5):
        steplog.submit(step, {"loss": 1.0})  # returns although the store has not answered the first
    assert got == []
    release.set()
    steplog.drain()
    assert got == [0, 1, 2, 3, 4]
    steplog.close()


def test_a_failing_store_is_a_warning_and_later_entries_are_still_logged(caplog):
    got = []

    def flaky(values, step):
        if step == 2:
            raise ConnectionError("tracking server at http://127.0.0.1:1 refused the connection")
        got.append(step)

    with caplog.at_level(logging.WARNING, logger="spacessl.train.step_log"):
        with StepLog(flaky, say=lambda _: None) as steplog:
            for step in range(5):
                steplog.submit(step, {"loss": float(step)})
    assert got == [0, 1, 3, 4]
    assert "step 2: metrics not logged" in caplog.text and "refused the connection" in caplog.text


def test_submit_waits_when_too_many_entries_are_pending():
    release = threading.Event()
    steplog = StepLog(lambda values, step: release.wait(timeout=30), say=lambda _: None, max_pending=2)
    steplog.submit(0, {"loss": 0.0})
    steplog.submit(1, {"loss": 1.0})
    third = threading.Thread(target=steplog.submit, args=(2, {"loss": 2.0}))
    third.start()
    third.join(timeout=0.5)
    assert third.is_alive(), "a third entry was accepted while two were pending"
    release.set()
    third.join(timeout=30)
    assert not third.is_alive()
    steplog.close()


@pytest.mark.gpu
def test_cuda_values_are_read_in_the_worker_thread():
    got = []
    x = torch.arange(1000, device="cuda", dtype=torch.float32)
    with StepLog(lambda values, step: got.append(values), say=lambda _: None) as steplog:
        steplog.submit(0, {"loss": (x * x).sum() / 1e6})
    assert got == [{"loss": pytest.approx(float((x * x).sum()) / 1e6)}]


def test_leaving_on_an_error_drops_what_is_still_waiting():
    started, release, got = threading.Event(), threading.Event(), []

    def slow_store(values, step):
        started.set()
        release.wait(timeout=30)
        got.append(step)

    with pytest.raises(RuntimeError, match="worker lost"):
        with StepLog(slow_store, say=lambda _: None) as steplog:
            for step in range(5):
                steplog.submit(step, {"loss": 1.0})
            assert started.wait(timeout=30)
            threading.Timer(0.2, release.set).start()
            raise RuntimeError("worker lost")
    assert got == [0]  # the entry being logged finished; the four waiting were dropped

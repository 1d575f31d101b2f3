"""One thread's intra-op threads, set without changing any other thread's."""

from __future__ import annotations

import threading

import pytest
import torch

from spacessl.train.threads import limit_this_thread


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _in_thread(fn):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_the_limit_holds_in_its_thread_only(two_threads):
    def limited():
        ok = limit_this_thread(1)
        torch.randn(1 << 18).mul_(2)  # a parallel operator after the limit: it stays in force
        return ok, torch.get_num_threads()

    assert _in_thread(limited) == (True, 1)
    assert torch.get_num_threads() == 2  # the calling thread as before
    assert _in_thread(torch.get_num_threads) == 2  # and a thread started afterwards takes the process's setting


def test_torch_set_num_threads_would_have_changed_later_threads(two_threads):
    # the reason for limit_this_thread: torch's own setter also changes the default of threads started later
    _in_thread(lambda: torch.set_num_threads(1))
    assert _in_thread(torch.get_num_threads) == 1


def test_the_limit_must_be_positive():
    with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
        limit_this_thread(0)

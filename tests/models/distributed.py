"""A method's loss on two gloo worker processes, each with half of a fixed batch of projections."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def _worker(rank: int, world: int, init: str, method: str, kwargs: dict, z0: torch.Tensor, z1: torch.Tensor,
            queue) -> None:
    import torch.distributed as dist

    from spacessl.models.registry import build_method

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        n = z0.shape[0] // world
        a = z0[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        b = z1[rank * n:(rank + 1) * n].clone().requires_grad_(True)
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(12, 16))
        loss = build_method(method, encoder=encoder, embed_dim=16, **kwargs).criterion(a, b)
        loss.backward()
        queue.put((rank, loss.item(), a.grad.tolist()))
    finally:
        dist.destroy_process_group()


def criterion_on_two_workers(tmp_path: Path, method: str, kwargs: dict, z0: torch.Tensor,
                             z1: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The ``criterion`` of ``build_method(method, **kwargs)`` on 2 gloo workers, worker r given rows r·N/2 ..
    (r+1)·N/2 of z0 and z1 (N, P): (the mean of the workers' losses, the workers' gradients with respect to their
    z0 rows stacked in row order and halved, as DDP averages them), to compare with the loss of the whole batch in
    one process and its gradient."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")  # fork after autograd has run in this process is unsafe
    queue = ctx.Queue()
    init = f"file://{tmp_path}/rendezvous"
    procs = [ctx.Process(target=_worker, args=(r, 2, init, method, kwargs, z0, z1, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        results = {}
        for _ in procs:
            rank, loss, grad = queue.get(timeout=120)
            results[rank] = (loss, torch.tensor(grad))
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    return (results[0][0] + results[1][0]) / 2, torch.cat([results[0][1], results[1][1]]) / 2

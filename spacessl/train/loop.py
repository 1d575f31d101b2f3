"""The per-worker training loop (Ray Train's ``train_loop_per_worker``): one loop for 1 CPU or N GPUs.

Each worker:

1. opens the archive itself and, every epoch, reads only its own chunk-aligned share
   (``Archive.shards(world_size, rank, epoch, seed)`` over the non-held-out chunks) through ``Archive.stream``;
   the archive never passes through the driver or the object store;
2. takes ``steps_per_epoch`` optimiser steps, the same on every worker (set by the smallest share, see
   spacessl.train.data), on its ``batch_size / world_size`` slice of the global batch;
3. preprocesses on the CPU, moves the batch to its device and draws two augmented views there; the forward and
   loss run under bf16 autocast on CUDA; DDP (``ray.train.torch.prepare_model``) averages gradients and SimCLR
   gathers negatives from every worker;
4. steps SGD/AdamW at ``lr · global_batch / 256`` (linear scaling rule) on a per-step cosine schedule with warm-up;
   with ``train.time_budget_min`` the cosine also runs over the budget, and all workers stop together when it is
   spent (every :data:`BUDGET_SYNC_STEPS` steps the workers agree on the longest elapsed time);
5. at the end of each epoch calls ``ray.train.report(metrics, checkpoint=...)``; only world rank 0 writes the
   checkpoint, evaluates kNN accuracy on the held-out chunks and logs to MLflow (into the run the driver created);
   its step metrics go through :class:`spacessl.train.step_log.StepLog`'s thread, so no step waits for the device
   or the tracking store, and they are all in the store before the epoch's report.

On start, ``ray.train.get_checkpoint()`` (a restart after a failure, or ``spacessl train --resume``) restores the
model, optimiser, schedule, epoch and step, and training continues with the next epoch.

``config`` (built by spacessl.train.run.train): ``{"config": resolved Config as a dict, "tracking_uri": str,
"mlflow_run_id": str, "git_commit": str}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from spacessl.archive import Archive, open_archive
from spacessl.config import Config, config_to_dict, flatten
from spacessl.models.collapse import embedding_std_tensor
from spacessl.train import checkpoint as ckpt_io
from spacessl.train import data as tdata
from spacessl.train.loader import EpochWork, train_batches
from spacessl.train import monitor
from spacessl.train.schedule import build_scheduler, scaled_lr
from spacessl.train.step_log import StepLog

log = logging.getLogger(__name__)

#: with a time budget and more than one worker, the workers share their elapsed time (one all-reduce) every this
#: many steps, so that all see the same learning rate and stop at the same step; a single worker checks every step
BUDGET_SYNC_STEPS = 8


# ------------------------------------------------------------------------------------------------- components


@dataclass
class Components:
    """What a training step needs, built the same way by the loop, the benchmark and the tests."""

    method: nn.Module  #: SSLMethod: forward(x0, x1) -> {"loss", "z"}; .encoder (B, ...) -> (B, embed_dim)
    preprocess: Any  #: raw archive samples (B, *sample_shape) -> float32 tensor (B, *input_shape)
    augment: Any  #: (B, *input_shape) tensor -> one random view, same shape
    info: dict[str, Any]  #: how to rebuild and feed the encoder (saved as model.json, logged as model metadata)


def method_kwargs(cfg: Config) -> dict[str, Any]:
    """Keyword arguments of ``build_method`` from the model section; build_method keeps those the method takes.

    SimCLR and MoCo always get ``gather_distributed=True``: lightly gathers projections (SimCLR) or keys for the
    queue (MoCo) only when a process group of more than one worker exists, so under DDP the negatives come from
    the whole global batch.
    """
    m = cfg.model
    return {"proj_hidden_dim": m.proj_hidden_dim, "proj_out_dim": m.proj_out_dim, "proj_layers": m.proj_layers,
            "pred_hidden_dim": m.pred_hidden_dim, "temperature": m.temperature, "loss": m.loss,
            "tau_plus": m.tau_plus, "hard_negative_beta": m.hard_negative_beta, "joint_views": m.joint_views,
            "memory_bank_size": m.memory_bank_size, "key_momentum": m.key_momentum, "nn_delay_steps": m.nn_delay_steps,
            "bn_splits": m.bn_splits, "symmetric": m.symmetric, "sim_coeff": m.sim_coeff, "std_coeff": m.std_coeff,
            "cov_coeff": m.cov_coeff, "redundancy_lambda": m.redundancy_lambda, "gather_distributed": True}


def augment_params(cfg: Config, archive: Archive) -> dict[str, Any]:
    """``augment.params`` plus what the archive declares and the preset takes (``sampling_rate_hz``)."""
    from spacessl.augment import PRESETS

    params = dict(cfg.augment.params)
    factory = PRESETS.get((archive.modality, cfg.augment.preset))
    if factory is not None and "sampling_rate_hz" in inspect.signature(factory).parameters \
            and "sampling_rate_hz" in archive.attrs:
        params.setdefault("sampling_rate_hz", float(archive.attrs["sampling_rate_hz"]))
    return params


def build_components(cfg: Config, archive: Archive) -> Components:
    """Encoder + method, preprocessing and augmentation for ``archive`` as the config asks (on the CPU)."""
    from spacessl.augment import build_augment
    from spacessl.augment.preprocess import Preprocess
    from spacessl.models.encoders import build_encoder
    from spacessl.models.registry import build_method

    preprocess = Preprocess.for_archive(archive, input_size=cfg.data.input_size,
                                        window_samples=cfg.data.window_samples, stretch=cfg.data.stretch,
                                        stretch_percentiles=cfg.data.stretch_percentiles)
    augment = build_augment(archive.modality, cfg.augment.preset, **augment_params(cfg, archive))
    in_channels = int(archive.sample_shape[0])
    encoder = build_encoder(cfg.model.encoder, modality=archive.modality, in_channels=in_channels,
                            embed_dim=cfg.model.embed_dim, widths=cfg.model.widths)
    method = build_method(cfg.model.method, encoder=encoder, embed_dim=cfg.model.embed_dim,
                          **method_kwargs(cfg))
    example = preprocess(archive.read(0, min(2, archive.n), fields=[]).samples)
    info = {"encoder": cfg.model.encoder, "method": cfg.model.method, "modality": archive.modality,
            "in_channels": in_channels, "embed_dim": cfg.model.embed_dim, "widths": list(cfg.model.widths),
            "input_shape": list(example.shape[1:]), "input_size": cfg.data.input_size,
            "window_samples": cfg.data.window_samples, "stretch": cfg.data.stretch,
            "stretch_percentiles": list(cfg.data.stretch_percentiles), "sample_shape": list(archive.sample_shape),
            "archive_url": archive.url, "archive_fingerprint": archive.fingerprint(),
            "augment": str(augment)}
    return Components(method=method, preprocess=preprocess, augment=augment, info=info)


#: devices whose parameters torch's fused SGD/AdamW kernels update
FUSED_DEVICES = ("cpu", "cuda")


def build_optimizer(cfg: Config, params, *, global_batch: int) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay) or AdamW at the linearly scaled rate ``lr · global_batch / 256``.

    Built with torch's fused kernel (``fused=True``: one pass over each parameter instead of one op per term of the
    update) when every parameter is a float tensor on the CPU or a CUDA device, so build it after moving the model.
    Same update to float rounding; on two CPU cores AdamW's step over ResNet-18's 11.5 M parameters takes 10 ms
    instead of 70-80 ms, and SGD's 8 ms instead of 21 (benchmarks/optimizer_step.py). Parameters that take no
    gradient (a momentum encoder's, which follows the trained weights) are left out.
    """
    params = [p for p in params if isinstance(p, dict) or p.requires_grad]
    lr = scaled_lr(cfg.train.lr, global_batch)
    tensors = [t for p in params for t in (p["params"] if isinstance(p, dict) else [p])]
    fused = bool(tensors) and all(t.is_floating_point() and t.device.type in FUSED_DEVICES for t in tensors)
    if cfg.train.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay,
                               fused=fused or None)
    return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.train.weight_decay, fused=fused or None)


def views(x: torch.Tensor, augment: Any, generator: torch.Generator | None,
          x_pair: torch.Tensor | None = None, *, joint: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent random views of a preprocessed batch (no gradient through augmentation): both of ``x``, or
    the second of ``x_pair`` (B, ...), each sample's temporal partner.

    With ``joint`` (the default on a GPU) one call of ``augment`` on the (2B, ...) batch of both: every augmentation
    draws its parameters per sample (spacessl.augment.base), so the halves are as independent as two calls make them,
    with half the operator calls, which bound a GPU's views (half the kernel launches). On the CPU (the default there:
    two calls) the data sets the time, and the larger batch's intermediates cost page faults (``benchmarks/views.py``).
    """
    if joint is None:
        joint = x.device.type != "cpu"
    second = x if x_pair is None else x_pair
    with torch.no_grad():
        if not joint:
            return augment(x, generator=generator), augment(second, generator=generator)
        both = augment(torch.cat([x, second]), generator=generator)
        return both[:len(x)], both[len(x):]


def train_step(model: nn.Module, x: torch.Tensor, *, augment: Any, generator: torch.Generator | None,
               optimizer: torch.optim.Optimizer, scheduler: Any | None,
               x_pair: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """One optimiser step on a preprocessed batch ``x`` (B, ...) already on the model's device; with ``x_pair``
    (B, ...) the second view of each sample is made from its partner instead of from itself.

    Returns the method's output ({"loss": scalar, "z": (B, P)}), detached.
    """
    x0, x1 = views(x, augment, generator, x_pair)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
        out = model(x0, x1)
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return {k: v.detach() for k, v in out.items()}


# ------------------------------------------------------------------------------------------------- rank-0 side


class _Rank0:
    """MLflow logging and kNN monitoring, done by world rank 0 only."""

    def __init__(self, cfg: Config, archive: Archive, comps: Components, tracking_uri: str, run_id: str,
                 holdout: list[int], pool: list[int], device: torch.device):
        self.cfg, self.archive, self.comps = cfg, archive, comps
        self.uri, self.run_id, self.device = tracking_uri, run_id, device
        self.knn = bool(holdout)
        if self.knn:
            order = np.random.default_rng([cfg.train.seed, 31]).permutation(pool)
            bank = tdata.read_rows(archive, [int(c) for c in order], cfg.train.knn_max_bank)
            query = tdata.read_rows(archive, holdout, cfg.train.knn_max_query)
            self.bank = self._labelled(bank)
            self.query = self._labelled(query)
            self.knn = len(self.bank[0]) > 0 and len(self.query[0]) > 0

    @staticmethod
    def _labelled(batch) -> tuple[np.ndarray, np.ndarray]:
        labels = np.asarray(batch.meta["label"]).astype(np.int64)
        keep = labels >= 0
        return batch.samples[keep], labels[keep]

    def mlflow(self, fn, *args) -> None:
        if not self.run_id:
            return
        try:
            fn(self.uri, self.run_id, *args)
        except Exception as exc:  # noqa: BLE001 - a tracking outage must not kill training
            log.warning("MLflow logging failed (%s); training continues", exc)

    def start(self, git_commit: str) -> None:
        from spacessl import tracking

        if not self.run_id:
            return
        resolved = config_to_dict(self.cfg)
        self.mlflow(tracking.log_params, flatten(resolved))
        try:
            c = tracking.client(self.uri)
            c.log_text(self.run_id, yaml.safe_dump(resolved, sort_keys=False), "config.yaml")
            c.log_text(self.run_id, self.comps.info["augment"] + "\n", "augment.txt")
            for key, value in {"git_commit": git_commit, "mlflow.source.git.commit": git_commit,
                               "archive_url": self.archive.url,
                               "archive_fingerprint": self.comps.info["archive_fingerprint"],
                               "modality": self.archive.modality, "augment": self.comps.info["augment"][:5000]}.items():
                c.set_tag(self.run_id, key, value)
        except Exception as exc:  # noqa: BLE001
            log.warning("MLflow logging failed (%s); training continues", exc)

    def knn_accuracy(self, encoder: nn.Module) -> float:
        if not self.knn:
            return float("nan")
        pre = self.comps.preprocess
        bank = monitor.embed_batches(encoder, self.bank[0], pre, self.device)
        query = monitor.embed_batches(encoder, self.query[0], pre, self.device)
        return monitor.knn_accuracy(bank, self.bank[1], query, self.query[1], k=self.cfg.train.knn_k)

    def baselines(self, encoder: nn.Module) -> dict[str, float]:
        """kNN accuracy at random initialisation and on raw (pooled) pixels/samples: the bars to beat."""
        if not self.knn:
            return {}
        pre = self.comps.preprocess
        pixels = monitor.knn_accuracy(monitor.pixel_features(self.bank[0], pre), self.bank[1],
                                      monitor.pixel_features(self.query[0], pre), self.query[1],
                                      k=self.cfg.train.knn_k)
        return {"knn_acc_init": self.knn_accuracy(encoder), "knn_acc_pixels": pixels}


# ------------------------------------------------------------------------------------------------- the loop


def _all_reduce(value: float, device: torch.device, op: str = "mean") -> float:
    """Mean (``op="mean"``) or largest (``"max"``) of a float over all workers; the value itself without a process
    group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return float(t.item()) / (dist.get_world_size() if op == "mean" else 1)


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Train worker function; see the module docstring. Returns (rank 0) a summary of the epochs it ran."""
    import ray.train
    import ray.train.torch

    cfg = Config.model_validate(config["config"])
    ctx = ray.train.get_context()
    world, rank = ctx.get_world_size(), ctx.get_world_rank()
    torch.set_num_threads(cfg.runtime.torch_threads or max(1, round(cfg.runtime.cpus_per_worker)))
    device = ray.train.torch.get_device()
    seed = cfg.train.seed

    archive = open_archive(cfg.data.archive)
    local_batch = tdata.local_batch_size(cfg.train.batch_size, world)
    holdout = tdata.holdout_chunks(archive, cfg.data.holdout_fraction, seed)
    pool = tdata.train_chunks(archive, holdout)
    plans = [tdata.plan_epoch(archive, pool, world_size=world, rank=rank, epoch=e, seed=seed,
                              local_batch=local_batch, max_steps=cfg.train.max_steps_per_epoch)
             for e in range(cfg.train.epochs)]
    steps = min(p.steps for p in plans)  # fixed for the schedule, identical on every worker

    torch.manual_seed(seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    comps = build_components(cfg, archive)
    comps.info["mlflow_run_id"] = config.get("mlflow_run_id", "")
    method = comps.method
    if cfg.model.sync_batchnorm and world > 1 and device.type == "cuda":
        method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
    method.to(device)
    optimizer = build_optimizer(cfg, method.parameters(), global_batch=cfg.train.batch_size)
    budget_s = cfg.train.time_budget_min * 60.0 if cfg.train.time_budget_min else None
    scheduler = build_scheduler(optimizer, warmup_steps=round(cfg.train.warmup_epochs * steps),
                                total_steps=cfg.train.epochs * steps, schedule=cfg.train.schedule, budget_s=budget_s)

    start_epoch, global_step = 0, 0
    restored = ray.train.get_checkpoint()
    if restored is not None:
        with restored.as_directory() as d:
            state = ckpt_io.load_state(d)
        method.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scheduler.budget_s = budget_s  # the time spent carries over; the budget is this config's
        start_epoch, global_step = int(state["epoch"]) + 1, int(state["global_step"])
        log.info("rank %d: resumed after epoch %d (step %d)", rank, start_epoch - 1, global_step)
    model = ray.train.torch.prepare_model(method)

    r0 = None
    summary: dict[str, Any] = {"start_epoch": start_epoch, "steps_per_epoch": steps, "world_size": world,
                               "knn_k": cfg.train.knn_k, "reader_processes": cfg.runtime.reader_processes,
                               "time_budget_s": budget_s, "stopped_by_budget": False, "epochs": []}
    if rank == 0:
        r0 = _Rank0(cfg, archive, comps, config.get("tracking_uri", ""), config.get("mlflow_run_id", ""),
                    holdout, pool, device)
        r0.start(config.get("git_commit", "unknown"))
        r0.mlflow(_log_params_once, {"steps_per_epoch": steps, "local_batch_size": local_batch,
                                     "world_size": world, "lr_effective": scaled_lr(cfg.train.lr,
                                                                                    cfg.train.batch_size),
                                     "holdout_chunks": len(holdout), "train_chunks": len(pool)})
        if start_epoch == 0:
            base = r0.baselines(method.encoder)
            summary.update(base)
            r0.mlflow(monitor_log, base, 0)
            if base:
                _say(f"kNN accuracy before training: random init {base['knn_acc_init']:.3f}, "
                     f"raw input {base['knn_acc_pixels']:.3f}")
        _say(f"training {'up to ' if budget_s else ''}{cfg.train.epochs - start_epoch} epoch(s) from epoch "
             f"{start_epoch}: {steps} steps of "
             f"{cfg.train.batch_size} ({world} worker(s) × {local_batch}) per epoch, lr "
             f"{scaled_lr(cfg.train.lr, cfg.train.batch_size):.4g} on {device.type}"
             + (f", read by {cfg.runtime.reader_processes} loader process(es) per worker"
                if cfg.runtime.reader_processes else "")
             + (f", for at most {(budget_s - scheduler.elapsed_s) / 60:.1f} min" if budget_s else ""))

    generator = torch.Generator(device=device)
    paired = cfg.data.pair_within_s > 0
    # every worker's stream has its own shuffle seed each epoch
    work = [EpochWork(e, dataclasses.replace(plans[e], steps=steps), seed * 7919 + e * world + rank)
            for e in range(start_epoch, cfg.train.epochs)]
    # every worker starts its clock here, after rank 0's set-up: the all-reduce waits for all of them
    _all_reduce(0.0, device, "max")
    clock0 = time.perf_counter() - scheduler.elapsed_s  # training time so far counts against the budget
    stop = budget_s is not None and scheduler.elapsed_s >= budget_s
    if stop and rank == 0:
        _say(f"the time budget of {budget_s / 60:.1f} min is spent: nothing left to train "
             "(raise train.time_budget_min to continue)")
    steplog = StepLog(lambda metrics, step: r0.mlflow(monitor_log, metrics, step), say=_say) if r0 else None
    with train_batches(archive, work, processes=cfg.runtime.reader_processes, local_batch=local_batch,
                       preprocess=comps.preprocess, device=device, prefetch=cfg.data.prefetch,
                       buffer_chunks=cfg.data.buffer_chunks, pair_within_s=cfg.data.pair_within_s) as loader, \
            (steplog or contextlib.nullcontext()):
        for epoch in range(start_epoch, cfg.train.epochs):
            if stop:
                break
            epoch_step0 = global_step
            generator.manual_seed(seed * 1_000_003 + epoch * 9973 + rank)
            model.train()
            loss_sum = torch.zeros((), device=device)
            std_sum, std_n = torch.zeros((), device=device), 0
            t_epoch = t_win = time.perf_counter()
            win_steps = 0
            for item in loader.epoch(epoch):
                x, x_pair = item if paired else (item, None)
                out = train_step(model, x, augment=comps.augment, generator=generator, optimizer=optimizer,
                                 scheduler=None, x_pair=x_pair)
                loss_sum += out["loss"].float()
                global_step += 1
                win_steps += 1
                if budget_s is not None and (world == 1 or global_step % BUDGET_SYNC_STEPS == 0):
                    scheduler.elapsed_s = _all_reduce(time.perf_counter() - clock0, device, "max")
                    stop = scheduler.elapsed_s >= budget_s
                scheduler.step()  # the next step's rate, from the time just shared (0 once the budget is spent)
                if rank == 0 and (global_step % cfg.train.log_every_steps == 0):
                    # values stay on the device; steplog's thread waits for them and for the tracking store
                    now = time.perf_counter()
                    std_sum, std_n = std_sum + embedding_std_tensor(out["z"]), std_n + 1
                    at = global_step - epoch * steps
                    line = None
                    if at % max(1, steps // 4) < cfg.train.log_every_steps:
                        line = functools.partial(_progress_line, f"epoch {epoch} step {at}/{steps}")
                    steplog.submit(global_step, {"loss": out["loss"], "lr": scheduler.get_last_lr()[0],
                                                 "samples_per_s": win_steps * cfg.train.batch_size / (now - t_win)},
                                   line)
                    t_win, win_steps = now, 0
                if stop:
                    break
            train_s = time.perf_counter() - t_epoch
            done = global_step - epoch_step0  # steps, fewer than ``steps`` when the budget ran out mid-epoch
            if rank == 0 and std_n == 0:
                std_sum, std_n = embedding_std_tensor(out["z"]), 1
            epoch_loss = _all_reduce(float(loss_sum) / done, device)
            metrics: dict[str, Any] = {"epoch": epoch, "global_step": global_step, "epoch_loss": epoch_loss,
                                       "start_epoch": start_epoch, "epoch_time_s": train_s, "epoch_steps": done,
                                       "epoch_samples_per_s": done * cfg.train.batch_size / train_s,
                                       "train_elapsed_s": _all_reduce(time.perf_counter() - clock0, device, "max")}
            if rank == 0:
                steplog.drain()  # the epoch's step metrics are in the store before its checkpoint is reported
                std = float(std_sum) / std_n
                # SpaceSSL's collapse level max(0, 1 - sqrt(P)·std), from the epoch's mean std of normalised z
                metrics.update(embedding_std=std, collapse=max(0.0, 1.0 - std * math.sqrt(out["z"].shape[1])))
                if r0.knn:
                    metrics["knn_acc"] = r0.knn_accuracy(method.encoder)
                r0.mlflow(monitor_log, {k: v for k, v in metrics.items() if k not in ("epoch", "global_step")}, epoch)
                summary["epochs"].append({k: v for k, v in metrics.items()})
                knn_text = f", kNN accuracy {metrics['knn_acc']:.3f}" if "knn_acc" in metrics else ""
                _say(f"epoch {epoch} done in {train_s:.0f} s: loss {epoch_loss:.4f}, collapse {metrics['collapse']:.3f}"
                     f"{knn_text}" + (f"; time budget spent after {done} of its {steps} steps" if stop else ""))
                summary["stopped_by_budget"] = stop
                with tempfile.TemporaryDirectory(prefix="spacessl-ckpt-") as tmp:
                    ckpt_io.save_checkpoint(tmp, method=method, optimizer=optimizer, scheduler=scheduler, epoch=epoch,
                                            global_step=global_step, info={**comps.info, "config": config["config"]})
                    ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
            else:
                ray.train.report(metrics, checkpoint=None)
    return summary if rank == 0 else {}


def _say(text: str) -> None:
    """A progress line on the driver's console; rank 0 only calls it. Written to stderr: Ray Train tees a worker's
    ``print`` into its logger as well, so stdout lines would reach the console twice."""
    sys.stderr.write(f"[spacessl] {text}\n")
    sys.stderr.flush()


def _progress_line(where: str, values: dict[str, float]) -> str:
    return f"{where}: loss {values['loss']:.4f}, {values['samples_per_s']:.1f} samples/s"


def monitor_log(uri: str, run_id: str, metrics: dict[str, float], step: int) -> None:
    """Log metrics to MLflow (module-level so _Rank0.mlflow can wrap it)."""
    from spacessl import tracking

    tracking.log_metrics(uri, run_id, metrics, step)


def _log_params_once(uri: str, run_id: str, params: dict[str, Any]) -> None:
    from spacessl import tracking

    tracking.log_params(uri, run_id, {f"derived.{k}": v for k, v in params.items()})

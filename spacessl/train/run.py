"""Launch training on Ray Train and register the result: ``train(cfg)`` is what `spacessl train` and
``jobs/train.py`` call.

    cfg = load_config("configs/demo_aurora.yaml")
    result = train(cfg)                 # new run <storage_path>/<name>; refuses to replace an existing one
    result = train(cfg, resume=True)    # continue that run from its latest epoch checkpoint
    result.model_uri                    # models:/NAME/VERSION, also models:/NAME@current and models:/NAME/latest

The driver never touches the training data: it reads the archive's attributes, creates the MLflow run, starts a
``TorchTrainer`` whose workers each stream their own chunks (spacessl.train.loop), and after fit logs the encoder of
the final checkpoint into the same MLflow run, registers it and points the alias at it. Resume follows Ray Train
V2: a trainer started with the same ``RunConfig(name, storage_path)`` finds the run's checkpoint snapshot and hands
its latest checkpoint to the workers (``ray.train.get_checkpoint()``); ``FailureConfig(max_failures)`` does the same
automatically when a worker dies, so a failure costs at most the epoch in progress.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spacessl.config import Config, config_to_dict
from spacessl.errors import ConfigError, SpacesslError

log = logging.getLogger(__name__)

RUN_STATE_FILE = "spacessl_run.json"
CONFIG_FILE = "config.yaml"
#: config sections that must not change when a run is resumed (the weights would not fit, or mean something else)
FROZEN_ON_RESUME = ("data", "model", "augment", "train.batch_size", "train.optimizer", "train.seed")


class RunExistsError(SpacesslError):
    """A run of the same name already exists in the storage path."""


@dataclass
class TrainResult:
    """What a finished training run produced.

    Attributes:
        run_name: the run's name (directory under the storage path).
        run_dir: ``<storage_path>/<run_name>``: checkpoints, the resolved config.yaml, spacessl_run.json.
        checkpoint_path: the final epoch's checkpoint (loadable by spacessl.tracking.load_encoder).
        mlflow_run_id, tracking_uri: where params, metrics and the model were logged.
        model_uri: ``models:/NAME/VERSION`` when registered, else ``runs:/ID/model``.
        registered_name, version, alias: the registry entry ("" / None when not registered).
        metrics: the last epoch's reported metrics; summary: rank 0's summary (start_epoch, baselines, epochs).
    """

    run_name: str
    run_dir: str
    checkpoint_path: str
    mlflow_run_id: str
    tracking_uri: str
    model_uri: str
    registered_name: str = ""
    version: str | None = None
    alias: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- storage


def _storage(path: str) -> tuple[Any, str, str]:
    """(fsspec filesystem, path within it, the storage path to give Ray: absolute for local folders)."""
    import fsspec.core

    if "://" not in path:
        path = str(Path(path).expanduser().resolve())
    fs, inner = fsspec.core.url_to_fs(path)
    return fs, inner, path


def _diff(old: dict[str, Any], new: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    from spacessl.config import flatten

    fo, fn = flatten(old), flatten(new)
    out = []
    for key in sorted(set(fo) | set(fn)):
        if any(key == k or key.startswith(k + ".") for k in keys) and fo.get(key) != fn.get(key):
            out.append(f"{key}: {fo.get(key)!r} -> {fn.get(key)!r}")
    return out


def prepare_run_dir(cfg: Config, *, resume: bool, overwrite: bool) -> tuple[str, str, dict[str, Any]]:
    """Check the run directory against resume/overwrite; returns (Ray storage path, run dir, saved run state)."""
    fs, inner, storage = _storage(cfg.runtime.storage_path)
    run_inner = f"{inner.rstrip('/')}/{cfg.name}"
    run_dir = f"{storage.rstrip('/')}/{cfg.name}"
    exists = fs.exists(run_inner) and bool(fs.ls(run_inner))
    state: dict[str, Any] = {}
    if exists and resume:
        state_path = f"{run_inner}/{RUN_STATE_FILE}"
        if fs.exists(state_path):
            state = json.loads(fs.cat_file(state_path))
            changed = _diff(state.get("config", {}), config_to_dict(cfg), FROZEN_ON_RESUME)
            if changed:
                raise ConfigError(f"cannot resume run '{cfg.name}' with a different config: {'; '.join(changed)}. "
                                  "Resume with the run's own config (saved as " f"{run_dir}/{CONFIG_FILE}) "
                                  "or start a new run with another name")
    elif exists and not overwrite:
        raise RunExistsError(f"run '{cfg.name}' already exists at {run_dir}; pass --resume to continue it, "
                             "--overwrite to delete it and start over, or name=<new name> for a new run")
    elif exists and overwrite:
        fs.rm(run_inner, recursive=True)
    elif resume:
        raise SpacesslError(f"nothing to resume: no run '{cfg.name}' at {run_dir}; drop --resume to start it")
    return storage, run_dir, state


def _write_run_files(cfg: Config, run_dir: str, state: dict[str, Any]) -> None:
    import fsspec

    from spacessl.archive.store import write_whole

    fs, inner = fsspec.core.url_to_fs(run_dir)
    fs.makedirs(inner, exist_ok=True)
    # whole or not at all: a driver killed while it resumes a run leaves the run's files as they were
    config = config_to_dict(cfg)
    write_whole(fs, f"{inner}/{RUN_STATE_FILE}", json.dumps({**state, "config": config}, indent=1).encode())
    write_whole(fs, f"{inner}/{CONFIG_FILE}", yaml.safe_dump(config, sort_keys=False).encode())


# ------------------------------------------------------------------------------------------------- ray


def connect_ray(address: str = "") -> bool:
    """Connect to ``address`` / $RAY_ADDRESS (the cluster a job was submitted to), or start a local Ray with every
    CPU of this machine. Returns True when this call started or connected it (the caller shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS", "")
    if address:
        ray.init(address=address)
    else:
        # the dashboard serves the state API that Ray Train's placement-group cleaner polls to see whether the
        # controller lives; without one of its own the query goes to whatever answers on localhost:8265 (another
        # local cluster, which knows no such actor, so the cleaner removes this run's workers). Ray picks a free
        # port when 8265 is taken.
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=True)
    return True


def scaling_config(cfg: Config):
    """``ScalingConfig(num_workers, use_gpu, resources_per_worker={"CPU": cpus_per_worker})``; ``use_gpu: auto``
    means "when the cluster has GPUs". Raises ConfigError when the cluster cannot hold the workers."""
    import ray
    from ray.train import ScalingConfig

    res = ray.cluster_resources()
    use_gpu = {"true": True, "false": False}.get(cfg.runtime.use_gpu, res.get("GPU", 0) >= 1)
    need_cpu = cfg.runtime.num_workers * cfg.runtime.cpus_per_worker
    if need_cpu > res.get("CPU", 0) + 1e-9:
        raise ConfigError(
            f"runtime.num_workers={cfg.runtime.num_workers} × runtime.cpus_per_worker={cfg.runtime.cpus_per_worker} "
            f"needs {need_cpu:g} CPUs but the Ray cluster has {res.get('CPU', 0):g}; lower one of them "
            "(fractions such as cpus_per_worker=0.9 are allowed)")
    if use_gpu and cfg.runtime.num_workers > res.get("GPU", 0):
        raise ConfigError(f"runtime.num_workers={cfg.runtime.num_workers} GPU workers but the cluster has "
                          f"{res.get('GPU', 0):g} GPUs; lower runtime.num_workers or set runtime.use_gpu=false")
    return ScalingConfig(num_workers=cfg.runtime.num_workers, use_gpu=use_gpu,
                         resources_per_worker={"CPU": cfg.runtime.cpus_per_worker})


# ------------------------------------------------------------------------------------------------- train


def registered_model_name(cfg: Config, modality: str) -> str:
    """``tracking.model_name``, else ``<experiment>-<modality>``."""
    return cfg.tracking.model_name or f"{cfg.tracking.experiment}-{modality}"


def _with_absolute_archive(cfg: Config) -> Config:
    """``cfg`` with a relative local ``data.archive`` made absolute: Ray Train workers run in their own folders."""
    from spacessl.archive.store import is_local, local_path

    if not is_local(cfg.data.archive) or Path(local_path(cfg.data.archive)).is_absolute():
        return cfg
    out = cfg.model_copy(deep=True)
    out.data.archive = str(Path(local_path(cfg.data.archive)).resolve())
    return out


def train(cfg: Config, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train ``cfg`` on Ray Train, then log, register and alias the encoder in MLflow. See the module docstring.

    Raises:
        ConfigError: no archive, a batch that does not split over the workers, too few CPUs/GPUs, or a resumed
            run whose data/model/augment settings changed.
        RunExistsError: the run exists and neither ``resume`` nor ``overwrite`` was given.
    """
    import ray.train
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig
    from ray.train.torch import TorchTrainer

    from spacessl import tracking
    from spacessl.archive import open_archive
    from spacessl.train.loop import train_loop_per_worker

    if not cfg.data.archive:
        raise ConfigError("data.archive is empty: set it in the config or pass data.archive=PATH")
    if cfg.tracking.model_alias.lower() == "latest":
        raise ConfigError("tracking.model_alias 'latest' is reserved by MLflow (models:/NAME/latest already means "
                          "the newest version); use another alias such as 'current'")
    cfg = _with_absolute_archive(cfg)
    archive = open_archive(cfg.data.archive)  # attributes only; the workers read the data
    storage, run_dir, state = prepare_run_dir(cfg, resume=resume, overwrite=overwrite)

    tracking_uri = tracking.resolve_tracking_uri(cfg.tracking.uri, cfg.runtime.output_dir)
    run_id = state.get("mlflow_run_id", "") if resume else ""
    if run_id and state.get("tracking_uri") == tracking_uri:
        tracking.set_status(tracking_uri, run_id, "RUNNING")
    else:
        run_id = tracking.create_run(tracking_uri, cfg.tracking.experiment, cfg.tracking.run_name or cfg.name,
                                     tags={"run_dir": run_dir, "archive_url": archive.url})
    commit = tracking.git_commit()
    _write_run_files(cfg, run_dir, {"mlflow_run_id": run_id, "tracking_uri": tracking_uri, "git_commit": commit})

    started = connect_ray(cfg.runtime.ray_address)
    try:
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"config": config_to_dict(cfg), "tracking_uri": tracking_uri,
                               "mlflow_run_id": run_id, "git_commit": commit},
            scaling_config=scaling_config(cfg),
            run_config=RunConfig(name=cfg.name, storage_path=storage,
                                 failure_config=FailureConfig(max_failures=cfg.runtime.max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=cfg.runtime.checkpoints_to_keep),
                                 logging_config=LoggingConfig(log_level="WARNING")),
        )
        try:
            result = trainer.fit()
        except BaseException:
            tracking.set_status(tracking_uri, run_id, "FAILED")
            raise
    finally:
        if started:
            ray.shutdown()
    if result.checkpoint is None:
        raise SpacesslError(f"run '{cfg.name}' finished without a checkpoint; see the Ray logs under {run_dir}")

    with result.checkpoint.as_directory() as ckpt_dir:
        encoder, info = tracking.load_encoder(str(ckpt_dir))
    checkpoint_path = result.checkpoint.path
    name = registered_model_name(cfg, archive.modality) if cfg.tracking.register_model else ""
    example = _example_input(info["input_shape"], archive.modality)
    meta = {k: v for k, v in info.items() if k not in ("config", "uri", "source")}
    logged = tracking.log_encoder(tracking_uri, run_id, encoder, example, info=meta, registered_name=name,
                                  alias=cfg.tracking.model_alias if name else "")
    tracking.set_status(tracking_uri, run_id, "FINISHED")
    model_uri = logged["registered_uri"] or f"runs:/{run_id}/{tracking.MODEL_ARTIFACT}"
    return TrainResult(run_name=cfg.name, run_dir=run_dir, checkpoint_path=str(checkpoint_path),
                       mlflow_run_id=run_id, tracking_uri=tracking_uri, model_uri=model_uri, registered_name=name,
                       version=logged["version"], alias=cfg.tracking.model_alias if name else "",
                       metrics=dict(result.metrics or {}), summary=dict(result.return_value or {}))


def _example_input(input_shape: list[int], modality: str):
    """A seeded (2, *input_shape) float32 input example in the preprocessed value range."""
    import torch

    g = torch.Generator().manual_seed(0)
    shape = (2, *input_shape)
    return torch.rand(shape, generator=g) if modality == "image" else torch.randn(shape, generator=g)


def describe(result: TrainResult) -> str:
    """Human-readable summary: kNN accuracy beside its random-init and raw-input baselines, and where to look."""
    s, m = result.summary, result.metrics
    lines = [f"run '{result.run_name}': {len(s.get('epochs', []))} epoch(s) from epoch {s.get('start_epoch', 0)}, "
             f"final loss {m.get('epoch_loss', float('nan')):.4f}"]
    knn = m.get("knn_acc")
    if knn is not None and not (isinstance(knn, float) and math.isnan(knn)):
        init, pix = s.get("knn_acc_init"), s.get("knn_acc_pixels")
        parts = [f"kNN accuracy (k={s.get('knn_k', 20)}, held-out chunks): trained {knn:.3f}"]
        if init is not None:
            parts.append(f"random init {init:.3f}")
        if pix is not None:
            parts.append(f"raw input {pix:.3f}")
        lines.append(" | ".join(parts))
    if "collapse" in m:
        lines.append(f"collapse level {m['collapse']:.3f} (0 = spread, 1 = collapsed), "
                     f"embedding std {m.get('embedding_std', float('nan')):.4f}")
    lines.append(f"model: {result.model_uri}" + (f" (alias models:/{result.registered_name}@{result.alias})"
                                                   if result.alias else ""))
    lines.append(f"checkpoint: {result.checkpoint_path}")
    lines.append(f"MLflow run {result.mlflow_run_id} in {result.tracking_uri}")
    if result.tracking_uri.startswith("sqlite:///"):
        lines.append(f"see it with: mlflow ui --backend-store-uri {result.tracking_uri}")
    return "\n".join(lines)

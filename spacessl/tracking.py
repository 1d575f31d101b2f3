"""MLflow: where runs go, what a run records, and how a trained encoder is found again.

Tracking URI, first that is set: ``tracking.uri`` in the config, ``$MLFLOW_TRACKING_URI``, else a local SQLite store
``sqlite:///<runtime.output_dir>/mlflow.db`` with artifacts in ``<runtime.output_dir>/mlartifacts`` (view it with
``mlflow ui --backend-store-uri sqlite:///out/mlflow.db``).

A training run records (world rank 0 of the workers, see spacessl.train.loop): the flattened resolved config as
params, ``config.yaml`` and ``augment.txt`` artifacts, tags ``git_commit``, ``archive_url``,
``archive_fingerprint``; per-step ``loss``, ``lr``, ``samples_per_s``; per-epoch ``epoch_loss``,
``embedding_std``, ``collapse``, ``knn_acc`` (with ``knn_acc_init`` and ``knn_acc_pixels`` baselines). After fit
the driver logs the encoder (``model``) into the same run, registers it and sets an alias. Outputs made from the
model later add their lineage to the run (:func:`record_lineage`): tags ``lineage.embeddings.<key>`` and
``lineage.index.<key>`` holding their URLs, with ``lineage/<kind>-<key>.json`` artifacts.

:func:`load_encoder` takes any of::

    models:/NAME/VERSION    models:/NAME/latest    models:/NAME@alias    runs:/RUN_ID/model
    <checkpoint or run directory>
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spacessl.errors import SpacesslError

log = logging.getLogger(__name__)

#: metric keys shown by `spacessl runs`, in order (column title, metric key)
KEY_METRICS = (("loss", "epoch_loss"), ("knn_acc", "knn_acc"), ("knn_init", "knn_acc_init"),
               ("collapse", "collapse"), ("samples/s", "samples_per_s"))
MODEL_ARTIFACT = "model"


class TrackingError(SpacesslError):
    """A model URI or tracking store cannot be used."""


# ------------------------------------------------------------------------------------------------- stores


def resolve_tracking_uri(uri: str = "", output_dir: str | Path = "out") -> str:
    """The tracking URI to use: ``uri``, else $MLFLOW_TRACKING_URI, else ``sqlite:///<abs output_dir>/mlflow.db``."""
    if uri:
        return uri
    env = os.environ.get("MLFLOW_TRACKING_URI", "")
    if env:
        return env
    out = Path(output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{out / 'mlflow.db'}"


def recorded_tracking_uri(attrs: Mapping[str, Any], uri: str | None = "") -> str | None:
    """The MLflow store for work on an embeddings store with attributes ``attrs``: ``uri`` when given, else
    $MLFLOW_TRACKING_URI, else the store its embedding job loaded the model from (attribute ``tracking_uri``, where
    the model's run lives), else None."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or attrs.get("tracking_uri") or None


def local_artifact_root(tracking_uri: str) -> str | None:
    """``file://<dir>/mlartifacts`` beside a local SQLite store (so artifacts never land in the CWD), else None."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def client(tracking_uri: str):
    """An ``MlflowClient`` for ``tracking_uri`` (also the registry), with the global URI set to it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def experiment_id(tracking_uri: str, name: str) -> str:
    """Id of experiment ``name``, created (with a local artifact root for SQLite stores) if missing."""
    c = client(tracking_uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(name, artifact_location=local_artifact_root(tracking_uri))


def git_commit(path: str | Path | None = None) -> str:
    """Commit hash of the git checkout holding ``path`` (default: this package), with ``-dirty`` when it has
    uncommitted changes; "unknown" outside a checkout."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def create_run(tracking_uri: str, experiment: str, run_name: str, tags: dict[str, str] | None = None) -> str:
    """Start a new run (status RUNNING) and return its id; the caller passes the id to whoever logs."""
    c = client(tracking_uri)
    run = c.create_run(experiment_id(tracking_uri, experiment), run_name=run_name or None, tags=tags or {})
    return run.info.run_id


def set_status(tracking_uri: str, run_id: str, status: str) -> None:
    """Mark a run RUNNING, FINISHED, FAILED or KILLED."""
    c = client(tracking_uri)
    if status == "RUNNING":
        c.update_run(run_id, status="RUNNING")
    else:
        c.set_terminated(run_id, status=status)


def log_params(tracking_uri: str, run_id: str, params: dict[str, Any]) -> None:
    """Log params in batches, skipping keys the run already has (a resumed run keeps its first values)."""
    from mlflow.entities import Param

    c = client(tracking_uri)
    have = c.get_run(run_id).data.params
    todo = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in have]
    for start in range(0, len(todo), 100):
        c.log_batch(run_id, params=todo[start:start + 100])


def log_metrics(tracking_uri: str, run_id: str, metrics: dict[str, float], step: int) -> None:
    """Log finite numeric metrics at ``step`` in one call."""
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()
             if v is not None and math.isfinite(float(v))]
    if batch:
        client(tracking_uri).log_batch(run_id, metrics=batch)


# ------------------------------------------------------------------------------------------------- models


class LoadedEncoder(nn.Module):
    """An encoder loaded from MLflow's ``pt2`` (torch.export) format, usable like any module: ``.to(device)``,
    ``.eval()`` (the exported graph is already in inference mode), ``encoder(x)`` → (B, D)."""

    def __init__(self, graph: nn.Module):
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)

    def train(self, mode: bool = True) -> LoadedEncoder:  # the exported graph refuses train()/eval()
        self.training = mode
        return self


def pip_requirements() -> list[str]:
    """What the logged encoder needs to load (pinned to this environment, local build tags stripped)."""
    import mlflow
    import numpy

    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}",
            f"numpy=={numpy.__version__}"]


@contextlib.contextmanager
def cpu_prediction_device() -> Iterator[None]:
    """Within the block MLflow's pyfunc loads models on the CPU ($MLFLOW_DEFAULT_PREDICTION_DEVICE=cpu) unless the
    variable is already set. ``log_model`` checks the input example by loading the model through pyfunc, which on a
    CUDA host asks for the GPU, and a ``pt2`` export holds its weights on the device it was exported from (the CPU
    here), so without this the check fails on every GPU machine."""
    key = "MLFLOW_DEFAULT_PREDICTION_DEVICE"
    if os.environ.get(key):
        yield
        return
    os.environ[key] = "cpu"
    try:
        yield
    finally:
        os.environ.pop(key, None)


def log_encoder(tracking_uri: str, run_id: str, encoder: nn.Module, example: torch.Tensor, *,
                info: dict[str, Any], registered_name: str = "", alias: str = "") -> dict[str, Any]:
    """Log ``encoder`` (eval mode, CPU) as artifact ``model`` of run ``run_id`` with a signature, the input
    ``example`` (B≥2, *input_shape) float32 and ``info`` as metadata; register it as ``registered_name`` and point
    ``alias`` at the new version. Returns {"model_uri", "name", "version", "registered_uri"}.

    The default (``pt2``, torch.export) format loads without spacessl; an encoder that cannot be exported falls
    back to the ``pickle`` format (needs spacessl at load time).
    """
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    client(tracking_uri)
    encoder = encoder.cpu().eval()
    x = example.detach().cpu().float()
    with torch.no_grad():
        y = encoder(x)
    signature = infer_signature(x.numpy(), y.numpy())
    kwargs = dict(name=MODEL_ARTIFACT, signature=signature, input_example=x.numpy(),
                  pip_requirements=pip_requirements(), metadata=info)
    with mlflow.start_run(run_id=run_id, log_system_metrics=False), cpu_prediction_device():
        try:
            logged = mlflow.pytorch.log_model(encoder, **kwargs)
        except Exception as exc:  # noqa: BLE001 - torch.export cannot trace it: keep the whole module instead
            log.warning("pt2 export of the encoder failed (%s); logging it in the pickle format", exc)
            logged = mlflow.pytorch.log_model(encoder, serialization_format="pickle", **kwargs)
    out: dict[str, Any] = {"model_uri": logged.model_uri, "name": registered_name, "version": None,
                           "registered_uri": ""}
    if registered_name:
        version = str(mlflow.register_model(logged.model_uri, registered_name).version)
        c = client(tracking_uri)
        if alias:
            c.set_registered_model_alias(registered_name, alias, version)
        c.set_tag(run_id, "registered_model", f"{registered_name}/{version}")
        out.update(version=version, registered_uri=f"models:/{registered_name}/{version}")
    return out


def load_encoder(uri: str, *, tracking_uri: str | None = None,
                 map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a trained encoder (eval mode) and what is known about it.

    Args:
        uri: ``models:/NAME/VERSION``, ``models:/NAME/latest`` (newest version), ``models:/NAME@alias``
            (training sets ``@current``), ``runs:/RUN_ID/model``, a checkpoint directory
            (holding model.json, encoder.pt) or a run directory ``<storage_path>/<name>`` (its newest checkpoint).
        tracking_uri: MLflow store for ``models:/`` and ``runs:/`` URIs; default $MLFLOW_TRACKING_URI or the
            local store ``sqlite:///out/mlflow.db``.
        map_location: device for the weights.
    Returns:
        (encoder, info): the module maps preprocessed input (B, C, H, W) or (B, C, T) float32 to (B, D) float32;
        info holds ``uri``, ``source`` ("mlflow" | "checkpoint"), ``run_id``, ``name``, ``version``, ``modality``,
        ``encoder``, ``in_channels``, ``embed_dim``, ``input_size``, ``window_samples``, ``sample_shape``,
        ``archive_url``, ``archive_fingerprint``, ``method``, ``epoch`` (those that were recorded).
    """
    if uri.startswith(("models:/", "runs:/")):
        return _load_mlflow(uri, tracking_uri or resolve_tracking_uri(), map_location)
    return _load_checkpoint(_checkpoint_path(uri), map_location)


def read_model_info(uri: str, *, tracking_uri: str | None = None) -> dict[str, Any]:
    """What :func:`load_encoder` returns as ``info`` for ``uri``, read without loading the weights: the model's
    recorded metadata (MLflow) or ``model.json`` (checkpoint), with ``uri``, ``source``, ``run_id`` and, for
    ``models:/`` URIs, ``name`` and ``version``.

    Raises TrackingError naming the store when MLflow does not know the model; a checkpoint folder without a
    checkpoint raises the checkpoint reader's error.
    """
    if uri.startswith(("models:/", "runs:/")):
        import mlflow

        tracking_uri = tracking_uri or resolve_tracking_uri()
        c = client(tracking_uri)
        try:
            model_info = mlflow.models.get_model_info(uri)
            info: dict[str, Any] = dict(model_info.metadata or {})
            info.update(uri=uri, source="mlflow", run_id=model_info.run_id or info.get("mlflow_run_id", ""))
            if uri.startswith("models:/"):
                info.update(_registered_version(c, uri))
        except Exception as exc:  # noqa: BLE001 - MLflow raises several types for an unknown model
            raise TrackingError(f"cannot find model {uri!r} in the tracking store {tracking_uri}: {exc}. List runs "
                                "with `spacessl runs`, or pass --tracking-uri") from exc
        return info
    from spacessl.train.checkpoint import latest_checkpoint, read_info

    ckpt = latest_checkpoint(_checkpoint_path(uri))
    info = read_info(ckpt)
    info.update(uri=str(ckpt), source="checkpoint", run_id=info.get("mlflow_run_id", ""))
    return info


def _checkpoint_path(uri: str) -> str:
    if "://" in uri and not uri.startswith("file://"):
        raise TrackingError(f"cannot load an encoder from {uri!r}: use models:/NAME/VERSION, models:/NAME@alias, "
                            "runs:/RUN_ID/model or a local checkpoint directory")
    return uri.removeprefix("file://")


def _registered_version(c: Any, uri: str) -> dict[str, str]:
    """``name`` and ``version`` of a ``models:/NAME/VERSION``, ``models:/NAME/latest`` or ``models:/NAME@alias``."""
    ref = uri[len("models:/"):]
    name, _, rest = ref.partition("@") if "@" in ref else ref.partition("/")
    if "@" in ref:
        version = c.get_model_version_by_alias(name, rest).version
    elif rest == "latest":
        version = max(int(v.version) for v in c.search_model_versions(f"name='{name}'"))
    else:
        version = rest
    return {"name": name, "version": str(version)}


_PLAIN = (str, int, float, bool, type(None))


def plain_info(info: dict[str, Any]) -> dict[str, Any]:
    """The entries of a model's ``info`` that outputs made from it record as attributes: plain values and lists of
    plain values (``widths``, ``stretch_percentiles``, ``input_shape``, ...; tuples become lists). Nested mappings
    (the training ``config``) are left out.

    Every entry that rebuilds or feeds the encoder must survive: the evaluation's baselines are made from them.
    """
    out: dict[str, Any] = {}
    for k, v in info.items():
        if isinstance(v, _PLAIN):
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(e, _PLAIN) for e in v):
            out[k] = list(v)
    return out


def _load_mlflow(uri: str, tracking_uri: str, map_location: str | torch.device) -> tuple[nn.Module, dict]:
    import mlflow.pytorch
    from mlflow.exceptions import MlflowException

    info = read_model_info(uri, tracking_uri=tracking_uri)
    try:
        module = mlflow.pytorch.load_model(uri, map_location=map_location)
    except (MlflowException, OSError) as exc:
        raise TrackingError(f"cannot load model {uri!r} from tracking store {tracking_uri}: {exc}. "
                            "List models with `mlflow models` / the MLflow UI, or runs with `spacessl runs`") from exc
    if not isinstance(module, nn.Module) or type(module).__name__.startswith("GraphModule"):
        module = LoadedEncoder(module)
    return module.eval(), info


def _load_checkpoint(path: str, map_location: str | torch.device) -> tuple[nn.Module, dict]:
    from spacessl.models.encoders import build_encoder
    from spacessl.train.checkpoint import ENCODER_FILE

    info = read_model_info(path)
    encoder = build_encoder(info["encoder"], modality=info["modality"], in_channels=int(info["in_channels"]),
                            embed_dim=int(info["embed_dim"]), widths=info.get("widths"))
    encoder.load_state_dict(torch.load(Path(info["uri"]) / ENCODER_FILE, map_location=map_location,
                                       weights_only=True))
    return encoder.to(map_location).eval(), info


# ------------------------------------------------------------------------------------------------- lineage

#: what a model's training run records about the outputs made from it (tag ``lineage.<kind>.<key>``)
LINEAGE_KINDS = ("embeddings", "index")


def lineage_key(url: str) -> str:
    """Short stable key of an output URL (12 hex digits of its SHA-1): the same output always gets the same tag."""
    import hashlib

    return hashlib.sha1(url.encode()).hexdigest()[:12]


def _reachable(tracking_uri: str, timeout_s: float = 5.0) -> bool:
    """False for an http(s) tracking server that does not answer /health in time (MLflow's own client would retry
    for minutes); other stores (sqlite:///, file:) are taken as reachable."""
    if not tracking_uri.startswith(("http://", "https://")):
        return True
    import urllib.request

    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=timeout_s) as r:
            return r.status == 200
    except OSError:
        return False


def record_lineage(model_uri: str, kind: str, url: str, info: dict[str, Any] | None = None, *,
                   tracking_uri: str | None = None, run_id: str = "") -> str | None:
    """Record on the training run of ``model_uri`` that output ``url`` of ``kind`` was made from the model.

    Sets the tag ``lineage.<kind>.<key>`` = ``url`` (``key`` = :func:`lineage_key` of the URL, so a rerun updates
    the same tag) and logs ``info`` (archive URL and fingerprint, n, dim, ...) with ``url`` and ``model_uri`` as
    the artifact ``lineage/<kind>-<key>.json``. Only MLflow models (``models:/``, ``runs:/``) have a run to record
    on; a checkpoint path is skipped.

    Args:
        model_uri: the model the output was made with.
        kind: one of :data:`LINEAGE_KINDS` ("embeddings", "index").
        url: where the output is (embeddings store URL, index folder).
        info: JSON-ready facts about the output.
        tracking_uri: the store holding the model (default: $MLFLOW_TRACKING_URI; nothing is recorded without one).
        run_id: the model's training run when known (else looked up from ``model_uri``).
    Returns:
        The run id recorded on, or None when nothing was recorded. A store that cannot be reached, or a model it
        does not know, gives a warning and None: the output itself is never lost over its lineage.
    """
    if kind not in LINEAGE_KINDS:
        raise ValueError(f"Unrecognized lineage kind {kind!r}. Available kinds are: {', '.join(LINEAGE_KINDS)}.")
    if not model_uri.startswith(("models:/", "runs:/")):
        return None
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri:
        return None
    if not _reachable(tracking_uri):
        log.warning("lineage of %s %s not recorded: tracking server %s does not answer", kind, url, tracking_uri)
        return None
    import json

    try:
        c = client(tracking_uri)
        if not run_id:
            import mlflow

            run_id = mlflow.models.get_model_info(model_uri).run_id or ""
        if not run_id:
            log.warning("lineage of %s %s not recorded: model %s has no run", kind, url, model_uri)
            return None
        key = lineage_key(url)
        c.set_tag(run_id, f"lineage.{kind}.{key}", url)
        record = {"kind": kind, "url": url, "model_uri": model_uri, **(info or {})}
        c.log_text(run_id, json.dumps(record, indent=1, default=str), f"lineage/{kind}-{key}.json")
    except Exception as exc:  # noqa: BLE001 - any MLflow or network failure: warn, keep the output
        log.warning("lineage of %s %s not recorded on the run of %s in %s: %s", kind, url, model_uri,
                    tracking_uri, exc)
        return None
    return run_id


# ------------------------------------------------------------------------------------------------- listing


def list_runs(n: int = 20, *, tracking_uri: str | None = None, experiment: str | None = None) -> list[dict]:
    """The ``n`` most recent runs (all experiments unless ``experiment``), newest first, each a dict with
    run_id, name, experiment, status, start (ISO time), model (registered NAME/VERSION if any) and KEY_METRICS."""
    import datetime as dt

    tracking_uri = tracking_uri or resolve_tracking_uri()
    c = client(tracking_uri)
    if experiment:
        exp = c.get_experiment_by_name(experiment)
        if exp is None:
            return []
        exps = {exp.experiment_id: exp.name}
    else:
        exps = {e.experiment_id: e.name for e in c.search_experiments()}
    if not exps:
        return []
    runs = c.search_runs(list(exps), max_results=n, order_by=["attributes.start_time DESC"])
    out = []
    for run in runs:
        m = run.data.metrics
        row = {"run_id": run.info.run_id, "name": run.info.run_name, "experiment": exps.get(run.info.experiment_id),
               "status": run.info.status,
               "start": dt.datetime.fromtimestamp(run.info.start_time / 1000).isoformat(timespec="seconds"),
               "model": run.data.tags.get("registered_model", "")}
        for title, key in KEY_METRICS:
            row[title] = m.get(key)
        out.append(row)
    return out

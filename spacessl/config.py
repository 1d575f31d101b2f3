"""Typed configuration: defaults ← experiment YAML ← dotted command-line overrides.

Every section is a pydantic model with ``extra="forbid"``, so a mistyped key is an error that names the key and the
nearest valid one. An experiment file may name a base file to layer on with ``base: other.yaml`` (relative to the
file). The resolved config is saved as YAML next to every output (:func:`save_config`).

Example::

    cfg = load_config("configs/demo_aurora.yaml", ["train.batch_size=128", "train.epochs=2"])
    save_config(cfg, "out/run/config.yaml")
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spacessl.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the training data lives and how it is read."""

    archive: str = ""  #: archive URL (local path, s3://, gs://)
    input_size: int | None = None  #: image side in px after preprocessing; None keeps the archive's size
    window_samples: int | None = None  #: waveform length T after preprocessing; None keeps the archive's
    #: images: "percentile" scales each frame so that its stretch_percentiles (inside the field of view) map to 0
    #: and 1, as all-sky quick-looks are scaled (exposure and gain no longer set the level); "none" keeps DN/max
    stretch: Literal["none", "percentile"] = "none"
    stretch_percentiles: tuple[float, float] = (1.0, 99.5)  #: (low, high) in [0, 100]
    holdout_fraction: float = Field(0.1, ge=0.0, lt=1.0)  #: chunks held out for kNN monitoring
    #: > 0: the second view of each sample is made from another sample of the same source recorded at most this
    #: many seconds away (itself when there is none), found among the shuffle buffer's chunks: temporal positive
    #: pairs, which teach that a scene evolving over seconds (an all-sky camera's next frames) stays the same
    #: scene. 0: both views come from the sample itself
    pair_within_s: float = Field(0.0, ge=0.0)
    prefetch: int = Field(2, ge=1)  #: chunks read ahead per worker
    buffer_chunks: int = Field(2, ge=1)  #: chunks in the shuffle buffer per worker


class ModelConfig(_Section):
    """Encoder and self-supervised method."""

    encoder: str = "auto"  #: "auto" (by modality), "resnet18", "resnet18_s2d" (space-to-depth stem), "resnet1d"
    method: str = "simsiam"  #: a name in spacessl.models.registry
    embed_dim: int = 512  #: encoder output; other than the last stage's width, a linear layer after the pool
    #: channels of the encoder's four stages; ResNet-18's are [64, 128, 256, 512]. The early stages do most of the
    #: operations: [32, 64, 128, 512] trains about 2.1 x as fast on 64 px frames (docs/experiments.md)
    widths: list[int] = Field(default_factory=lambda: [64, 128, 256, 512], min_length=4, max_length=4)
    proj_hidden_dim: int = 512
    proj_out_dim: int = 512
    #: SimCLR: linear layers of the projection head, 2 (SimCLR) or more (SimCLR v2: 3, Chen et al. 2020)
    proj_layers: int = Field(2, ge=2)
    pred_hidden_dim: int = 128
    temperature: float = Field(0.5, gt=0.0)  #: SimCLR contrastive-loss temperature
    #: SimCLR's contrastive loss: "ntxent" (NT-Xent), "dcl" / "dclw" (decoupled contrastive learning, the positive
    #: out of the denominator; less dependent on a large batch), "debiased" (negatives corrected for the share
    #: ``tau_plus`` of same-kind samples among them; Chuang et al. 2020)
    loss: Literal["ntxent", "dcl", "dclw", "debiased"] = "ntxent"
    #: debiased loss: expected share of the anchor's own kind among the negatives, in [0, 1)
    tau_plus: float = Field(0.1, ge=0.0, lt=1.0)
    #: debiased loss: hardness of the negatives' weighting exp(beta * s / t) (Robinson et al. 2021); 0 = none
    hard_negative_beta: float = Field(0.0, ge=0.0)
    #: SimCLR: both views through the encoder as one batch (BatchNorm over both together, as SimCLR's own code);
    #: False: one pass per view
    joint_views: bool = False
    #: MoCo: keys in the queue of negatives, momentum of the key encoder per step, sub-batches of its BatchNorm,
    #: and whether both views also play the query (twice the backward cost)
    memory_bank_size: int = Field(4096, ge=1)
    key_momentum: float = Field(0.99, ge=0.0, lt=1.0)
    bn_splits: int = Field(8, ge=1)
    symmetric: bool = False
    #: NNCLR: steps each batch's projections wait before they may serve as nearest neighbours (0: at once), so
    #: that frames of one sequence, which an archive stream delivers in consecutive batches, are not each other's
    nn_delay_steps: int = Field(0, ge=0)
    #: VICReg: weights of the invariance, variance and covariance terms (Bardes et al. 2022: 25, 25, 1)
    sim_coeff: float = Field(25.0, ge=0.0)
    std_coeff: float = Field(25.0, ge=0.0)
    cov_coeff: float = Field(1.0, ge=0.0)
    #: Barlow Twins: weight of the cross-correlation's off-diagonal terms (Zbontar et al. 2021: 0.0051)
    redundancy_lambda: float = Field(0.0051, ge=0.0)
    sync_batchnorm: bool = False  #: convert BatchNorm to SyncBatchNorm under multi-GPU DDP (global batch statistics)


class AugmentConfig(_Section):
    """View pipeline: a preset of spacessl.augment plus keyword overrides for it."""

    preset: str = "default"
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Section):
    """Optimisation. ``lr`` is the base rate for a global batch of 256: lr_eff = lr · batch_size / 256."""

    batch_size: int = Field(64, ge=2)  #: global batch, split across workers
    epochs: int = Field(10, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0.0)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = Field(0.0, ge=0.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    seed: int = 0
    max_steps_per_epoch: int | None = None  #: cap for smoke tests and demos
    #: wall-time budget of the training loop, in minutes (from its first step, across resumes; per-epoch reports and
    #: checkpoints included): the loop stops when it is spent, every worker at the same step, and checkpoints the
    #: epoch in progress; ``epochs`` stays the upper bound and the cosine schedule ends at the budget
    time_budget_min: float | None = Field(None, gt=0.0)
    log_every_steps: int = Field(10, ge=1)
    knn_k: int = 20
    knn_max_bank: int = Field(5000, ge=1)  #: training rows embedded as the kNN reference bank (per epoch)
    knn_max_query: int = Field(2000, ge=1)  #: held-out rows classified by kNN (per epoch)


class TrackingConfig(_Section):
    """MLflow. An empty ``uri`` means $MLFLOW_TRACKING_URI, else a local SQLite store."""

    uri: str = ""
    experiment: str = "spacessl"
    model_name: str = ""  #: registered model name; empty = "<experiment>-<modality>"
    run_name: str = ""
    register_model: bool = True  #: register the trained encoder in the MLflow model registry after fit
    model_alias: str = "current"  #: alias set on the new version (models:/NAME@current); "latest" is reserved by MLflow


class RuntimeConfig(_Section):
    """Where it runs."""

    ray_address: str = ""  #: empty = local Ray (or the cluster a job was submitted to)
    num_workers: int = Field(1, ge=1)
    use_gpu: Literal["auto", "true", "false"] = "auto"
    cpus_per_worker: float = Field(1.0, gt=0.0)
    storage_path: str = "runs"  #: checkpoints (local folder or object-store URL)
    max_failures: int = Field(1, ge=0)
    output_dir: str = "out"
    torch_threads: int | None = None  #: intra-op threads per worker; None = max(1, round(cpus_per_worker))
    checkpoints_to_keep: int | None = Field(3, ge=1)  #: newest epoch checkpoints kept; None keeps all
    #: N >= 1: each training worker's batches are read and preprocessed in N loader processes that hand them over
    #: in shared memory (spacessl.train.loader), so that the step's thread never waits on the reader for the
    #: interpreter lock (one process gives exactly the batches of 0); 0: in threads of the worker's own process
    reader_processes: int = Field(1, ge=0)


class EmbedConfig(_Section):
    """Bulk embedding job."""

    batch_size: int = Field(256, ge=1)
    workers: int | None = None
    dtype: Literal["float16", "float32"] = "float32"


class IndexConfig(_Section):
    """Index build."""

    kind: Literal["auto", "flat", "hnsw", "ivf-flat", "ivf-pq"] = "auto"
    memory_budget: str = "8GB"
    recall_target: float = Field(0.95, gt=0.0, le=1.0)


class Config(_Section):
    """The whole resolved configuration of a run."""

    name: str = "experiment"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)


# --------------------------------------------------------------------------------------------------- layering


def _valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_valid_keys(ann, dotted + "."))
    return keys


def _nearest(key: str, choices: list[str]) -> str:
    leaf_matches = difflib.get_close_matches(key, choices, n=1, cutoff=0.5)
    if leaf_matches:
        return f"; did you mean '{leaf_matches[0]}'?"
    return f"; valid keys: {', '.join(k for k in choices if '.' not in k)}"


def _check_keys(tree: dict[str, Any], model: type[BaseModel], source: str, prefix: str = "") -> None:
    """Raise ConfigError for the first unknown key, naming it and the nearest valid key."""
    valid = _valid_keys(Config)
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if key not in model.model_fields:
            raise ConfigError(f"unknown config key '{dotted}' in {source}{_nearest(dotted, valid)}")
        ann = model.model_fields[key].annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{dotted}' in {source} must be a mapping, got {value!r}")
            _check_keys(value, ann, source, dotted + ".")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "params":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config file {path} includes itself through 'base:'")
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; pass a YAML file such as configs/demo_aurora.yaml")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(tree).__name__}")
    base = tree.pop("base", None)
    if base:
        tree = _merge(_read_yaml(path.parent / base, seen + (path,)), tree)
    return tree


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.batch_size=128"`` → (["train", "batch_size"], 128); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value, e.g. train.batch_size=128")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': cannot parse value {raw!r}: {exc}") from exc
    return parts, value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Resolve defaults ← ``path`` (and its ``base:`` chain) ← dotted ``overrides`` into a validated Config."""
    tree: dict[str, Any] = {}
    if path is not None:
        tree = _read_yaml(Path(path))
        _check_keys(tree, Config, str(path))
    for text in overrides or []:
        parts, value = parse_override(text)
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        _check_keys(nested, Config, f"override '{text}'")
        tree = _merge(tree, nested)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"config value '{loc}' is invalid: {err['msg']} (got {err.get('input')!r})") from exc


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict of the resolved config."""
    return cfg.model_dump(mode="json")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict → {"train.batch_size": 64, ...} (for MLflow params)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return path

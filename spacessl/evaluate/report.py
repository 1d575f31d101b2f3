"""``spacessl evaluate``: score an embeddings set against its archive's labels, beside two baselines.

::

    result = evaluate_embeddings("aurora.emb.zarr", split="grouped")
    print(format_table(result))            # the table the CLI prints
    log_evaluation(result)                 # metrics into the model's MLflow run (or a linked evaluation run)

On a bounded stratified sample (:mod:`spacessl.evaluate.sample`) of the labelled rows, the same split and the same
metrics (:mod:`spacessl.evaluate.metrics`) are computed for three feature sets: ``ssl`` (the stored embeddings),
``raw`` (downsampled preprocessed input) and ``random_init`` (the same architecture, untrained;
:mod:`spacessl.evaluate.baselines`).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np

from spacessl.evaluate.knn import DEFAULT_K, DEFAULT_TEMPERATURE
from spacessl.evaluate.linear_probe import C_GRID, SELECT_FOLDS
from spacessl.evaluate.metrics import KMEANS_WHITEN_DIM, METRIC_KEYS, FeatureMetrics, feature_metrics
from spacessl.evaluate.sample import EvaluationDataError, sample_embeddings
from spacessl.evaluate.splits import SPLITS, SplitError, group_ids, grouped_split, random_split

FEATURE_SETS = ("ssl", "raw", "random_init")


def _model_info(emb: Any, model_uri: str | None, tracking_uri: str | None) -> tuple[dict[str, Any], str, str]:
    """(architecture info, model uri, run id): from ``model_uri`` when given, else the embeddings' attributes."""
    attrs = dict(emb.attrs)
    info = dict(attrs.get("model_info") or {})
    uri = str(attrs.get("model_uri") or "")
    run_id = str(attrs.get("run_id") or "")
    if model_uri:
        from spacessl.tracking import plain_info, read_model_info

        recorded = read_model_info(model_uri, tracking_uri=tracking_uri)
        info.update(plain_info(recorded))
        uri, run_id = model_uri, str(recorded.get("run_id") or run_id)
    return info, uri, run_id


def evaluate_embeddings(url: str, *, split: str = "grouped", max_samples: int = 20_000, test_fraction: float = 0.3,
                        seed: int = 0, baselines: bool = True, model_uri: str | None = None,
                        tracking_uri: str | None = None, k: int = DEFAULT_K,
                        temperature: float = DEFAULT_TEMPERATURE, progress: bool = False) -> dict[str, Any]:
    """Evaluate the embeddings store at ``url``.

    Args:
        split: "random" (stratified) or "grouped" (no camera-night / station-day on both sides).
        max_samples: labelled rows evaluated at most (stratified sample).
        test_fraction: share of rows on the test side of the kNN and linear-probe split.
        baselines: also compute the ``raw`` and ``random_init`` baselines.
        model_uri: the trained model (default: the embeddings' ``model_uri``); only its recorded architecture and
            run id are used.
    Returns:
        A JSON-ready dict: ``ssl``/``raw``/``random_init`` → {knn_acc, linear_acc, kmeans_acc, nmi, ari}, ``split``,
        ``n``, ``n_train``, ``n_test``, ``groups``, ``label_names``, ``confusion`` (set → metric → C×C lists),
        ``linear_c`` (set → the linear probe's inverse L2 strength, chosen on the train rows),
        ``embeddings``, ``archive``, ``model_uri``, ``run_id``, ``settings``, ``seconds``.
    """
    from spacessl.embed.store import open_embeddings

    if split not in SPLITS:
        raise SplitError(f"Unknown split {split!r}. Available splits are: {', '.join(SPLITS)}.")
    if k < 1 or max_samples < 1:
        raise EvaluationDataError(f"--k (kNN neighbours) and --max-samples must be >= 1, got {k} and {max_samples} "
                                  f"(defaults {DEFAULT_K} and 20000)")
    t0 = time.perf_counter()
    emb = open_embeddings(url)
    archive = emb.archive()
    info, uri, run_id = _model_info(emb, model_uri, tracking_uri)
    say = print if progress else (lambda *a, **k: None)
    sample = sample_embeddings(emb, max_samples, seed=seed)
    labels = sample.labels
    names = list(archive.label_names or [])
    present = np.unique(labels)
    if len(present) < 2:
        raise EvaluationDataError(f"{archive.url}: the labelled rows hold a single class "
                                  f"({names[present[0]] if names else present[0]}); evaluation needs two or more")
    groups = group_ids(sample.source, sample.time_ns)
    if split == "grouped":
        train, test = grouped_split(labels, groups, test_fraction=test_fraction, seed=seed)
    else:
        train, test = random_split(labels, test_fraction=test_fraction, seed=seed)
    if len(train) == 0 or len(test) == 0:
        raise EvaluationDataError(f"the {split} split of {len(sample)} labelled rows leaves {len(train)} to train on "
                                  f"and {len(test)} to test; evaluate more rows (--max-samples) or change "
                                  "--test-fraction")
    leaked = len(np.intersect1d(groups[train], groups[test]))
    say(f"evaluating {len(sample)} labelled rows ({len(train)} train / {len(test)} test, split={split})")
    features: dict[str, np.ndarray] = {"ssl": sample.vectors}
    if baselines:
        say("computing baselines (raw input, random-init encoder)")
        features.update(_baselines(archive, sample.ids, info, emb.dim, seed, emb.views))
    result: dict[str, Any] = {"embeddings": str(url), "archive": archive.url, "model_uri": uri, "run_id": run_id,
                              "split": split, "n": int(len(sample)), "n_train": int(len(train)),
                              "n_test": int(len(test)), "groups": int(len(np.unique(groups))),
                              "groups_on_both_sides": int(leaked), "label_names": names, "confusion": {}}
    for name, x in features.items():
        say(f"scoring {name} features {x.shape}")
        m: FeatureMetrics = feature_metrics(x, labels, train, test, k=k, temperature=temperature, seed=seed,
                                            groups=groups if split == "grouped" else None)
        result[name] = m.scores()
        result.setdefault("linear_c", {})[name] = m.linear_c
        result["confusion"][name] = {kind: c.tolist() for kind, c in m.confusion.items()}
    result["settings"] = {"knn_k": k, "knn_temperature": temperature, "knn_weighting": "exp(cos/T)",
                          "linear": (f"StandardScaler+LogisticRegression, C from {list(C_GRID)} by {SELECT_FOLDS}-fold "
                                     f"{'grouped ' if split == 'grouped' else ''}cross-validation on the train rows"),
                          "kmeans": f"spherical, k=classes, on PCA-whitened {KMEANS_WHITEN_DIM}-d",
                          "test_fraction": test_fraction, "max_samples": max_samples, "seed": seed,
                          "views": emb.views}
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def _baselines(archive: Any, ids: np.ndarray, info: dict[str, Any], dim: int, seed: int,
               views: int) -> dict[str, np.ndarray]:
    from spacessl.evaluate.baselines import baseline_features

    return baseline_features(archive, ids, info, embed_dim=dim, seed=seed, views=views)


def _fmt(v: Any) -> str:
    return "   -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:6.3f}"


def format_table(result: dict[str, Any], *, confusion: bool = True) -> str:
    """The evaluation as a text table (one row per feature set) and the SSL kNN confusion matrix."""
    head = (f"{result['embeddings']}  split={result['split']}  n={result['n']} "
            f"(train {result['n_train']} / test {result['n_test']}, {result['groups']} source-night/day groups)")
    lines = [head, f"{'features':<12}" + "".join(f"{k:>12}" for k in METRIC_KEYS)]
    for name in FEATURE_SETS:
        if name in result:
            lines.append(f"{name:<12}" + "".join(f"{_fmt(result[name][k]):>12}" for k in METRIC_KEYS))
    if "raw" in result and "ssl" in result:
        gain = "".join(f"{(result['ssl'][k] - result['raw'][k]) * 100:>+11.1f}p" for k in METRIC_KEYS)
        lines.append(f"{'ssl - raw':<12}{gain}")
    chosen = result.get("linear_c") or {}
    if chosen:
        lines.append("linear probe C (chosen on the train rows): "
                     + ", ".join(f"{name} {c:g}" for name, c in chosen.items()))
    conf = result.get("confusion", {}).get("ssl", {}).get("knn")
    if confusion and conf:
        names = result.get("label_names") or [str(i) for i in range(len(conf))]
        width = max(8, max(len(n) for n in names) + 1)
        lines.append("")
        lines.append("ssl kNN confusion (rows: true class, columns: predicted), test rows")
        lines.append(" " * width + "".join(f"{n[:width - 1]:>{width}}" for n in names[:len(conf)]))
        for name, row in zip(names, conf, strict=False):
            lines.append(f"{name[:width - 1]:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def summary_json(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON the CLI prints: the three metric dicts, split and n, then the details."""
    keys = [k for k in FEATURE_SETS if k in result] + ["split", "n"]
    out = {k: result[k] for k in keys}
    out.update({k: v for k, v in result.items() if k not in out})
    return out


def metric_dict(result: dict[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics: ``eval_<split>_<set>_<metric>``, the probe's ``eval_<split>_<set>_linear_c`` and
    ``eval_<split>_n``."""
    split = result["split"]
    out = {f"eval_{split}_{name}_{key}": float(result[name][key])
           for name in FEATURE_SETS if name in result for key in METRIC_KEYS}
    out.update({f"eval_{split}_{name}_linear_c": float(c) for name, c in (result.get("linear_c") or {}).items()
                if not math.isnan(c)})
    out[f"eval_{split}_n"] = float(result["n"])
    return out


def log_evaluation(result: dict[str, Any], *, tracking_uri: str | None = None, linked_run: bool = False,
                   experiment: str = "spacessl") -> dict[str, str]:
    """Log ``result`` to MLflow: metrics and ``evaluation/<split>.json`` into the model's run (``run_id``) when it
    exists in the store, else (or with ``linked_run``) into a new run tagged with the parent run id.

    Metric names are the same in both modes and across runs (:func:`metric_dict`). Lineage: in the model's run,
    tags ``evaluation.<split>.embeddings_url`` and ``evaluation.<split>.archive_url`` say what the ``eval_<split>_*``
    metrics were computed on; a linked run is tagged ``archive_url``, ``embeddings_url``, ``model_uri`` and
    ``spacessl.parent_run_id``, and takes over the model run's params (its resolved config) and ``lineage.*`` tags
    (embeddings and indexes made from the model), so that evaluation runs compare by the same columns as training
    runs.

    Returns {"tracking_uri", "run_id", "mode" ("model-run" | "linked-run")}.
    """
    from spacessl.tracking import client, create_run, log_metrics, log_params, resolve_tracking_uri, set_status

    uri = resolve_tracking_uri(tracking_uri or "")
    c = client(uri)
    parent = result.get("run_id") or ""
    split = result["split"]
    source = {"archive_url": str(result.get("archive", "")), "embeddings_url": str(result.get("embeddings", ""))}
    parent_run = None
    if parent:
        try:
            parent_run = c.get_run(parent)
        except Exception:  # noqa: BLE001 - MlflowException for an unknown run in this store
            parent_run = None
    if parent_run is not None and not linked_run:
        run_id, mode = parent, "model-run"
        for key, value in source.items():
            c.set_tag(run_id, f"evaluation.{split}.{key}", value)
    else:
        tags = {"spacessl.kind": "evaluation", "spacessl.parent_run_id": parent, **source,
                "model_uri": str(result.get("model_uri", ""))}
        if parent_run is not None:
            tags["mlflow.parentRunId"] = parent
            tags.update({k: v for k, v in parent_run.data.tags.items() if k.startswith("lineage.")})
        run_id = create_run(uri, experiment, f"evaluate-{split}", tags)
        if parent_run is not None:
            log_params(uri, run_id, dict(parent_run.data.params))
        mode = "linked-run"
    log_metrics(uri, run_id, metric_dict(result), step=0)
    c.log_text(run_id, json.dumps(summary_json(result), indent=2), f"evaluation/{split}.json")
    if mode == "linked-run":
        set_status(uri, run_id, "FINISHED")
    return {"tracking_uri": uri, "run_id": run_id, "mode": mode}

"""Embedding quality on the synthetic benchmark: synth → train (CPU, fixed budget) → embed → evaluate.

    python benchmarks/quality.py [--out out/quality] [--budget-min 20] [--n 6000] [--size 64] [--split grouped]
                                 [--modalities image,waveform] [--image-recipe ...] [--waveform-recipe ...]
                                 [--image-views 1|4|8] [--waveform-views 1|2]   (defaults 4 and 1)

For each modality it

1. writes a labelled synthetic archive (``spacessl synth``: 6 OATH-like all-sky classes at ``--size`` px, or 4
   seismic classes of 3 × 1000 samples) and a second, smaller one with planted rare samples;
2. trains a SimCLR encoder on Ray Train on the CPU for ``--budget-min`` minutes per modality (the budget covers
   Ray's start-up, training and the model's registration; the training loop gets the rest as its time budget,
   ``train.time_budget_min``, and stops when it is spent) and registers it in a local MLflow store;
3. embeds both archives with the registered model (``spacessl embed``, ``--views`` from ``--image-views`` /
   ``--waveform-views``);
4. evaluates (``spacessl evaluate``): weighted kNN, linear probe, k-means + Hungarian, NMI, ARI for the SSL
   embeddings beside the raw-input and random-init baselines computed in the same run, on the ``--split`` split;
5. ranks the rare archive's embeddings with ``spacessl outliers`` (its score, and the k-th-neighbour distance
   alone) and reports where the planted rare samples rank.

Prints one table per modality, the goals (images: linear probe and kNN >= 0.90; waveforms: k-means >= 0.90 and
kNN >= 0.95; each >= 10 points above raw input) with the margin by which each is met or missed, and writes
everything to ``<out>/quality.json``. Re-running reuses finished archives; training runs are replaced.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")

#: training recipes (dotted config overrides) per modality; --image-recipe / --waveform-recipe add to them
RECIPES: dict[str, list[str]] = {
    "image": ["model.method=simclr", "model.encoder=resnet18_s2d", "model.proj_hidden_dim=512",
              "model.proj_out_dim=128", "model.temperature=0.2", "augment.preset=allsky",
              "data.stretch=percentile", "data.stretch_percentiles=[1, 99.9]", "train.batch_size=64",
              "train.optimizer=adamw", "train.lr=0.002", "train.weight_decay=1.0e-4", "train.schedule=cosine",
              "train.warmup_epochs=0.2"],
    "waveform": ["model.method=simclr", "model.encoder=resnet1d", "model.proj_hidden_dim=512",
                 "model.proj_out_dim=128", "model.temperature=0.2", "augment.preset=default",
                 "train.batch_size=64", "train.optimizer=sgd", "train.lr=0.6", "train.momentum=0.9",
                 "train.weight_decay=1.0e-5", "train.schedule=cosine", "train.warmup_epochs=0.2"],
}
#: encoder input side for all-sky frames unless --input-size says otherwise: the 64 px frames as they are, through
#: ResNet-18's space-to-depth stem (``resnet18_s2d``), which costs what plain ResNet-18 costs at 32 px
IMAGE_INPUT_SIZE = 64
#: symmetry views averaged per embedding unless --image-views / --waveform-views say otherwise
VIEWS = {"image": 4, "waveform": 1}
#: goals: (metric, minimum) per modality; each metric must also beat the raw-input baseline by >= 0.10
GOALS: dict[str, list[tuple[str, float]]] = {
    "image": [("linear_acc", 0.90), ("knn_acc", 0.90)],
    "waveform": [("kmeans_acc", 0.90), ("knn_acc", 0.95)],
}
MARGIN_OVER_RAW = 0.10
#: seconds of the modality budget kept for what the training loop's own clock does not see: Ray's start-up, the
#: workers' set-up before the first step, the end of the run and the model's registration in MLflow
OVERHEAD_S = 75.0
#: upper bound of the epochs: the loop's time budget (``train.time_budget_min``) ends training long before
MAX_EPOCHS = 1000


def synth(modality: str, url: str, n: int, size: int, seed: int, rare_fraction: float = 0.0) -> str:
    """The synthetic archive at ``url`` (reused when complete)."""
    from spacessl.archive import open_archive

    try:
        open_archive(url)
        return url
    except Exception:  # noqa: BLE001 - missing or unfinished: (re)write, resuming where possible
        pass
    if modality == "image":
        from spacessl.synth.aurora import write_aurora_archive

        return write_aurora_archive(url, n=n, size=size, seed=seed, rare_fraction=rare_fraction, progress=False)
    from spacessl.synth.seismic import write_seismic_archive

    return write_seismic_archive(url, n=n, seed=seed, rare_fraction=rare_fraction, progress=False)


def train_budgeted(modality: str, archive_url: str, out: Path, budget_s: float, recipe: list[str],
                   input_size: int | None, cpus: int) -> dict[str, Any]:
    """Train within ``budget_s`` seconds of wall time (Ray, training, registration); returns facts.

    The training loop gets what is left of the budget after :data:`OVERHEAD_S` as its ``train.time_budget_min``: it
    trains full passes over the archive until that is spent, with the cosine schedule laid over the budget, and
    stops every worker at the same step.
    """
    from spacessl.archive import open_archive
    from spacessl.config import load_config
    from spacessl.train.run import train

    t0 = time.perf_counter()
    archive = open_archive(archive_url)
    overrides = [f"name=quality-{modality}", f"data.archive={archive_url}", "data.holdout_fraction=0",
                 f"runtime.output_dir={out}", f"runtime.storage_path={out / 'runs'}", "runtime.num_workers=1",
                 f"runtime.cpus_per_worker={cpus}", "runtime.use_gpu='false'",
                 f"tracking.uri=sqlite:///{out / 'mlflow.db'}", "tracking.experiment=quality",
                 f"tracking.model_name=quality-{modality}", "tracking.model_alias=current", *recipe]
    if modality == "image":
        overrides.append(f"data.input_size={input_size or IMAGE_INPUT_SIZE}")
    cfg = load_config(None, overrides)
    per = archive.n // cfg.train.batch_size
    loop_s = budget_s - (time.perf_counter() - t0) - OVERHEAD_S
    cfg = load_config(None, [*overrides, f"train.epochs={MAX_EPOCHS}", f"train.max_steps_per_epoch={per}",
                             f"train.time_budget_min={loop_s / 60:.4f}", f"train.log_every_steps={max(1, per // 4)}"])
    print(f"  {modality}: epochs of {per} steps × batch {cfg.train.batch_size} for {loop_s / 60:.2f} min of the "
          f"training loop", flush=True)
    result = train(cfg, overwrite=True)
    steps = int(result.metrics["global_step"])
    epochs = result.summary.get("epochs", [])
    loop_wall = float(result.metrics.get("train_elapsed_s", float("nan")))
    return {"model_uri": result.model_uri, "run_id": result.mlflow_run_id, "tracking_uri": result.tracking_uri,
            "loop_budget_s": loop_s, "loop_s": loop_wall, "epochs": len(epochs), "steps_per_epoch": per,
            "steps": steps,
            "step_s": sum(e["epoch_time_s"] for e in epochs) / max(1, sum(e["epoch_steps"] for e in epochs)),
            "batch_size": cfg.train.batch_size, "samples_seen": steps * cfg.train.batch_size,
            "train_wall_s": time.perf_counter() - t0, "final_loss": result.metrics.get("epoch_loss"),
            "recipe": recipe, "input_size": cfg.data.input_size}


def rare_ranks(emb_url: str, out: Path, *, context: bool = True) -> dict[str, Any]:
    """Where the planted rare samples rank by ``spacessl outliers`` (k=10, same source within 60 s skipped; with
    ``context``, the default score: plus the distance to the nearest same-source sample within 60 s)."""
    from spacessl.archive import open_archive
    from spacessl.embed.store import open_embeddings
    from spacessl.evaluate.catalog import read_catalog
    from spacessl.evaluate.outliers import find_outliers

    report = find_outliers(emb_url, out, top=200, k=10, dedup_s=60.0, montage_n=24, context=context,
                           overwrite=True)
    ranked = read_catalog(report.files["csv"])
    archive = open_archive(open_embeddings(emb_url).attrs["archive_url"])
    n_rare = int((archive.meta("label").compute() == archive.label_names.index("rare")).sum())
    is_rare = (ranked["label"] == "rare").to_numpy()
    ranks = np.flatnonzero(is_rare).tolist()
    return {"n": archive.n, "n_rare": n_rare, "context": context, "rare_in_top_n_rare": int(is_rare[:n_rare].sum()),
            "precision_at_n_rare": float(is_rare[:n_rare].mean()) if n_rare else float("nan"),
            "rare_ranks_in_top200": ranks, "montage": report.files["montage"]}


def goals(modality: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for metric, minimum in GOALS[modality]:
        value, raw = result["ssl"][metric], result["raw"][metric]
        rows.append({"metric": metric, "value": value, "goal": minimum, "margin": value - minimum,
                     "over_raw": value - raw, "met": value >= minimum and value - raw >= MARGIN_OVER_RAW})
    return rows


def table(modality: str, result: dict[str, Any], facts: dict[str, Any]) -> str:
    from spacessl.evaluate.report import format_table

    lines = [f"== {modality}: {facts['samples_seen']} training samples in {facts['train_wall_s'] / 60:.1f} min "
             f"({facts['steps']} steps × batch {facts['batch_size']} in {facts['epochs']} epochs of up to "
             f"{facts['steps_per_epoch']}, {facts['step_s']:.2f} s/step, the loop {facts['loop_s'] / 60:.1f} min)"
             + (f"; embeddings averaged over {facts['views']} symmetry views (random init too)"
                if facts.get("views", 1) > 1 else ""),
             format_table(result, confusion=True)]
    for g in goals(modality, result):
        lines.append(f"goal {g['metric']} >= {g['goal']:.2f}: {g['value']:.3f} ({g['margin'] * 100:+.1f} points); "
                     f"over raw {g['over_raw'] * 100:+.1f} points (goal +10) → {'MET' if g['met'] else 'MISSED'}")
    for key, what in (("rare", "score with context"), ("rare_archive_term", "k-th neighbour distance alone")):
        rare = facts.get(key)
        if rare:
            lines.append(f"outliers ({what}): {rare['rare_in_top_n_rare']} of the {rare['n_rare']} planted rare "
                         f"samples rank in the top {rare['n_rare']} of {rare['n']} (ranks in the top 200: "
                         f"{rare['rare_ranks_in_top200'][:20]})")
    return "\n".join(lines)


def run_modality(modality: str, args: argparse.Namespace, budget_s: float) -> dict[str, Any]:
    from spacessl.embed.job import embed_archive
    from spacessl.evaluate.report import evaluate_embeddings, log_evaluation

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    name = "aurora" if modality == "image" else "seismic"
    t0 = time.perf_counter()
    main_url = synth(modality, str(out / f"{name}.zarr"), args.n, args.size, seed=0)
    rare_url = synth(modality, str(out / f"{name}-rare.zarr"), args.n_rare, args.size, seed=1,
                     rare_fraction=args.rare_fraction)
    synth_s = time.perf_counter() - t0
    recipe = RECIPES[modality] + (args.image_recipe if modality == "image" else args.waveform_recipe)
    facts = train_budgeted(modality, main_url, out, budget_s, recipe, args.input_size, args.cpus)
    t1 = time.perf_counter()
    emb_url = str(out / f"{name}.emb.zarr")
    rare_emb = str(out / f"{name}-rare.emb.zarr")
    views = args.image_views if modality == "image" else args.waveform_views
    for a, e in ((main_url, emb_url), (rare_url, rare_emb)):
        embed_archive(facts["model_uri"], a, e, overwrite=True, progress=False, tracking_uri=facts["tracking_uri"],
                      views=views)
    embed_s = time.perf_counter() - t1
    facts["views"] = views
    t2 = time.perf_counter()
    result = evaluate_embeddings(emb_url, split=args.split, max_samples=args.max_samples,
                                 tracking_uri=facts["tracking_uri"])
    log_evaluation(result, tracking_uri=facts["tracking_uri"])
    eval_s = time.perf_counter() - t2
    facts["rare"] = rare_ranks(rare_emb, out / f"{name}-outliers")
    facts["rare_archive_term"] = rare_ranks(rare_emb, out / f"{name}-outliers-archive-term", context=False)
    facts.update(synth_s=synth_s, embed_s=embed_s, eval_s=eval_s)
    print(table(modality, result, facts), flush=True)
    return {"facts": facts, "evaluation": result, "goals": goals(modality, result)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/quality", help="working folder (archives, runs, MLflow store)")
    p.add_argument("--budget-min", type=float, default=20.0, help="training budget of each modality, minutes")
    p.add_argument("--modalities", default="image,waveform")
    p.add_argument("--n", type=int, default=6000, help="samples per training/evaluation archive")
    p.add_argument("--n-rare", type=int, default=2000, help="samples per rare-event archive")
    p.add_argument("--rare-fraction", type=float, default=0.005)
    p.add_argument("--size", type=int, default=64, help="all-sky frame side in px")
    p.add_argument("--input-size", type=int, default=None,
                   help=f"encoder input side for images (default: {IMAGE_INPUT_SIZE})")
    p.add_argument("--split", choices=("random", "grouped"), default="grouped")
    p.add_argument("--max-samples", type=int, default=20_000)
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the training worker")
    p.add_argument("--image-views", type=int, default=VIEWS["image"],
                   help="symmetry views averaged per frame embedding (spacessl embed --views: 1, 4 or 8)")
    p.add_argument("--waveform-views", type=int, default=VIEWS["waveform"],
                   help="symmetry views averaged per window embedding (spacessl embed --views: 1 or 2)")
    p.add_argument("--image-recipe", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--waveform-recipe", nargs="*", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    budget_s = args.budget_min * 60.0
    print(f"quality benchmark: {', '.join(modalities)}; at most {args.budget_min:g} min of training each, "
          f"split={args.split}, {os.cpu_count()} CPUs", flush=True)
    results = {m: run_modality(m, args, budget_s) for m in modalities}
    out = Path(args.out)
    (out / "quality.json").write_text(json.dumps(results, indent=2, default=str))
    print("\nsummary (ssl | raw | random init)")
    for m, r in results.items():
        ev = r["evaluation"]
        for key in ("knn_acc", "linear_acc", "kmeans_acc", "nmi", "ari"):
            print(f"  {m:<9} {key:<11} {ev['ssl'][key]:.3f} | {ev['raw'][key]:.3f} | {ev['random_init'][key]:.3f}")
    met = all(g["met"] for r in results.values() for g in r["goals"])
    print(f"goals {'all met' if met else 'not all met'}; details in {out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

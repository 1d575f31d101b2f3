"""`spacessl train --config X [--resume] [--overwrite] [key=value ...]` and `spacessl runs [-n 20]`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _train(args: argparse.Namespace) -> int:
    from spacessl.config import load_config
    from spacessl.train.run import describe, train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    print(describe(result))
    return 0


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):  # the same decimals down a column: losses and accuracies to 3, rates to 1
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def _runs(args: argparse.Namespace) -> int:
    from spacessl import tracking

    uri = tracking.resolve_tracking_uri(args.tracking_uri, args.output_dir)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        print(f"no runs: {uri} does not exist yet (train with `spacessl train --config ...` first)")
        return 0
    rows = tracking.list_runs(args.n, tracking_uri=uri, experiment=args.experiment)
    if not rows:
        print(f"no runs in {uri}")
        return 0
    cols = ["start", "name", "status"] + [title for title, _ in tracking.KEY_METRICS] + ["model", "run_id"]
    table = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print(f"({len(rows)} most recent runs in {uri})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a self-supervised encoder on an archive (Ray Train, tracked in MLflow)",
                       description="Train the encoder a config describes; the model is registered in MLflow.")
    p.add_argument("--config", required=True, help="experiment YAML, e.g. configs/demo_aurora.yaml")
    p.add_argument("--resume", action="store_true", help="continue the run of this name from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run of this name and start over")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted config overrides, e.g. train.epochs=2 runtime.num_workers=2")
    p.set_defaults(func=_train)

    r = sub.add_parser("runs", help="list recent training runs with their key metrics")
    r.add_argument("-n", type=int, default=20, help="how many runs (default 20)")
    r.add_argument("--experiment", default=None, help="only this MLflow experiment (default: all)")
    r.add_argument("--tracking-uri", default="", help="MLflow store (default $MLFLOW_TRACKING_URI, else "
                                                      "sqlite:///<output-dir>/mlflow.db)")
    r.add_argument("--output-dir", default="out", help="where the local store lives (default out)")
    r.set_defaults(func=_runs)

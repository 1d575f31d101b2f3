"""`spacessl evaluate E.zarr [--split random|grouped] [--json] [--model-uri URI]`."""

from __future__ import annotations

import argparse
import json


def _evaluate(args: argparse.Namespace) -> int:
    from spacessl import tracking
    from spacessl.evaluate.report import evaluate_embeddings, format_table, log_evaluation, summary_json

    uri = None
    if args.model_uri or args.mlflow:
        from spacessl.embed.store import open_embeddings

        # the model's run lives in the store the embedding job loaded the model from, unless told otherwise
        uri = (tracking.recorded_tracking_uri(open_embeddings(args.embeddings).attrs, args.tracking_uri)
               or tracking.resolve_tracking_uri("", args.output_dir))
    result = evaluate_embeddings(args.embeddings, split=args.split, max_samples=args.max_samples,
                                 test_fraction=args.test_fraction, seed=args.seed, baselines=not args.no_baselines,
                                 model_uri=args.model_uri, tracking_uri=uri, k=args.k, progress=not args.json)
    logged = None
    if args.mlflow:
        logged = log_evaluation(result, tracking_uri=uri, linked_run=args.linked_run, experiment=args.experiment)
        result["mlflow"] = logged
    if args.json:
        print(json.dumps(summary_json(result), indent=2))
    else:
        print(format_table(result))
        if logged:
            print(f"\nlogged to MLflow run {logged['run_id']} ({logged['mode']}) in {logged['tracking_uri']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="kNN, linear-probe and k-means accuracy of embeddings against labels, "
                                        "beside raw-input and random-init baselines",
                       description="Score an embeddings set against its archive's labels (weighted kNN k=20, "
                                   "linear probe, k-means + Hungarian accuracy, NMI, ARI) beside the raw input and "
                                   "the same encoder at random initialisation, on the same rows and split.")
    p.add_argument("embeddings", help="embeddings store (E.zarr) written by `spacessl embed`")
    p.add_argument("--split", choices=("random", "grouped"), default="grouped",
                   help="grouped (default): whole camera-nights / station-days on one side; random: stratified")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--model-uri", default=None, help="the trained model (default: the one the embeddings record); "
                                                     "gives the architecture and the MLflow run")
    p.add_argument("--max-samples", type=int, default=20_000, help="labelled rows evaluated at most, stratified "
                                                                   "(default 20000)")
    p.add_argument("--test-fraction", type=float, default=0.3, help="test share of the split (default 0.3)")
    p.add_argument("--k", type=int, default=20, help="kNN neighbours (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-baselines", action="store_true", help="skip the raw and random-init baselines")
    p.add_argument("--no-mlflow", dest="mlflow", action="store_false", help="do not log to MLflow")
    p.add_argument("--linked-run", action="store_true",
                   help="log into a new evaluation run tagged with the model's run id instead of the model's run")
    p.add_argument("--experiment", default="spacessl", help="MLflow experiment of a linked evaluation run")
    p.add_argument("--tracking-uri", default="", help="MLflow store (default $MLFLOW_TRACKING_URI, else the store "
                                                      "the embeddings' model was loaded from, else "
                                                      "sqlite:///<output-dir>/mlflow.db)")
    p.add_argument("--output-dir", default="out", help="where a new local MLflow store goes (default out)")
    p.set_defaults(func=_evaluate)

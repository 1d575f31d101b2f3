"""`spacessl embed --model URI --archive A.zarr --out E.zarr [--workers N] [--batch B] [--dtype D] [--views V]
[--overwrite]`."""

from __future__ import annotations

import argparse


def add_embed_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `spacessl embed` (shared with jobs/embed.py)."""
    p.add_argument("--model", required=True,
                   help="models:/NAME/VERSION, models:/NAME@alias, runs:/RUN_ID/model or a checkpoint directory")
    p.add_argument("--archive", required=True, help="archive to embed (local path or fsspec URL)")
    p.add_argument("--out", required=True, help="embeddings store to write, e.g. out/aurora.emb.zarr")
    p.add_argument("--workers", type=int, default=None,
                   help="Ray actors (default: one per GPU, else one per 4 CPUs, at least one)")
    p.add_argument("--batch", type=int, default=256, help="samples per forward pass (default 256)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float32",
                   help="stored vector type (default float32)")
    p.add_argument("--views", type=int, default=1,
                   help="average each embedding over this many symmetric copies of the sample: frames 4 (rotations "
                        "by 90°) or 8 (and mirrored), waveforms 2 (both polarities); default 1")
    p.add_argument("--overwrite", action="store_true", help="replace an existing embeddings store")
    p.add_argument("--ray-address", default=None, help="Ray cluster (default: $RAY_ADDRESS or a local Ray)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow store for models:/ and runs:/ URIs (default $MLFLOW_TRACKING_URI or out/mlflow.db)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_embed(args: argparse.Namespace) -> int:
    from spacessl.embed.job import embed_archive

    report = embed_archive(args.model, args.archive, args.out, workers=args.workers, batch_size=args.batch,
                           dtype=args.dtype, overwrite=args.overwrite, ray_address=args.ray_address,
                           progress=not args.no_progress, tracking_uri=args.tracking_uri, views=args.views)
    print(report.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed every sample of an archive with a trained encoder (Ray job)",
                       description="Embed an archive shard by shard on Ray actors into an embeddings store "
                                   "(resumable: rerun the same command after an interruption).")
    add_embed_arguments(p)
    p.set_defaults(func=run_embed)

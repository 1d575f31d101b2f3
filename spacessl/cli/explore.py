"""`spacessl cluster`, `spacessl propagate`, `spacessl outliers`, `spacessl map`: exploring an embedded archive."""

from __future__ import annotations

import argparse


def _cluster(args: argparse.Namespace) -> int:
    from spacessl.evaluate.cluster import cluster_embeddings, parse_k

    report = cluster_embeddings(args.embeddings, args.out, k=parse_k(args.k), train_size=args.train_size,
                                auto_size=args.auto_size, k_range=range(args.k_min, args.k_max + 1),
                                restarts=args.restarts, whiten=args.whiten, seed=args.seed,
                                montage_nearest=args.nearest, montage_random=args.random, overwrite=args.overwrite,
                                progress=True)
    print(report.summary())
    return 0


def _propagate(args: argparse.Namespace) -> int:
    from spacessl.evaluate.propagate import propagate

    report = propagate(args.seeds, args.out, index_dir=args.index, embeddings=args.embeddings,
                       threshold=args.threshold, max_candidates=args.max_candidates, dedup_s=args.dedup_s,
                       quakeml=True if args.quakeml else None, overwrite=args.overwrite)
    print(report.summary())
    return 0


def _outliers(args: argparse.Namespace) -> int:
    from spacessl.evaluate.outliers import find_outliers

    report = find_outliers(args.embeddings, args.out, top=args.top, k=args.k, dedup_s=args.dedup_s,
                           index_dir=args.index, exact_max=args.exact_max, montage_n=args.montage,
                           context=not args.no_context, context_max=args.context_max,
                           fold_cos=None if args.keep_duplicates else args.fold_cos, overwrite=args.overwrite)
    print(report.summary())
    return 0


def _map(args: argparse.Namespace) -> int:
    from spacessl.evaluate.embedding_map import embedding_map

    report = embedding_map(args.embeddings, args.out, color=args.color, sample=args.sample, seed=args.seed,
                           perplexity=args.perplexity, html_page=not args.no_html, clusters=args.clusters,
                           max_thumbnails=args.thumbnails, overwrite=args.overwrite)
    print(report.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cluster", help="k-means over all embeddings: catalog (CSV + Parquet), montages, time plot",
                       description="Spherical FAISS k-means trained on a sample and streamed over every embedding; "
                                   "writes catalog.csv/.parquet, montages/cluster_XXX.png, clusters_over_time.png.")
    c.add_argument("embeddings", help="embeddings store (E.zarr)")
    c.add_argument("--k", default="12", help="clusters, or 'auto' to choose by silhouette on a sample (default 12)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--k-min", type=int, default=2, help="smallest k tried by --k auto (default 2)")
    c.add_argument("--k-max", type=int, default=20, help="largest k tried by --k auto (default 20)")
    c.add_argument("--train-size", type=int, default=100_000, help="embeddings k-means trains on (default 100000)")
    c.add_argument("--auto-size", type=int, default=10_000, help="embeddings --k auto scores on (default 10000)")
    c.add_argument("--restarts", type=int, default=20,
                   help="k-means++ seedings, the one with the best objective kept (default 20)")
    c.add_argument("--whiten", type=int, default=None, metavar="D",
                   help="cluster the embeddings PCA-whitened to their D leading principal axes (fitted on the "
                        "training sample; the evaluation's k-means uses 32); default: as they are")
    c.add_argument("--nearest", type=int, default=16, help="montage: members nearest the centroid (default 16)")
    c.add_argument("--random", type=int, default=16, help="montage: random members (default 16)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--overwrite", action="store_true", help="replace an existing catalog in --out")
    c.set_defaults(func=_cluster)

    p = sub.add_parser("propagate", help="every sample like a few labelled examples: a candidate catalog "
                                         "(CSV, Parquet; QuakeML for seismic archives)",
                       description="Search the archive for samples like the seeds; threshold from the seeds' "
                                   "mutual similarity unless --threshold is given.")
    p.add_argument("--seeds", required=True, help="CSV with column id (archive row ids) and optional label")
    p.add_argument("--index", default=None, help="index folder built by `spacessl index`")
    p.add_argument("--embeddings", default=None, help="embeddings store; without --index it is searched exactly")
    p.add_argument("--out", default="propagate", help="output folder (default ./propagate)")
    p.add_argument("--threshold", type=float, default=None, help="cosine similarity a candidate must reach "
                                                                 "(default: from the seeds)")
    p.add_argument("--max-candidates", type=int, default=100_000, help="results per seed at most (default 100000)")
    p.add_argument("--dedup-s", type=float, default=None, help="with --index: one result per source within ± s")
    p.add_argument("--quakeml", action="store_true", help="write QuakeML also for non-waveform archives")
    p.add_argument("--overwrite", action="store_true", help="replace the candidates of an earlier run in --out")
    p.set_defaults(func=_propagate)

    o = sub.add_parser("outliers", help="rank samples by distance to their k-th neighbour (rare-event discovery)",
                       description="Score = 1 - cos to the k-th nearest embedding, skipping the sample's own "
                                   "near-duplicates (same source within --dedup-s), plus 1 - cos to the nearest "
                                   "same-source sample within --dedup-s (its context: high for a transient that "
                                   "is unlike the samples just before and after it).")
    o.add_argument("embeddings", help="embeddings store (E.zarr)")
    o.add_argument("--top", type=int, default=100, help="how many to list (default 100)")
    o.add_argument("--k", type=int, default=10, help="which neighbour (default 10)")
    o.add_argument("--dedup-s", type=float, default=60.0, help="same-source neighbours within this many seconds "
                                                                "are near-duplicates (default 60)")
    o.add_argument("--no-context", action="store_true", help="rank by the k-th neighbour distance alone")
    o.add_argument("--context-max", type=int, default=16, help="context samples compared on each side in time "
                                                                "(default 16)")
    o.add_argument("--fold-cos", type=float, default=0.9,
                   help="a sample of the same source as a listed one, within --dedup-s of it and at least this "
                        "cosine-similar, is folded into it (column folded) instead of listed again (default 0.9)")
    o.add_argument("--keep-duplicates", action="store_true", help="list every sample, near-duplicates included")
    o.add_argument("--index", default=None, help="search through this index (default: exact search)")
    o.add_argument("--exact-max", type=int, default=500_000, help="largest set searched exactly (default 500000)")
    o.add_argument("--montage", type=int, default=48, help="samples in the montage (default 48; 0: no montage)")
    o.add_argument("--out", default="outliers", help="output folder (default ./outliers)")
    o.add_argument("--overwrite", action="store_true", help="replace the outlier list of an earlier run in --out")
    o.set_defaults(func=_outliers)

    m = sub.add_parser("map", help="2-D map (PCA + t-SNE) of the embeddings: PNG and a self-contained HTML",
                       description="t-SNE of a sample, coloured by label, cluster or time; the HTML shows each "
                                   "sample when hovered.")
    m.add_argument("embeddings", help="embeddings store (E.zarr)")
    m.add_argument("--out", required=True, help="PNG path; the HTML is written beside it")
    m.add_argument("--color", choices=("label", "cluster", "time"), default="label")
    m.add_argument("--sample", type=int, default=5000, help="embeddings mapped (default 5000)")
    m.add_argument("--clusters", default=None, help="catalog.csv/.parquet from `spacessl cluster` for --color "
                                                    "cluster (default: k-means on the sample)")
    m.add_argument("--perplexity", type=float, default=30.0)
    m.add_argument("--thumbnails", type=int, default=2000, help="points with a hover thumbnail (default 2000)")
    m.add_argument("--no-html", action="store_true", help="PNG only")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--overwrite", action="store_true", help="replace an existing map (PNG and HTML) of that name")
    m.set_defaults(func=_map)

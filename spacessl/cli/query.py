"""`spacessl query IDX/ (--id N | --file PATH | --vector V.npy) [-k 20] [filters] [--json] [--gallery OUT.png]
[--overwrite]`."""

from __future__ import annotations

import argparse


def _query(args: argparse.Namespace) -> int:
    from spacessl.errors import refuse_existing
    from spacessl.index.query import QueryError, query

    if args.gallery and not args.overwrite:
        refuse_existing([args.gallery], what="a gallery", error=QueryError)
    result = query(args.index, id=args.id, file=args.file, vector=args.vector, k=args.k, since=args.since,
                   until=args.until, source=args.source, label=args.label, dedup=args.dedup,
                   model_uri=args.model, tracking_uri=args.tracking_uri)
    print(result.to_json() if args.json else result.table())
    if args.gallery:
        path = result.gallery(args.gallery)
        if not args.json:
            print(f"gallery: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="find the archive samples most similar to one sample",
                       description="Nearest neighbours of an archive sample (--id), a loose image or waveform file "
                                   "(--file, decoded and embedded like the archive) or a vector (--vector).")
    p.add_argument("index", help="index folder built by `spacessl index build`")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--id", type=int, help="archive row id of the query sample")
    what.add_argument("--file", help="image or waveform file to query with")
    what.add_argument("--vector", help=".npy file holding one D-dimensional query vector")
    p.add_argument("-k", type=int, default=20, help="number of neighbours (default 20)")
    p.add_argument("--since", help="only results at or after this UTC time (ISO 8601, e.g. 2008-02-01T06:00)")
    p.add_argument("--until", help="only results before this UTC time (ISO 8601)")
    p.add_argument("--source", help="only results from this camera / station")
    p.add_argument("--label", help="only results with this label (name, or -1 for unlabelled)")
    p.add_argument("--dedup", default="30s",
                   help="at most one result per source within ± this duration (30s, 5min, 2h; 0 = off; "
                        "default 30s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--gallery", metavar="OUT.png", help="draw the query beside its neighbours into this PNG")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --gallery file")
    p.add_argument("--model", default=None, help="encoder for --file (default: the one the index records)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store for models:/ and runs:/ URIs")
    p.set_defaults(func=_query)

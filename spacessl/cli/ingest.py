"""`spacessl ingest SOURCE ...`: raw files → archive.

One ``_add_<source>(sub)`` function per source kind (it adds the subparser and its handler) and one entry in
``SOURCES``; handlers parse, call the library and print its report.
"""

from __future__ import annotations

import argparse


def _workers(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"--workers must be >= 0 (0 = no worker processes), got {n}")
    return n


def _images(args: argparse.Namespace) -> int:
    common = dict(size=args.size, channels=args.channels, strict=args.strict, workers=args.workers,
                  chunk_size=args.chunk_size, overwrite=args.overwrite, progress=not args.quiet)
    if args.format == "oath":
        from spacessl.errors import SpacesslError
        from spacessl.ingest.oath import ingest_oath

        if args.labels or args.source:
            raise SpacesslError("--format oath takes labels and sources from the OATH files; "
                                "drop --labels/--source or use --format folder")
        report = ingest_oath(args.src_dir, args.out, **common)
    else:
        from spacessl.ingest.images import ingest_images

        report = ingest_images(args.src_dir, args.out, labels_csv=args.labels, source=args.source, fit=args.fit,
                               **common)
    print(report.summary())
    return 0


def _add_images(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("images", help="image folder (PNG, JPEG, TIFF, PGM; 8/16 bit; grey or colour) or OATH",
                       description="Ingest every image under SRC_DIR (sorted by path) into an image archive. "
                                   "Rerun the same command to resume an interrupted ingest.")
    p.add_argument("src_dir", metavar="SRC_DIR", help="folder of images (searched recursively) or the OATH folder")
    p.add_argument("out", metavar="OUT.zarr", help="archive to write (local path, s3://, gs://)")
    p.add_argument("--format", choices=("folder", "oath"), default="folder",
                   help="folder: any image folder (default); oath: the published OATH layout with its labels")
    p.add_argument("--labels", metavar="CSV", help="CSV with columns filename,label (class names or integers)")
    p.add_argument("--size", type=int, default=256, help="output height and width in pixels (default 256)")
    p.add_argument("--channels", choices=("auto", "gray", "rgb"), default="auto",
                   help="archive channels; auto: rgb if the files hold real colour, else gray (default)")
    p.add_argument("--fit", choices=("crop", "stretch"), default="crop",
                   help="non-square images: crop the central square (default) or stretch")
    p.add_argument("--source", help="camera id for every sample (default: each file's parent folder name)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of listing it")
    p.add_argument("--workers", type=_workers, default=None, help="decoding processes (default: all CPUs)")
    p.add_argument("--chunk-size", type=int, default=256, help="samples per archive chunk (default 256)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing archive")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_images)


def _themis(args: argparse.Namespace) -> int:
    from spacessl.ingest.themis import ingest_themis

    report = ingest_themis(args.sources, args.out, size=args.size, strict=args.strict, workers=args.workers,
                           chunk_size=args.chunk_size, overwrite=args.overwrite, progress=not args.quiet)
    print(report.summary())
    return 0


def _add_themis(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("themis", help="THEMIS ASI level-1 CDF files thg_l1_asf_SITE_YYYYMMDDHH_v01.cdf",
                       description="Ingest every frame of THEMIS ASI level-1 CDF files with its epoch time and "
                                   "site. Rerun the same command to resume an interrupted ingest.")
    p.add_argument("sources", metavar="SRC", nargs="+", help="CDF files or folders holding them")
    p.add_argument("out", metavar="OUT.zarr", help="archive to write (local path, s3://, gs://)")
    p.add_argument("--size", type=int, default=256, help="frame height and width (default 256 = native)")
    p.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of listing it")
    p.add_argument("--workers", type=_workers, default=None, help="reader processes (default: all CPUs)")
    p.add_argument("--chunk-size", type=int, default=256, help="samples per archive chunk (default 256)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing archive")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_themis)


#: one entry per source kind
SOURCES = [
    _add_images,
    _add_themis,
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ingest", help="raw files → archive (images, THEMIS CDF, ...)")
    sub = p.add_subparsers(dest="ingest_command", required=True, metavar="SOURCE")
    for add in SOURCES:
        add(sub)

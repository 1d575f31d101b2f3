"""`spacessl archive info PATH [--json]`."""

from __future__ import annotations

import argparse
import json

from spacessl.archive import open_archive
from spacessl.archive.info import archive_info, format_info


def _info(args: argparse.Namespace) -> int:
    archive = open_archive(args.path, require_complete=False)
    info = archive_info(archive)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("archive", help="inspect archives")
    asub = p.add_subparsers(dest="archive_command", required=True, metavar="ACTION")
    info = asub.add_parser("info", help="summarise an archive: modality, N, shapes, chunks, labels, time, size")
    info.add_argument("path", help="archive URL (local path, s3://, gs://)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_info)

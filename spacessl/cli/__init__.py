"""The `spacessl` command: thin argparse front end; each area registers its subcommands in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from spacessl.errors import SpacesslError

#: Modules under spacessl.cli that expose ``register(subparsers)``.
AREAS: list[str] = [
    "archive",
    "synth",
    "ingest",
    "train",
    "embed",
    "index",
    "query",
    "evaluate",
    "explore",
    "serve",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every area's subcommands."""
    parser = argparse.ArgumentParser(prog="spacessl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in AREAS:
        importlib.import_module(f"spacessl.cli.{area}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except SpacesslError as exc:
        print(f"spacessl: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

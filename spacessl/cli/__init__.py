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


#: what ``spacessl --help`` says the tool is for
DESCRIPTION = ("Self-supervised learning for unlabelled all-sky image and seismic waveform archives: train an "
               "encoder (Ray Train, MLflow), embed the archive into a FAISS index, then query, evaluate, cluster and "
               "catalog it. "
               "`spacessl COMMAND --help` describes each command.")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every area's subcommands."""
    parser = argparse.ArgumentParser(prog="spacessl", description=DESCRIPTION)
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

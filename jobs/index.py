"""Ray job entry point for the index stage (`spacessl index build|add` on the node it was submitted to).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/index.py build s3://bucket/aurora.emb.zarr --out /mnt/idx/aurora --memory-budget 64GB
    python jobs/index.py add /mnt/idx/aurora s3://bucket/aurora-2013.emb.zarr

The index is written to a local (or mounted) folder: shard files are memory-mapped at search time. An object-store
``--out`` (s3://, gs://) is built in ``--staging`` (default: a folder under the temporary directory) and uploaded
when finished. Rerun the same command after an interruption: finished shards are kept.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def _is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def main(argv: list[str] | None = None) -> int:
    from spacessl.cli.index import add_add_arguments, add_build_arguments, run_add, run_build
    from spacessl.errors import SpacesslError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = parser.add_subparsers(dest="command", required=True)
    b = cmds.add_parser("build", help="build an index")
    add_build_arguments(b)
    b.add_argument("--staging", default=None, help="local folder to build an object-store --out in")
    a = cmds.add_parser("add", help="append the shards of a grown archive")
    add_add_arguments(a)
    args = parser.parse_args(argv)
    try:
        if args.command == "add":
            return run_add(args)
        remote = args.out if _is_remote(args.out) else None
        if remote:
            name = remote.rstrip("/").rsplit("/", 1)[-1]
            args.out = str(Path(args.staging or Path(tempfile.gettempdir()) / "spacessl-index-staging") / name)
        rc = run_build(args)
        if remote:
            import fsspec

            fs, path = fsspec.core.url_to_fs(remote)
            fs.put(args.out.rstrip("/") + "/", path, recursive=True)
            print(f"uploaded to {remote}")
        return rc
    except SpacesslError as exc:
        print(f"spacessl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Ray job entry point for the bulk embedding job (`spacessl embed` on the cluster it was submitted to).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/embed.py --model models:/aurora@current --archive s3://bucket/aurora.zarr \
            --out s3://bucket/aurora.emb.zarr

Set MLFLOW_TRACKING_URI in the runtime env for ``models:/`` and ``runs:/`` URIs. Rerun the same command after an
interruption: finished shards are skipped.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from spacessl.cli.embed import add_embed_arguments, run_embed
    from spacessl.errors import SpacesslError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_embed_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_embed(args)
    except SpacesslError as exc:
        print(f"spacessl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

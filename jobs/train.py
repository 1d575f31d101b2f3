"""Ray job entry point for training: connects to the cluster it was submitted to and runs `spacessl train`.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train.py --config configs/oath_simsiam.yaml runtime.num_workers=4 runtime.use_gpu=true

Set MLFLOW_TRACKING_URI (e.g. with ``--runtime-env-json '{"env_vars": {"MLFLOW_TRACKING_URI": "http://mlflow:5000"}}'``)
so the run lands on the shared tracking server, and ``runtime.storage_path`` to shared storage (s3://..., NFS)
so every node can write checkpoints. Add ``--smoke-test`` to run one short epoch on a copy of the config.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="experiment YAML")
    parser.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    parser.add_argument("--smoke-test", action="store_true",
                        help="1 epoch of at most 5 steps under the name <name>-smoke (overwritten), to check set-up")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    args = parser.parse_args(argv)

    from spacessl.config import load_config
    from spacessl.errors import SpacesslError
    from spacessl.train.run import connect_ray, describe, train

    overrides = list(args.overrides)
    if args.smoke_test:
        overrides += ["train.epochs=1", "train.max_steps_per_epoch=5"]
    try:
        cfg = load_config(args.config, overrides)
        if args.smoke_test:
            cfg.name = f"{cfg.name}-smoke"
        connect_ray(cfg.runtime.ray_address)  # inside `ray job submit`: $RAY_ADDRESS, the submitting cluster
        result = train(cfg, resume=args.resume, overwrite=args.overwrite or args.smoke_test)
    except SpacesslError as exc:
        print(f"spacessl: error: {exc}", file=sys.stderr)
        return 2
    print(describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`spacessl serve IDX/ [--host 127.0.0.1 --port 8000] [--ray-serve]`."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    if args.ray_serve:
        from spacessl.serve.ray_serve import run_on_ray_serve

        run_on_ray_serve(args.index, host=args.host, port=args.port, model_uri=args.model,
                         replicas=args.replicas, ray_address=args.ray_address)
        return 0
    import uvicorn

    from spacessl.serve.app import create_app

    app = create_app(args.index, model_uri=args.model)
    print(f"serving {args.index} on http://{args.host}:{args.port}/ (API spec: /docs, /openapi.json)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="web gallery and JSON API over an index")
    p.add_argument("index", help="index folder written by `spacessl index build`")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default=None, help="encoder URI for uploaded files (default: the index's model)")
    p.add_argument("--ray-serve", action="store_true", help="run the app as a Ray Serve deployment")
    p.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: local or $RAY_ADDRESS)")
    p.set_defaults(func=_serve)

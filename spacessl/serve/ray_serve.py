"""The same FastAPI app as a Ray Serve deployment, for clusters."""

from __future__ import annotations

import time


def run_on_ray_serve(index_dir: str, *, host: str = "127.0.0.1", port: int = 8000, model_uri: str | None = None,
                     replicas: int = 1, ray_address: str | None = None, blocking: bool = True):
    """Deploy :func:`spacessl.serve.app.create_app` on Ray Serve at http://host:port/ and (optionally) block."""
    import ray
    from ray import serve

    from spacessl.serve.app import create_app

    if not ray.is_initialized():
        ray.init(address=ray_address or None)
    index_dir = str(index_dir)

    def build_app():  # evaluated on each replica: the index is opened there, not pickled from the driver
        return create_app(index_dir, model_uri=model_uri)

    @serve.deployment(num_replicas=replicas, ray_actor_options={"num_cpus": 0.5})
    @serve.ingress(build_app)
    class SpacesslQuery:
        pass

    serve.start(http_options={"host": host, "port": port})
    handle = serve.run(SpacesslQuery.bind(), name="spacessl", route_prefix="/")
    print(f"serving {index_dir} on Ray Serve at http://{host}:{port}/")
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            serve.shutdown()
    return handle

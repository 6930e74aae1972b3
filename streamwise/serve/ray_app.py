"""``streamwise serve --ray``: the same app as a Ray Serve deployment with several replicas.

Each replica runs its own ``Service`` (batching, scheduler) over a shared Redis store.  A WebSocket
stays on the replica that accepted it, so a live session is pinned there; every reply is
checkpointed first, so when a replica dies its clients reconnect (to any replica) and resume from
Redis exactly where they were.  HTTP calls reload the session from the store unless a socket on
the same replica holds it.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from ray import serve

from streamwise.serve.service import ServeConfig

DEPLOYMENT = "StreamwiseServer"


@serve.ingress()
class StreamwiseServer:
    """One replica: models, a scheduler and a Redis-backed store."""

    def __init__(self, specs: list[str], store: str, config: dict[str, Any]) -> None:
        import torch

        from streamwise.serve.run import load_models
        from streamwise.serve.service import Service
        from streamwise.serve.store import open_store

        torch.set_num_threads(1)
        cfg = ServeConfig(**{**config, "shared_store": True})
        cfg.server_id = serve.get_replica_context().replica_id.unique_id
        self.service = Service(load_models(specs), open_store(store, ttl_s=cfg.idle_timeout_s),
                               cfg)

    def __serve_build_asgi_app__(self) -> Any:
        from streamwise.serve.app import create_app

        return create_app(self.service)


def deployment(specs: list[str], store: str, config: ServeConfig | None = None,
               replicas: int = 2, cpus_per_replica: float = 0.5) -> Any:
    """A bound Ray Serve application (pass to ``serve.run``)."""
    if not store.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"--ray needs a store all replicas reach (redis://...), got {store!r}")
    cfg = config or ServeConfig()
    dep: Any = serve.deployment(
        StreamwiseServer, name=DEPLOYMENT, num_replicas=replicas,
        ray_actor_options={"num_cpus": cpus_per_replica},
        max_ongoing_requests=max(100, cfg.max_sessions), health_check_period_s=1,
    )
    return dep.bind(specs, store, asdict(cfg))


def serve_ray(specs: list[str], address: str = "auto", port: int = 8000,
              store: str = "redis://127.0.0.1:6379/0", replicas: int = 2,
              config: ServeConfig | None = None) -> None:
    """Connect to a Ray cluster, deploy on 127.0.0.1:``port``, block until interrupted."""
    import ray

    ray.init(address=address)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(deployment(specs, store, config, replicas), name="streamwise", route_prefix="/")
    print(f"streamwise serve --ray: {replicas} replicas on http://127.0.0.1:{port} "
          f"(store {store})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()

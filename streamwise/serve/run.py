"""``streamwise serve``: build the models, open the store, run uvicorn on 127.0.0.1."""

from __future__ import annotations

import gc

from torch import nn

from streamwise.core.factory import load_factory
from streamwise.core.protocol import StreamingModule
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.store import open_store


def demo_models() -> dict[str, StreamingModule]:
    """The models a bare ``streamwise serve`` offers: the demo denoiser and a VAD-sized net."""
    from streamwise.models.seanet import denoiser
    from streamwise.models.tiny_vad import tiny_vad

    return {"denoiser": denoiser(), "tiny_vad": tiny_vad()}


def load_models(specs: list[str]) -> dict[str, StreamingModule]:
    """``[name=]pkg.module:factory`` specs -> named streaming models (demo models if none)."""
    if not specs:
        return demo_models()
    models: dict[str, StreamingModule] = {}
    for spec in specs:
        name, _, target = spec.rpartition("=") if "=" in spec.split(":")[0] else ("", "", spec)
        model: nn.Module = load_factory(target)
        if not isinstance(model, StreamingModule):
            raise ValueError(f"{target} gave a plain {type(model).__name__}; serve needs a "
                             "streamwise model (build it from streamwise layers)")
        models[name or target.rsplit(":", 1)[1]] = model
    return models


def serve(specs: list[str], host: str = "127.0.0.1", port: int = 8000, store: str = "sqlite:"
          "streamwise-sessions.db", config: ServeConfig | None = None,
          log_level: str = "warning") -> None:
    """Run the server until interrupted."""
    import torch
    import uvicorn

    from streamwise.serve.app import create_app

    torch.set_num_threads(1)  # one compute thread; the event loop keeps the other core
    cfg = config or ServeConfig()
    service = Service(load_models(specs), open_store(store, ttl_s=cfg.idle_timeout_s), cfg)
    gc.collect()
    gc.freeze()  # models and imports never become garbage: keep them out of every collection
    gc.set_threshold(50_000, 20, 20)  # fewer young collections under per-chunk allocation
    app = create_app(service)
    print(f"streamwise serve: {', '.join(service.models)} on http://{host}:{port} "
          f"(store {store}, batching {'on' if cfg.batching else 'off'})", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=cfg.max_message_bytes,
                ws="websockets-sansio", ws_per_message_deflate=False)  # audio does not compress

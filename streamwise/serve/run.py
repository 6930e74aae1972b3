"""``streamwise serve``: build the models, open the store, run uvicorn on 127.0.0.1."""

from __future__ import annotations

import gc
import logging
from typing import Any

from torch import nn

from streamwise.core.factory import load_factory
from streamwise.core.protocol import StreamingModule
from streamwise.serve.service import ServeConfig, Service
from streamwise.serve.store import open_store


def ws_max_size(max_message_bytes: int) -> int:
    """The WebSocket frame limit the server is run with: twice the app's message limit."""
    return 2 * max_message_bytes


def demo_models(asr: bool = True) -> dict[str, StreamingModule]:
    """The models a bare ``streamwise serve`` offers: the demo denoiser, a VAD-sized net and
    (``asr``) the word recogniser at 160 ms chunks (``asr``; torch only: its export is not
    served)."""
    from streamwise.models.seanet import denoiser
    from streamwise.models.tiny_vad import tiny_vad

    models: dict[str, StreamingModule] = {"denoiser": denoiser(), "tiny_vad": tiny_vad()}
    if asr:
        from streamwise.speech.recognizer import load_recognizer

        models["asr"] = load_recognizer(chunk=4)
    return models


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


def runtime_models(specs: list[str], runtime: str = "torch", onnx_cache: str | None = None,
                   onnx_files: list[str] | None = None, onnx_chunk: int | None = None
                   ) -> dict[str, Any]:
    """The served models: torch modules, or (``runtime="onnx"``) ``OnnxServed`` exports.

    ``onnx_files``: ``name=PATH.onnx`` served as given (no export; a name that no factory
    builds is served from the file alone)."""
    if runtime == "torch":
        if onnx_files:
            raise ValueError("--onnx FILE needs --runtime onnx")
        return dict(load_models(specs))
    if runtime != "onnx":
        raise ValueError(f"--runtime is torch or onnx, got {runtime!r}")
    from streamwise.serve.onnx_runtime import DEFAULT_CACHE, onnx_models

    files: dict[str, str] = {}
    for f in onnx_files or []:
        name, sep, path = f.partition("=")
        if not sep or not name or not path.endswith(".onnx"):
            raise ValueError(f"--onnx takes NAME=PATH.onnx, got {f!r}")
        files[name] = path
    models = (load_models(specs) if specs else demo_models(asr=False)) if specs or not files \
        else {}
    return dict(onnx_models(models, onnx_cache or DEFAULT_CACHE, files, onnx_chunk))


def serve(specs: list[str], host: str = "127.0.0.1", port: int = 8000, store: str = "sqlite:"
          "streamwise-sessions.db", config: ServeConfig | None = None,
          log_level: str = "warning", runtime: str = "torch", onnx_cache: str | None = None,
          onnx_files: list[str] | None = None, onnx_chunk: int | None = None) -> None:
    """Run the server until interrupted."""
    import torch
    import uvicorn

    from streamwise.serve.app import create_app

    torch.set_num_threads(1)  # one compute thread; the event loop keeps the other core
    cfg = config or ServeConfig()
    logging.basicConfig(format="%(message)s")
    models = runtime_models(specs, runtime, onnx_cache, onnx_files, onnx_chunk)
    service = Service(models, open_store(store, ttl_s=cfg.idle_timeout_s), cfg)
    gc.collect()
    gc.freeze()  # models and imports never become garbage: keep them out of every collection
    gc.set_threshold(50_000, 20, 20)  # fewer young collections under per-chunk allocation
    app = create_app(service)
    print(f"streamwise serve: {', '.join(service.models)} on http://{host}:{port} "
          f"(store {store}, batching {'on' if cfg.batching else 'off'}, runtime {runtime})",
          flush=True)
    # the socket takes messages up to twice the limit, so one over the limit gets the app's own
    # too_large reply and the socket stays usable; past twice the limit it closes with 1009
    uvicorn.run(app, host=host, port=port, log_level=log_level,
                ws_max_size=ws_max_size(cfg.max_message_bytes),
                ws="websockets-sansio", ws_per_message_deflate=False,  # audio does not compress
                proxy_headers=False)  # limits are per peer: a forged X-Forwarded-For moves none

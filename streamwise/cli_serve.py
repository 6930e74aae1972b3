"""``streamwise serve ...``: the server's command line (flags -> ``ServeConfig``)."""

from __future__ import annotations

import argparse
import sys

from streamwise.cli_types import COUNT, NON_NEGATIVE, PORT, POSITIVE

MIB = 1 << 20


def _cmd_serve(args: argparse.Namespace) -> int:
    from streamwise.serve.run import serve
    from streamwise.serve.service import ServeConfig

    cfg = ServeConfig(max_batch=args.max_batch, batching=not args.no_batching,
                      batch_wait_ms=args.batch_wait_ms, slo_batching=args.slo_batching,
                      checkpoint_every=args.checkpoint_every, idle_timeout_s=args.idle_timeout,
                      default_budget_ms=args.budget_ms, max_sessions=args.max_sessions,
                      max_unacked=args.max_unacked, open_rate_per_s=args.open_rate,
                      open_burst=args.open_burst, max_client_bytes=int(args.max_client_mb * MIB),
                      max_outbox_bytes=int(args.max_outbox_mb * MIB),
                      allowed_origins=tuple(args.allow_origin), shared_store=args.shared_store)
    problem, warning = host_check(args.host, args.allow_remote)
    if problem:
        print(f"streamwise serve: {problem}", file=sys.stderr)
        return 2
    if warning:
        print(f"streamwise serve: WARNING: {warning}", file=sys.stderr)
    if args.ray and args.runtime != "torch":
        print("streamwise serve: --ray serves the torch runtime only (not --runtime onnx yet)",
              file=sys.stderr)
        return 2
    if args.ray:
        from streamwise.serve.ray_app import serve_ray

        serve_ray(args.factory, address=args.ray_address, port=args.port, store=args.store,
                  replicas=args.replicas, config=cfg)
        return 0
    try:
        serve(args.factory, host=args.host, port=args.port, store=args.store, config=cfg,
              runtime=args.runtime, onnx_cache=args.onnx_cache, onnx_files=args.onnx,
              onnx_chunk=args.onnx_chunk, log_level=args.log_level)
    except ValueError as e:
        print(f"streamwise serve: {e}", file=sys.stderr)
        return 2
    return 0


def host_check(host: str, allow_remote: bool) -> tuple[str | None, str | None]:
    """``(refusal, warning)`` for serving on ``host``: a non-loopback address needs
    ``--allow-remote`` and is then warned about (the server speaks plain HTTP/WebSocket)."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None, None
    if not allow_remote:
        return (f"--host {host} is not a loopback address: sessions and their tokens would be "
                "reachable from other machines over plain HTTP; pass --allow-remote to do it "
                "anyway (behind a TLS proxy), or serve on 127.0.0.1"), None
    return None, (f"serving on {host}, reachable from other machines: the server speaks plain "
                  "HTTP/WebSocket, so put a TLS-terminating proxy in front of it")


def add_serve(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="serve live streams over WebSocket/HTTP (127.0.0.1)")
    s.add_argument("factory", nargs="*", help="[name=]pkg.module:factory (default: the demo "
                   "denoiser and tiny_vad)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (loopback unless --allow-remote)")
    s.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other than loopback (warns: plain HTTP)")
    s.add_argument("--port", type=PORT, default=8000)
    s.add_argument("--store", default="sqlite:streamwise-sessions.db",
                   help="memory, sqlite:PATH or redis://127.0.0.1:6379/0")
    s.add_argument("--max-batch", type=COUNT, default=64)
    s.add_argument("--no-batching", action="store_true", help="one step per session (baseline)")
    s.add_argument("--batch-wait-ms", type=NON_NEGATIVE, default=10.0,
                   help="how long a tick may wait for more sessions to batch")
    s.add_argument("--slo-batching", action="store_true",
                   help="cut batches by the measured step-latency model so deadlines hold")
    s.add_argument("--checkpoint-every", type=COUNT, default=1, help="chunks between checkpoints")
    s.add_argument("--idle-timeout", type=POSITIVE, default=600.0, help="seconds")
    s.add_argument("--budget-ms", type=POSITIVE, default=100.0, help="default latency budget")
    s.add_argument("--max-sessions", type=COUNT, default=2000)
    s.add_argument("--max-unacked", type=COUNT, default=1024,
                   help="outputs a session may leave unacknowledged")
    s.add_argument("--open-rate", type=POSITIVE, default=10.0,
                   help="session opens per second per client address, after --open-burst")
    s.add_argument("--open-burst", type=COUNT, default=256)
    s.add_argument("--max-client-mb", type=POSITIVE, default=256.0, help="memory a client's "
                   "sessions may hold here (queued chunks, unacknowledged outputs)")
    s.add_argument("--max-outbox-mb", type=POSITIVE, default=8.0,
                   help="unread replies on one WebSocket before it is shed (slow_client)")
    s.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a browser origin besides the server's own, e.g. https://app.example "
                   "('*': any; repeatable)")
    s.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                   help="step sessions with torch, or through onnxruntime (exported once)")
    s.add_argument("--onnx-cache", default=None, help="folder of cached ONNX exports (with "
                   "--runtime onnx; default ~/.cache/streamwise/onnx or $STREAMWISE_ONNX_CACHE)")
    s.add_argument("--onnx", action="append", default=[], metavar="NAME=PATH.onnx",
                   help="serve NAME from this exported file (with --runtime onnx; repeatable)")
    s.add_argument("--onnx-chunk", type=COUNT, default=None, help="export chunk in frames, a "
                   "multiple of each model's period (default: the period)")
    s.add_argument("--shared-store", action="store_true",
                   help="other servers share --store (behind one load balancer): a session is "
                   "reloaded from the store whenever no socket here holds it (--ray sets it)")
    s.add_argument("--log-level", default="warning",
                   choices=("critical", "error", "warning", "info", "debug", "trace"),
                   help="uvicorn's log level (info: the access log; tokens never appear in it: "
                   "they travel in headers and message bodies, not URLs)")
    s.add_argument("--ray", action="store_true", help="run as a Ray Serve deployment")
    s.add_argument("--ray-address", default="auto", help="Ray cluster (with --ray)")
    s.add_argument("--replicas", type=COUNT, default=2, help="Ray Serve replicas (with --ray)")
    s.set_defaults(fn=_cmd_serve)

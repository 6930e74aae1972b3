"""FastAPI app: WebSocket streaming (binary chunks, JSON control), an HTTP API, metrics, a page.

See ``docs/serve-protocol.md`` for the protocol.  ``create_app`` builds the app around a
``Service``; ``streamwise serve`` runs it with uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Header, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from torch import Tensor

from streamwise.serve.connection import SHED_WAIT_S, Connection
from streamwise.serve.errors import ServeError
from streamwise.serve.limits import origin_allowed
from streamwise.serve.middleware import BodyLimit, OriginCheck
from streamwise.serve.service import Service


class OpenRequest(BaseModel):
    model: str | None = Field(None, description="model name (default: the server's first)")
    budget_ms: float | None = Field(None, description="latency budget per chunk, ms")


class OpenResponse(BaseModel):
    session: str
    token: str = Field(description="secret: send as 'Authorization: Bearer <token>'")
    model: dict[str, Any]


class PushRequest(BaseModel):
    seq: int = Field(description="0, 1, 2, ... per session; a repeat is idempotent")
    data: list[list[float]] = Field(description="[channels][frames] samples")
    ack: int | None = Field(None, description="highest output seq consumed (cumulative)")


class Output(BaseModel):
    seq: int
    data: list[list[float]]


class PushResponse(Output):
    durable_seq: int = Field(description="highest seq whose result survives a server crash")


class AckRequest(BaseModel):
    ack: int


class ResumeResponse(BaseModel):
    session: str
    next_seq: int = Field(description="the seq the next new chunk must carry")
    durable_seq: int
    outputs: list[Output] = Field(description="outputs after the acknowledged seq, in order")


def _token(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _out(seq: int, y: Tensor) -> Output:
    return Output(seq=seq, data=y[0].tolist())


def create_app(service: Service, reap_every_s: float = 1.0) -> FastAPI:
    """The ASGI app for ``service`` (one per process)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def reap() -> None:
            while True:
                await asyncio.sleep(reap_every_s)
                service.reap_idle()

        task = asyncio.create_task(reap())
        yield
        task.cancel()
        service.shutdown()

    app = FastAPI(title="streamwise serve", version="1",
                  description="Exact streaming inference for many live sessions.",
                  lifespan=lifespan)
    app.state.service = service
    app.add_middleware(BodyLimit, service=service)
    app.add_middleware(OriginCheck, service=service)  # outermost: a foreign page gets nothing
    default_model = next(iter(service.models))

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        """A body that is not JSON, or not the request's fields: the documented error shape."""
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in exc.errors()[:3])
        err = service.refuse("bad_request", f"malformed request body ({problems}); expected "
                             f"JSON with the fields documented at /docs")
        return JSONResponse(err.as_dict(), status_code=err.status)

    @app.exception_handler(HTTPException)
    async def unparsable(request: Request, exc: HTTPException) -> JSONResponse:
        """FastAPI's 400 for a body its JSON parser cannot read (bad UTF-8, too deep, a huge
        integer) in the documented shape; other HTTP errors (404 route, 405) as they are."""
        if exc.status_code == 400:
            err = service.refuse("bad_request", f"malformed request body ({exc.detail}); "
                                 "expected JSON with the fields documented at /docs")
            return JSONResponse(err.as_dict(), status_code=err.status)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        service.count(exc)
        return JSONResponse(exc.as_dict(), status_code=exc.status)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        sched = service.scheduler
        ok = sched.alive
        body = {"ok": ok, "sessions": len(service.sessions), "load": round(sched.load(), 3),
                "errors": sched.errors, "store_failures": sched.store_failures,
                "store_ok": sched.store_ok}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        return service.info()

    @app.post("/v1/sessions", response_model=OpenResponse)
    async def open_session(req: OpenRequest, request: Request) -> OpenResponse:
        client = request.client.host if request.client else "?"
        sess, token = service.open(req.model or default_model, client, req.budget_ms)
        return OpenResponse(session=sess.id, token=token, model=service.model_info(sess.model))

    @app.post("/v1/sessions/{sid}/chunks", response_model=PushResponse)
    async def push(sid: str, req: PushRequest, request: Request,
                   authorization: str | None = Header(None)) -> PushResponse:
        sess = service.get(sid, _token(authorization))
        try:
            with np.errstate(over="ignore"):  # beyond float32 becomes inf: refused as non_finite
                arr = np.asarray(req.data, dtype=np.float32)
        except ValueError as e:
            raise service.refuse("bad_shape", f"data must be [channels][frames] numbers: {e}"
                                 ) from None
        seq, y = await service.push(sess, req.seq, arr, req.ack)
        return PushResponse(seq=seq, data=y[0].tolist(), durable_seq=sess.durable_seq)

    @app.post("/v1/sessions/{sid}/ack")
    async def ack(sid: str, req: AckRequest, authorization: str | None = Header(None)
                  ) -> dict[str, int]:
        sess = service.get(sid, _token(authorization))
        service.ack(sess, req.ack)
        return {"acked": sess.acked}

    @app.post("/v1/sessions/{sid}/resume", response_model=ResumeResponse)
    async def resume(sid: str, req: AckRequest, authorization: str | None = Header(None)
                     ) -> ResumeResponse:
        sess, outs = await service.resume(sid, _token(authorization), req.ack)
        return ResumeResponse(session=sid, next_seq=sess.next_submit,
                              durable_seq=sess.durable_seq,
                              outputs=[_out(s, y) for s, y in outs])

    @app.post("/v1/sessions/{sid}/close", response_model=Output)
    async def close(sid: str, authorization: str | None = Header(None)) -> Output:
        sess = service.get(sid, _token(authorization))
        seq, tail = await service.close(sess)
        return _out(seq, tail)

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if not origin_allowed(origin, ws.headers.get("host"), service.config.allowed_origins):
            service.refuse("forbidden_origin", f"WebSocket from origin {origin!r} refused")
            await ws.close(code=1008)  # before accept: the handshake is answered 403
            return
        await ws.accept()
        await _serve_socket(service, ws, default_model)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files("streamwise.serve").joinpath("static/index.html").read_text()
        return HTMLResponse(html)

    @app.get("/v1/clip", include_in_schema=False)
    async def clip(name: str = "speech") -> Response:
        """A shipped clip as float32 samples: ``speech`` (a sentence, for the denoiser) or
        ``words`` (the recogniser's words, spoken by a voice it never heard)."""
        from streamwise.assets import speech, words_clip

        if name not in ("speech", "words"):
            raise service.refuse("bad_request", f"clip is 'speech' or 'words', got {name[:40]!r}")
        audio, rate = speech() if name == "speech" else words_clip()[:2]
        return Response(audio.numpy().astype("<f4").tobytes(),
                        media_type="application/octet-stream",
                        headers={"X-Sample-Rate": str(rate)})

    return app


async def _serve_socket(service: Service, ws: WebSocket, default_model: str) -> None:
    """One connection drives one session: first ``open`` or ``resume``, then chunks and control."""
    client = ws.client.host if ws.client else "?"
    conn = Connection(service, ws)
    conn.reader = asyncio.current_task()
    wtask = asyncio.create_task(conn.writer())
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
            raw_b, raw_t = msg.get("bytes"), msg.get("text")
            size = len(raw_b or b"") + len((raw_t or "").encode())
            try:
                if size > service.config.max_message_bytes:
                    raise service.refuse("too_large", f"message of {size} bytes exceeds the "
                                         f"limit of {service.config.max_message_bytes}")
                if raw_b is not None:
                    conn.push(raw_b)
                else:
                    await _control(service, conn, raw_t or "", client, default_model)
            except ServeError as e:
                conn.send_json(service.count(e).as_dict())
            except _Closed:
                break
    except WebSocketDisconnect:
        pass
    except asyncio.CancelledError:
        if conn.shed is None:
            raise  # the server is stopping
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
    finally:
        if conn.shed is not None:  # the writer may wait forever on a socket nobody reads
            wtask.cancel()  # the replies it holds stay in the session, for ``resume``
            with contextlib.suppress(BaseException):  # the close frame, once the client reads
                await asyncio.wait_for(ws.close(code=1008, reason=conn.shed[:120]), SHED_WAIT_S)
        conn.outbox.put_nowait(None)
        with contextlib.suppress(BaseException):
            await wtask
        if conn.sess is not None and not conn.sess.closed:
            service.detach(conn.sess)


class _Closed(Exception):
    """The client closed its session; the socket ends."""


async def _control(service: Service, conn: Connection, text: str, client: str,
                   default_model: str) -> None:
    try:
        msg = json.loads(text)
        op = msg["op"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise service.refuse("bad_request", "expected a JSON object with an 'op' field "
                             "(open, resume, ack, peek, close)") from None
    sess = conn.sess
    if op in ("open", "resume") and sess is not None:
        raise service.refuse("bad_request", "this connection already has a session")
    if op == "open":
        new, token = service.open(msg.get("model") or default_model, client, msg.get("budget_ms"))
        service.attach(new)
        conn.sess = new
        conn.send_json({"op": "opened", "session": new.id, "token": token,
                        "model": service.model_info(new.model),
                        "server": service.config.server_id})
        return
    if op == "resume":
        try:
            ack = int(msg.get("ack", -1))
        except (ValueError, TypeError, OverflowError):
            raise service.refuse("bad_request", "resume's 'ack' must be an integer") from None
        got, outs = await service.resume(str(msg.get("session")), msg.get("token"), ack)
        service.attach(got)
        conn.sess = got
        conn.send_json({"op": "resumed", "session": got.id, "next_seq": got.next_submit,
                        "durable_seq": got.durable_seq, "pending": len(outs),
                        "model": service.model_info(got.model),
                        "server": service.config.server_id})
        for seq, y in outs:
            await conn.replay(seq, y)
        return
    if sess is None:
        raise service.refuse("bad_request", f"'{op}' needs a session: open or resume first")
    if op == "ack":
        try:
            service.ack(sess, int(msg["ack"]))
        except (KeyError, ValueError, TypeError, OverflowError):
            raise service.refuse("bad_request", "ack needs an integer 'ack' field") from None
        return
    if op == "peek":  # the tentative tail: what close would emit now; the session goes on
        await conn.drained.wait()
        seq, y = await service.peek(sess)
        conn.send_json({"op": "peeked", "session": sess.id, "after_seq": seq - 1,
                        "data": y[0].tolist()})
        return
    if op == "close":
        await conn.drained.wait()  # outputs already promised go out before the tail
        seq, tail = await service.close(sess)
        conn.send_json({"op": "closed", "session": sess.id, "tail_seq": seq})
        conn.send_output(seq, tail)
        raise _Closed
    raise service.refuse("bad_request", f"unknown op {op!r}; expected open, resume, ack, peek or "
                         "close")

"""ASGI guards in front of the app: the request-size limit and the browser Origin check."""

from __future__ import annotations

import json
from typing import Any

from streamwise.serve.errors import ServeError
from streamwise.serve.limits import origin_allowed
from streamwise.serve.service import Service


async def _reply(send: Any, err: ServeError) -> None:
    body = json.dumps(err.as_dict()).encode()
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class OriginCheck:
    """Refuse (403 ``forbidden_origin``) HTTP calls that change state from a foreign page.

    WebSocket handshakes are checked in the ``/v1/stream`` handler (a refused one never opens).
    """

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: Any, service: Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") not in self.SAFE:
            headers = dict(scope.get("headers") or [])
            origin, host = headers.get(b"origin"), headers.get(b"host")
            o = origin.decode("latin-1") if origin is not None else None
            if not origin_allowed(o, host.decode("latin-1") if host else None,
                                  self.service.config.allowed_origins):
                await _reply(send, self.service.refuse(
                    "forbidden_origin", f"origin {o!r} may not call this server; it allows "
                    "its own origin and --allow-origin ones"))
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse HTTP bodies over ``max_message_bytes`` before they are read into memory."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.service.config.max_message_bytes
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > limit:
            await self._refuse(send, declared, limit)
            return
        seen, refused = 0, False

        async def counted() -> Any:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > limit:  # a chunked body without a length that runs over: answer 413 now
                refused = True
                await self._refuse(send, limit, limit, "more than ")
                return {"type": "http.disconnect"}  # the app stops reading; its reply is dropped
            return msg

        async def replies(msg: Any) -> None:
            if not refused:
                await send(msg)

        try:
            await self.app(scope, counted, replies)
        except Exception:
            if not refused:  # after the 413 the app's own failure to read the body is expected
                raise

    async def _refuse(self, send: Any, size: int, limit: int, more: str = "") -> None:
        await _reply(send, self.service.refuse(
            "too_large", f"request of {more}{size} bytes exceeds the limit of {limit}"))

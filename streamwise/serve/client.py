"""A small asyncio WebSocket client for ``streamwise serve`` (tests, benchmark, your own code).

It keeps every chunk the server has not yet stored durably, so after a reconnect (or a server
crash and restart) ``resume`` re-sends exactly those and the outputs continue without gap or
duplicate.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import websockets

from streamwise.serve import wire


class ServerError(RuntimeError):
    """The server refused a request; ``code`` says why (see ``streamwise.serve.errors``)."""

    def __init__(self, msg: dict[str, Any]) -> None:
        super().__init__(f"{msg.get('code')}: {msg.get('message')}")
        self.code, self.seq = msg.get("code"), msg.get("seq")


class StreamClient:
    """One session over one WebSocket: ``open``/``resume``, ``send``, ``recv``, ``close``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/v1/stream" if not url.endswith("/v1/stream") else url
        self.ws: Any = None
        self.session: str | None = None
        self.token: str | None = None
        self.model: dict[str, Any] = {}
        self.server = ""  # the replica that answered the last open/resume
        self.next_seq = 0
        self.acked = -1  # highest output seq consumed
        self.unsent: dict[int, np.ndarray] = {}  # chunks not yet durable on the server

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.url, max_size=None, open_timeout=10,
                                           compression=None)

    async def _control(self, msg: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send(json.dumps(msg))
        reply = json.loads(await self.ws.recv())
        if reply.get("op") == "error":
            raise ServerError(reply)
        return reply

    async def open(self, model: str | None = None, budget_ms: float | None = None
                   ) -> dict[str, Any]:
        await self.connect()
        r = await self._control({"op": "open", "model": model, "budget_ms": budget_ms})
        self.session, self.token, self.model = r["session"], r["token"], r["model"]
        self.server = r.get("server", "")
        return r

    async def resume(self) -> list[tuple[int, np.ndarray]]:
        """Reconnect and catch up: every output after ``acked`` up to the last chunk sent, once.

        Outputs the server still holds come first; chunks it lost in a crash are re-sent and
        their outputs collected (those already acknowledged are skipped, not returned twice).
        """
        await self.connect()
        r = await self._control({"op": "resume", "session": self.session, "token": self.token,
                                 "ack": self.acked})
        self.server = r.get("server", "")
        outs = [await self.recv() for _ in range(r["pending"])]
        server_next = r["next_seq"]
        lost = [s for s in sorted(self.unsent) if s >= server_next]
        if lost and lost[0] != server_next:
            raise RuntimeError(f"server resumes at seq {server_next} but this client kept only "
                               f"chunks from {lost[0]}: a gap that cannot be filled")
        for seq in lost:  # what the server lost in a crash, send again
            await self.ws.send(wire.encode(seq, self.unsent[seq], ack=self.acked))
        for _ in lost:  # their outputs come back in order; skip those already consumed
            got = await self.recv()
            if got[0] > self.acked:
                outs.append(got)
        self.next_seq = max(self.next_seq, server_next)
        return outs

    async def send(self, chunk: np.ndarray) -> int:
        """Send a ``[C, T]`` float32 chunk; returns its seq (outputs arrive via ``recv``).

        The chunk takes its seq before the write: if the write fails (the server is gone), the
        chunk is still this client's, kept with the unsent ones, and ``resume`` sends it and
        returns its output.  Do not send it again; go on with the next chunk."""
        seq = self.next_seq
        frame = wire.encode(seq, chunk, ack=self.acked)  # a bad chunk raises here, seq unused
        self.unsent[seq] = chunk
        self.next_seq += 1
        await self.ws.send(frame)
        return seq

    async def recv(self) -> tuple[int, np.ndarray]:
        """The next output ``(seq, [C', T'])``; raises ``ServerError`` for a refused chunk."""
        msg = await self.ws.recv()
        if isinstance(msg, str):
            m = json.loads(msg)
            if m.get("op") == "error":
                if m.get("seq") is not None:
                    self.unsent.pop(m["seq"], None)
                raise ServerError(m)
            raise RuntimeError(f"unexpected control message {m}")
        seq, durable, arr = wire.decode(msg)
        for s in [s for s in self.unsent if s <= durable]:
            del self.unsent[s]
        return seq, arr

    async def ack(self, seq: int) -> None:
        self.acked = max(self.acked, seq)
        await self.ws.send(json.dumps({"op": "ack", "ack": self.acked}))

    async def close(self) -> tuple[int, np.ndarray]:
        """Close the session: the lookahead tail ``(seq, [C', T'])``."""
        await self.ws.send(json.dumps({"op": "close"}))
        while True:
            msg = await self.ws.recv()
            if isinstance(msg, str):
                m = json.loads(msg)
                if m.get("op") == "error":
                    raise ServerError(m)
                continue  # "closed"
            seq, _, arr = wire.decode(msg)
            await self.ws.close()
            return seq, arr

    async def disconnect(self) -> None:
        if self.ws is not None:
            await self.ws.close()

"""One WebSocket's session and its ordered outbox: replies queue in order and one writer sends
them; a client that stops reading is shed past ``max_outbox_bytes`` (``slow_client``), and
``resume``'s backlog is queued at the pace the client reads.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import WebSocket
from torch import Tensor

from streamwise.serve import wire
from streamwise.serve.errors import ServeError
from streamwise.serve.service import Service
from streamwise.serve.sessions import Session

SHED_WAIT_S = 3.0  # a shed socket's close frame waits this long for the client to read; a
# client that never reads cannot get it (the frame sits behind a full buffer) and the socket is
# dropped: the refusal is counted in /metrics and ``resume`` delivers every output owed
REPLAY_STALL_S = 30.0  # a client that reads none of resume's backlog for this long is shed
_ITEM_OVERHEAD = 64  # bytes a queued reply costs beyond its payload (the Python objects)


class Connection:
    """One WebSocket's session and its ordered outbox (frames and JSON, sent by one writer)."""

    def __init__(self, service: Service, ws: WebSocket) -> None:
        self.service, self.ws = service, ws
        self.sess: Session | None = None
        self.outbox: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self.queued = 0  # bytes waiting in the outbox (a client that does not read grows it)
        self.shed: str | None = None  # why this connection is being cut, once it is
        self.reader: asyncio.Task[Any] | None = None  # the task reading the socket
        self.inflight = 0  # chunks queued whose result has not reached the outbox
        self.drained = asyncio.Event()
        self.drained.set()
        self.progress = asyncio.Event()  # set by the writer after each send

    def _put(self, item: bytes | str) -> None:
        """Queue a reply; past ``max_outbox_bytes`` unread, shed the connection instead.

        Outputs not sent stay unacknowledged in the session: ``resume`` delivers them."""
        if self.shed is not None:
            return
        self.queued += len(item) + _ITEM_OVERHEAD
        limit = self.service.config.max_outbox_bytes
        if self.queued > limit:
            self.shed = f"slow_client: {self.queued} bytes unread (limit {limit}); resume"
            self.service.refuse("slow_client", self.shed)
            if self.reader is not None:
                self.reader.cancel()
            return
        self.outbox.put_nowait(item)

    def send_json(self, msg: dict[str, Any]) -> None:
        self._put(json.dumps(msg))

    def send_output(self, seq: int, y: Tensor) -> None:
        assert self.sess is not None
        self._put(wire.encode(seq, y, ack=self.sess.durable_seq))

    async def replay(self, seq: int, y: Tensor) -> None:
        """One output of ``resume``'s backlog, queued at the pace the client reads: a backlog
        larger than ``max_outbox_bytes`` is not a slow client (one that stops reading for
        ``REPLAY_STALL_S`` is)."""
        assert self.sess is not None
        item = wire.encode(seq, y, ack=self.sess.durable_seq)
        limit = self.service.config.max_outbox_bytes
        while self.queued and self.queued + len(item) + _ITEM_OVERHEAD > limit:
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), REPLAY_STALL_S)
            except TimeoutError:
                break  # ``_put`` sheds it
        self._put(item)

    def result(self, seq: int) -> Any:
        """The callback for chunk ``seq``: its output frame or its error, into the outbox."""
        def done(r: Tensor | ServeError) -> None:
            if isinstance(r, ServeError):
                self.send_json({**self.service.count(r).as_dict(), "seq": seq})
            else:
                self.send_output(seq, r)
            self._settled()
        return done

    def _settled(self) -> None:
        """One queued chunk's result has reached the outbox (or it never was queued)."""
        self.inflight -= 1
        if self.inflight == 0:
            self.drained.set()

    def push(self, frame: bytes) -> None:
        if self.sess is None:
            raise self.service.refuse("bad_request", "send {'op': 'open'} or {'op': 'resume', "
                                      "...} before any chunk")
        seq, ack, arr = wire.decode(frame)  # the dtype is checked with the rest by ``submit``
        self.inflight += 1
        self.drained.clear()
        try:
            ready = self.service.submit(self.sess, seq, arr, ack if ack >= 0 else None,
                                        self.result(seq))
        except ServeError as e:
            self._settled()
            e.seq = seq
            raise
        if ready is not None:  # a retried chunk whose output is still unacknowledged
            self._settled()
            self.send_output(seq, ready)

    async def writer(self) -> None:
        while True:
            item = await self.outbox.get()
            if item is None:
                return
            self.queued -= len(item) + _ITEM_OVERHEAD
            if isinstance(item, bytes):
                await self.ws.send_bytes(item)
            else:
                await self.ws.send_text(item)
            self.progress.set()

"""One live stream on the server: its ``Stream``, sequence numbers, unacknowledged outputs, token.

Everything a client needs to resume after a crash is in ``to_blob``: the stream snapshot, the next
sequence number expected, the last acknowledged one and the outputs not yet acknowledged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from streamwise.core import codec
from streamwise.core.stream import Stream

_BLOB_VERSION = 2  # 2: each unacknowledged output encoded once, kept beside the metadata
_LEN = struct.Struct("<Q")


def new_token() -> tuple[str, str]:
    """A fresh secret and the hash the server keeps of it (the secret itself is never stored)."""
    token = secrets.token_urlsafe(24)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Account:
    """What one client (address) holds on this server, over all its sessions."""

    bytes: int = 0  # queued chunks, unacknowledged outputs and their encoded checkpoint copies
    sessions: int = 0  # its sessions held in memory


@dataclass
class Pending:
    """A chunk accepted and queued, waiting for its turn in a batched step."""

    seq: int
    chunk: Tensor
    deadline: float
    arrived: float
    done: Any = None  # callback(output | ServeError), run on ``loop``
    loop: Any = None  # the asyncio loop of the connection that sent it


@dataclass
class Session:
    id: str
    token_hash: str
    model: str
    client: str
    budget_ms: float
    stream: Any  # a torch ``Stream`` or an ``onnx_runtime.ServedOnnxStream`` (same interface)
    channels: int
    next_seq: int = 0  # next sequence number the model will consume
    acked: int = -1  # highest output sequence number the client acknowledged
    outputs: dict[int, Tensor] = field(default_factory=dict)  # seq -> output, not yet acked
    queue: deque[Pending] = field(default_factory=deque)  # accepted, not yet stepped
    durable_seq: int = -1  # highest sequence number whose result is in the store
    last_active: float = field(default_factory=time.monotonic)
    closed: bool = False
    attached: int = 0  # live connections using this session on this process
    account: Account = field(default_factory=Account)  # shared by the client's sessions
    held_bytes: int = 0  # this session's part of ``account.bytes``
    # seq -> the output's encoded bytes: a checkpoint encodes each output once, not every tick
    _encoded: dict[int, bytes] = field(default_factory=dict, repr=False)

    @property
    def next_submit(self) -> int:
        """The sequence number the next new chunk must carry."""
        return self.next_seq + len(self.queue)

    @property
    def progress(self) -> tuple[int, int]:
        """How far this checkpoint has come, ``(next_seq, acked)``: a store keeps the newest."""
        return self.next_seq, self.acked

    def hold(self, n: int) -> None:
        """Count ``n`` more (or, negative, fewer) bytes held for this session's client."""
        self.held_bytes += n
        self.account.bytes += n

    def release(self) -> None:
        """The session is gone from memory: its client no longer holds its bytes."""
        self.account.bytes -= self.held_bytes
        self.held_bytes = 0

    def keep_output(self, seq: int, y: Tensor) -> None:
        """Hold output ``seq`` until the client acknowledges it."""
        old = self.outputs.get(seq)
        self.hold(y.nbytes - (old.nbytes if old is not None else 0))
        self.outputs[seq] = y

    def token_ok(self, token: str | None) -> bool:
        return isinstance(token, str) and hmac.compare_digest(hash_token(token), self.token_hash)

    def ack(self, seq: int) -> None:
        """Drop outputs up to ``seq`` (cumulative); acks never go backwards."""
        if seq > self.acked:
            for s in [s for s in self.outputs if s <= seq]:
                self.hold(-self.outputs.pop(s).nbytes - len(self._encoded.pop(s, b"")))
            self.acked = seq

    def unacked(self) -> list[tuple[int, Tensor]]:
        return sorted(self.outputs.items())

    # -- checkpoints -------------------------------------------------------------------------------
    def to_blob(self, state: Any = None) -> bytes:
        """The checkpoint (``state``: the stream's state if a batcher holds it).

        Layout: the metadata's length and bytes (``codec``), each unacknowledged output's
        encoded bytes in seq order (their lengths are in the metadata), the stream snapshot.
        An output is encoded the first time it is checkpointed and reused until acknowledged,
        so a tick's checkpoint costs the new work plus copying the backlog's bytes."""
        enc = self._encoded
        for k in [k for k in enc if k not in self.outputs]:
            self.hold(-len(enc.pop(k)))
        seqs = sorted(self.outputs)
        parts = []
        for k in seqs:
            if k not in enc:
                enc[k] = codec.encode(self.outputs[k])
                self.hold(len(enc[k]))
            parts.append(enc[k])
        meta = codec.encode({
            "version": _BLOB_VERSION,
            "id": self.id, "token_hash": self.token_hash, "model": self.model,
            "client": self.client, "budget_ms": float(self.budget_ms), "channels": self.channels,
            "next_seq": self.next_seq, "acked": self.acked, "closed": self.closed,
            "outputs": [[k, len(b)] for k, b in zip(seqs, parts)],
        })
        return b"".join([_LEN.pack(len(meta)), meta, *parts, self.stream.snapshot(state)])

    @classmethod
    def from_blob(cls, blob: bytes, models: dict[str, Any]) -> Session:
        try:
            (n,) = _LEN.unpack_from(blob)
            p = codec.decode(blob[_LEN.size : _LEN.size + n])
            if not isinstance(p, dict) or p.get("version") != _BLOB_VERSION:
                raise ValueError("not a streamwise session checkpoint (or from another version)")
            at, outputs = _LEN.size + n, {}
            for k, size in p["outputs"]:
                outputs[int(k)] = codec.decode(blob[at : at + size])
                at += size
            snap = blob[at:]
        except Exception as e:  # noqa: BLE001 - any decoding failure is a bad checkpoint
            text = str(e)
            raise ValueError(text if text.startswith("not a streamwise session checkpoint")
                             else f"not a streamwise session checkpoint: {text}") from e
        model = models.get(p["model"])
        if model is None:
            raise ValueError(f"checkpoint needs model {p['model']!r}, which this server lacks")
        s = cls(id=p["id"], token_hash=p["token_hash"], model=p["model"], client=p["client"],
                budget_ms=p["budget_ms"], stream=_restore(model, snap),
                channels=p["channels"], next_seq=p["next_seq"], acked=p["acked"],
                outputs=outputs, closed=p["closed"])
        s.durable_seq = s.next_seq - 1
        s.held_bytes = sum(y.nbytes for y in outputs.values())
        return s


def _restore(model: Any, snap: bytes) -> Stream:
    """A stream from its snapshot: torch ``Stream``, or ``OnnxServed.restore`` (onnx runtime)."""
    restore = getattr(model, "restore", None)
    if callable(restore) and getattr(model, "runtime", "torch") == "onnx":
        return restore(snap)
    return Stream.restore(model, snap)

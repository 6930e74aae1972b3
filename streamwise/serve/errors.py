"""Errors a client gets back: a stable ``code`` for programs, a message naming what was expected."""

from __future__ import annotations

from typing import Any

#: code -> HTTP status
STATUS = {
    "bad_request": 400,
    "bad_frame": 400,
    "bad_shape": 400,
    "bad_dtype": 400,
    "non_finite": 400,
    "too_large": 413,
    "out_of_order": 409,
    "unacked": 409,
    "closed": 409,
    "unauthorized": 401,
    "forbidden_origin": 403,
    "unknown_session": 404,
    "unknown_model": 404,
    "too_many_sessions": 429,
    "rate_limited": 429,
    "memory_limit": 429,
    "slow_client": 429,
    "overloaded": 503,
    "store_unavailable": 503,
    "internal": 500,
}


class ServeError(Exception):
    """A refused request.  The session (if any) is left exactly as it was."""

    def __init__(self, code: str, message: str) -> None:
        if code not in STATUS:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code, self.message = code, message
        self.counted = False  # set once the server's metrics have counted it
        self.seq: int | None = None  # the chunk it refuses, where there is one

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": "error", "code": self.code, "message": self.message}
        if self.seq is not None:
            d["seq"] = self.seq
        return d

"""Per-client admission: a token bucket on session opens, and the browser Origin allow-list.

Opens: each client (address) has a bucket of ``burst`` tokens refilled at ``rate`` per second;
an open takes one, and with none left it is refused (``rate_limited``) with the wait until the
next.  Buckets that have refilled completely carry no information and are dropped, so a scan
from many addresses costs memory only while it lasts.

Origins: a browser sends ``Origin`` with every WebSocket handshake and cross-site POST; a page
on another site must not drive a server on the user's loopback (cross-site WebSocket
hijacking).  Requests without ``Origin`` (programs, not browsers) pass; a browser's pass when
the origin is the server itself (``http(s)://<Host>``) or is listed (``*``: any).
"""

from __future__ import annotations

import time


class OpenRate:
    """Token buckets keyed by client."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"open rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate, self.burst = float(rate), int(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def wait(self, client: str, now: float | None = None) -> float:
        """Take a token for ``client``: 0.0, or (refused) the seconds until one is there."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > 4096:
            self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        full = [c for c, (t, at) in self._buckets.items()
                if t + (now - at) * self.rate >= self.burst]
        for c in full:
            del self._buckets[c]


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a request with this ``Origin`` header, sent to ``Host``, may proceed."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in {a.rstrip("/").lower() for a in allowed}:
        return True
    return host is not None and origin in (f"http://{host.lower()}", f"https://{host.lower()}")

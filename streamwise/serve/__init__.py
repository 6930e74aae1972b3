"""Serve many live streams: sessions, cross-session batching, durable state, HTTP/WebSocket."""

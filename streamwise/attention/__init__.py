"""Attention over unbounded streams: ``StreamingAttention`` and its KV-cache policies."""

from streamwise.attention.attention import StreamingAttention
from streamwise.attention.cache import CachePolicy, Chunked, Full, Sinks, Window

__all__ = ["CachePolicy", "Chunked", "Full", "Sinks", "StreamingAttention", "Window"]

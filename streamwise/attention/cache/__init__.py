"""KV-cache policies: which entries a streaming attention keeps, shows, and at which positions."""

from streamwise.attention.cache.base import CachePolicy, Full
from streamwise.attention.cache.chunked import Chunked
from streamwise.attention.cache.sinks import Sinks
from streamwise.attention.cache.window import Window

__all__ = ["CachePolicy", "Chunked", "Full", "Sinks", "Window"]

"""KV-cache policies: which entries a streaming attention keeps, shows, and at which positions."""

from streamwise.attention.cache.anchor import Anchored, AnchorMemory
from streamwise.attention.cache.ann import AnnTopK
from streamwise.attention.cache.base import CachePolicy, Full
from streamwise.attention.cache.block_sparse import BlockSparse
from streamwise.attention.cache.chunked import Chunked
from streamwise.attention.cache.compress import Compress
from streamwise.attention.cache.linear_absorb import LinearAbsorb
from streamwise.attention.cache.merge import Merge
from streamwise.attention.cache.prefix import Prefix, common_prefix
from streamwise.attention.cache.retrieve import Retrieve
from streamwise.attention.cache.segment_memory import SegmentMemory
from streamwise.attention.cache.segments import Segments
from streamwise.attention.cache.sink_refresh import SinkRefresh
from streamwise.attention.cache.sinks import Sinks
from streamwise.attention.cache.window import Window

__all__ = [
    "AnchorMemory",
    "Anchored",
    "AnnTopK",
    "BlockSparse",
    "CachePolicy",
    "Chunked",
    "Compress",
    "Full",
    "LinearAbsorb",
    "Merge",
    "Prefix",
    "Retrieve",
    "SegmentMemory",
    "Segments",
    "SinkRefresh",
    "Sinks",
    "Window",
    "common_prefix",
]

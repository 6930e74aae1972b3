"""Attention over unbounded streams: ``StreamingAttention`` and its KV-cache policies."""

from streamwise.attention.ann_cross import AnnCrossAttention
from streamwise.attention.attention import StreamingAttention
from streamwise.attention.cache import (
    Anchored,
    AnchorMemory,
    AnnTopK,
    BlockSparse,
    CachePolicy,
    Chunked,
    Compress,
    Full,
    LinearAbsorb,
    Merge,
    Prefix,
    Retrieve,
    SegmentMemory,
    Segments,
    SinkRefresh,
    Sinks,
    Window,
    common_prefix,
)

__all__ = [
    "AnchorMemory",
    "Anchored",
    "AnnCrossAttention",
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
    "StreamingAttention",
    "Window",
    "common_prefix",
]

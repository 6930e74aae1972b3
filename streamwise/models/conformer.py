"""A streaming Conformer encoder built from the core layers (Gulati et al.; Stateful Conformer).

Each block is ``x + FFN/2``, ``x + attention``, ``x + conv module``, ``x + FFN/2``, LayerNorm, on
``[B, C, T]``.  Attention uses ``Chunked(chunk, left_chunks)`` (NeMo's ``chunked_limited``
context: a frame sees its chunk and ``left_chunks`` chunks before), the depthwise convolution is
causal, BatchNorm runs on its running statistics.  ``Residual`` delays each skip path to meet the
attention's chunk lookahead, so the whole encoder streams exactly like its offline forward.
"""

from __future__ import annotations

from streamwise.attention import Chunked, StreamingAttention
from streamwise.attention.positions import encoding_arg
from streamwise.layers.containers import Residual, Sequential
from streamwise.layers.conv import Conv1d
from streamwise.layers.pointwise import GLU, BatchNorm1d, Dropout, LayerNorm, Linear, Scale, SiLU


def feed_forward(dim: int, expansion: int = 4, dropout: float = 0.0) -> Sequential:
    """The macaron half-step feed-forward: LayerNorm, Linear, SiLU, Linear, times 1/2."""
    return Sequential(LayerNorm(dim), Linear(dim, expansion * dim), SiLU(), Dropout(dropout),
                      Linear(expansion * dim, dim), Dropout(dropout), Scale(0.5))


def conv_module(dim: int, kernel: int = 15, dropout: float = 0.0) -> Sequential:
    """Pointwise conv + GLU, causal depthwise conv, BatchNorm, SiLU, pointwise conv."""
    return Sequential(LayerNorm(dim), Linear(dim, 2 * dim), GLU(),
                      Conv1d(dim, dim, kernel, padding="causal", groups=dim),
                      BatchNorm1d(dim), SiLU(), Linear(dim, dim), Dropout(dropout))


def conformer_block(dim: int, heads: int, chunk: int, left_chunks: int, kernel: int = 15,
                    encoding: str = "rope", dropout: float = 0.0,
                    positions: str | None = None, expansion: int = 4) -> Sequential:
    """One Conformer block on ``[B, dim, T]`` (``positions=``: the old name of ``encoding``)."""
    encoding = encoding_arg(encoding, positions, "conformer_block")
    attn = StreamingAttention(dim, heads, encoding=encoding, layout="bct",
                              cache=Chunked(chunk, left_chunks))
    return Sequential(
        Residual(feed_forward(dim, expansion, dropout)),
        Residual(Sequential(LayerNorm(dim), attn, Dropout(dropout))),
        Residual(conv_module(dim, kernel, dropout)),
        Residual(feed_forward(dim, expansion, dropout)),
        LayerNorm(dim),
    )


def conformer_encoder(in_dim: int, dim: int = 64, heads: int = 4, layers: int = 2,
                      chunk: int = 8, left_chunks: int = 2, kernel: int = 15,
                      encoding: str = "rope", dropout: float = 0.0,
                      positions: str | None = None) -> Sequential:
    """Features ``[B, in_dim, T]`` -> encodings ``[B, dim, T]``.

    Each block's metadata ``delay`` is ``chunk - 1``, and ``Sequential`` adds them up; the chunks of
    all blocks are aligned to frame 0, so the lookahead measured frame by frame is ``chunk - 1``.
    """
    encoding = encoding_arg(encoding, positions, "conformer_encoder")
    blocks = [conformer_block(dim, heads, chunk, left_chunks, kernel, encoding, dropout)
              for _ in range(layers)]
    return Sequential(Linear(in_dim, dim), *blocks)

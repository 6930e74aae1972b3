"""A small multi-latency Conformer-CTC recogniser (Stateful Conformer's idea at toy size).

Audio ``[B, 1, T]`` at 16 kHz -> log-mel (25 ms window, 10 ms hop, no centre padding) ->
BatchNorm (a fixed per-band affine in eval: the global feature normalisation) -> two causal
stride-2 convolutions (40 ms frames) -> Conformer blocks -> per-frame log-probabilities over the
CTC labels ``[B, V, T / 640]`` (label 0 is the blank).

One set of weights runs at several latencies: every attention uses ``Chunked(chunk,
left_chunks)``, and ``set_chunk(model, chunk)`` swaps that policy in all blocks at once.
Training draws the chunk per batch from ``TRAIN_CHUNKS`` (Stateful Conformer trains one model
for many chunk sizes the same way); ``chunk=None`` is full context (one chunk as long as the
stream: nothing is emitted before ``flush``).  The left context stays ``left_frames`` frames
(rounded up to whole chunks), so memory is bounded at every latency but full.

Streamed output equals the offline forward at the same chunk: the chunks of every block are
aligned to frame 0, so a frame's label appears when the last frame of its chunk has arrived.
"""

from __future__ import annotations

from streamwise.attention import Chunked, StreamingAttention
from streamwise.layers.containers import Sequential
from streamwise.layers.conv import Conv1d
from streamwise.layers.pointwise import BatchNorm1d, Linear, LogSoftmax, SiLU
from streamwise.layers.spectral import MelSpectrogram
from streamwise.models.conformer import conformer_block

RATE = 16_000
HOP = 160  # samples per log-mel frame (10 ms)
SUBSAMPLE = 4  # log-mel frames per encoder frame
FRAME_SAMPLES = HOP * SUBSAMPLE  # 640 samples: one label frame is 40 ms
FULL = 1 << 20  # the chunk of "full context": longer than any stream we hold
TRAIN_CHUNKS: tuple[int | None, ...] = (2, 4, 8, 16, None)  # 80, 160, 320, 640 ms, full


def chunk_for_ms(ms: float | None) -> int | None:
    """A latency in milliseconds (None: full context) -> the chunk in 40 ms frames."""
    if ms is None:
        return None
    frames = ms / (1000 * FRAME_SAMPLES / RATE)
    if frames < 1 or frames != int(frames):
        raise ValueError(f"chunk latency must be a whole number of 40 ms frames, got {ms} ms")
    return int(frames)


def speech_recognizer(labels: int, n_mels: int = 64, dim: int = 96, heads: int = 4,
                      layers: int = 4, kernel: int = 15, expansion: int = 2,
                      chunk: int | None = 8, left_frames: int = 32,
                      dropout: float = 0.1) -> Sequential:
    """``[B, 1, T]`` audio -> ``[B, labels, frames]`` CTC log-probabilities (40 ms frames)."""
    size, left = _policy_args(chunk, left_frames)
    front = [MelSpectrogram(RATE, n_fft=400, hop_length=HOP, n_mels=n_mels, center=False,
                            log=True, eps=1e-6),
             BatchNorm1d(n_mels),
             Conv1d(n_mels, dim, 3, stride=2, padding="causal"), SiLU(),
             Conv1d(dim, dim, 3, stride=2, padding="causal"), SiLU()]
    blocks = [conformer_block(dim, heads, size, left, kernel, dropout=dropout,
                              expansion=expansion) for _ in range(layers)]
    model = Sequential(*front, *blocks, Linear(dim, labels), LogSoftmax())
    model.left_frames = left_frames  # type: ignore[assignment]
    return model


def _policy_args(chunk: int | None, left_frames: int) -> tuple[int, int]:
    if chunk is None:
        return FULL, 0
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 frame or None (full context), got {chunk}")
    return chunk, -(-left_frames // chunk)


def set_chunk(model: Sequential, chunk: int | None, left_frames: int | None = None) -> None:
    """Run every attention of ``model`` at ``chunk`` frames (None: full context), in place.

    A stream opened before the change keeps its old state shape: open a new one after."""
    left_frames = getattr(model, "left_frames", 32) if left_frames is None else left_frames
    size, left = _policy_args(chunk, left_frames)
    found = 0
    for m in model.modules():
        if isinstance(m, StreamingAttention):
            m.policy = Chunked(size, left, positions=m.policy.positions)
            found += 1
    if not found:
        raise ValueError("set_chunk: the model has no StreamingAttention")


def get_chunk(model: Sequential) -> int | None:
    """The chunk the model's attention runs at (None: full context)."""
    for m in model.modules():
        if isinstance(m, StreamingAttention) and isinstance(m.policy, Chunked):
            return None if m.policy.size == FULL else m.policy.size
    raise ValueError("get_chunk: the model has no Chunked attention")

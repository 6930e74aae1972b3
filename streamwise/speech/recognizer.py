"""The shipped word recogniser, streamed: audio chunks in, words out as soon as they are final.

``load_recognizer(chunk)`` builds ``models.asr.speech_recognizer`` with the weights that
``bench/asr_train.py`` trained (``assets/asr_words.pt``), at a chunk of 2 / 4 / 8 / 16 frames
(80-640 ms) or ``None`` (full context).

``Transcriber`` runs many live streams of one recogniser.  Each decodes greedy CTC as label
frames arrive: with chunked attention a frame's label never changes once emitted, so a word is
final the moment it appears (no flicker; its latency is the chunk plus compute).  Streams are
batched by ``core/batch.py`` (stacked states, one call) and start and end independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor

from streamwise.core.batch import StateBatcher
from streamwise.core.stream import Stream
from streamwise.layers.containers import Sequential
from streamwise.models.asr import RATE, speech_recognizer
from streamwise.speech.corpus import WORDS


def weights_path() -> Path:
    return Path(str(resources.files("streamwise.assets").joinpath("asr_words.pt")))


def load_recognizer(chunk: int | None = 8, path: Path | str | None = None) -> Sequential:
    """The trained recogniser (eval mode) at ``chunk`` 40 ms frames (None: full context)."""
    path = Path(path) if path is not None else weights_path()
    if not path.exists():
        raise FileNotFoundError(f"no recogniser weights at {path}: train them with "
                                "`streamwise bench asr-train`")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = speech_recognizer(**saved["config"], chunk=chunk, dropout=0.0)
    missing, unexpected = model.load_state_dict(saved["state_dict"], strict=False)
    if unexpected or [k for k in missing if not k.endswith("mel_fb")]:
        raise ValueError(f"{path} does not fit the recogniser: missing {missing}, "
                         f"unexpected {unexpected}")
    model.labels = ("", *WORDS)  # type: ignore[assignment]  # channel -> word ("": blank)
    return model.eval()


@dataclass(frozen=True)
class Word:
    """A recognised word: its label frame (40 ms each, from the row's start) and the audio time
    (seconds since the row's start) by which its frame's audio had all arrived."""

    text: str
    frame: int
    heard_s: float


class GreedyCTC:
    """Greedy CTC over a stream of label frames: one label of memory merges repeats."""

    def __init__(self) -> None:
        self.previous, self.frames = 0, 0

    def feed(self, best: list[int], heard_s: float) -> list[Word]:
        out = []
        for lab in best:
            if lab != self.previous and lab != 0:
                out.append(Word(WORDS[lab - 1], self.frames, heard_s))
            self.previous = lab
            self.frames += 1
        return out


class Transcriber:
    """Live streams of one recogniser, each with its own ``Stream``, stepped together.

    ``open()`` starts a stream and returns its id; ``push({id: audio})`` steps every given
    stream (groups whose states stack share one batched call, ``core/batch.py``) and returns the
    new words of each; ``end(id)`` flushes that stream alone and returns its last words.  Streams
    start and end whenever they like: no stream waits for another (no head-of-line blocking), and
    each stream's words equal the offline greedy decode of its audio at any batch size."""

    def __init__(self, model: Sequential, max_batch: int | None = None) -> None:
        model.eval()
        self.model, self.max_batch = model, max_batch
        self.batcher = StateBatcher(model)
        self.streams: dict[int, Stream] = {}
        self.decoders: dict[int, GreedyCTC] = {}
        self.samples: dict[int, int] = {}
        self._next = 0

    def open(self) -> int:
        sid, self._next = self._next, self._next + 1
        self.streams[sid] = self.model.stream(1)
        self.decoders[sid], self.samples[sid] = GreedyCTC(), 0
        return sid

    def _get(self, sid: int) -> Stream:
        if sid not in self.streams:
            raise KeyError(f"no open stream {sid}; open ones: {sorted(self.streams)}")
        return self.streams[sid]

    def push(self, chunks: dict[int, Tensor]) -> dict[int, list[Word]]:
        """``{id: audio}``, each ``[n]`` or ``[1, 1, n]`` float32 at 16 kHz -> new words."""
        ids = list(chunks)
        streams = [self._get(i) for i in ids]
        xs = [c.reshape(1, 1, -1) for c in chunks.values()]
        outs = self.batcher.step_all(streams, xs, self.max_batch)
        res = {}
        for sid, x, logp in zip(ids, xs, outs):
            self.samples[sid] += x.shape[-1]
            res[sid] = self._decode(sid, logp)
        return res

    def _decode(self, sid: int, logp: Tensor) -> list[Word]:
        return self.decoders[sid].feed(logp[0].argmax(0).tolist(), self.samples[sid] / RATE)

    def peek(self, sid: int) -> list[Word]:
        """The tentative tail of stream ``sid``: words of its partial chunk as if the stream
        ended now (``Stream.peek``); they may change when the chunk completes."""
        stream = self._get(sid)
        state = self.batcher.row_state(stream) if self.batcher.is_resident(stream) else None
        logp = stream.peek(state)
        dec = self.decoders[sid]
        look = GreedyCTC()
        look.previous, look.frames = dec.previous, dec.frames
        return look.feed(logp[0].argmax(0).tolist(), self.samples[sid] / RATE)

    def end(self, sid: int) -> list[Word]:
        """Close stream ``sid`` (its last chunk's words come out) and forget it."""
        stream = self._get(sid)
        self.batcher.materialize(stream)
        with torch.inference_mode():
            logp = stream.close()
        words = self._decode(sid, logp)
        del self.streams[sid], self.decoders[sid], self.samples[sid]
        return words


def transcribe_offline(model: Sequential, audio: Tensor) -> list[Word]:
    """Greedy decode of one whole utterance ``[n]`` with the offline forward (the reference a
    stream must equal); ``heard_s`` is the utterance's length."""
    with torch.inference_mode():
        logp = model(audio.reshape(1, 1, -1))
    return GreedyCTC().feed(logp[0].argmax(0).tolist(), audio.numel() / RATE)

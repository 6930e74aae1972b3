"""``streamwise demo asr``: the shipped clip transcribed live in the terminal.

The clip (a held-out espeak-ng voice saying eight of the recogniser's words, with pauses) is
pushed in 40 ms pieces, at real time unless ``fast``, into the recogniser at the chosen chunk
latency.  After each piece the line shows the committed words, then the tentative tail
(``Transcriber.peek``: the partial chunk answered as if the stream ended now) dimmed.  At the
end: the transcript against the words spoken, the offline decode it must equal, each word's
time from the end of its audio to its commit, and the real-time factor.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from streamwise.assets import words_clip, words_clip_info
from streamwise.models.asr import FRAME_SAMPLES, RATE, chunk_for_ms
from streamwise.speech.ctc import matches, word_error_rate
from streamwise.speech.recognizer import Transcriber, Word, load_recognizer, transcribe_offline


def _line(committed: list[Word], tentative: list[Word], tty: bool) -> str:
    done = " ".join(w.text for w in committed)
    tail = " ".join(w.text for w in tentative)
    if tty and tail:
        tail = f"\x1b[2m{tail}\x1b[0m"
    return (done + (" " if done and tail else "") + tail) or "..."


def run_asr_demo(latency_ms: float = 160, fast: bool = False, threads: int = 1,
                 out: Path | None = None, stream: Any = None) -> dict[str, Any]:
    stream = stream or sys.stdout
    tty = stream.isatty()
    torch.set_num_threads(threads)
    chunk = chunk_for_ms(latency_ms)
    model = load_recognizer(chunk)
    audio, rate, spoken = words_clip()
    step = FRAME_SAMPLES  # 40 ms pieces: between chunk ends, peek shows the partial chunk
    tr = Transcriber(model)
    sid = tr.open()
    committed: list[Word] = []
    commit_at: list[float] = []  # seconds after the start of the clip, wall clock
    compute = 0.0
    shown = ""
    t0 = time.perf_counter()
    print(f"streamwise demo asr: {len(audio) / rate:.1f} s clip, "
          f"{'full context' if chunk is None else f'{latency_ms:g} ms chunks'}, "
          f"{threads} thread{'s' if threads > 1 else ''}; spoken: {spoken!r}", file=stream)
    for a in range(0, len(audio), step):
        piece = audio[a:a + step]
        if not fast:  # the audio of this chunk has not all been "recorded" before then
            time.sleep(max(0.0, (a + len(piece)) / RATE - (time.perf_counter() - t0)))
        c0 = time.perf_counter()
        new = tr.push({sid: piece})[sid]
        tentative = tr.peek(sid)
        compute += time.perf_counter() - c0
        committed += new
        commit_at += [time.perf_counter() - t0] * len(new)
        line = _line(committed, tentative, tty)
        if tty:
            print("\r\x1b[K" + line, end="", file=stream, flush=True)
        elif line != shown:  # a log: one line per change
            print(line, file=stream, flush=True)
        shown = line
    c0 = time.perf_counter()
    last = tr.end(sid)
    compute += time.perf_counter() - c0
    committed += last
    commit_at += [time.perf_counter() - t0] * len(last)
    print(("\r\x1b[K" if tty else "") + _line(committed, [], tty), file=stream)
    text = " ".join(w.text for w in committed)
    offline = " ".join(w.text for w in transcribe_offline(model, audio))
    ends = words_clip_info()["ends_s"]
    lags = [commit_at[j] - ends[i] for i, j in matches(spoken.split(), text.split())]
    res = {"latency_ms": latency_ms, "transcript": text, "spoken": spoken,
           "word_end_to_commit_s": [round(x, 3) for x in lags],
           "offline_transcript": offline, "equals_offline": text == offline,
           "wer": word_error_rate([spoken], [text]), "clip_s": len(audio) / rate,
           "rtf": compute / (len(audio) / rate), "threads": threads}
    print(f"transcript {'equals' if text == offline else 'DIFFERS FROM'} the offline decode; "
          f"WER {res['wer']:.0%} against the words spoken; real-time factor "
          f"{res['rtf']:.3f} (a push and a peek every 40 ms)", file=stream)
    if lags and not fast:
        lags_sorted = sorted(lags)
        print(f"word end to commit: median {lags_sorted[len(lags) // 2] * 1000:.0f} ms, max "
              f"{lags_sorted[-1] * 1000:.0f} ms (chunk {latency_ms:g} ms)", file=stream)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "demo-asr.json").write_text(json.dumps(res, indent=1))
    return res

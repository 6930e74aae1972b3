"""The live recogniser measured as it would run: ``streamwise bench asr``.

For each latency (chunks of 80 / 160 / 320 / 640 ms and full context) the shipped recogniser
transcribes test streams (``speech.streams``: held-out voices, 4-8 words with pauses, known word
end times) chunk by chunk on one thread.  Every push is timed, and a word counts as emitted when
its chunk had arrived *and* the computation before it had finished (a queue: a slow model falls
behind real time).  Three more decoders run on the same streams:

- ``greedy 160 ms + peek tail``: as the 160 ms row, with the audio pushed in 40 ms pieces and,
  after every push, the partial chunk's words shown as a tentative tail (``Stream.peek``), as
  the served page and the terminal demo do;
- ``agreement``: stable-token commit (``speech/agreement.py``), the full-context model re-decoding
  a 2.5 s window every 160 ms, committing words two successive hypotheses agree on;
- ``offline``: the full-context model on the whole stream once it has ended.

Reported per decoder: WER of the final transcript; streaming-perception WER (at every 40 ms
instant, the words emitted so far against the words spoken so far: lateness costs accuracy);
the median and 90th percentile time from a word's end to its emission; flicker (shown words
later retracted, over all words shown); the real-time factor.  Plus WER of every chunk on
held-out utterances (``corpus.utterances``) and on alsa-utils' real recordings, and (``exported``)
the 160 ms recogniser exported to ONNX and run by onnxruntime beside the eager stream.  Writes
``asr.json`` and ``asr.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.bench.asr_train import transcribe
from streamwise.layers.containers import Sequential
from streamwise.models.asr import FRAME_SAMPLES, RATE, set_chunk
from streamwise.speech.agreement import LocalAgreement
from streamwise.speech.corpus import alsa_recordings, utterances
from streamwise.speech.ctc import collapse, edit_distance, matches, word_error_rate, words_right
from streamwise.speech.recognizer import Transcriber, Word, load_recognizer, transcribe_offline
from streamwise.speech.streams import TimedStream, timed_streams

CHUNKS: tuple[int | None, ...] = (2, 4, 8, 16, None)


def _ms(chunk: int | None) -> str:
    return "full" if chunk is None else f"{chunk * 40} ms"


@dataclass
class Run:
    """One decoder on one stream: emitted words (text, emission time), shown words, compute."""

    words: list[tuple[str, float]]
    shown: list[Word]  # every word ever displayed, final or tentative (for flicker)
    committed: list[Word]
    compute_s: float


class _Clock:
    """Real-time emission: a push starts when its audio has arrived and the last push is done."""

    def __init__(self) -> None:
        self.ready, self.compute = 0.0, 0.0

    def run(self, audio_end_s: float, fn: Any) -> tuple[Any, float]:
        t0 = time.perf_counter()
        out = fn()
        took = time.perf_counter() - t0
        self.compute += took
        self.ready = max(audio_end_s, self.ready) + took
        return out, self.ready


def run_greedy(model: Sequential, s: TimedStream, push_samples: int,
               peek: bool = False) -> Run:
    """Greedy streaming CTC; ``peek``: after each push also show the partial chunk's words
    (``Transcriber.peek``, timed with the push) as the tentative tail."""
    tr, clock = Transcriber(model), _Clock()
    words: list[tuple[Word, float]] = []
    shown: list[Word] = []
    sid = tr.open()
    x = torch.from_numpy(s.audio)

    def step(p: torch.Tensor) -> tuple[list[Word], list[Word]]:
        new = tr.push({sid: p})[sid]
        return new, tr.peek(sid) if peek else []

    for a in range(0, len(x), push_samples):
        piece = x[a:a + push_samples]
        (new, tail), at = clock.run((a + len(piece)) / RATE, lambda p=piece: step(p))
        words += [(w, at) for w in new]
        shown += new + tail
    new, at = clock.run(len(x) / RATE, lambda: tr.end(sid))
    words += [(w, at) for w in new]
    committed = [w for w, _ in words]
    return Run([(w.text, t) for w, t in words], shown + new, committed, clock.compute)


def run_agreement(model: Sequential, s: TimedStream, push_samples: int) -> Run:
    la, clock = LocalAgreement(model), _Clock()
    x = torch.from_numpy(s.audio)
    words: list[tuple[str, float]] = []
    shown: list[Word] = []
    for a in range(0, len(x), push_samples):
        piece = x[a:a + push_samples]
        up, at = clock.run((a + len(piece)) / RATE, lambda p=piece: la.push(p))
        words += [(w.text, at) for w in up.committed]
        shown += up.committed + up.tentative
    up, at = clock.run(len(x) / RATE, la.close)
    words += [(w.text, at) for w in up.committed]
    return Run(words, shown + up.committed, la.committed, clock.compute)


def run_offline(model: Sequential, s: TimedStream) -> Run:
    clock = _Clock()
    ws, at = clock.run(len(s.audio) / RATE,
                       lambda: transcribe_offline(model, torch.from_numpy(s.audio)))
    return Run([(w.text, at) for w in ws], ws, ws, clock.compute)


def flicker(run: Run, jitter: int = 3) -> tuple[int, int]:
    """(words shown and later retracted, distinct words shown): a shown word is identified by
    its text and first frame (within ``jitter``), retracted when no committed word matches it."""
    distinct: list[Word] = []
    for w in run.shown:
        if not any(d.text == w.text and abs(d.frame - w.frame) <= jitter for d in distinct):
            distinct.append(w)
    gone = sum(not any(c.text == d.text and abs(c.frame - d.frame) <= jitter
                       for c in run.committed) for d in distinct)
    return gone, len(distinct)


def perception_terms(s: TimedStream, words: list[tuple[str, float]], step_s: float = 0.04,
                     tail_s: float = 1.0) -> tuple[int, int]:
    """Streaming-perception WER terms: summed over instants ``tau``, the edits between the
    words emitted by ``tau`` and the words that had ended by ``tau``, and the reference count."""
    edits = refs = 0
    end = len(s.audio) / RATE + tail_s
    for tau in np.arange(step_s, end, step_s):
        ref = [w for w, e in zip(s.words, s.ends_s) if e <= tau]
        hyp = [w for w, t in words if t <= tau]
        edits += edit_distance(ref, hyp)
        refs += len(ref)
    return edits, refs


def score(streams: list[TimedStream], runs: list[Run], duration_s: float) -> dict[str, Any]:
    lat: list[float] = []
    pe = pr = fg = fs = 0
    for s, r in zip(streams, runs):
        hyp = [w for w, _ in r.words]
        for i, j in matches(list(s.words), hyp):
            lat.append(r.words[j][1] - s.ends_s[i])
        e, n = perception_terms(s, r.words)
        pe, pr = pe + e, pr + n
        g, d = flicker(r)
        fg, fs = fg + g, fs + d
    return {"wer": word_error_rate([s.text for s in streams],
                                   [" ".join(w for w, _ in r.words) for r in runs]),
            "perception_wer": pe / max(pr, 1),
            "commit_latency_median_s": float(np.median(lat)) if lat else None,
            "commit_latency_p90_s": float(np.percentile(lat, 90)) if lat else None,
            "flicker": fg / max(fs, 1), "shown_words": fs,
            "rtf": sum(r.compute_s for r in runs) / duration_s}


def run(out_dir: Path, n_streams: int = 30, n_utts: int = 300, seed: int = 5,
        threads: int = 1, weights: Path | None = None, exported: bool = True) -> dict[str, Any]:
    torch.set_num_threads(threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_recognizer(None, weights)
    streams = list(tqdm(timed_streams(n_streams, "test", seed), total=n_streams,
                        desc="synthesising test streams", unit="stream"))
    duration = sum(len(s.audio) for s in streams) / RATE
    utts = list(utterances(n_utts, "test", seed + 1, progress=True))
    alsa = alsa_recordings()
    res: dict[str, Any] = {"streams": n_streams, "stream_audio_s": duration, "threads": threads,
                           "utterances": n_utts, "decoders": {}, "utterance_wer": {},
                           "alsa_words_right": {}}
    for chunk in CHUNKS:
        set_chunk(model, chunk)
        name = _ms(chunk)
        res["utterance_wer"][name] = word_error_rate(
            [u.text for u in utts], transcribe(model, [u.audio for u in utts]))
        hyps = transcribe(model, [a for a, _ in alsa])
        res["alsa_words_right"][name] = words_right([r for _, r in alsa], hyps)
        push = (chunk or 4) * FRAME_SAMPLES  # full context: audio arrives in 160 ms pieces
        runs = [run_greedy(model, s, push) for s in tqdm(streams, desc=f"greedy CTC {name}")]
        res["decoders"][f"greedy {name}"] = {"chunk_ms": None if chunk is None else chunk * 40,
                                            **score(streams, runs, duration)}
    set_chunk(model, 4)
    runs = [run_greedy(model, s, FRAME_SAMPLES, peek=True)  # 40 ms pushes: a partial chunk
            for s in tqdm(streams, desc="greedy CTC 160 ms + peek")]
    res["decoders"]["greedy 160 ms + peek tail"] = {"chunk_ms": 160,
                                                    **score(streams, runs, duration)}
    set_chunk(model, None)
    runs = [run_agreement(model, s, 4 * FRAME_SAMPLES)
            for s in tqdm(streams, desc="local agreement")]
    res["decoders"]["agreement (160 ms updates)"] = {"chunk_ms": 160,
                                                     **score(streams, runs, duration)}
    runs = [run_offline(model, s) for s in tqdm(streams, desc="offline")]
    res["decoders"]["offline"] = {"chunk_ms": None, **score(streams, runs, duration)}
    if exported:
        set_chunk(model, 4)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:  # the export's files are not results
            res["exported_160ms"] = run_exported(model, streams, Path(tmp))
    (out_dir / "asr.json").write_text(json.dumps(res, indent=1))
    _plot(res, out_dir / "asr.png")
    return res


def run_exported(model: Sequential, streams: list[TimedStream], folder: Path,
                 chunk: int = 4) -> dict[str, Any]:
    """The recogniser exported to ONNX at ``chunk`` frames and run by onnxruntime (one thread)
    beside the eager stream, on the same streams padded with silence to whole chunks (the
    export's end is exact only there): real-time factors, transcripts, largest difference."""
    from streamwise.export import onnx
    from streamwise.runtime.onnx_stream import OnnxModel

    step = chunk * FRAME_SAMPLES
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    onnx(model, folder / "asr.onnx", chunk=step, example=torch.zeros(1, 1, step))
    export_s = time.perf_counter() - t0
    om = OnnxModel(folder / "asr.onnx", threads=torch.get_num_threads())
    times = {"eager": 0.0, "onnx": 0.0}
    same, diff, audio_s = 0, 0.0, 0.0
    for s in tqdm(streams, desc="eager vs onnxruntime 160 ms"):
        x = np.zeros((1, 1, -(-len(s.audio) // step) * step), np.float32)
        x[0, 0, :len(s.audio)] = s.audio
        audio_s += x.shape[-1] / RATE
        ys = {}
        for name in ("eager", "onnx"):
            st: Any = model.stream() if name == "eager" else om.stream()
            outs = []
            t = time.perf_counter()
            with torch.inference_mode():
                for a in range(0, x.shape[-1], step):
                    piece = x[..., a:a + step]
                    outs.append(st.push(torch.from_numpy(piece) if name == "eager" else piece))
                outs.append(st.close())
            times[name] += time.perf_counter() - t
            ys[name] = np.concatenate([np.asarray(o) for o in outs], -1)[0]
        diff = max(diff, float(np.abs(ys["eager"] - ys["onnx"]).max()))
        same += _words_of(ys["eager"]) == _words_of(ys["onnx"])
    return {"export_s": export_s, "rtf_eager": times["eager"] / audio_s,
            "rtf_onnx": times["onnx"] / audio_s, "onnx_over_eager": times["onnx"] / times["eager"],
            "transcripts_equal": same, "streams": len(streams), "max_abs_logp_diff": diff}


def _words_of(logp: np.ndarray) -> list[int]:
    return collapse(logp.argmax(0).tolist())


def _plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, d in res["decoders"].items():
        if d["commit_latency_median_s"] is None:
            continue
        marker = "o" if name.startswith("greedy") else "s"
        nudge = (4, -10 if "peek" in name or name == "offline" else 4)  # pairs that overlap
        for ax, y in ((a, d["wer"]), (b, d["perception_wer"])):
            ax.scatter(d["commit_latency_median_s"], y, marker=marker)
            ax.annotate(name, (d["commit_latency_median_s"], y), fontsize=7, xytext=nudge,
                        textcoords="offset points")
    a.set(xlabel="median time from word end to emission (s)", ylabel="WER (final transcript)",
          title="accuracy against latency")
    b.set(xlabel="median time from word end to emission (s)",
          ylabel="streaming-perception WER", title="judged at the time of emission")
    for ax in (a, b):  # latencies span 10 ms to seconds: linear near 0, logarithmic beyond
        ax.set_xscale("symlog", linthresh=0.05)
        ax.grid(alpha=0.3)
    b.set_yscale("log")
    fig.suptitle(f"{res['streams']} test streams ({res['stream_audio_s']:.0f} s, held-out "
                 f"voices), {res['threads']} thread", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_clip(folder: Path, seed: int = 2026, words: int = 8) -> TimedStream:
    """Write the demo clip (``asr_clip.wav``, 16-bit 16 kHz, and ``asr_clip.json``): one
    held-out-voice stream of ``words`` words, as the test streams are made."""
    import wave

    (s,) = timed_streams(1, "test", seed, words=(words, words), snr_db=(25, 30))
    pcm = np.clip(np.round(s.audio * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(folder / "asr_clip.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    (folder / "asr_clip.json").write_text(json.dumps(
        {"text": s.text, "ends_s": [round(e, 4) for e in s.ends_s], "voice": s.voice,
         "seed": seed}, indent=1) + "\n")
    return s

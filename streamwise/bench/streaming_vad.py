"""``streamwise bench streaming-vad``: latency-aware scoring (DAMO-StreamNet) of silero-vad.

Real recordings (the alsa-utils voice clips and the shipped espeak-ng speech, at 16 kHz) are laid
end to end with silent gaps of random length and a little white noise.  The truth is known by
construction: a 32 ms frame is speech when the clean signal's energy in it is above 1/1000 of
its clip's loudest frame.  The model is the vendor's silero-vad rebuilt in plain torch and
converted by ``sw.convert`` (``examples/pretrained/silero_vad_torch.py``), one speech probability
per 512 samples.  Offline F1 scores frame ``j`` against the truth at frame ``j``; streaming F1
scores it against the truth when it is emitted (``core/emission.py``: its chunk's arrival plus
the measured compute of its push, times ``compute_scale`` for a slower device; pushes run one at
a time, so past a real-time factor of 1 the backlog grows).  Writes
``streaming_vad.json`` / ``.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.bench.report import write_report
from streamwise.core.emission import at_emission, emitted, f1

CHUNKS = (512, 2048, 8192, 16384)
SCALES = (0.0, 1.0, 8.0, 32.0)


def scene(clips: dict[str, torch.Tensor], frame: int, seed: int = 0, repeats: int = 2
          ) -> tuple[torch.Tensor, np.ndarray]:
    """Clips with gaps of 0.3-1.5 s between them and white noise at -50 dB of full scale; the
    per-frame speech truth (clean energy above 1/1000 of the clip's loudest frame)."""
    rng = np.random.default_rng(seed)
    parts, truth = [], []
    for _ in range(repeats):
        for clip in clips.values():
            gap = int(rng.uniform(0.3, 1.5) * 16000) // frame * frame
            c = clip.flatten().numpy()
            c = c[: c.size // frame * frame]
            energy = (c.reshape(-1, frame) ** 2).mean(1)
            parts += [np.zeros(gap, np.float32), c.astype(np.float32)]
            truth += [np.zeros(gap // frame, bool), energy > energy.max() / 1000]
    x = np.concatenate(parts)
    x = x + rng.normal(0, 10 ** (-50 / 20), x.size).astype(np.float32)
    return torch.from_numpy(x)[None, None], np.concatenate(truth)


def run(out: Path, chunks: tuple[int, ...] = CHUNKS, scales: tuple[float, ...] = SCALES,
        repeats: int = 2, max_seconds: float | None = None, progress: bool = True
        ) -> dict[str, Any]:
    import streamwise as sw
    from streamwise.bench.exported_models import example

    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    ex = example("silero_vad_torch")
    frame, rate = ex.CHUNK, ex.RATE
    x, truth = scene(ex.recordings(), frame, repeats=repeats)
    if max_seconds is not None:
        keep = int(max_seconds * rate) // frame
        x, truth = x[..., : keep * frame], truth[:keep]
    model = sw.convert(ex.build_model(), torch.zeros(1, 1, rate)).eval()
    with torch.inference_mode():
        ref = model(x)[0, 0].numpy()
    n = min(ref.size, truth.size)
    offline = f1(ref[:n] > 0.5, truth[:n])
    result: dict[str, Any] = {"seconds": x.shape[-1] / rate, "frame_ms": 1000 * frame / rate,
                              "speech_fraction": float(truth.mean()), "offline_f1": offline,
                              "threshold": 0.5, "torch_threads": 1, "runs": []}
    todo = [(c, s) for c in chunks for s in scales]
    for c, s in tqdm(todo, desc="chunk x compute", disable=not progress, leave=False):
        t0 = time.perf_counter()
        y, when = emitted(model, x, c, rate, compute_scale=s)
        rtf = (time.perf_counter() - t0) / result["seconds"]  # compute per second of audio
        p = y[0, 0].numpy()[:n]
        lag = when[:n] - (np.arange(n) + 1) * frame / rate
        result["runs"].append({
            "chunk": c, "chunk_ms": 1000 * c / rate, "compute_scale": s, "rtf": rtf,
            "keeps_up": rtf * s < 1,
            "streaming_f1": f1(p > 0.5, at_emission(truth, frame / rate, when[:n])),
            "same_outputs_as_offline": float(np.abs(p - ref[:n]).max()),
            "delay_ms_p50": float(np.median(lag) * 1e3), "delay_ms_p99":
            float(np.percentile(lag, 99) * 1e3)})

    def plot(path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        for s in scales:
            rows = [r for r in result["runs"] if r["compute_scale"] == s]
            ax[0].plot([r["chunk_ms"] for r in rows], [r["streaming_f1"] for r in rows], "o-",
                       label=f"compute x{s:g}")
            ax[1].plot([r["delay_ms_p50"] for r in rows], [r["streaming_f1"] for r in rows],
                       "o-", label=f"compute x{s:g}")
        for a in ax:
            a.axhline(offline, color="k", ls=":", label="offline F1")
            a.set_ylabel("streaming F1 (truth at emission)")
            a.set_xscale("log")
            a.legend(fontsize=8)
        ax[0].set(xlabel="chunk (ms)", title=f"silero-vad, {result['seconds']:.0f} s of speech")
        ax[1].set(xlabel="median emission delay (ms)", title="F1 against delay")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    rows = [f"offline F1 {offline:.4f} over {result['seconds']:.0f} s "
            f"({100 * result['speech_fraction']:.0f}% speech)",
            "| chunk ms | compute x | RTF x compute | streaming F1 | delay p50 / p99 ms | "
            "max abs vs offline |", "|---:|---:|---:|---:|---:|---:|"]
    for r in result["runs"]:
        rows.append(f"| {r['chunk_ms']:.0f} | {r['compute_scale']:g} | "
                    f"{r['rtf'] * r['compute_scale']:.2f} | {r['streaming_f1']:.4f} "
                    f"| {r['delay_ms_p50']:.0f} / {r['delay_ms_p99']:.0f} | "
                    f"{r['same_outputs_as_offline']:.1e} |")
    write_report(out, "streaming_vad", result, plot, "\n".join(rows))
    return result

"""``streamwise demo``: denoise a real speech recording live, in 10 ms chunks.

The shipped recording (espeak-ng speech) gets noise at 5 dB SNR; a SEANet-like encoder-decoder
trained as a denoiser (weights shipped) cleans it, once offline on the whole recording and once
streamed chunk by chunk.  The demo shows that both give the same output, how much lookahead the
model needs, how much state a stream holds, and how fast each chunk is processed.  A PNG shows the
signals, the error and the latency histogram.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from streamwise.assets import SPEECH_TEXT, make_noise, mix_at_snr, snr_db, speech
from streamwise.core.protocol import StreamingModule
from streamwise.models.seanet import denoiser


def stream_in_chunks(
    model: StreamingModule, x: torch.Tensor, chunk: int, progress: bool = True
) -> tuple[torch.Tensor, np.ndarray]:
    """Push ``x`` in chunks of ``chunk`` frames; return the output and per-chunk seconds."""
    s = model.stream(x.shape[0])
    outs, times = [], []
    starts = range(0, x.shape[-1], chunk)
    for a in tqdm(starts, desc="streaming", unit="chunk", disable=not progress, leave=False):
        t0 = time.perf_counter()
        outs.append(s.push(x[..., a : a + chunk]))
        times.append(time.perf_counter() - t0)
    outs.append(s.close())
    return torch.cat(outs, -1), np.asarray(times)


def run_demo(out_dir: str | Path = "streamwise-demo", chunk_ms: float = 10.0,
             progress: bool = True, snr_in: float = 5.0) -> dict[str, Any]:
    """Run the demo, print its findings, write ``demo.png`` and ``demo.json`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    audio, rate = speech()
    model = denoiser()
    period = model.period  # the codec maps T to T when T is a multiple of its total stride
    clean = audio[:, : audio.shape[-1] // period * period]
    x = mix_at_snr(clean, make_noise(clean.numel(), seed=0), snr_in)[None]  # [1, 1, T]
    chunk = int(round(rate * chunk_ms / 1000))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"input: {x.shape[-1] / rate:.2f} s of speech at {rate} Hz (espeak-ng: {SPEECH_TEXT!r})")
    print(f"noise: white + brown at {snr_in:g} dB SNR")
    print(f"model: SEANet-like denoiser, {n_params / 1e6:.2f} M parameters, "
          f"{len(list(model.modules()))} modules")

    with torch.inference_mode():
        t0 = time.perf_counter()
        ref = model(x)
        offline_s = time.perf_counter() - t0
    y, times = stream_in_chunks(model, x, chunk, progress)
    err = (y - ref).abs()
    scale = float(ref.abs().max())
    duration = x.shape[-1] / rate
    result = {
        "samples": x.shape[-1],
        "chunk_samples": chunk,
        "max_abs_error": float(err.max()),
        "max_rel_error": float(err.max()) / scale,
        "delay_frames": float(model.delay),
        "delay_ms": float(model.delay) / rate * 1000,
        "algorithmic_latency_ms": (float(model.delay) + chunk) / rate * 1000,
        "state_bytes_bound": model.state_nbytes(1, in_channels=1),
        "latency_ms_p50": float(np.percentile(times, 50) * 1e3),
        "latency_ms_p99": float(np.percentile(times, 99) * 1e3),
        # Stream.FM's accounting: what a sample waits in all, algorithmic + the chunk's compute
        "total_latency_ms_p50": (float(model.delay) + chunk) / rate * 1000
        + float(np.percentile(times, 50) * 1e3),
        "total_latency_ms_p99": (float(model.delay) + chunk) / rate * 1000
        + float(np.percentile(times, 99) * 1e3),
        "real_time_factor": float(times.sum()) / duration,
        "offline_real_time_factor": offline_s / duration,
        "parameters": n_params,
        "snr_in_db": snr_db(x[0], clean),
        "snr_out_db": snr_db(y[0], clean),
    }
    live = model.stream()
    live.push(x[..., : 4 * chunk])
    result["state_bytes"] = live.state_nbytes()
    print(f"denoising:   SNR {result['snr_in_db']:.2f} dB in, {result['snr_out_db']:.2f} dB out "
          "(streamed output vs the clean recording)")
    print(f"equivalence: max |streamed - offline| = {result['max_abs_error']:.2e} "
          f"({result['max_rel_error']:.2e} of the output scale {scale:.3f})")
    print(f"lookahead:   {result['delay_frames']:.0f} samples = {result['delay_ms']:.2f} ms; "
          f"with {chunk_ms:g} ms chunks, algorithmic latency "
          f"{result['algorithmic_latency_ms']:.2f} ms")
    print(f"state:       {result['state_bytes']} bytes per stream "
          f"(bound {result['state_bytes_bound']})")
    print(f"per chunk:   p50 {result['latency_ms_p50']:.2f} ms, "
          f"p99 {result['latency_ms_p99']:.2f} ms; "
          f"real-time factor {result['real_time_factor']:.3f} "
          f"(offline forward: {result['offline_real_time_factor']:.3f})")
    print(f"total:       p50 {result['total_latency_ms_p50']:.2f} ms, "
          f"p99 {result['total_latency_ms_p99']:.2f} ms per sample (algorithmic + compute)")
    png = out / "demo.png"
    _plot(png, x[0, 0], clean[0], ref[0, 0], y[0, 0], times, rate, chunk_ms)
    (out / "demo.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {png} and {out / 'demo.json'}")
    return result


def _plot(path: Path, x: torch.Tensor, clean: torch.Tensor, ref: torch.Tensor, y: torch.Tensor,
          times: np.ndarray, rate: int, chunk_ms: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(x.shape[-1]) / rate
    fig, ax = plt.subplots(4, 1, figsize=(10, 9), constrained_layout=True)
    ax[0].plot(t, x.numpy(), lw=0.5, color="0.6", label="noisy input")
    ax[0].plot(t, clean.numpy(), lw=0.5, color="k", label="clean")
    ax[0].set_title(f"input: noisy speech, streamed in {chunk_ms:g} ms chunks")
    ax[0].legend(loc="upper right")
    zoom = slice(int(1.0 * rate), int(1.05 * rate))  # 50 ms, sample by sample
    ax[1].plot(t[zoom], clean[zoom].numpy(), lw=1.0, color="k", label="clean")
    ax[1].plot(t[zoom], ref[zoom].numpy(), lw=2.0, color="C0", label="offline forward")
    ax[1].plot(t[zoom], y[zoom].numpy(), lw=1.0, ls="--", color="C1", label="streamed")
    ax[1].set_title("denoised output, 50 ms zoom: streamed lies on offline")
    ax[1].legend(loc="upper right")
    ax[2].semilogy(t, (y - ref).abs().numpy() + 1e-12, lw=0.5, color="C3")
    ax[2].set_title("|streamed - offline|")
    ax[2].set_xlabel("seconds")
    ax[3].hist(times * 1e3, bins=60, color="C2")
    ax[3].axvline(chunk_ms, color="k", ls=":", label=f"real-time budget ({chunk_ms:g} ms)")
    ax[3].set_title("processing time per chunk")
    ax[3].set_xlabel("ms")
    ax[3].legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)

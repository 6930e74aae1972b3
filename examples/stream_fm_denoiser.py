"""Stream.FM's frame-causal flow matching: a denoiser streamed with buffered lookahead and a few
ODE steps per frame, its latency split into algorithmic and compute.

A small velocity network (5 ms frames, one frame of lookahead) is trained for a few seconds on
espeak-ng speech in white + brown noise, then the demo's noisy recording is streamed in 10 ms
chunks at 1, 2 and 4 Euler steps.  Printed per step count: that the stream equals the offline
solve (same per-sample noise seed), the lookahead (``hop - 1 + K * lookahead * hop`` samples),
and algorithmic + compute = total latency.  ``streamwise bench stream-fm`` trains it properly and
compares it with the shipped SEANet denoiser.
"""

import time

import numpy as np
import torch

import streamwise as sw
from streamwise.assets import make_noise, mix_at_snr, snr_db, speech
from streamwise.bench.stream_fm import sentences
from streamwise.core.verify import stream_chunks
from streamwise.models.flow_denoiser import FlowDenoiser
from streamwise.speech.synth import espeak

torch.set_num_threads(1)
RATE, HOP, CHUNK = 16_000, 80, 160  # 5 ms frames, 10 ms chunks
flow = FlowDenoiser(hop=HOP, width=32, lookahead=1, dilations=(1, 2, 4, 8), seed=0)
train = [torch.from_numpy(espeak(s)) for s in sentences(3)]
noise = make_noise(8 * max(len(s) for s in train), seed=1)
opt = torch.optim.Adam([p for p in flow.parameters() if p.requires_grad], 3e-3)
rng = np.random.default_rng(0)
t0 = time.perf_counter()
for _ in range(60):
    cs, ys = [], []
    for _ in range(8):  # 0.5 s crops of a sentence mixed at 0, 5 or 10 dB
        s = train[rng.integers(3)]
        a, b = rng.integers(len(s) - 8000), rng.integers(len(noise) - len(s))
        noisy = mix_at_snr(s, noise[b:b + len(s)], float(rng.choice([0.0, 5.0, 10.0])))
        cs.append(s[a:a + 8000])
        ys.append(noisy[a:a + 8000])
    loss = flow.loss(torch.stack(cs)[:, None], torch.stack(ys)[:, None])
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"trained 60 flow-matching steps in {time.perf_counter() - t0:.1f} s, loss {loss.item():.3f}")

audio, _ = speech()
clean = audio[:, : 3 * RATE // 2]  # the demo's recording, first 1.5 s, at 5 dB in the demo's noise
x = mix_at_snr(clean, make_noise(clean.numel(), seed=0), 5.0)[None]
print(f"input: {snr_db(x[0], clean):.2f} dB SNR; streamed in {CHUNK}-sample (10 ms) chunks")
for k in (1, 2, 4):
    model = flow.sampler(steps=k, seed=0).eval()
    with torch.inference_mode():
        offline = model(x)
    streamed, _ = stream_chunks(model, x, [CHUNK] * (x.shape[-1] // CHUNK))
    report = sw.verify(model, x[..., : RATE // 4], trials=1, chunk=CHUNK, sample_rate=RATE)
    f = flow.latency_samples(k, CHUNK)
    print(f"K={k} ODE steps: |streamed - offline| = {float((streamed - offline).abs().max()):.1e}"
          f", SNR out {snr_db(streamed[0], clean):.2f} dB; lookahead {f['delay']} samples "
          f"= {HOP - 1} + {k} x {HOP} (measured {report.measured_delay_frames:g})")
    print(f"   latency: algorithmic {report.algorithmic_frames / RATE * 1e3:.2f} ms "
          f"(chunk + lookahead) + compute p50 {report.compute_ms['p50']:.2f} ms "
          f"= total p50 {report.total_latency_ms['p50']:.2f} ms "
          f"(p99 {report.total_latency_ms['p99']:.2f} ms)")

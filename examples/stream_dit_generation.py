"""StreamDiT's moving noise buffer + StreamingT2V's memories: a tiny flow-matching DiT continues
the log-mel stream of the shipped speech, one model call per 80 ms chunk, for as long as asked.

``MovingBuffer`` keeps ``S`` chunks at staggered noise levels; each call denoises the whole buffer
one level (window attention over its chunks, a time embedding per frame), the cleanest chunk
leaves and fresh noise enters.  ``AnchorMemory`` hands the model the previous chunk (short-term)
and the stream's first chunks (the long-term anchor).  Printed: that the streamed chunks equal
the same schedule computed at once, that the state stays bounded, and the boundary
discontinuity (1.0 = a chunk boundary is as smooth as the inside of a chunk) with each memory.
``streamwise bench stream-dit`` is the full benchmark (four voices, longer training).
"""

import time

import torch

from streamwise.assets import speech
from streamwise.attention.cache.anchor import AnchorMemory
from streamwise.core.moving_buffer import MovingBuffer, flow_times, moving_buffer_offline
from streamwise.layers.spectral import MelSpectrogram
from streamwise.models.stream_dit import StreamDiT, flow_matching_loss, staggered_times, velocity

torch.manual_seed(0)
torch.set_num_threads(1)
CHUNK, S, BANDS = 8, 4, 16  # 80 ms chunks, 4 chunks in the buffer (4 steps), 16 mel bands
t0 = time.perf_counter()
audio, rate = speech()
mel = MelSpectrogram(rate, n_fft=400, hop_length=160, n_mels=BANDS, center=False, log=True,
                     eps=1e-4)(audio[None])[0].T  # [T, bands]
mel = (mel - mel.mean(0)) / (mel.std(0) + 1e-3)
n_chunks = len(mel) // CHUNK

model = StreamDiT(BANDS, CHUNK, dim=32, heads=2, layers=2, window=1, max_chunks=S)
opt = torch.optim.Adam(model.parameters(), 3e-3)
for step in range(100):  # buffers of S real chunks, the previous chunk and the first as memory
    starts = torch.randint(2, n_chunks - S, (12,))
    clean = torch.stack([mel[s * CHUNK:(s + S) * CHUNK] for s in starts])
    mem = torch.stack([torch.cat([mel[:CHUNK], mel[(s - 1) * CHUNK:s * CHUNK]]) for s in starts])
    kind, pos = torch.tensor([0] * CHUNK + [1] * CHUNK), torch.arange(2 * CHUNK) % CHUNK
    memory = (mem, kind, pos) if step % 2 else None  # one model for both
    loss = flow_matching_loss(model, clean, staggered_times(12, S, CHUNK, S, 0.25), memory)
    opt.zero_grad()
    loss.backward()
    opt.step()
model.eval()
print(f"trained a {sum(p.numel() for p in model.parameters())}-parameter StreamDiT on the "
      f"shipped speech ({len(mel)} log-mel frames): loss {loss.item():.2f}")


def discontinuity(x):
    d = (x[:, 1:] - x[:, :-1]).abs().mean(-1)
    edge = torch.arange(1, x.shape[1]) % CHUNK == 0
    return float(d[:, edge].mean() / d[:, ~edge].mean())


v, times = velocity(model), flow_times(S)
noise = torch.randn(1, 40 * CHUNK, BANDS, generator=torch.Generator().manual_seed(1))
for name, make in [("moving buffer alone", lambda: None),
                   ("+ short-term memory", lambda: AnchorMemory(CHUNK, recent=1, anchor=0)),
                   ("+ short-term + anchor", lambda: AnchorMemory(CHUNK, recent=1, anchor=1))]:
    mem, peak = make(), 0
    if mem is not None:
        mem.write(mel[None, :2 * CHUNK])  # the real speech's first chunks start the memories
    buf = MovingBuffer(v, times, mem)
    out = []
    for c in range(40):
        y = buf.push(noise[:, c * CHUNK:(c + 1) * CHUNK])
        out += [] if y is None else [y]
        peak = max(peak, buf.nbytes() + (mem.nbytes() if mem is not None else 0))
    x = torch.cat(out + buf.flush(), 1)
    ref_mem = make()
    if ref_mem is not None:
        ref_mem.write(mel[None, :2 * CHUNK])
    ref = moving_buffer_offline(v, times, noise, CHUNK, ref_mem)
    print(f"{name:22}: {buf.calls} calls for 40 chunks, streamed == offline schedule "
          f"(max diff {float((x - ref).abs().max()):.1e}), state <= {peak} bytes, "
          f"boundary discontinuity {discontinuity(x):.2f}")
print(f"real speech, same chunk grid: discontinuity {discontinuity(mel[None]):.2f} "
      f"({time.perf_counter() - t0:.1f} s in all)")

"""Streamable neural audio synthesis (cached_conv's paper): non-causal convolutions become delay,
transposed convolutions overlap-add, residual branches align themselves.

Run: python examples/noncausal_codec_streaming.py
"""

import torch

import streamwise as sw
from streamwise.assets import speech
from streamwise.models.seanet import denoiser

model = denoiser()
audio, rate = speech()
x = audio[None, :, :32000]
print(f"lookahead {float(model.delay):.0f} samples = {1000 * float(model.delay) / rate:.1f} ms")

s = model.stream()
chunks = [s.push(x[..., i : i + 160]) for i in range(0, 32000, 160)]  # 10 ms chunks
y = torch.cat([*chunks, s.close()], -1)
with torch.inference_mode():
    print("max |streamed - offline|:", float((y - model(x)).abs().max()))
print("first chunks emit", [c.shape[-1] for c in chunks[:3]], "samples: the lookahead fills first")

# the same model restarted mid-stream for one row of a batch, without touching the other
s2 = model.stream(batch_size=2)
s2.push(x[..., :1600].expand(2, 1, 1600).contiguous())
s2.reset([False, True])
print("reset row 1 at", s2.frames_in, "samples; period", model.period)
print(sw.verify(model, x[..., :4800], trials=3))

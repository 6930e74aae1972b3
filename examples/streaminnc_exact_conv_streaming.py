"""StreamiNNC: a conv + pooling stack streams exactly, with pooling windows aligned to the absolute
sample index, and streaming beats recomputing overlapping windows.

Run: python examples/streaminnc_exact_conv_streaming.py
"""

import torch

import streamwise as sw
from streamwise.bench.conv import WindowRecompute

torch.manual_seed(0)
model = sw.Sequential(
    sw.Conv1d(1, 16, 9, padding="same"), sw.ReLU(), sw.MaxPool1d(4),  # pool 4, chunks of 7
    sw.Conv1d(16, 16, 5, padding="same"), sw.ReLU(), sw.AvgPool1d(3, 2, 1),
    sw.Conv1d(16, 4, 3, padding="causal"),
).eval()
x = torch.randn(1, 1, 2000)  # an ECG-like sensor stream, say

s = model.stream()
y = torch.cat([s.push(x[..., i : i + 7]) for i in range(0, 2000, 7)] + [s.close()], -1)
with torch.inference_mode():
    print("max |streamed - offline|:", float((y - model(x)).abs().max()))
print(f"delay {model.delay} frames, stride {model.stride}, receptive field "
      f"{model.receptive_field}, period {model.period}")

w = WindowRecompute(model)
with torch.inference_mode():
    yw = torch.cat([w.push(x[..., i : i + 8]) for i in range(0, 2000, 8)], -1)
print("window recompute reruns", w.window_frames, "frames per 8-frame hop; its error:",
      float((yw - model(x)[..., : yw.shape[-1]]).abs().max()))

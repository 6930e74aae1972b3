"""Delta networks: transmit only changes above a threshold; measure what it saves.

Run: python examples/delta_sparse_streaming.py
"""

import torch

import streamwise as sw
from streamwise.bench.delta import speech_features
from streamwise.layers.delta import sparsity

x = speech_features()  # real speech, 64 log bands per 10 ms
torch.manual_seed(0)
dense = sw.Sequential(sw.Linear(64, 256), sw.ReLU(), sw.Linear(256, 64)).eval()
with torch.inference_mode():
    ref = dense(x)
for thr in (0.0, 0.05, 0.2):
    delta = sw.delta_pointwise(dense, thr)
    s = delta.stream()
    y = torch.cat([s.push(x[..., t : t + 1]) for t in range(x.shape[-1])], -1)
    sent, total = sparsity(s.state)
    err = float((y - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt())
    print(f"threshold {thr:4}: {100 * sent / total:5.1f}% of input changes sent, "
          f"relative RMS error {err:.3f}")

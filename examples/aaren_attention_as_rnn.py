"""Attention as an RNN (Aaren): softmax attention over the whole prefix with O(1) state.

Run: python examples/aaren_attention_as_rnn.py
"""

import torch

import streamwise as sw

torch.manual_seed(0)
layer = sw.Aaren(dim=16, heads=4).eval()
x = torch.randn(1, 16, 5000) * 4
s = layer.stream()
ys = [s.push(x[..., i : i + 1]) for i in range(5000)]  # one token at a time
y = torch.cat(ys, -1)
with torch.inference_mode():
    print("max |streamed - parallel scan|:", float((y - layer(x)).abs().max()))
print("state bytes after 5000 tokens:", s.state_nbytes(), "(constant: one triple per head)")

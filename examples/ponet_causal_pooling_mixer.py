"""PoNet's pooling token mixer made causal: prefix mean, segment max and local max stream
exactly; with ``attend=W``, PoNet's second global stage (the pooled vector as a query over the
last W frames) streams exactly too, with W - 1 frames of state.

Run: python examples/ponet_causal_pooling_mixer.py
"""

import torch

import streamwise as sw

torch.manual_seed(0)
x = torch.randn(2, 16, 1000)
for attend in (None, 64):
    mixer = sw.CausalPoolingMixer(channels=16, segment=32, local=5, attend=attend).eval()
    print(f"attend={attend}:", sw.verify(mixer, x, trials=5))

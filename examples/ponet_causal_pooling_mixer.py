"""PoNet's pooling token mixer made causal: prefix mean, segment max and local max stream
exactly.

Run: python examples/ponet_causal_pooling_mixer.py
"""

import torch

import streamwise as sw

torch.manual_seed(0)
mixer = sw.CausalPoolingMixer(channels=16, segment=32, local=5).eval()
x = torch.randn(2, 16, 1000)
print(sw.verify(mixer, x, trials=5))

"""Spiking neurons streamed frame by frame, and a new class learned on the device from three
examples with a local rule (no backprop).

Run: python examples/lif_on_chip_learning.py
"""

import torch

import streamwise as sw

torch.manual_seed(0)
lif = sw.LIF(8, 32, beta=0.9, threshold=1.0)
readout = sw.PrototypeReadout(32)


def rates(pattern: torch.Tensor) -> torch.Tensor:
    """Spike rate of each neuron while the pattern streams in, one frame at a time."""
    s = lif.stream()
    spikes = torch.cat([s.push(pattern[..., t : t + 1]) for t in range(pattern.shape[-1])], -1)
    return spikes.mean(-1)[0]


patterns = [torch.rand(1, 8, 1).expand(1, 8, 50) * 2 for _ in range(4)]
for p in patterns[:3]:
    readout.add_class(torch.stack([rates(p + 0.1 * torch.randn_like(p)) for _ in range(5)]))
new = readout.add_class(torch.stack([rates(patterns[3] + 0.1 * torch.randn_like(patterns[3]))
                                     for _ in range(3)]))
tests = [rates(p + 0.1 * torch.randn_like(p)) for p in patterns]
print("predicted:", readout(torch.stack(tests)).argmax(1).tolist(), "expected: [0, 1, 2,", new, "]")
print("mean spike rate:", float(torch.stack(tests).mean()))

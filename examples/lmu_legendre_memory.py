"""LMUFormer / Legendre Memory Unit: parallel (FFT) training, exact recurrent streaming.

Run: python examples/lmu_legendre_memory.py
"""

import torch

import streamwise as sw

torch.manual_seed(0)
lmu = sw.LMU(input_size=2, hidden_size=16, order=32, theta=100.0).double()
x = torch.randn(1, 2, 3000, dtype=torch.float64)
report = sw.verify(lmu, x, trials=3)
print(f"float64: max |streamed - parallel| = {report.max_abs_error:.1e}")

lmu32 = sw.LMU(2, 16, order=32, theta=1000.0)
for length in (1_000, 10_000, 50_000):
    x = torch.randn(1, 2, length)
    with torch.inference_mode():
        ref = lmu32.double()(x.double()).float()
        lmu32.float()
        s = lmu32.stream()
        y = torch.cat([s.push(x[..., i : i + 500]) for i in range(0, length, 500)], -1)
    err = float((y - ref).abs().max())
    print(f"float32 recurrence over {length:6d} frames: max error {err:.1e}")

block = sw.lmu_former_block(1, 32, order=16, theta=64.0, patch=4).eval()
print("LMUFormer block:", sw.verify(block, torch.randn(1, 1, 512), trials=2).max_abs_error)

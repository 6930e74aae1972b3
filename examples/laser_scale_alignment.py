"""LASER: stream an offline model whose every window has its own scales, by aligning windows.

A toy 'depth' model expresses each layer of the scene (near, far) in the units of its input's
first frames, as a reconstruction model does with its first camera: run on overlapping windows,
each window comes out at different scales, so the stitched stream jumps at every boundary.
``ScaleAlign(layers=1)`` fits one scale per window over the overlap with the previous one;
``ScaleAlign(layers=2)`` one per layer (split at the widest gap in log depth), which follows the
two layers' different drifts and recovers the offline output.
"""

import torch
from torch import nn

from streamwise.convert import ScaleAlign, WindowStream
from streamwise.core.verify import stream_chunks


class FirstFramesDepth(nn.Module):
    def forward(self, x):  # near in units of its first 8 frames; far the same, x10
        ref = x[..., :8].mean(-1, keepdim=True)
        return x / ref * torch.tensor([1.0, 10.0], dtype=x.dtype).view(1, 2, 1)


t = torch.arange(600, dtype=torch.float64)
near = 0.7 + 0.3 * torch.sin(t / 40)  # the two layers drift differently
far = 6 + 2 * torch.cos(t / 55)
x = torch.stack([near, far])[None]
model = FirstFramesDepth()
offline = model(x)
for name, align in [("no alignment", None), ("one scale per window", ScaleAlign(1)),
                    ("layer-wise scales (LASER)", ScaleAlign(2))]:
    ws = WindowStream(model, window=48, hop=16, context=(16, 0), align=align)
    y, _ = stream_chunks(ws, x, [10] * 60)  # 10-frame chunks
    rel = ((y - offline).abs() / offline).max()
    print(f"{name:>26}: max relative error against offline {float(rel):.2e}")

"""Hybrid Forcing's block-sparse window attention: each query reads its own block and the few
past blocks whose mean key it is most aligned with.

``BlockSparse(block, blocks, top)`` keeps the last ``blocks`` blocks of ``block`` frames and
lets each query read ``top`` of them besides its own.  Printed: keys read per query and the
output error against full causal attention over 256 frames (a window of 32 blocks of 8 covers
them all, so ``top=31`` is exact).
"""

import torch

from streamwise.attention import BlockSparse, StreamingAttention
from streamwise.core.verify import stream_chunks

torch.manual_seed(0)
x = torch.randn(1, 256, 32, dtype=torch.float64)
full = StreamingAttention(32, 4).double()
with torch.no_grad():
    ref = full(x)
    for top in (0, 1, 4, 12, 31):
        m = StreamingAttention(32, 4, cache=BlockSparse(block=8, blocks=32, top=top)).double()
        m.load_state_dict(full.state_dict())
        y, _ = stream_chunks(m, x, [16] * 16)
        err = float((y - ref).norm() / ref.norm())
        print(f"top {top:>2}: at most {(top + 1) * 8:>3} keys per query, relative error against "
              f"full attention {err:.2e}")

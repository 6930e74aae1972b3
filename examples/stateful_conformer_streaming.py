"""Stateful (cache-aware) Conformer: chunked limited attention context, causal depthwise convs
and aligned residuals, so the encoder streams exactly like its offline forward; one set of
weights serves several latencies (``set_chunk``).

Printed per chunk size: the equivalence check over random chunkings, the lookahead (the
metadata adds each block's ``chunk - 1``; the chunks of all blocks are aligned to frame 0, so
the measured one is ``chunk - 1``) and the state bound.
"""

import torch

import streamwise as sw
from streamwise.models.asr import set_chunk
from streamwise.models.conformer import conformer_encoder

torch.manual_seed(0)
enc = conformer_encoder(in_dim=20, dim=32, heads=4, layers=2, chunk=8, left_chunks=2).eval()
x = torch.randn(1, 20, 200)
for chunk in (2, 8, 16):
    set_chunk(enc, chunk, left_frames=16)
    r = sw.verify(enc, x, trials=3)
    print(f"chunk {chunk:>2}: {'PASS' if r.passed else 'FAIL'} (max rel error "
          f"{r.max_rel_error:.1e}), lookahead {r.delay_frames:g} frames "
          f"(measured {r.measured_delay_frames:g}), state bound {r.state_bytes_bound} bytes")

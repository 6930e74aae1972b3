"""The Dual-Stream Transformer: a token stream written only by attention, a context stream written
only by the feed-forward blocks, and attention heads that mix independently, through a Kronecker
heads x heads matrix, or densely.  All variants have the parameter count of a standard
transformer; each streams token by token with a (here bounded) KV cache, exactly like offline.

Run: python examples/dual_stream_transformer.py
(the training comparison: ``streamwise.bench.dual_stream.run``, numbers in docs/models/)
"""

import numpy as np
import torch

from streamwise.attention import Window
from streamwise.core.verify import random_chunks, stream_chunks
from streamwise.models.dual_stream import ARCHS, DualBlock, DualStreamLM, count_parameters

torch.set_num_threads(1)  # tiny tensors: more threads only add overhead
torch.manual_seed(0)
text = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer"
vocab = sorted(set(text))
ids = torch.tensor([[vocab.index(c) for c in text]])

print("equal size: parameters (feed-forward width) per variant")
for arch in ARCHS:
    m = DualStreamLM(len(vocab), dim=32, heads=4, layers=2, arch=arch)
    print(f"  {arch:>11}: {count_parameters(m):6d} ({m.ffn_width})")

print("\nwhich heads' token update moves when only head 1's slice of the context stream does")
for mixing in ("independent", "kronecker", "dense"):
    block = DualBlock(heads=4, head_dim=8, mixing=mixing, ffn=16, cache=Window(8))
    if mixing == "kronecker":  # off its identity init: head 1 speaks to head 0 by a scalar
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            getattr(block.attn, name).mix.data[0, 1] = 0.5
    xt, xe = torch.randn(2, 1, 10, 32)
    xe2 = xe.clone()
    xe2[..., 8:16] += torch.randn(1, 10, 8)  # (a constant shift would be normalised away)
    with torch.no_grad():
        d = (block.token_update(xt, xe2) - block.token_update(xt, xe)).view(1, 10, 4, 8)
    moved = ["yes" if v > 1e-6 else "no" for v in d.abs().amax((0, 1, 3)).tolist()]
    print(f"  {mixing:>11}: heads 0-3 -> {moved}")

print("\nstreamed in irregular chunks (Window(16) cache) vs offline, float32")
for arch in ARCHS:
    m = DualStreamLM(len(vocab), dim=32, heads=4, layers=2, arch=arch, cache=Window(16)).eval()
    sizes = random_chunks(ids.shape[1], np.random.default_rng(1), 7)
    y, _ = stream_chunks(m, ids, sizes)
    with torch.no_grad():
        err = float((y - m(ids)).abs().max())
    print(f"  {arch:>11}: max |streamed - offline| = {err:.1e}, state bound "
          f"{m.state_nbytes(1)} bytes, chunks {sizes[:8]}...")

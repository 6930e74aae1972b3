"""AnnSA: each query attends only to the keys a random-hyperplane LSH index finds.

``AnnTopK(k, bits, radius, window)`` hashes every cached key to ``bits`` signs; a query looks at
the keys within ``radius`` bits of its own code and attends to the best ``k`` of them plus the
last ``window`` frames.  Printed: recall of the true top-10 keys and the share of keys scanned
per probe radius (1,000 random keys, a query near one of them), then the output error of a
streaming attention layer against full attention (random inputs, so random keys: the hard case
for a sparse selection).  Last, AnnCA: queries cross-attending to a 5,000-entry memory through
``AnnCrossAttention``, with its recall of each query's true top-10.
"""

import torch

from streamwise.attention import AnnCrossAttention, AnnTopK, StreamingAttention
from streamwise.attention.cache import entries as E
from streamwise.core.verify import stream_chunks

gen = torch.Generator().manual_seed(3)
keys = torch.randn(1, 1000, 16, generator=gen, dtype=torch.float64)
q = (keys[:, :1] + 0.3 * torch.randn(1, 1, 16, generator=gen, dtype=torch.float64))[:, None]
pos = torch.arange(1000)[None]
cache = {**E.empty(1, 1, 16, "cpu", torch.float64), "k": keys[:, None], "v": keys[:, None],
         "pos": pos, "seg": pos * 0, "lidx": pos.clone(), "bias": torch.zeros(1, 1000).double(),
         "pin": torch.zeros(1, 1000, dtype=torch.bool),
         "valid": torch.ones(1, 1000, dtype=torch.bool)}
for radius in (0, 1, 2, 3, 10):
    ann = AnnTopK(k=10, bits=10, radius=radius)
    scanned = float(ann.candidates(cache, q).double().mean())
    print(f"radius {radius:>2}: recall@10 {float(ann.recall(cache, q)[0]):.2f}, "
          f"keys scanned {scanned:.1%}")

torch.manual_seed(0)
x = torch.randn(1, 300, 16, dtype=torch.float64)
full = StreamingAttention(16, 2, encoding="none").double()
with torch.no_grad():
    ref = full(x)
    for k, radius in ((4, 2), (64, 2), (300, 2), (300, 8)):  # the last leaves nothing out
        m = StreamingAttention(16, 2, encoding="none", cache=AnnTopK(k, bits=8, radius=radius))
        m = m.double()
        m.load_state_dict(full.state_dict())
        y, _ = stream_chunks(m, x, [10] * 30)
        print(f"k={k:>3}, radius {radius}: relative error against full attention "
              f"{float((y - ref).norm() / ref.norm()):.2e}")

torch.manual_seed(1)
memory = torch.randn(1, 5000, 16, dtype=torch.float64)
queries = memory[:, :50] + 0.2 * torch.randn(1, 50, 16, dtype=torch.float64)
with torch.no_grad():
    for radius in (1, 3, 12):
        ca = AnnCrossAttention(16, 4, k=10, bits=12, radius=radius).double()
        torch.manual_seed(5)
        ca.load_state_dict(AnnCrossAttention(16, 4, k=10).double().state_dict())
        print(f"cross-attention, radius {radius:>2}: recall@10 "
              f"{float(ca.recall(queries, memory).mean()):.2f} (50 queries, 5,000 entries)")

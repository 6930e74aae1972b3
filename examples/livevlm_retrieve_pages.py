"""LiveVLM / Flash-VStream: what leaves the working cache is kept as compressed pages, and the
query fetches back the pages it needs.

``Retrieve(k=2, page=8, window=32, n_sink=4)`` keeps sinks + a window in the cache and stores
evicted frames as int8 pages with their mean key.  A 'needle' frame appears early in a 400-frame
stream; the last query asks for it.  Printed: how often the needle's page is fetched over 20
streams, and the last output's error against full attention with and without retrieval.
"""

import torch

from streamwise.attention import Retrieve, Sinks, StreamingAttention

d, hits, err_retrieve, err_window, trials = 16, 0, 0.0, 0.0, 20
with torch.no_grad():
    for seed in range(trials):
        g = torch.Generator().manual_seed(seed)
        m = StreamingAttention(d, 2, encoding="none",
                               cache=Retrieve(k=2, page=8, window=32, n_sink=4)).double()
        for p in (m.q_proj, m.v_proj, m.out_proj):
            p.weight.copy_(torch.eye(d))
        m.k_proj.weight.copy_(torch.eye(d).roll(1, 0))  # a query matches the needle's key
        x = 0.3 * torch.randn(1, 400, d, generator=g, dtype=torch.float64)
        at = int(torch.randint(10, 200, (1,), generator=g))
        needle = torch.randn(d, generator=g, dtype=torch.float64)
        x[0, at] = 8 * needle / needle.norm()
        x[0, -1] = x[0, at].roll(1)  # the last frame asks for the needle
        state = m.init_state(1, dtype=torch.float64)
        y, state = m.step(x, state)
        fetched = state["policy"]["ppos"][0, state["policy"]["last"][0]]
        hits += int((fetched == at).any())
        full = m(x)[0, -1]
        w = StreamingAttention(d, 2, encoding="none", cache=Sinks(4, 32)).double()
        w.load_state_dict(m.state_dict())
        err_retrieve += float((y[0, -1] - full).norm() / full.norm()) / trials
        err_window += float((w(x)[0, -1] - full).norm() / full.norm()) / trials
print(f"needle page fetched in {hits}/{trials} streams; last output's relative error against "
      f"full attention: {err_retrieve:.3f} with retrieval, {err_window:.3f} with sinks + window "
      f"alone (cache bound {Retrieve(2, 8, 32, 4).bound} entries + int8 pages)")

"""AnnTopK: LSH-selected sparse attention, full attention when nothing is left out, and the
recall of the true top-k measured."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwise.attention import AnnTopK, StreamingAttention
from streamwise.attention.cache import entries as E
from streamwise.core.verify import stream_chunks
from tests.strategies import assert_streams_like_offline, chunkings


@pytest.mark.parametrize("encoding", ["none", "rope"])
@settings(max_examples=15, deadline=None)
@given(data=st.data(), batch=st.integers(1, 3), length=st.integers(1, 40))
def test_nothing_left_out_is_full_attention(encoding, data, batch, length):
    torch.manual_seed(0)
    x = torch.randn(batch, length, 8, dtype=torch.float64)
    m = StreamingAttention(8, 2, encoding=encoding,
                           cache=AnnTopK(k=64, bits=6, radius=6, window=0)).double()
    assert_streams_like_offline(m, x, data.draw(chunkings(length)), rtol=1e-10)


def test_a_small_selection_approximates_and_the_error_is_measured():
    torch.manual_seed(1)
    x = torch.randn(1, 200, 16, dtype=torch.float64)
    errs = []
    for k in (4, 16, 64, 256):
        m = StreamingAttention(16, 2, encoding="none",
                               cache=AnnTopK(k=k, bits=8, radius=2, window=4)).double()
        torch.manual_seed(2)
        m.load_state_dict(StreamingAttention(16, 2, encoding="none").double().state_dict())
        y, _ = stream_chunks(m, x, [200])
        ref = m(x).detach()
        errs.append(float((y - ref).norm() / ref.norm().detach()))
    assert errs[0] > 1e-3 and errs == sorted(errs, reverse=True)


def _cache(keys):
    b, n, d = keys.shape
    c = E.empty(b, 1, d, "cpu", keys.dtype)
    pos = torch.arange(n).expand(b, -1)
    return {**c, "k": keys[:, None], "v": keys[:, None], "pos": pos, "seg": pos * 0,
            "lidx": pos.clone(), "bias": torch.zeros(b, n, dtype=keys.dtype),
            "pin": torch.zeros(b, n, dtype=torch.bool), "valid": torch.ones(b, n, dtype=torch.bool)}


def test_recall_of_the_true_top_k_grows_with_the_probe_radius():
    gen = torch.Generator().manual_seed(3)
    keys = torch.randn(4, 1000, 16, generator=gen, dtype=torch.float64)
    q = (keys[:, :1] + 0.3 * torch.randn(4, 1, 16, generator=gen, dtype=torch.float64))[:, None]
    cache = _cache(keys)
    recalls = [float(AnnTopK(k=10, bits=10, radius=r).recall(cache, q).mean())
               for r in (0, 1, 2, 3, 10)]
    assert recalls == sorted(recalls) and recalls[-1] == 1.0 and recalls[0] < 1.0
    cand = AnnTopK(k=10, bits=10, radius=1).candidates(cache, q).float().mean()
    assert cand < 0.1  # radius 1 looks at a few percent of the keys


def test_settings_are_checked():
    with pytest.raises(ValueError, match="k"):
        AnnTopK(0)
    with pytest.raises(ValueError, match="radius"):
        AnnTopK(4, radius=-1)

"""The streaming Conformer encoder equals its offline forward for any chunking."""

import torch
from hypothesis import given
from hypothesis import strategies as st

import streamwise as sw
from streamwise.models.conformer import conformer_encoder
from tests.strategies import assert_streams_like_offline, chunkings


def _encoder(chunk, left, positions="rope"):
    torch.manual_seed(0)
    m = conformer_encoder(12, dim=16, heads=2, layers=2, chunk=chunk, left_chunks=left,
                          kernel=5, encoding=positions).double().eval()
    for mod in m.modules():  # non-trivial running statistics, as after training
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2.0)
    return m


@given(data=st.data(), chunk=st.integers(1, 6), left=st.integers(0, 2),
       positions=st.sampled_from(["rope", "alibi", "none"]), batch=st.integers(1, 2),
       length=st.integers(1, 40))
def test_conformer_streams_exactly(data, chunk, left, positions, batch, length):
    m = _encoder(chunk, left, positions)
    x = torch.randn(batch, 12, length, dtype=torch.float64)
    assert_streams_like_offline(m, x, data.draw(chunkings(length)), rtol=1e-10)


def test_lookahead_is_one_chunk_and_state_is_bounded():
    m = _encoder(4, 2).float()
    rep = sw.verify(m, torch.randn(1, 12, 80), trials=4)
    assert rep.passed
    assert rep.measured_delay_frames == 3  # chunk - 1, although the metadata bound adds blocks
    s = m.stream()
    for _ in range(50):
        s.push(torch.randn(1, 12, 37))
    assert s.state_nbytes() <= m.state_nbytes(1, in_channels=12)
